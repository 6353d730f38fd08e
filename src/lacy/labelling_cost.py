"""The labelling cost of each token-selection method, measured on this run's hardware (§5.6, Table 2).

Table 2 reports the preprocessing that each method needs before (or beside) training, in hours per 1B tokens:

* **LaCy**: spaCy annotation (§A.2.1) on CPU. Each annotation shard records the CPU seconds of its annotation
  loop and its token count (``lacy.annotation.shards``); CPU seconds over all processes of the job divided by
  tokens is the throughput of one CPU core, whatever ``n_process`` the job used.
* **Rho-1**: the reference model's forward pass that gives every token its reference loss (§A.4.1). The
  ``rho1`` command times it with the trained reference model on validation windows, on this run's device (the
  GPU when there is one), the first batch excluded as warm-up.
* **LLM judge**: not produced here; its labels come from the LMLM release (§A.2.2), so only the paper's
  figure is shown.
* **Loss-based**: none; the training loss itself selects the tokens.

This module imports only the standard library at the top, because the annotation jobs use its CPU clock in an
environment without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import time
from contextlib import nullcontext
from pathlib import Path

log = logging.getLogger(__name__)

#: Table 2 of the paper: method -> (hours per 1B tokens, device); None: no labelling step.
PAPER = {
    "Loss-based": (None, "none"),
    "LLM judge": (233.0, "single A100 GPU"),
    "Rho-1": (56.0, "single A100 GPU"),
    "LaCy": (152.0, "single CPU core"),
}
COLUMNS = ("method", "measured_hours_per_1b_tokens", "measured_device", "paper_hours_per_1b_tokens", "paper_device")


def hours_per_billion_tokens(seconds: float, tokens: int) -> float:
    """Table 2's unit: ``seconds`` spent on ``tokens`` tokens, scaled to hours for 10^9 tokens."""
    if tokens <= 0:
        raise ValueError(f"cannot compute a throughput from {tokens} tokens")
    return seconds / tokens * 1e9 / 3600


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished child processes (spaCy's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def annotation_cost(stats_files: list[Path]) -> dict:
    """LaCy's labelling cost from annotation shard statistics: CPU seconds per token over all shards."""
    tokens = cpu = wall = 0
    models = []
    for path in stats_files:
        stats = json.loads(Path(path).read_text())
        if "annotation_cpu_seconds" not in stats:
            raise ValueError(f"{path}: no annotation timing; rerun its annotation job")
        tokens += stats["n_tokens"]
        cpu += stats["annotation_cpu_seconds"]
        wall += stats["annotation_seconds"]
        models.append(stats["cpu_model"])
    return {"tokens": tokens, "cpu_seconds": cpu, "wall_seconds": wall,
            "hours_per_billion_tokens": hours_per_billion_tokens(cpu, tokens),
            "device": f"1 CPU core ({', '.join(dict.fromkeys(models))})"}


def time_reference_scoring(reference, windows, call_id: int, batch_size: int, batches: int, precision: str,
                           device) -> dict:
    """Seconds and tokens of ``batches`` reference-loss batches (the per-token losses Rho-1 ranks by,
    ``lacy.losses.true_token_losses``), after one warm-up batch that is not counted. ``seconds`` is GPU wall
    time on a GPU and CPU time on the CPU (one core's cost, like LaCy's, and immune to other load)."""
    import torch

    from lacy.losses import true_token_losses

    cast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tokens, wall, cpu, timed = 0, 0.0, 0.0, 0
    for k, batch in enumerate(windows.sequential(batch_size, batches + 1)):
        x, y = batch.x.to(device), batch.y.to(device)
        sync()
        wall_start, cpu_start = time.perf_counter(), cpu_seconds()
        with torch.no_grad(), cast:
            true_token_losses(reference(x).logits, y, call_id)
        sync()
        if k > 0:
            wall += time.perf_counter() - wall_start
            cpu += cpu_seconds() - cpu_start
            tokens += x.numel()
            timed += 1
    if not timed:
        raise ValueError("the validation split holds fewer than two batches of windows to time")
    seconds = wall if device.type == "cuda" else cpu
    return {"tokens": tokens, "seconds": seconds, "wall_seconds": wall, "cpu_seconds": cpu, "batches": timed,
            "batch_size": batch_size, "hours_per_billion_tokens": hours_per_billion_tokens(seconds, tokens)}


def device_name(device) -> str:
    """What the timing's seconds count, e.g. "NVIDIA H100 80GB HBM3" or "1 CPU core (AMD EPYC ...)"."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"1 CPU core ({cpu_model()})"


def table_rows(annotation: dict, rho1: dict | None, llm_judge_labels: bool) -> list[dict]:
    """Table 2's rows: measured value and device next to the paper's, in the paper's order."""
    measured = {
        "Loss-based": (None, "none: the training loss selects the tokens"),
        "LLM judge": (None, "not run: LLM-judge labels come from the LMLM release (§A.2.2)" if llm_judge_labels
                      else "not run: this run has no LLM-judge labels (data.source is not dwiki)"),
        "Rho-1": ((rho1["hours_per_billion_tokens"], rho1["device"]) if rho1 else
                  (None, "not run: no method of this run needs the reference model")),
        "LaCy": (annotation["hours_per_billion_tokens"], annotation["device"]),
    }
    return [{"method": method, "measured_hours_per_1b_tokens": measured[method][0],
             "measured_device": measured[method][1], "paper_hours_per_1b_tokens": paper[0],
             "paper_device": paper[1]} for method, paper in PAPER.items()]


def _hours(value: float | None, missing: str = "none") -> str:
    return missing if value is None else f"{value:.3g}"


def write_table(rows: list[dict], csv_path: Path, md_path: Path, notes: list[str]) -> None:
    """Table 2 as CSV (numbers, empty where there is none) and as Markdown with ``notes`` under it."""
    from lacy.io import atomic_output, write_csv

    write_csv(csv_path, [{k: ("" if v is None else v) for k, v in row.items()} for row in rows], list(COLUMNS))
    lines = ["Table 2: labelling overhead, hours per 1B tokens (§5.6)", "",
             "| Method | Measured h / 1B tokens | Measured device | Paper h / 1B tokens | Paper device |",
             "|---|---:|---|---:|---|"]
    for row in rows:
        measured = _hours(row["measured_hours_per_1b_tokens"], "none" if row["method"] == "Loss-based" else "–")
        lines.append(f"| {row['method']} | {measured} | {row['measured_device']} | "
                     f"{_hours(row['paper_hours_per_1b_tokens'])} | {row['paper_device']} |")
    with atomic_output(md_path) as tmp:
        Path(tmp).write_text("\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n")


def _rho1(args: argparse.Namespace) -> None:
    """``lacy labelling-cost rho1``: time the reference model's per-token losses on validation windows."""
    import torch

    from lacy.batches import TokenWindows
    from lacy.distributed import init_runtime
    from lacy.io import write_json
    from lacy.tokenizer import LacyTokenizer
    from lacy.model import load_trained

    torch.set_num_threads(args.threads)
    device = init_runtime().device
    reference = load_trained(args.reference, device)
    windows = TokenWindows.from_directory(args.annotation, "validation", reference.config.n_positions, seed=0)
    result = time_reference_scoring(reference, windows, LacyTokenizer.load(args.reference).call_id,
                                    args.batch_size, args.batches, args.precision, device)
    result.update(device=device_name(device), threads=args.threads, precision=args.precision,
                  parameters=sum(p.numel() for p in reference.parameters()), reference=str(args.reference))
    log.info("reference scoring: %d tokens in %.2f s on %s: %.3g h per 1B tokens", result["tokens"],
             result["seconds"], result["device"], result["hours_per_billion_tokens"])
    write_json(args.out, result)


def _table(args: argparse.Namespace) -> None:
    """``lacy labelling-cost table``: Table 2 from the annotation statistics and the Rho-1 timing."""
    write_table2(args.annotation_stats, args.rho1, args.llm_judge_labels, args.csv, args.md)


def write_table2(annotation_stats: list[Path], rho1: Path | None, llm_judge_labels: bool, csv_path: Path,
                 md_path: Path) -> None:
    """Table 2 (§5.6) as CSV and Markdown: LaCy's cost from the annotation shards' statistics, Rho-1's from the
    JSON of ``rho1`` (None: this run trains no reference model), and whether the run uses the LMLM release's
    LLM-judge labels (§A.2.2)."""
    annotation = annotation_cost(annotation_stats)
    rho1 = json.loads(Path(rho1).read_text()) if rho1 else None
    notes = [f"LaCy: spaCy annotation of {annotation['tokens']:,} tokens in {annotation['cpu_seconds']:.1f} CPU "
             f"seconds (annotation loop of every shard, all worker processes; {annotation['wall_seconds']:.1f} s "
             "wall clock), i.e. per CPU core."]
    if rho1:
        clock = "GPU seconds" if rho1["seconds"] == rho1["wall_seconds"] else "CPU seconds"
        notes.append(f"Rho-1: forward pass of the reference model ({rho1['parameters'] / 1e6:.1f}M parameters, "
                     f"{rho1['precision']}) giving per-token losses on {rho1['tokens']:,} validation tokens in "
                     f"{rho1['seconds']:.2f} {clock}, first batch excluded.")
    notes.append("Paper: Table 2 (A100 GPUs, CPU core model not stated).")
    write_table(table_rows(annotation, rho1, llm_judge_labels), csv_path, md_path, notes)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("labelling-cost", help="labelling overhead of each method (§5.6, Table 2)")
    sub = parser.add_subparsers(dest="labelling_cost_command", required=True)
    rho1 = sub.add_parser("rho1", help="time the reference model's per-token losses (Rho-1's labelling)",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rho1.add_argument("--reference", type=Path, required=True, help="trained reference model directory")
    rho1.add_argument("--annotation", type=Path, required=True, help="annotation directory (validation split)")
    rho1.add_argument("--batch-size", type=int, required=True, help="windows per batch")
    rho1.add_argument("--batches", type=int, required=True, help="timed batches (one more runs as warm-up)")
    rho1.add_argument("--precision", choices=["bf16", "fp32"], required=True, help="training.precision")
    rho1.add_argument("--threads", type=int, required=True, help="torch CPU threads (training.cpus_per_gpu)")
    rho1.add_argument("--out", type=Path, required=True, help="JSON to write")
    rho1.set_defaults(func=_rho1)
    table = sub.add_parser("table", help="write Table 2 (CSV and Markdown)")
    table.add_argument("--annotation-stats", type=Path, nargs="+", required=True, help="shard statistics JSON files")
    table.add_argument("--rho1", type=Path, default=None, help="JSON of `labelling-cost rho1` (absent: not run)")
    table.add_argument("--llm-judge-labels", action="store_true", help="this run uses the LMLM LLM-judge labels")
    table.add_argument("--csv", type=Path, required=True)
    table.add_argument("--md", type=Path, required=True)
    table.set_defaults(func=_table)
