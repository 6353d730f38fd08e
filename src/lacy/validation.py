"""Validation call and non-call losses (§5.3, §A.4.3, Eq. A.5/A.6, Figures 5 and 19-24).

A calling model M decodes its own call mask C_M on validation data: the positions where <CALL> is the top
logit, capped to or topped up to ``rate`` of the tokens by the <CALL> logit (``lacy.masks.
validation_call_mask``). Its call loss (Eq. A.5), non-call loss (Eq. A.6) and total loss are reported next to
the *baseline model's* losses on the same mask C_M, which tells whether M calls on a-priori hard tokens.

Eq. A.5 writes the full distribution p, so ``call_loss`` includes the mass M puts on <CALL> where it calls;
``call_loss_without_call`` is the loss of the same positions under p_\\CALL (the distribution of Eq. A.6), and
the two are recorded side by side, for M and (``baseline_…``) for the baseline on M's mask, in the per-run JSON
and in the table.

Where M calls is also measured against the spaCy labels of the validation tokens (§A.2.1): ``call_fact_share``,
the share of M's call positions whose true next token is a fact token, beside ``fact_share``, the share of fact
tokens among all valid positions (what a mask blind to facts would reach), and ``fact_enrichment``, their
difference with a paired interval. It is the mechanism LaCy trains for (calls where the facts are), and it needs
no fluent text.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lacy.batches import TokenWindows
from lacy.io import write_csv, write_json
from lacy.losses import call_and_noncall_losses
from lacy.masks import validation_call_mask
from lacy.model import load_trained
from lacy.stats import percentile_interval, ratio_of_sums_resamples

log = logging.getLogger(__name__)

COLUMNS = ("method", "seed", "call_loss", "call_loss_without_call", "noncall_loss", "total_loss",
           "baseline_call_loss", "baseline_call_loss_without_call", "baseline_noncall_loss", "baseline_total_loss",
           "call_rate", "top_call_rate", "call_fact_share", "fact_share", "fact_enrichment", "tokens")


#: Each reported mean loss as (numerator, denominator) of ``lacy.losses.call_and_noncall_losses``'s sums.
MEANS = {"call_loss": ("call_loss_sum", "call_count"),
         "call_loss_without_call": ("call_loss_without_call_sum", "call_count"),
         "noncall_loss": ("noncall_loss_sum", "noncall_count"),
         "total_loss": ("loss_sum", "count")}
#: Where the model calls: the fact share of its call positions and of all positions (module docstring).
FACT_SHARES = {"call_fact_share": ("call_fact_count", "call_count"), "fact_share": ("fact_count", "count")}


def fact_counts(call_mask: torch.Tensor, fact: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Counts of one batch: call positions whose true next token is a fact token, and valid fact positions."""
    return {"call_fact_count": (valid & call_mask & fact).sum().float(), "fact_count": (valid & fact).sum().float()}


@torch.no_grad()
def validation_losses(model, baseline, windows: TokenWindows, call_id: int, rate: float, batch_size: int,
                      max_batches: int | None, device: torch.device) -> dict:
    """Eq. A.5/A.6 for ``model`` on its own call mask, and for ``baseline`` on that same mask, each mean with a
    95 % bootstrap interval over validation batches (``<key>_ci95``), and the baseline's total loss minus the
    model's with a paired interval (``total_loss_gap``: how much better the model predicts the same windows); the
    model's call loss under p_\\CALL minus the baseline's on the same positions (``call_loss_gap``: does it learn
    less of what it delegates), and the baseline's loss on the mask minus its mean loss (``baseline_mask_excess``:
    are the delegated tokens a-priori hard, §5.3), both paired; and
    the fact shares of :data:`FACT_SHARES` with ``fact_enrichment`` (module docstring)."""
    batches: list[dict] = []
    baseline_batches: list[dict] = []
    top = torch.zeros((), device=device)
    for batch in tqdm(windows.sequential(batch_size, max_batches), desc="validation", unit="batch", mininterval=5):
        batch = batch.to(device)
        logits = model(batch.x).logits.float()
        is_top = logits.argmax(-1) == call_id  # argmax takes the first maximum: <CALL> (last id) loses ties
        call_mask = validation_call_mask(logits[..., call_id], is_top, rate=rate, valid=batch.valid)
        top += (is_top & batch.valid).sum()
        batches.append(call_and_noncall_losses(logits, batch.y, call_mask, batch.valid, call_id)
                       | fact_counts(call_mask, batch.fact, batch.valid))
        baseline_logits = baseline(batch.x).logits.float()
        baseline_batches.append(call_and_noncall_losses(baseline_logits, batch.y, call_mask, batch.valid, call_id))
    if not batches:
        raise ValueError("the validation split holds no window of context + 1 tokens")
    sums, baseline_sums = _sums(batches), _sums(baseline_batches)
    result = _means(sums)
    result.update({f"baseline_{k}": v for k, v in _means(baseline_sums).items() if k != "tokens"})
    result["total_loss_gap"] = result["baseline_total_loss"] - result["total_loss"]
    result["call_loss_gap"] = result["call_loss_without_call"] - result["baseline_call_loss_without_call"]
    result["baseline_mask_excess"] = result["baseline_call_loss_without_call"] - result["baseline_total_loss"]
    result.update(_intervals(batches, baseline_batches))
    result.update({share: float(sums[num] / sums[den].clamp(min=1)) for share, (num, den) in FACT_SHARES.items()})
    result["fact_enrichment"] = result["call_fact_share"] - result["fact_share"]
    result.update(_fact_share_intervals(batches))
    result["call_rate"] = float(sums["call_count"] / sums["count"])
    result["top_call_rate"] = float(top / sums["count"])
    return result


def _sums(batches: list[dict]) -> dict:
    return {key: sum(b[key] for b in batches) for key in batches[0]}


def _intervals(batches: list[dict], baseline_batches: list[dict]) -> dict:
    """Bootstrap intervals over batches of every mean of ``MEANS``, for the model and for the baseline, and of
    ``total_loss_gap`` (the same resampled batches for both models: a paired interval)."""
    keys = [(prefix, mean) for prefix in ("", "baseline_") for mean in MEANS]
    per_batch = {"": batches, "baseline_": baseline_batches}
    numerators = np.array([[float(b[MEANS[mean][0]]) for b in per_batch[prefix]] for prefix, mean in keys])
    denominators = np.array([[float(b[MEANS[mean][1]]) for b in per_batch[prefix]] for prefix, mean in keys])
    resampled = dict(zip(keys, ratio_of_sums_resamples(numerators, denominators)))
    out = {f"{prefix}{mean}_ci95": percentile_interval(resampled[prefix, mean]) for prefix, mean in keys}
    out["total_loss_gap_ci95"] = percentile_interval(resampled["baseline_", "total_loss"] - resampled["", "total_loss"])
    out["call_loss_gap_ci95"] = percentile_interval(resampled["", "call_loss_without_call"]
                                                    - resampled["baseline_", "call_loss_without_call"])
    out["baseline_mask_excess_ci95"] = percentile_interval(resampled["baseline_", "call_loss_without_call"]
                                                           - resampled["baseline_", "total_loss"])
    return out


def _fact_share_intervals(batches: list[dict]) -> dict:
    """Bootstrap intervals over batches of :data:`FACT_SHARES` and of their difference (the same resampled
    batches for both: a paired interval)."""
    numerators = np.array([[float(b[num]) for b in batches] for num, _ in FACT_SHARES.values()])
    denominators = np.array([[float(b[den]) for b in batches] for _, den in FACT_SHARES.values()])
    resampled = dict(zip(FACT_SHARES, ratio_of_sums_resamples(numerators, denominators)))
    out = {f"{share}_ci95": percentile_interval(values) for share, values in resampled.items()}
    out["fact_enrichment_ci95"] = percentile_interval(resampled["call_fact_share"] - resampled["fact_share"])
    return out


def _means(sums: dict) -> dict:
    """Token-weighted means over all batches: Eq. A.5 (``call_loss``, full distribution p), the same positions
    under p_\\CALL (``call_loss_without_call``), Eq. A.6 (``noncall_loss``) and the total loss under p_\\CALL."""
    means = {mean: float(sums[num] / sums[den].clamp(min=1)) for mean, (num, den) in MEANS.items()}
    return means | {"tokens": int(sums["count"])}


def write_table(results: list[Path], out_csv: Path) -> None:
    """Collect per-model results into the CSV that the figure stage reads (Figure 5)."""
    rows = [json.loads(Path(p).read_text()) for p in results]
    write_csv(out_csv, sorted(rows, key=lambda r: (r["method"], r["seed"])), list(COLUMNS), extra_keys="ignore")


def run(args) -> dict:
    """``lacy validation-losses evaluate``: one calling model against the baseline of the same seed."""
    from lacy.distributed import init_runtime
    from lacy.tokenizer import LacyTokenizer

    device = init_runtime().device
    call_id = LacyTokenizer.load(args.model).call_id
    model, baseline = load_trained(args.model, device), load_trained(args.baseline, device)
    windows = TokenWindows.from_directory(args.annotation, "validation", model.config.n_positions, seed=0)
    result = validation_losses(model, baseline, windows, call_id, args.rate, args.batch_size,
                               args.max_batches or None, device)
    result.update(method=args.method, seed=args.seed)
    log.info("%s seed %d: call loss %.3f (baseline %.3f), non-call loss %.3f (baseline %.3f), %d tokens",
             args.method, args.seed, result["call_loss"], result["baseline_call_loss"], result["noncall_loss"],
             result["baseline_noncall_loss"], result["tokens"])
    write_json(args.out, result)
    return result


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser("validation-losses", help="call / non-call validation losses (§A.4.3)")
    sub = parser.add_subparsers(dest="validation_command", required=True)
    evaluate = sub.add_parser("evaluate", help="one calling model, and the baseline on its call mask",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    evaluate.add_argument("--model", type=Path, required=True, help="calling model directory")
    evaluate.add_argument("--baseline", type=Path, required=True, help="baseline model directory (same seed)")
    evaluate.add_argument("--annotation", type=Path, required=True, help="annotation directory")
    evaluate.add_argument("--method", required=True)
    evaluate.add_argument("--seed", type=int, required=True)
    evaluate.add_argument("--rate", type=float, required=True, help="share of decoded calls (§A.4.3)")
    evaluate.add_argument("--batch-size", type=int, required=True)
    evaluate.add_argument("--max-batches", type=int, required=True,
                          help="evaluation.validation_batches (0: the whole validation split)")
    evaluate.add_argument("--out", type=Path, required=True, help="JSON to write")
    evaluate.set_defaults(func=run)
    table = sub.add_parser("table", help="collect results into the CSV the figures read")
    table.add_argument("--out", type=Path, required=True)
    table.add_argument("results", type=Path, nargs="+")
    table.set_defaults(func=lambda args: write_table(args.results, args.out))
