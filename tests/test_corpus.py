"""The corpus stage (§A.2): real Wikipedia leads, seeded 90/10 split by document, shards."""

from __future__ import annotations

import gzip
import json

import pytest

from lacy.corpus import assign_split, shard_index, shard_paths, write_corpus
from lacy.corpus.wiki_offline import is_person, read_wiki_offline
from lacy.io import read_jsonl


def test_embedded_corpus_is_the_10033_wikipedia_leads():
    records = list(read_wiki_offline())
    assert len(records) == 10033
    people = [r for r in records if r["topic"] == "People"]
    assert len(people) == 1828
    persons = {r["id"] for r in records if r["is_person"]}
    assert 1700 < len(persons) < 1828, "a few People entries are groups"
    assert "ABBA" not in persons
    assert all(r["text"].strip() for r in records)


def test_persons_only_keeps_exactly_the_person_biographies():
    everything = list(read_wiki_offline())
    persons = list(read_wiki_offline(persons_only=True))
    assert [r["id"] for r in persons] == [r["id"] for r in everything if r["is_person"]]
    assert len(persons) == 1784
    capped = list(read_wiki_offline(max_documents=50, persons_only=True))
    assert len(capped) == 50 and all(r["is_person"] for r in capped)


def test_person_detection_uses_the_description():
    assert is_person({"topic": "People", "description": "Finnish architect and designer (1898–1976)"})
    assert not is_person({"topic": "People", "description": "Swedish pop group"})
    assert not is_person({"topic": "Arts", "description": "Austrian composer (1756–1791)"})


def test_split_is_seeded_stable_and_about_ten_percent():
    ids = [f"doc-{i}" for i in range(20000)]
    first = [assign_split(i, 7, 0.1) for i in ids]
    assert first == [assign_split(i, 7, 0.1) for i in ids]
    share = first.count("validation") / len(ids)
    assert 0.09 < share < 0.11
    other_seed = [assign_split(i, 8, 0.1) for i in ids]
    assert other_seed != first


def test_write_corpus_splits_by_document_into_every_shard(tmp_path):
    records = [{"id": f"d{i}", "text": f"Document number {i}.", "is_person": i % 3 == 0} for i in range(500)]
    stats = write_corpus(iter(records), tmp_path, n_shards=3, validation_fraction=0.1, seed=1, source="test")
    seen = {}
    for split in ("train", "validation"):
        for k, path in enumerate(shard_paths(tmp_path, split, 3)):
            assert path.is_file()
            for _, record in read_jsonl(path):
                assert record["id"] not in seen, "a document appears in two shards"
                seen[record["id"]] = split
                assert shard_index(record["id"], 3) == k
                assert assign_split(record["id"], 1, 0.1) == split
    assert len(seen) == 500
    assert stats["splits"]["validation"]["documents"] == list(seen.values()).count("validation")
    assert json.loads((tmp_path / "corpus.json").read_text()) == stats
    assert not list(tmp_path.rglob(".*partial*"))


def test_duplicate_ids_fail_without_leaving_output(tmp_path):
    records = [{"id": "same", "text": "a"}, {"id": "same", "text": "b"}]
    with pytest.raises(ValueError, match="duplicate document id 'same'"):
        write_corpus(iter(records), tmp_path, 2, 0.1, 1, "test")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_malformed_summaries_file_is_named(tmp_path):
    bad = tmp_path / "summaries.json"
    bad.write_text('{"A": {"title": "A", "description": ""}}')
    with pytest.raises(ValueError, match="entry 'A' has no 'extract'"):
        list(read_wiki_offline(bad))
    bad.write_bytes(b'{"A": \xff}')
    with pytest.raises(ValueError, match="summaries.json"):
        list(read_wiki_offline(bad))


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "part.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": \n')
    with pytest.raises(ValueError, match=r"part.jsonl.gz:2: not valid JSON"):
        list(read_jsonl(path))
    path.write_bytes(gzip.compress(b'{"id": "a", "text": "ok"}\n{"id": "\xff\xfe"}\n'))
    with pytest.raises(ValueError, match=r"part.jsonl.gz:2: not valid UTF-8"):
        list(read_jsonl(path))


def test_evaluation_entities_are_seeded_samples_of_held_out_and_training_persons(tmp_path):
    from lacy.corpus.persons import factscore_entities, sample_persons

    records = [{"id": f"P{i}", "title": f"Person {i}", "text": "x", "is_person": i % 2 == 0} for i in range(100)]
    write_corpus(iter(records), tmp_path, 2, 0.2, 1, "test")
    sample = sample_persons(tmp_path, 4, 6, seed=3)
    assert sample == sample_persons(tmp_path, 4, 6, seed=3)
    assert sample != sample_persons(tmp_path, 4, 6, seed=4)
    assert [e["split"] for e in sample] == ["validation"] * 4 + ["train"] * 6
    assert all(int(e["entity"].split()[1]) % 2 == 0 for e in sample)
    assert all(e["split"] == assign_split(f"P{e['entity'].split()[1]}", 1, 0.2) for e in sample)
    held_out = [e for e in sample_persons(tmp_path, 1000, 0, seed=3)]
    assert held_out and all(e["split"] == "validation" for e in held_out)
    names = tmp_path / "prompt_entities.txt"
    names.write_text("Person 0\nNobody Known\n\n")
    listed = factscore_entities(names, tmp_path)
    assert [e["entity"] for e in listed] == ["Person 0", "Nobody Known"]
    assert listed[1]["split"] == "absent"
    with pytest.raises(FileNotFoundError, match="FactScore entity list not found"):
        factscore_entities(tmp_path / "missing.txt")


def test_evaluation_entities_of_the_config_are_written_as_the_command_writes_them(tmp_path):
    """The rule's function takes ``cascade.entities`` as the schema fills it in: a seeded corpus sample, or
    FActScore's list with each name's split in the corpus."""
    from lacy.cli import main
    from lacy.corpus.persons import sample_persons, write_evaluation_entities
    from lacy.io import read_jsonl

    records = [{"id": f"P{i}", "title": f"Person {i}", "text": "x", "is_person": i % 2 == 0} for i in range(100)]
    corpus = tmp_path / "corpus"
    write_corpus(iter(records), corpus, 2, 0.2, 1, "test")
    out = tmp_path / "entities.jsonl"
    written = write_evaluation_entities(corpus, out, source="corpus", n_heldout=3, n_train=2, seed=5)
    assert written == sample_persons(corpus, 3, 2, 5) == [r for _, r in read_jsonl(out)]
    main(["corpus", "entities", "--corpus", str(corpus), "--out", str(tmp_path / "cli.jsonl"), "--n-heldout", "3",
          "--n-train", "2", "--seed", "5"])
    assert (tmp_path / "cli.jsonl").read_bytes() == out.read_bytes()
    names = tmp_path / "prompt_entities.txt"
    names.write_text("Person 0\nNobody Known\n")
    listed = write_evaluation_entities(corpus, out, source="factscore", n_heldout=48, n_train=16, seed=0,
                                       path=str(names))
    assert [(e["entity"], e["split"]) for e in listed] == [("Person 0", assign_split("P0", 1, 0.2)),
                                                           ("Nobody Known", "absent")]
    with pytest.raises(ValueError, match="entity list"):
        write_evaluation_entities(corpus, out, source="factscore", n_heldout=48, n_train=16, seed=0)
    with pytest.raises(ValueError, match="unknown entity source"):
        write_evaluation_entities(corpus, out, source="wikidata", n_heldout=48, n_train=16, seed=0)
    with pytest.raises(ValueError, match="needs n_heldout, n_train and seed"):
        write_evaluation_entities(corpus, out, source="corpus", n_heldout=48)


def test_factscore_release_download_resumes_and_unpacks(tmp_path):
    """Against a local HTTP server standing in for Google Drive."""
    import functools
    import http.server
    import io
    import threading
    import zipfile

    from lacy.corpus.factscore_release import FILES, fetch_release

    served = tmp_path / "served"
    served.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/labeled/prompt_entities.txt", "Ada Lovelace\nAlan Turing\n")
    (served / FILES["data.zip"]).write_bytes(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("demos/demons.json", '{"He was a poet.": ["He was a poet."]}')
    (served / FILES["demos.zip"]).write_bytes(buf.getvalue())
    (served / FILES["enwiki-20230401.db"]).write_bytes(b"SQLite format 3\x00" + b"x" * 5000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "factscore"
        out.mkdir()
        (out / "enwiki-20230401.db.part").write_bytes(b"SQLite format 3\x00")  # an interrupted earlier run
        fetch_release(out, f"http://127.0.0.1:{server.server_address[1]}/{{id}}")
    finally:
        server.shutdown()
    assert (out / "data/labeled/prompt_entities.txt").read_text().splitlines() == ["Ada Lovelace", "Alan Turing"]
    assert (out / "enwiki-20230401.db").read_bytes() == (served / FILES["enwiki-20230401.db"]).read_bytes()
    assert (out / "demos/demons.json").read_text() == '{"He was a poet.": ["He was a poet."]}'
    assert not list(out.glob("*.part"))
