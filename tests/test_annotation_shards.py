"""``lacy annotate shard``: aligned arrays, all-or-nothing outputs, clear errors on malformed input, and
reruns that reproduce the shard."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lacy import FACT
from lacy.annotation import annotate_stream, load_spacy
from lacy.annotation.shards import annotate_shard, output_paths
from lacy.cli import main
from lacy.tokenizer import LacyTokenizer, train_sentencepiece

LONG = "Alan Turing was a mathematician.\n" + "He liked puzzles. " * 30 + "\nTuring worked at Bletchley Park."
RECORDS = [
    {"id": "a", "text": "Wolfgang Amadeus Mozart was a composer. Mozart was born in Salzburg."},
    {"id": "b", "text": ""},
    {"id": "c", "text": "  \n\t "},
    {"id": "d", "text": "東京 is big 🎉. Zoë Ångström met Björk in 1987."},
    {"id": "e", "text": LONG},
    {"id": "f", "text": "She studied physics.", "title": "F", "is_person": False, "description": "a test"},
]
MAX_CHARS = 300


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, wiki_records) -> Path:
    out = tmp_path_factory.mktemp("shard-tokenizer")
    return train_sentencepiece((r["text"] for r in wiki_records), out, vocab_size=1000, seed=0)


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


def write_corpus(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "part-0.jsonl.gz", [json.dumps(r).encode() for r in RECORDS])


def load_outputs(prefix: Path) -> dict:
    paths = output_paths(prefix)
    out = {name: np.load(paths[name]) for name in ("tokens", "labels", "docs")}
    out["stats"] = json.loads(paths["stats"].read_text())
    return out


def test_outputs_are_aligned_and_describe_every_document(corpus, tokenizer_dir, nlp, tmp_path):
    prefix = tmp_path / "out" / "part-0"
    annotate_shard(corpus, tokenizer_dir, prefix, max_chars=MAX_CHARS)
    out = load_outputs(prefix)
    tokens, labels, docs, stats = out["tokens"], out["labels"], out["docs"], out["stats"]
    assert tokens.dtype == np.uint16 and labels.dtype == np.uint8 and docs.dtype == np.int64
    assert len(tokens) == len(labels) == docs[-1] == stats["n_tokens"] and docs[0] == 0
    assert stats["doc_ids"] == ["a", "d", "e", "f"] and stats["n_docs"] == 4 and len(docs) == 5
    assert stats["skipped_empty"] == 2 and stats["skipped_empty_ids"] == ["b", "c"]
    assert stats["split_documents"] == 1 and stats["split_document_ids"] == ["e"]
    assert sum(stats["label_counts"].values()) == len(tokens)
    assert stats["label_counts"]["fact"] == int(np.sum(labels == FACT)) > 0
    tok = LacyTokenizer.load(tokenizer_dir)
    texts = [r["text"] for r in RECORDS if r["id"] in stats["doc_ids"]]
    streamed = list(annotate_stream(texts, tok, nlp, max_chars=MAX_CHARS))
    for k, (text, (ids, labs)) in enumerate(zip(texts, streamed)):
        assert tokens[docs[k]:docs[k + 1]].tolist() == tok.encode(text).tolist() == ids.tolist()
        assert labels[docs[k]:docs[k + 1]].tolist() == labs.tolist()


def test_crash_while_writing_leaves_no_output(corpus, tokenizer_dir, tmp_path, monkeypatch):
    prefix = tmp_path / "out" / "part-0"
    real_save, calls = np.save, []

    def crash_on_second_array(f, array):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_save(f, array)

    monkeypatch.setattr(np, "save", crash_on_second_array)
    with pytest.raises(OSError, match="disk full"):
        annotate_shard(corpus, tokenizer_dir, prefix, max_chars=MAX_CHARS)
    assert list((tmp_path / "out").iterdir()) == []


def test_crash_on_rerun_removes_the_stale_commit_marker(corpus, tokenizer_dir, tmp_path, monkeypatch):
    prefix = tmp_path / "part-0"
    annotate_shard(corpus, tokenizer_dir, prefix, max_chars=MAX_CHARS)
    monkeypatch.setattr(np, "save", lambda f, array: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        annotate_shard(corpus, tokenizer_dir, prefix, max_chars=MAX_CHARS)
    assert not output_paths(prefix)["stats"].exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("bad_line, message", [
    (b'{"id": "x", "text": "unterminated', "not valid JSON"),
    (b'{"id": "x", "text": "caf\xe9"}', "not valid UTF-8"),
    (b'{"id": "x"}', "a corpus record needs an 'id' and a 'text' string"),
    (b'["id", "text"]', "expected a JSON object"),
])
def test_malformed_line_names_file_and_line_and_writes_nothing(tmp_path, tokenizer_dir, bad_line, message):
    good = json.dumps(RECORDS[0]).encode()
    corpus = write_corpus(tmp_path / "bad.jsonl.gz", [good, good, bad_line, good])
    with pytest.raises(ValueError, match=f"bad.jsonl.gz:3: {message}"):
        annotate_shard(corpus, tokenizer_dir, tmp_path / "out" / "part-0")
    assert not (tmp_path / "out").exists()


def test_rerun_through_the_cli_reproduces_the_shard_and_summary(corpus, tokenizer_dir, tmp_path):
    prefix = tmp_path / "train" / "part-0"
    args = ["annotate", "shard", "--corpus", str(corpus), "--tokenizer", str(tokenizer_dir),
            "--out-prefix", str(prefix), "--max-chars", str(MAX_CHARS), "--batch-size", "2"]
    main(args)
    first = load_outputs(prefix)
    main(args)  # outputs exist already: rewritten, identical
    again = load_outputs(prefix)
    for name in ("tokens", "labels", "docs"):
        assert np.array_equal(first[name], again[name])
    timing = {"annotation_seconds", "annotation_cpu_seconds"}  # measured for Table 2, differ run to run
    assert {k: v for k, v in first["stats"].items() if k not in timing} == \
        {k: v for k, v in again["stats"].items() if k not in timing}
    assert timing <= set(first["stats"])
    main(["annotate", "summary", "--out", str(tmp_path / "summary.json"), str(output_paths(prefix)["stats"])])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["splits"]["train"]["n_tokens"] == summary["total"]["n_tokens"] == first["stats"]["n_tokens"]
    assert summary["total"]["label_counts"] == first["stats"]["label_counts"]


def test_two_worker_processes_give_the_same_shard(corpus, tokenizer_dir, tmp_path):
    annotate_shard(corpus, tokenizer_dir, tmp_path / "one", max_chars=MAX_CHARS)
    annotate_shard(corpus, tokenizer_dir, tmp_path / "two", n_process=2, batch_size=1, max_chars=MAX_CHARS)
    one, two = load_outputs(tmp_path / "one"), load_outputs(tmp_path / "two")
    for name in ("tokens", "labels", "docs"):
        assert np.array_equal(one[name], two[name])
