"""Validation call / non-call losses (§A.4.3, Eq. A.5/A.6)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from lacy.batches import TokenWindows
from lacy.training import TrainConfig, train
from lacy.validation import load_model, validation_losses, write_table


def tiny(method: str) -> TrainConfig:
    return TrainConfig(method=method, preset="test-tiny", steps=3, batch_size=4, grad_accum=1, lr=3e-3, warmup=1,
                       context=16, precision="fp32", log_every=1)


def test_calling_model_is_compared_with_the_baseline_on_its_own_mask(data, tmp_path):
    annotation, _, tokenizer = data
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    windows = TokenWindows.from_directory(annotation, "train", 16, 0)
    for method in ("baseline", "lacy"):
        train(tiny(method), windows, meta, tmp_path / method, tmp_path / f"{method}_run/latest.pt",
              tmp_path / f"{method}_run/m.jsonl")
    cpu = torch.device("cpu")
    lacy, baseline = load_model(tmp_path / "lacy", cpu), load_model(tmp_path / "baseline", cpu)
    val = TokenWindows.from_directory(annotation, "validation", 16, 0)
    result = validation_losses(lacy, baseline, val, meta["call_id"], 0.15, 8, 5, cpu)
    assert result["tokens"] > 0
    assert result["call_rate"] == pytest.approx(0.15, abs=0.01)
    assert 0 <= result["top_call_rate"] <= 1
    for key in ("call_loss", "noncall_loss", "total_loss", "baseline_call_loss", "baseline_noncall_loss"):
        assert 0 < result[key] < 20
    same = validation_losses(baseline, baseline, val, meta["call_id"], 0.15, 8, 5, cpu)
    assert same["call_loss"] == pytest.approx(same["baseline_call_loss"])
    (tmp_path / "r.json").write_text(json.dumps({**result, "method": "lacy", "seed": 0}))
    write_table([tmp_path / "r.json"], tmp_path / "table.csv")
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert rows[0]["method"] == "lacy" and float(rows[0]["call_rate"]) == pytest.approx(result["call_rate"])
