"""Validation call / non-call losses (§A.4.3, Eq. A.5/A.6)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from annotated_corpus import CONTEXT, build_annotated_corpus

from lacy.batches import TokenWindows
from lacy.training import TrainConfig, train
from test_training import FIXED
from lacy.model import load_trained
from lacy.validation import validation_losses, write_table


def tiny(method: str) -> TrainConfig:
    return TrainConfig(method=method, preset="test-tiny", steps=3, batch_size=4, grad_accum=1, lr=3e-3, warmup=1,
                       context=16, precision="fp32", log_every=1, seed=0, checkpoint_every=500, **FIXED)


def test_calling_model_is_compared_with_the_baseline_on_its_own_mask(data, tmp_path):
    annotation, _, tokenizer = data
    meta = json.loads((tokenizer / "lacy_tokenizer.json").read_text())
    windows = TokenWindows.from_directory(annotation, "train", 16, 0)
    for method in ("baseline", "lacy"):
        train(tiny(method), windows, meta, tmp_path / method, tmp_path / f"{method}_run/latest.pt",
              tmp_path / f"{method}_run/m.jsonl")
    cpu = torch.device("cpu")
    lacy, baseline = load_trained(tmp_path / "lacy", cpu), load_trained(tmp_path / "baseline", cpu)
    val = TokenWindows.from_directory(annotation, "validation", 16, 0)
    result = validation_losses(lacy, baseline, val, meta["call_id"], 0.15, 8, 5, cpu)
    assert result["tokens"] > 0
    assert result["call_rate"] == pytest.approx(0.15, abs=0.01)
    assert 0 <= result["top_call_rate"] <= 1
    for key in ("call_loss", "noncall_loss", "total_loss", "baseline_call_loss", "baseline_noncall_loss"):
        assert 0 < result[key] < 20
    for key in ("call_loss", "call_loss_without_call", "noncall_loss", "total_loss"):
        for prefix in ("", "baseline_"):  # a 95 % interval over the validation batches around each mean
            low, high = result[f"{prefix}{key}_ci95"]
            assert low <= result[prefix + key] <= high and low < high
    assert result["total_loss_gap"] == pytest.approx(result["baseline_total_loss"] - result["total_loss"])
    same = validation_losses(baseline, baseline, val, meta["call_id"], 0.15, 8, 5, cpu)
    assert same["call_loss"] == pytest.approx(same["baseline_call_loss"])
    # the gap's interval resamples the same batches for both models: identical models differ by exactly 0
    assert same["total_loss_gap_ci95"] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert same["total_loss_ci95"][1] - same["total_loss_ci95"][0] > 0
    (tmp_path / "r.json").write_text(json.dumps({**result, "method": "lacy", "seed": 0}))
    write_table([tmp_path / "r.json"], tmp_path / "table.csv")
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert rows[0]["method"] == "lacy" and float(rows[0]["call_rate"]) == pytest.approx(result["call_rate"])


# ---- semantics on real annotated validation data (§A.4.3, Eq. A.5/A.6) -------------------------------------------

class Bigram(torch.nn.Module):
    """A stand-in model whose next-token logits depend on the last input token only: ``logits = table[x]``. Its
    logits are designed, so the test knows where <CALL> is the top logit and how large each call logit is."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table

    def forward(self, x):
        return SimpleNamespace(logits=self.table[x])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, wiki_records):
    return build_annotated_corpus(tmp_path_factory.mktemp("annotated"), wiki_records)


def shy_caller(corpus, shy_after: list[str]) -> Bigram:
    """A calling model for which <CALL> is the top logit after the pieces ``shy_after``, but with a *low* call
    logit there (its other logits are small too), while after every other piece the call logit is high but just
    below the top logit. Ranking by the call logit alone would therefore never pick the top positions."""
    call_id = corpus.call_id
    table = 3 * torch.randn(call_id + 1, call_id + 1, generator=torch.Generator().manual_seed(0))
    sp = corpus.tokenizer.sp
    shy = [sp.piece_to_id(p) for p in shy_after]
    assert [sp.id_to_piece(i) for i in shy] == shy_after, "pieces of the tokenizer"
    table[shy] *= 0.1
    best_other = table[:, :call_id].max(-1).values
    table[:, call_id] = best_other - 0.5
    table[shy, call_id] = best_other[shy] + 0.05
    return Bigram(table)


def expected_validation(corpus, model, baseline, batch_size: int, rate: float = 0.15) -> dict:
    """§A.4.3 computed directly from the raw shard: consecutive windows, per batch C_M = the positions where <CALL>
    is the top logit, capped to or topped up to round(rate · valid) by the call logit; Eq. A.5 (full p) and the
    same positions under p_\\CALL on C_M, Eq. A.6 (p_\\CALL) off it, and the total loss under p_\\CALL: for the
    model and for the baseline on the *model's* C_M. Token-weighted means over all batches."""
    call_id = corpus.call_id
    starts = list(range(0, len(corpus.tokens) - CONTEXT - 1, CONTEXT))
    sums = dict.fromkeys(["call", "call_wo", "noncall", "total", "b_call", "b_call_wo", "b_noncall", "b_total",
                          "n_call", "n_noncall", "n_valid", "n_top", "n_call_fact", "n_fact"], 0.0)
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        x = torch.from_numpy(np.stack([corpus.tokens[a:a + CONTEXT] for a in group]).astype(np.int64))
        want = [corpus.targets(a) for a in group]
        y = torch.from_numpy(np.stack([w["y"] for w in want]))
        valid = torch.from_numpy(np.stack([w["valid"] for w in want]))
        fact = torch.from_numpy(np.stack([w["fact"] for w in want]))
        logits = model(x).logits.float()
        call_logit = logits[..., call_id]
        is_top = call_logit > logits[..., :call_id].max(-1).values
        k = round(rate * int(valid.sum()))
        positions = [i for i in range(valid.numel()) if valid.flatten()[i]]
        by_call_logit = sorted(positions, key=lambda i: -call_logit.flatten()[i].item())
        top = [i for i in by_call_logit if is_top.flatten()[i]]
        chosen = top[:k] + [i for i in by_call_logit if not is_top.flatten()[i]][:max(0, k - len(top))]
        mask = torch.zeros(valid.numel(), dtype=torch.bool)
        mask[chosen] = True
        mask = mask.view(valid.shape)
        sums["n_call"] += int(mask.sum())
        sums["n_noncall"] += int((valid & ~mask).sum())
        sums["n_valid"] += int(valid.sum())
        sums["n_top"] += int((is_top & valid).sum())
        sums["n_call_fact"] += int((mask & fact & valid).sum())
        sums["n_fact"] += int((fact & valid).sum())
        for prefix, scored in (("", model), ("b_", baseline)):
            scored_logits = scored(x).logits.float()
            full = -torch.log_softmax(scored_logits, -1).gather(-1, y[..., None]).squeeze(-1)
            without = scored_logits.clone()
            without[..., call_id] = float("-inf")
            wo = -torch.log_softmax(without, -1).gather(-1, y[..., None]).squeeze(-1)
            sums[prefix + "call"] += full[mask].sum().item()
            sums[prefix + "call_wo"] += wo[mask].sum().item()
            sums[prefix + "noncall"] += wo[valid & ~mask].sum().item()
            sums[prefix + "total"] += wo[valid].sum().item()
    out = {"call_rate": sums["n_call"] / sums["n_valid"], "top_call_rate": sums["n_top"] / sums["n_valid"],
           "tokens": sums["n_valid"], "call_fact_share": sums["n_call_fact"] / sums["n_call"],
           "fact_share": sums["n_fact"] / sums["n_valid"]}
    out["fact_enrichment"] = out["call_fact_share"] - out["fact_share"]
    for prefix, name in (("", ""), ("b_", "baseline_")):
        out[name + "call_loss"] = sums[prefix + "call"] / sums["n_call"]
        out[name + "call_loss_without_call"] = sums[prefix + "call_wo"] / sums["n_call"]
        out[name + "noncall_loss"] = sums[prefix + "noncall"] / sums["n_noncall"]
        out[name + "total_loss"] = sums[prefix + "total"] / sums["n_valid"]
    return out


def test_validation_losses_follow_a_4_3_on_real_annotated_windows(corpus, tmp_path):
    """Eq. A.5/A.6 with the call mask C_M of §A.4.3 on real validation windows, against a direct computation:

    * C_M keeps every position where <CALL> is the top logit, although the calling model's call logit is lower
      there than anywhere else ("We record the positions where the call logit is the top logit ...");
    * the baseline is scored on the calling model's C_M, not on a mask of its own ("the baseline model's loss is
      computed using the call mask C_M");
    * the call loss is recorded both under p (Eq. A.5) and under p_\\CALL, for the model and for the baseline, and
      both reach the per-run JSON and the table.
    """
    model = shy_caller(corpus, shy_after=[".", "▁in"])
    baseline = Bigram(3 * torch.randn(corpus.call_id + 1, corpus.call_id + 1,
                                      generator=torch.Generator().manual_seed(1)))
    windows = TokenWindows.from_directory(corpus.annotation, "validation", CONTEXT, seed=0)
    result = validation_losses(model, baseline, windows, corpus.call_id, 0.15, 3, None, torch.device("cpu"))
    want = expected_validation(corpus, model, baseline, batch_size=3)
    assert 0 < want["top_call_rate"] < want["call_rate"]  # the test needs top positions *and* topped-up ones
    assert result["tokens"] == want["tokens"]
    for key, value in want.items():
        assert result[key] == pytest.approx(value, rel=1e-5), key
    assert result["call_loss_gap"] == pytest.approx(want["call_loss_without_call"] - want["baseline_call_loss_without_call"],
                                                    rel=1e-5)
    assert result["baseline_mask_excess"] == pytest.approx(want["baseline_call_loss_without_call"]
                                                           - want["baseline_total_loss"], rel=1e-5)
    for gap in ("call_loss_gap", "baseline_mask_excess"):
        low, high = result[f"{gap}_ci95"]
        assert low <= result[gap] <= high, gap
    assert 0 < want["fact_share"] < 1 and want["call_fact_share"] != want["fact_share"]
    for share in ("call_fact_share", "fact_share", "fact_enrichment"):
        low, high = result[f"{share}_ci95"]
        assert low <= result[share] <= high, share
    # Eq. A.5's p includes the mass the model puts on <CALL> where it calls: −log p(x) > −log p_\CALL(x)
    assert result["call_loss"] > result["call_loss_without_call"] + 0.1

    (tmp_path / "r.json").write_text(json.dumps({**result, "method": "lacy", "seed": 0}))
    write_table([tmp_path / "r.json"], tmp_path / "table.csv")
    row = next(csv.DictReader(open(tmp_path / "table.csv")))
    for key in ("call_loss_without_call", "baseline_call_loss_without_call"):
        assert float(row[key]) == pytest.approx(want[key], rel=1e-5)
