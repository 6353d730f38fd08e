"""Table 2 (§5.6): throughput arithmetic, the shard timing it reads, the Rho-1 timing, and the table writer."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import torch

from lacy.batches import TokenWindows
from lacy.cli import main
from lacy.labelling_cost import (
    COLUMNS,
    annotation_cost,
    cpu_model,
    cpu_seconds,
    hours_per_billion_tokens,
    table_rows,
    time_reference_scoring,
    write_table,
    write_table2,
)
from lacy.model import build_model
from lacy.tokenizer import train_sentencepiece

VOCAB = 513  # the synthetic annotation of conftest.write_annotation: 512 pieces + <CALL>


def write_stats(path: Path, tokens: int, cpu: float, wall: float, model: str = "Test CPU") -> Path:
    path.write_text(json.dumps({"n_tokens": tokens, "annotation_cpu_seconds": cpu, "annotation_seconds": wall,
                                "cpu_model": model, "n_process": 2}))
    return path


def test_hours_per_billion_tokens():
    assert hours_per_billion_tokens(3600.0, 10**9) == pytest.approx(1.0)
    assert hours_per_billion_tokens(1.0, 2000) == pytest.approx(1e9 / 2000 / 3600)
    # The paper's LaCy figure, 152 h per 1B tokens, is about 1,830 tokens per second on one core.
    assert hours_per_billion_tokens(1.0, 1827) == pytest.approx(152.0, rel=1e-3)
    with pytest.raises(ValueError):
        hours_per_billion_tokens(1.0, 0)


def test_annotation_cost_is_cpu_seconds_per_token_over_all_shards(tmp_path):
    files = [write_stats(tmp_path / "a.json", 3000, 2.0, 1.5), write_stats(tmp_path / "b.json", 1000, 2.0, 1.0)]
    cost = annotation_cost(files)
    assert cost["tokens"] == 4000 and cost["cpu_seconds"] == 4.0 and cost["wall_seconds"] == 2.5
    assert cost["hours_per_billion_tokens"] == pytest.approx(4.0 / 4000 * 1e9 / 3600)
    assert cost["device"] == "1 CPU core (Test CPU)"
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"n_tokens": 10}))
    with pytest.raises(ValueError, match="old.json: no annotation timing"):
        annotation_cost([old])


def test_cpu_clock_counts_work_and_names_the_cpu():
    start = cpu_seconds()
    sum(k * k for k in range(2_000_000))
    assert cpu_seconds() > start
    assert cpu_model()


def test_annotation_shards_record_their_timing(tmp_path, wiki_records):
    from lacy.annotation.shards import annotate_shard

    tokenizer = train_sentencepiece((r["text"] for r in wiki_records), tmp_path / "tokenizer", vocab_size=1000)
    corpus = tmp_path / "part-00000.jsonl.gz"
    with gzip.open(corpus, "wt") as f:
        f.write(json.dumps({"id": "a", "text": "Marie Curie was born in Warsaw in 1867. She studied physics."}) + "\n")
    stats = annotate_shard(corpus, tokenizer, tmp_path / "out" / "part-00000")
    written = json.loads((tmp_path / "out" / "part-00000.json").read_text())
    assert written["annotation_cpu_seconds"] == stats["annotation_cpu_seconds"] > 0
    assert written["annotation_seconds"] > 0 and written["n_process"] == 1 and written["cpu_model"] == cpu_model()
    assert annotation_cost([tmp_path / "out" / "part-00000.json"])["tokens"] == written["n_tokens"]


def test_reference_scoring_times_the_requested_batches_after_a_warm_up(data):
    annotation, _, _ = data
    model = build_model("test-tiny", VOCAB, 32, VOCAB - 1).eval()
    windows = TokenWindows.from_directory(annotation, "validation", 32, seed=0)
    result = time_reference_scoring(model, windows, VOCAB - 1, batch_size=4, batches=3, precision="fp32",
                                    device=torch.device("cpu"))
    assert result["batches"] == 3 and result["tokens"] == 3 * 4 * 32
    assert result["seconds"] == result["cpu_seconds"] > 0, "on the CPU: CPU seconds, one core's cost"
    assert result["hours_per_billion_tokens"] == pytest.approx(hours_per_billion_tokens(result["seconds"],
                                                                                          result["tokens"]))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_shows_measured_and_paper_values_side_by_side(tmp_path):
    annotation = {"hours_per_billion_tokens": 120.0, "device": "1 CPU core (Test CPU)"}
    rho1 = {"hours_per_billion_tokens": 3.25, "device": "NVIDIA H100 80GB HBM3"}
    rows = table_rows(annotation, rho1, llm_judge_labels=True)
    write_table(rows, tmp_path / "table2.csv", tmp_path / "table2.md", ["a note"])
    table = read_csv(tmp_path / "table2.csv")
    assert list(table[0]) == list(COLUMNS)
    assert [r["method"] for r in table] == ["Loss-based", "LLM judge", "Rho-1", "LaCy"]
    by_method = {r["method"]: r for r in table}
    assert float(by_method["LaCy"]["measured_hours_per_1b_tokens"]) == 120.0
    assert float(by_method["LaCy"]["paper_hours_per_1b_tokens"]) == 152.0
    assert by_method["Rho-1"]["measured_device"] == "NVIDIA H100 80GB HBM3"
    assert float(by_method["Rho-1"]["paper_hours_per_1b_tokens"]) == 56.0
    assert by_method["LLM judge"]["measured_hours_per_1b_tokens"] == ""
    assert "LMLM release" in by_method["LLM judge"]["measured_device"]
    assert float(by_method["LLM judge"]["paper_hours_per_1b_tokens"]) == 233.0
    assert by_method["Loss-based"]["measured_hours_per_1b_tokens"] == by_method["Loss-based"]["paper_hours_per_1b_tokens"] == ""
    md = (tmp_path / "table2.md").read_text()
    assert "| LaCy | 120 | 1 CPU core (Test CPU) | 152 | single CPU core |" in md
    assert "| Rho-1 | 3.25 | NVIDIA H100 80GB HBM3 | 56 | single A100 GPU |" in md
    assert "| Loss-based | none |" in md and "| LLM judge | – |" in md and "- a note" in md


def test_table_command_without_a_reference_model(tmp_path):
    stats = write_stats(tmp_path / "part-00000.json", 5000, 3.0, 3.0)
    main(["labelling-cost", "table", "--annotation-stats", str(stats), "--csv", str(tmp_path / "t.csv"),
          "--md", str(tmp_path / "t.md")])
    rows = {r["method"]: r for r in read_csv(tmp_path / "t.csv")}
    assert float(rows["LaCy"]["measured_hours_per_1b_tokens"]) == pytest.approx(3.0 / 5000 * 1e9 / 3600)
    assert rows["Rho-1"]["measured_hours_per_1b_tokens"] == "" and "not run" in rows["Rho-1"]["measured_device"]
    assert "no LLM-judge labels" in rows["LLM judge"]["measured_device"]
    assert "5,000 tokens in 3.0 CPU seconds" in (tmp_path / "t.md").read_text()


def test_write_table2_is_what_the_command_writes_with_the_rho1_timing(tmp_path):
    """The labelling_cost_table rule's adapter calls write_table2; `lacy labelling-cost table` maps its options
    onto the same call."""
    stats = [write_stats(tmp_path / f"part-0000{k}.json", 5000, 3.0, 2.0) for k in range(2)]
    rho1 = tmp_path / "rho1.json"
    rho1.write_text(json.dumps({"hours_per_billion_tokens": 2.5, "device": "1 CPU core (Test CPU)", "seconds": 0.9,
                                "wall_seconds": 1.2, "parameters": 2_000_000, "precision": "fp32", "tokens": 4096}))
    write_table2(stats, rho1, True, tmp_path / "t.csv", tmp_path / "t.md")
    main(["labelling-cost", "table", "--annotation-stats", *map(str, stats), "--rho1", str(rho1),
          "--llm-judge-labels", "--csv", str(tmp_path / "cli.csv"), "--md", str(tmp_path / "cli.md")])
    for ext in ("csv", "md"):
        assert (tmp_path / f"t.{ext}").read_bytes() == (tmp_path / f"cli.{ext}").read_bytes()
    rows = {r["method"]: r for r in read_csv(tmp_path / "t.csv")}
    assert float(rows["Rho-1"]["measured_hours_per_1b_tokens"]) == 2.5
    assert "LMLM release" in rows["LLM judge"]["measured_device"]
    assert "4,096 validation tokens in 0.90 CPU seconds" in (tmp_path / "t.md").read_text()
