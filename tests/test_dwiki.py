"""The dwiki release of LMLM (§A.2, §A.2.2): download (hub mocked) and conversion to the corpus layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lacy.corpus import SPLITS, assign_split, shard_index, shard_paths
from lacy.corpus import dwiki
from lacy.io import read_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "lmlm" / "dwiki_sample.jsonl"
#: The layout of a Hugging Face dataset repository pushed with `datasets` (data/<split>-NNNNN-of-NNNNN).
REPO_FILES = [".gitattributes", "README.md", "data/train-00000-of-00002.parquet",
              "data/train-00001-of-00002.parquet"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fixture_rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def write_parquet_release(raw: Path, rows: list[dict], n_files: int = 2) -> list[Path]:
    """The fixture rows as a download-dwiki directory: parquet shards (columns annotated_text, text)."""
    files = []
    for k in range(n_files):
        path = raw / f"data/train-{k:05d}-of-{n_files:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        part = rows[k::n_files]
        pq.write_table(pa.table({"annotated_text": [r["annotated_text"] for r in part],
                                 "text": [r["text"] for r in part]}), path)
        files.append(path)
    (raw / dwiki.MANIFEST).write_text(json.dumps({"files": [str(p.relative_to(raw)) for p in files]}))
    return files


def read_corpus(out: Path) -> dict[str, list[dict]]:
    return {split: [r for path in sorted((out / split).glob("part-*.jsonl.gz")) for _, r in read_jsonl(path)]
            for split in SPLITS}


# --- download ------------------------------------------------------------------------------------------


def test_data_file_selection():
    assert dwiki.select_data_files(REPO_FILES) == REPO_FILES[2:]
    assert dwiki.select_data_files(["a/b.jsonl.gz", "x.jsonl", "y.json", "z.csv"]) == ["a/b.jsonl.gz", "x.jsonl"]
    assert dwiki.select_data_files(REPO_FILES, ["data/train-00001-*"]) == [REPO_FILES[3]]


class FakeHub:
    """Stands in for the Hugging Face hub: records calls, writes files, can fail after some files."""

    def __init__(self, fail_after: int | None = None):
        self.fail_after = fail_after
        self.calls = []

    def dataset_info(self, repo_id, revision=None):
        self.calls.append(("dataset_info", repo_id, revision))
        return SimpleNamespace(sha=COMMIT, siblings=[SimpleNamespace(rfilename=f) for f in REPO_FILES])

    def snapshot_download(self, repo_id, *, repo_type, revision, local_dir, allow_patterns, max_workers):
        self.calls.append(("snapshot_download", repo_id, repo_type, revision, Path(local_dir), list(allow_patterns)))
        for n, name in enumerate(allow_patterns):
            target = Path(local_dir) / name
            if target.exists():
                continue  # what huggingface_hub does with a file it already completed
            if self.fail_after is not None and n >= self.fail_after:
                raise ConnectionError("connection reset")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(name)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        return str(local_dir)


def use_hub(monkeypatch, hub: FakeHub) -> None:
    monkeypatch.setattr(dwiki, "HfApi", lambda: hub)
    monkeypatch.setattr(dwiki, "snapshot_download", hub.snapshot_download)


def test_download_pins_the_commit_and_renames_a_complete_download(tmp_path, monkeypatch):
    hub = FakeHub()
    use_hub(monkeypatch, hub)
    out = dwiki.download_dwiki("kilian-group/LMLM-pretrain-dwiki6.1M", "main", tmp_path / "dwiki")
    partial = tmp_path / ".dwiki.partial"
    assert hub.calls == [("dataset_info", "kilian-group/LMLM-pretrain-dwiki6.1M", "main"),
                         ("snapshot_download", "kilian-group/LMLM-pretrain-dwiki6.1M", "dataset", COMMIT, partial,
                          REPO_FILES[2:])]
    assert not partial.exists()
    manifest = json.loads((out / dwiki.MANIFEST).read_text())
    assert manifest == {"repo_id": "kilian-group/LMLM-pretrain-dwiki6.1M", "revision": "main", "commit": COMMIT,
                        "files": REPO_FILES[2:]}
    assert dwiki.raw_data_files(out) == [out / f for f in REPO_FILES[2:]]
    assert not (out / ".cache").exists()
    with pytest.raises(ValueError, match="exists"):
        dwiki.download_dwiki("kilian-group/LMLM-pretrain-dwiki6.1M", "main", out)


def test_interrupted_download_is_resumed_from_the_partial_directory(tmp_path, monkeypatch):
    use_hub(monkeypatch, FakeHub(fail_after=1))
    with pytest.raises(ConnectionError):
        dwiki.download_dwiki("r/d", "main", tmp_path / "dwiki")
    assert not (tmp_path / "dwiki").exists(), "an incomplete download never gets the final name"
    partial = tmp_path / ".dwiki.partial"
    assert (partial / REPO_FILES[2]).is_file() and not (partial / REPO_FILES[3]).exists()

    (partial / REPO_FILES[2]).write_text("kept from the first run")
    hub = FakeHub()
    use_hub(monkeypatch, hub)
    out = dwiki.download_dwiki("r/d", "main", tmp_path / "dwiki")
    assert hub.calls[-1][4] == partial, "the second run downloads into the same directory"
    assert (out / REPO_FILES[2]).read_text() == "kept from the first run"
    assert (out / REPO_FILES[3]).is_file()


def test_download_that_misses_a_file_fails(tmp_path, monkeypatch):
    hub = FakeHub()
    hub.snapshot_download = lambda *a, **k: None  # a hub that returns without writing anything
    use_hub(monkeypatch, hub)
    with pytest.raises(ValueError, match="download incomplete"):
        dwiki.download_dwiki("r/d", "main", tmp_path / "dwiki")
    assert not (tmp_path / "dwiki").exists()
    with pytest.raises(ValueError, match="no file matches"):
        dwiki.download_dwiki("r/d", "main", tmp_path / "dwiki", patterns=["*.arrow"])


def test_raw_directory_without_manifest_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a completed dwiki download"):
        dwiki.raw_data_files(tmp_path)


# --- conversion ----------------------------------------------------------------------------------------


def test_conversion_of_the_release_layout(tmp_path):
    files = write_parquet_release(tmp_path / "raw", fixture_rows())
    stats = dwiki.convert_dwiki(files, tmp_path / "corpus", n_shards=3, validation_fraction=0.5, seed=3)
    corpus = read_corpus(tmp_path / "corpus")
    records = corpus["train"] + corpus["validation"]
    assert len(records) == len(fixture_rows()) - 1, "the document that is only a lookup is blank and dropped"
    for record in records:
        assert set(record) == {"id", "text", "llm_judge_spans", "llm_judge_counts", "is_person"}
        assert record["is_person"] is False and record["id"].startswith("dwiki-")
        assert "dblookup" not in record["text"] and "<|db_" not in record["text"]
        assert all(record["text"][s:e].isalnum() for s, e in record["llm_judge_spans"])
    napoleon = next(r for r in records if r["text"].startswith("Napoleon"))
    assert napoleon["text"] == "Napoleon was born on August 15, 1769."
    assert [napoleon["text"][s:e] for s, e in napoleon["llm_judge_spans"]] == ["August", "15", "1769"]

    info = stats["dwiki"]
    assert (info["read"], info["written"], info["blank"], info["duplicates"]) == (9, 8, 1, 0)
    assert info["lookups"] == {"blocks": 20, "matched": 17, "partial": 0, "unmatched": 3, "malformed": 1}
    assert 0 < info["call_character_fraction"] < 0.5
    assert json.loads((tmp_path / "corpus" / "corpus.json").read_text()) == stats
    assert sum(c["documents"] for c in stats["splits"].values()) == 8


def test_parquet_and_jsonl_releases_give_the_same_corpus(tmp_path):
    rows = fixture_rows()
    files = write_parquet_release(tmp_path / "raw", rows, n_files=1)
    dwiki.convert_dwiki(files, tmp_path / "from_parquet", n_shards=2, seed=5)
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dwiki.convert_dwiki([jsonl], tmp_path / "from_jsonl", n_shards=2, seed=5)
    assert read_corpus(tmp_path / "from_parquet") == read_corpus(tmp_path / "from_jsonl")


def synthetic_rows(n: int) -> list[dict]:
    return [{"annotated_text": f"Person {i} was born in [dblookup('Person {i}', 'Birth Year') -> {1800 + i % 200}] "
                               f"{1800 + i % 200}.", "text": f"Person {i}", "page": f"p{i}"} for i in range(n)]


def test_split_is_seeded_stable_disjoint_and_about_ninety_ten(tmp_path):
    files = write_parquet_release(tmp_path / "raw", synthetic_rows(3000), n_files=3)
    dwiki.convert_dwiki(files, tmp_path / "a", n_shards=4, validation_fraction=0.1, seed=11)
    dwiki.convert_dwiki(list(reversed(files)), tmp_path / "b", n_shards=4, validation_fraction=0.1, seed=11)
    for split in SPLITS:
        for path_a, path_b in zip(shard_paths(tmp_path / "a", split, 4), shard_paths(tmp_path / "b", split, 4)):
            assert sorted(r["id"] for _, r in read_jsonl(path_a)) == sorted(r["id"] for _, r in read_jsonl(path_b))
    corpus = read_corpus(tmp_path / "a")
    train, validation = ({r["id"] for r in corpus[s]} for s in SPLITS)
    assert not train & validation and len(train) + len(validation) == 3000
    assert 0.08 < len(validation) / 3000 < 0.12
    for split in SPLITS:
        for k, path in enumerate(shard_paths(tmp_path / "a", split, 4)):
            ids = [r["id"] for _, r in read_jsonl(path)]
            assert ids, "every shard holds documents"
            assert all(assign_split(i, 11, 0.1) == split and shard_index(i, 4) == k for i in ids)
    dwiki.convert_dwiki(files, tmp_path / "c", n_shards=4, validation_fraction=0.1, seed=12)
    assert {r["id"] for r in read_corpus(tmp_path / "c")["validation"]} != validation


def test_ids_from_a_column_and_duplicates(tmp_path):
    rows = synthetic_rows(20)
    files = write_parquet_release(tmp_path / "raw", rows + rows[:3], n_files=1)
    stats = dwiki.convert_dwiki(files, tmp_path / "hashed", n_shards=1)
    assert stats["dwiki"]["duplicates"] == 3 and stats["dwiki"]["written"] == 20
    jsonl = tmp_path / "with_ids.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dwiki.convert_dwiki([jsonl], tmp_path / "ids", n_shards=1, id_column="page")
    ids = {r["id"] for records in read_corpus(tmp_path / "ids").values() for r in records}
    assert ids == {f"p{i}" for i in range(20)}


def test_missing_column_names_the_file(tmp_path):
    files = write_parquet_release(tmp_path / "raw", synthetic_rows(5), n_files=1)
    with pytest.raises(ValueError, match=r"train-00000-of-00001.parquet: no column \['lmlm_text'\]"):
        dwiki.convert_dwiki(files, tmp_path / "corpus", n_shards=1, text_column="lmlm_text")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(json.dumps({"annotated_text": "fine"}) + "\n" + json.dumps({"text": "no annotation"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: no 'annotated_text' string"):
        dwiki.convert_dwiki([jsonl], tmp_path / "corpus", n_shards=1)


def test_failed_conversion_leaves_no_output(tmp_path):
    good = write_parquet_release(tmp_path / "raw", synthetic_rows(50), n_files=1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        dwiki.convert_dwiki(good + [bad], tmp_path / "corpus", n_shards=2)
    assert [p for p in (tmp_path / "corpus").rglob("*") if p.is_file()] == []


def test_max_documents(tmp_path):
    files = write_parquet_release(tmp_path / "raw", synthetic_rows(40), n_files=2)
    stats = dwiki.convert_dwiki(files, tmp_path / "corpus", n_shards=1, max_documents=25)
    assert stats["dwiki"]["read"] == 25
    assert sum(len(r) for r in read_corpus(tmp_path / "corpus").values()) == 25


def test_corpus_command(tmp_path):
    raw = tmp_path / "raw"
    write_parquet_release(raw, fixture_rows())
    parser = argparse.ArgumentParser()
    dwiki.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["corpus-dwiki", "--raw", str(raw), "--out", str(tmp_path / "corpus"), "--shards", "2",
                              "--validation-fraction", "0.1", "--seed", "7", "--max-skip", "0"])
    args.func(args)
    stats = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert stats["source"] == "dwiki" and stats["shards"] == 2 and stats["seed"] == 7
    assert stats["dwiki"]["matching"]["max_skip"] == 0
    assert stats["dwiki"]["lookups"]["unmatched"] > 4, "values restated late no longer match"
    assert all(p.is_file() for split in SPLITS for p in shard_paths(tmp_path / "corpus", split, 2))
