"""LMLM's LLM-judge annotations turned into CALL labels (§A.2.2)."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacy import FACT, OTHER, llm_judge
from lacy.llm_judge import BlockCounts, char_call_labels, convert_document, strip_lookups, token_call_labels

FIXTURE = Path(__file__).parent / "fixtures" / "lmlm" / "dwiki_sample.jsonl"


def fixture_documents() -> list[str]:
    return [json.loads(line)["annotated_text"] for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def called(annotated: str, **matching) -> tuple[str, list[str], BlockCounts]:
    conversion = convert_document(annotated, **matching)
    return conversion.text, [conversion.text[s:e] for s, e in conversion.spans], conversion.counts


@pytest.mark.parametrize("annotated", [
    # the paper's example (§A.2.2), in LMLM's pretraining format as LMLM's converter writes it ...
    "Napoleon was born on <|db_entity|> Napoleon<|db_relationship|> Birth-Date<|db_return|> August 15, 1769"
    "<|db_end|> August 15, 1769.",
    # ... with spaces around every special token ...
    "Napoleon was born on <|db_entity|> Napoleon <|db_relationship|> Birth-Date <|db_return|> August 15, 1769 "
    "<|db_end|> August 15, 1769.",
    # ... and in LMLM's annotation format
    "Napoleon was born on [dblookup('Napoleon', 'Birth-Date') -> August 15, 1769] August 15, 1769.",
])
def test_napoleon_example_of_the_paper(annotated):
    text, words, counts = called(annotated)
    assert text == "Napoleon was born on August 15, 1769."
    assert words == ["August", "15", "1769"], "the comma inside the value is not a call"
    assert counts == BlockCounts(blocks=1, matched=1)


def test_napoleon_example_gives_exactly_the_papers_call_tokens(default_size_tokenizer):
    """§A.2.2: "Napoleon was born on <CALL> <CALL><CALL>, <CALL><CALL><CALL><CALL>." -- one call for
    "August", one per digit of "15" and "1769" (§A.5: each digit is a piece), the spaces outside the calls."""
    tok = default_size_tokenizer
    conversion = convert_document("Napoleon was born on [dblookup('Napoleon', 'Birth-Date') -> August 15, 1769] "
                                  "August 15, 1769.")
    ids, calls = token_call_labels(tok, conversion.text, conversion.spans)
    surface = [tok.sp.id_to_piece(int(i)).replace("\u2581", " ") for i in ids]
    rendered = "".join((" " * p.startswith(" ") + "<CALL>") if call else p for p, call in zip(surface, calls))
    rendered = rendered.lstrip()
    assert rendered == "Napoleon was born on <CALL> <CALL><CALL>, <CALL><CALL><CALL><CALL>."
    assert int(calls.sum()) == 7


def test_value_restated_in_other_case_and_after_extra_words():
    text, words, counts = called(
        "[dblookup('Élodie Roux', 'Occupation') -> Cellist] cellist Élodie Roux. She is a "
        "[dblookup('Élodie Roux', 'Birth Place') -> Ithaca, New York] native of Ithaca, New York.")
    assert text == "cellist Élodie Roux. She is a native of Ithaca, New York."
    assert words == ["cellist", "Ithaca", "New", "York"]
    assert counts == BlockCounts(blocks=2, matched=2)


def test_list_values_may_be_restated_with_conjunctions_and_reordered():
    _, words, counts = called("He was a [dblookup('X', 'Occupation') -> judge, politician] judge and politician, "
                              "born on [dblookup('X', 'Birth Date') -> September 6, 2019] 6 September 2019.")
    assert words == ["judge", "politician", "6", "September", "2019"]
    assert counts.matched == 2


def test_partial_restatement_calls_only_the_restated_words():
    _, words, counts = called("a [dblookup('X', 'Sport') -> Gaelic football] Gaelic footballer who played")
    assert words == ["Gaelic"]
    assert counts == BlockCounts(blocks=1, partial=1)
    assert called("a [dblookup('X', 'Sport') -> Gaelic football] Gaelic footballer", min_coverage=1.0)[2] == \
        BlockCounts(blocks=1, unmatched=1)


def test_unmatched_values_are_counted_and_call_nothing():
    text, words, counts = called("It was named by [dblookup('Kettle River', 'Named By') -> Ojibwe people] early "
                                 "settlers, who came in [dblookup('Kettle River', 'Year') -> 1850] 1850.")
    assert text == "It was named by early settlers, who came in 1850."
    assert words == ["1850"]
    assert counts == BlockCounts(blocks=2, matched=1, unmatched=1)


def test_value_too_far_after_the_lookup_is_unmatched():
    annotated = "x [dblookup('A', 'B') -> Paris] one two three four five six Paris"
    assert called(annotated)[2].unmatched == 1
    assert called(annotated, max_skip=6)[1] == ["Paris"]


def test_several_lookups_per_document_and_consecutive_lookups():
    text, words, counts = called("Ralph Earl was an [dblookup('Ralph Earl', 'Nationality') -> American] "
                                 "[dblookup('Ralph Earl', 'Occupation') -> painter] American painter, born in "
                                 "[dblookup('Ralph Earl', 'Birth Year') -> 1751] 1751.")
    assert text == "Ralph Earl was an American painter, born in 1751."
    assert words == ["American", "painter", "1751"]
    assert counts == BlockCounts(blocks=3, matched=3)


@pytest.mark.parametrize("annotated, clean", [
    ("Its length is <|db_entity|> Yellow River <|db_relationship|> Length <|db_return|> 5,464 km <|db_end|>",
     "Its length is"),
    ("Its length is [dblookup('Yellow River', 'Length') -> 5,464 km]\n", "Its length is\n"),
    ("[dblookup('X', 'Type') -> Village] Village in Poland.", "Village in Poland."),
    ("First line [dblookup('X', 'Y') -> Z]\nZ is next.", "First line\nZ is next."),
    ("Tab\t[dblookup('X', 'Y') -> Z] Z.", "Tab\tZ."),
])
def test_block_removal_leaves_no_doubled_whitespace(annotated, clean):
    assert called(annotated)[0] == clean


@pytest.mark.parametrize("annotated, clean, blocks", [
    ("It was rebuilt by [dblookup('Ashbury station', 'Architect') -> Charles Holden", "It was rebuilt by", 0),
    ("x [dblookup('A', 'R' -> v\nnext line", "x\nnext line", 0),
    ("x [dblookup('A', 'R')] text [dblookup('B', 'S') -> v] v end", "x text v end", 1),
    ("x <|db_entity|> A <|db_relationship|> R <|db_return|> V and <|db_entity|> B<|db_relationship|> S"
     "<|db_return|> w<|db_end|> w end", "x w end", 1),
    ("a stray <|db_end|> token", "a stray token", 0),
])
def test_malformed_blocks_are_removed_and_counted(annotated, clean, blocks):
    text, _, counts = called(annotated)
    assert text == clean
    assert counts.malformed == 1 and counts.blocks == blocks


def test_non_ascii_text_and_nfkc_normalisation():
    text, words, _ = called("Zürich lies on Lake [dblookup('Zürich', 'Lake') -> Zürich] Zürich; in Japanese "
                            "[dblookup('Zürich', 'Japanese Name') -> チューリッヒ] チューリッヒ, since "
                            "[dblookup('Zürich', 'Year') -> １２１８] １２１８ a ﬁne city.")
    assert text == "Zürich lies on Lake Zürich; in Japanese チューリッヒ, since 1218 a fine city."
    assert words == ["Zürich", "チューリッヒ", "1218"]
    decomposed = "Zu\u0308rich"  # NFKC composes it, the span follows the composed text
    text, words, _ = called(f"Lake [dblookup('Z', 'Lake') -> {decomposed}] {decomposed}.")
    assert text == "Lake Zürich." and words == ["Zürich"]


def test_fixture_documents_convert_without_doubled_whitespace_or_markers():
    for annotated in fixture_documents():
        conversion = convert_document(annotated)
        assert "  " not in conversion.text
        assert "dblookup" not in conversion.text and "<|db_" not in conversion.text
        starts = [s for s, _ in conversion.spans]
        assert starts == sorted(starts)


_WORDS = st.sampled_from(["Paris", "river", "1769", "New", "York", "and", "of", "Zürich", "the", "15,"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(_WORDS, max_size=4), st.lists(_WORDS, min_size=1, max_size=3),
                          st.booleans()), max_size=4))
def test_restated_values_are_called_and_only_words_are_called(parts):
    """Random documents of plain words and restated lookups, in either format."""
    annotated, expected = [], []
    for before, value, legacy in parts:
        value_text = " ".join(value)
        block = (f"[dblookup('E', 'R') -> {value_text}]" if legacy else
                 f"<|db_entity|> E<|db_relationship|> R<|db_return|> {value_text}<|db_end|>")
        annotated.append(" ".join(before + [block, value_text]))
        expected.append(" ".join(before + [value_text]))
    conversion = convert_document(" ".join(annotated))
    assert conversion.text == " ".join(expected)
    assert conversion.counts.blocks == len(parts) and conversion.counts.unmatched == 0
    for start, end in conversion.spans:
        assert conversion.text[start:end].isalnum()
    value_words = sum(len(" ".join(v).replace(",", " ").split()) for _, v, _ in parts)
    assert len(conversion.spans) <= value_words


def test_strip_lookups_reports_offsets_in_the_clean_text():
    text, lookups, malformed = strip_lookups("A [dblookup('A', 'B') -> b] b, then <|db_entity|> C"
                                             "<|db_relationship|> D<|db_return|> d<|db_end|> d.")
    assert text == "A b, then d."
    assert [(lookup.value, text[lookup.offset:]) for lookup in lookups] == [("b", "b, then d."), ("d", "d.")]
    assert malformed == 0


def test_char_call_labels():
    labels = char_call_labels("born on August 15", [(8, 14), (15, 17)])
    assert labels.dtype == np.uint8
    assert "".join("x" if v == FACT else "." for v in labels) == "........xxxxxx.xx"
    assert (labels[:8] == OTHER).all()
    with pytest.raises(ValueError, match="outside"):
        char_call_labels("short", [(2, 9)])


def test_token_ids_are_exactly_those_of_encode(small_tokenizer):
    for annotated in fixture_documents():
        conversion = convert_document(annotated)
        ids, calls = token_call_labels(small_tokenizer, conversion.text, conversion.spans)
        assert np.array_equal(ids, small_tokenizer.encode(conversion.text))
        assert calls.dtype == np.uint8 and len(calls) == len(ids)
        assert set(np.unique(calls)) <= {0, 1}
        assert calls.any() == bool(conversion.spans)


# --- the `lacy llm-judge` commands --------------------------------------------------------------------


def run_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    llm_judge.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def write_shard(path: Path, annotated_texts: list[str]) -> list[str]:
    """A corpus shard as corpus-dwiki writes it; returns the clean texts."""
    texts = []
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for k, annotated in enumerate(annotated_texts):
            conversion = convert_document(annotated)
            texts.append(conversion.text)
            f.write(json.dumps({"id": f"d{k}", "text": conversion.text,
                                "llm_judge_spans": [list(s) for s in conversion.spans],
                                "llm_judge_counts": vars(conversion.counts), "is_person": False}) + "\n")
    return texts


@pytest.fixture(scope="module")
def tokenizer_dir(small_tokenizer, tmp_path_factory):
    """A directory holding the session's small tokenizer, for the commands that load one."""
    out = tmp_path_factory.mktemp("tok")
    (out / "tokenizer.model").write_bytes(small_tokenizer.sp.serialized_model_proto())
    (out / "lacy_tokenizer.json").write_text(json.dumps({"call_id": small_tokenizer.call_id,
                                                    "vocab_size": small_tokenizer.vocab_size}))
    return out


def test_labels_command_aligns_with_the_annotation_tokens(tmp_path, small_tokenizer, tokenizer_dir):
    split_dir = tmp_path / "corpus" / "train"
    split_dir.mkdir(parents=True)
    shard = split_dir / "part-00000.jsonl.gz"
    texts = write_shard(shard, fixture_documents() + ["   \n"])
    kept = [t for t in texts if t.strip()]
    assert len(kept) == len(texts) - 2, "the fixture's blank document and the whitespace one are skipped"
    tokens = np.concatenate([small_tokenizer.encode(t) for t in kept])
    np.save(tmp_path / "tokens.npy", tokens)

    out, stats_path = tmp_path / "out" / "calls.npy", tmp_path / "out" / "stats.json"
    run_cli(["llm-judge", "labels", "--corpus", str(shard), "--tokenizer", str(tokenizer_dir),
             "--tokens", str(tmp_path / "tokens.npy"), "--out", str(out), "--stats", str(stats_path)])
    calls = np.load(out)
    assert calls.dtype == np.uint8 and calls.shape == tokens.shape
    expected = np.concatenate([token_call_labels(small_tokenizer, t, convert_document(a).spans)[1]
                               for a, t in zip(fixture_documents() + ["   \n"], texts) if t.strip()])
    assert np.array_equal(calls, expected)
    stats = json.loads(stats_path.read_text())
    assert stats["documents"] == len(kept) and stats["skipped_empty"] == 2
    assert stats["tokens"] == len(tokens) and stats["call_tokens"] == int(calls.sum())
    assert stats["lookups"]["blocks"] == 19 and stats["lookups"]["unmatched"] == 2
    assert stats["lookups"]["malformed"] == 1
    assert 0 < stats["call_fraction"] < 0.5
    assert sorted(p.name for p in out.parent.iterdir()) == ["calls.npy", "stats.json"], "no partial files left"


def test_labels_command_refuses_misaligned_tokens(tmp_path, small_tokenizer, tokenizer_dir):
    shard = tmp_path / "part-00000.jsonl.gz"
    texts = write_shard(shard, fixture_documents()[:2])
    tokens = np.concatenate([small_tokenizer.encode(t) for t in texts])
    out = tmp_path / "calls.npy"
    for bad in (tokens[:-1], np.where(np.arange(len(tokens)) == 3, tokens + 1, tokens)):
        np.save(tmp_path / "tokens.npy", bad)
        with pytest.raises(ValueError, match="would not line up"):
            run_cli(["llm-judge", "labels", "--corpus", str(shard), "--tokenizer", str(tokenizer_dir), "--tokens",
                     str(tmp_path / "tokens.npy"), "--out", str(out), "--stats", str(tmp_path / "s.json")])
        assert not out.exists()


def test_labels_command_names_file_and_line_of_a_bad_record(tmp_path, tokenizer_dir):
    shard = tmp_path / "part-00000.jsonl"
    shard.write_text(json.dumps({"id": "a", "text": "fine", "llm_judge_spans": []}) + "\n"
                     + json.dumps({"id": "b", "text": "short", "llm_judge_spans": [[2, 9]]}) + "\n")
    with pytest.raises(ValueError, match=r"part-00000.jsonl:2: bad llm_judge_spans"):
        run_cli(["llm-judge", "labels", "--corpus", str(shard), "--tokenizer", str(tokenizer_dir),
                 "--out", str(tmp_path / "c.npy"), "--stats", str(tmp_path / "s.json")])
    shard.write_text(json.dumps({"id": "a", "text": "no spans"}) + "\n")
    with pytest.raises(ValueError, match=r"part-00000.jsonl:1: record has no 'llm_judge_spans'"):
        run_cli(["llm-judge", "labels", "--corpus", str(shard), "--tokenizer", str(tokenizer_dir),
                 "--out", str(tmp_path / "c.npy"), "--stats", str(tmp_path / "s.json")])


def test_summary_totals_shards_per_split(tmp_path):
    paths = []
    for k, (split, tokens, calls, blocks, unmatched) in enumerate(
            [("train", 100, 15, 10, 2), ("train", 50, 5, 4, 0), ("validation", 10, 1, 1, 1)]):
        stats = {"corpus": f"results/corpus/{split}/part-{k:05d}.jsonl.gz", "documents": 1, "skipped_empty": 0,
                 "tokens": tokens, "call_tokens": calls,
                 "lookups": vars(BlockCounts(blocks=blocks, matched=blocks - unmatched, unmatched=unmatched))}
        paths.append(tmp_path / f"s{k}.json")
        paths[-1].write_text(json.dumps(stats))
    run_cli(["llm-judge", "summary", "--out", str(tmp_path / "summary.json")] + [str(p) for p in paths])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["splits"]["train"]["tokens"] == 150 and summary["splits"]["train"]["shards"] == 2
    assert summary["splits"]["validation"]["call_fraction"] == pytest.approx(0.1)
    assert summary["total"]["call_tokens"] == 21 and summary["total"]["lookups"]["blocks"] == 15
    assert summary["total"]["unmatched_fraction"] == pytest.approx(3 / 15)
