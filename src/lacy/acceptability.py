"""Accuracy versus acceptability of greedy next tokens, by loss and token class (§3, §A.1; Figures 3, 8, 9).

Three steps, each a subcommand of ``lacy acceptability``:

* ``record``: for one validation batch (the paper fixes one batch of 112 windows; ``--batch-size`` here),
  at every position of every window record the model's greedy next token under p_\\CALL (the <CALL> logit is
  excluded: the question is which *text* token the model proposes), the ground-truth next token, the
  token's loss −log p_\\CALL(x_{i+1}) (the loss the masks rank by, ``lacy.losses.true_token_losses``) and
  its spaCy class: ``fact`` (label FACT, §A.2.1) or ``non-fact`` (grammatical and other). Positions whose
  target opens a document are skipped (their context belongs to another document; ``Batch.valid``).
  The context shown to the judge is the decoded text of the window *within the target's document*, up to
  and including the current token, truncated to its last ``--context-tokens`` tokens (default 128; the
  paper does not state a length). A truncated context may start mid-word.
* ``judge``: asks an LLM (any ``lacy.llm`` backend; Gemini 2.0 Flash in the paper) whether the proposed
  token is an acceptable continuation, with the paper's judging prompt of §A.1 and its three examples
  (:data:`JUDGE_PROMPT`, verbatim up to the PDF's line wrapping). Positions where greedy == truth are
  acceptable *by definition* (joining the proposal gives exactly the reference statement) and are not sent
  to the judge (``judge: "exact"``).

  - *Label* (``--scoring``). ``generated`` (the paper): the judge writes its explanation and label, read by
    :func:`parse_judgement`; an answer with no parsable 0/1 label is retried once with a format reminder
    appended (a different request, so the cache does not return the same answer), and a second failure is
    recorded as ``judge: "unparsable"`` with ``acceptable: null``, counted, reported and never scored.
    ``next_token``, for a base model run locally (``lacy.llm``'s ``transformers`` backend), which cannot be
    relied on to write an explanation and then a label: the prompt's last line ``**explanation**:`` becomes
    ``**output**:`` (:func:`label_prompt`; the examples keep their explanations) and the label is whichever
    of ``" 0"`` / ``" 1"`` has the higher next-token probability (``LLM.choose``).
  - *Judge's name*. Every record carries ``judged_by``, the name configured for the judge (a stand-in is
    named as one, never as Gemini); a file is only ever resumed by the same judge.
  - *Sample* (``--max-judged N``). The scored positions are the shortest prefix of a seeded random order of
    *all* positions that holds N non-exact ones, so exact and non-exact positions are sampled alike and
    acceptability over the sample stays unbiased; the others keep their accuracy, ``judge: "unsampled"``.
  - *Resume*. Answers are cached by ``lacy.llm``; on top of that the output JSONL is append-only and
    flushed after every position, and a rerun skips every position already in it, so a crash loses at most
    the answers in flight.
  - One process may judge several positions files (``--positions``/``--out`` repeated: the early and the
    final checkpoint), so that a local judge model is loaded once.
* ``plot``: accuracy (greedy == truth) and acceptability against loss-quantile bins (10 by default; bin
  edges are the loss quantiles of all recorded positions of that file, both classes together, so the two
  classes share an x-axis), split into fact / non-fact; one row of two panels (accuracy | acceptability)
  per judged file (``LABEL=judged.jsonl``: the final checkpoint for Figures 3 and 9, the early one for
  Figure 8), labelled with the checkpoint's step and tokens (``record`` copies them from the model's
  ``train.json``), titled with ``--title`` and the judge's name. Writes the PDF, a PNG beside it and a CSV of
  the binned values (with the judge's name in every row).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np

from lacy.defaults import keyword_defaults
from lacy.llm import add_llm_arguments

log = logging.getLogger(__name__)

FACT_CLASS, NONFACT_CLASS = "fact", "non-fact"
CLASSES = (FACT_CLASS, NONFACT_CLASS)

#: The judging prompt of §A.1 ("Prompt for Judging Acceptability"), with its three examples, as the paper
#: gives it (only the PDF's page break inside Example 2 is removed). The three ``{}`` of the last section are
#: filled by :func:`judge_prompt` (plain string replacement, so braces in the text are harmless).
JUDGE_PROMPT = """# Task
You must evaluate whether a proposed next token is a valid continuation of a
given text.

# Input
You will receive three pieces of information:
1. **starting_text**: The initial text segment
2. **proposed_next_token**: A token that could continue the starting_text
3. **reference_next_token**: A reference token for comparison

# Evaluation Criteria
The proposed_next_token is VALID if:
- Joining starting_text + proposed_next_token creates a statement that is
  logically and factually compatible with starting_text +
  reference_next_token
- The two resulting statements do not contradict each other
- The two resulting statements have similar meaning

The proposed_next_token is INVALID if:
- Joining starting_text + proposed_next_token creates a statement that
  contradicts, conflicts with, or significantly changes the meaning of
  starting_text + reference_next_token

# Output Format
Provide:
1. **explanation**: Your reasoning for the decision
2. **output**: A binary label (1 = valid, 0 = invalid)

# Examples

## Example 1: Invalid Continuation
**starting_text**: 'Wolfgang Amadeus Mozart\\n\\n (27 January 17'
**proposed_next_token**: '6'
**reference_next_token**: '5'
**explanation**: The proposed_next_token does not match reference_next_token.
  Completing with '6' would create 'Wolfgang Amadeus Mozart (27 January
  176...', while the reference creates '...175...'. Mozart was born in 1756,
  and the reference token '5' indicates the correct continuation is 1756 (
  starting with 175). The digit '6' creates a factual conflict because it
  would lead to an incorrect year.
**output**: 0

## Example 2: Invalid Continuation
**starting_text**: 'Alan Turing was an English '
**proposed_next_token**: 'linguist'
**reference_next_token**: 'mathematician'
**explanation**: The proposed_next_token does not match reference_next_token.
    Completing with 'linguist' would create 'Alan Turing was an English
    linguist', while the reference creates 'Alan Turing was an English
    mathematician'. This creates a significant difference in meaning. Hence
    the continuation is invalid.
**output**: 0

## Example 3: Valid Continuation
**starting_text**: 'Entre Campos (Lisbon Metro)\\n\\nEntre Campos station is
    part of the '
**proposed_next_token**: 'metro'
**reference_next_token**: 'Yellow'
**explanation**: The proposed_next_token does not match reference_next_token,
    but it does not create a factual conflict. The reference would create 'Entre
    Campos station is part of the Yellow [line]', while the proposal
    creates 'Entre Campos station is part of the metro [network/system]'. Both
    statements have similar meaning and are factually true and compatible -
    the station IS part of the Yellow line AND part of the metro system. These
    are not contradictory facts.
**output**: 1

# Your Task
**starting_text**: '{}'
**proposed_next_token**: '{}'
**reference_next_token**: '{}'
**explanation**:"""

#: Appended to the prompt for the single retry after an unparsable answer (our addition, not the paper's).
FORMAT_REMINDER = ("\n\n(Format reminder: after your explanation, end with a final line of exactly "
                   "'**output**: 1' or '**output**: 0'.)")


# ----------------------------------------------------------------------------------------------- prompt/parse


def _quote(text: str) -> str:
    """Render text inside the prompt's single quotes as the paper's examples do: newlines as ``\\n``."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def judge_prompt(starting_text: str, proposed: str, reference: str) -> str:
    """The §A.1 prompt with its three slots filled."""
    parts = JUDGE_PROMPT.rsplit("{}", 3)  # [head, between, between, tail]; '{}' in the inputs stays literal
    return (parts[0] + _quote(starting_text) + parts[1] + _quote(proposed) + parts[2] + _quote(reference)
            + parts[3])


def label_prompt(starting_text: str, proposed: str, reference: str) -> str:
    """The §A.1 prompt asking for the label at once: its last line ``**explanation**:`` becomes ``**output**:``
    (for ``--scoring next_token``; the three examples keep their explanations)."""
    prompt = judge_prompt(starting_text, proposed, reference)
    return prompt[: -len("**explanation**:")] + "**output**:"


_OUTPUT_RE = re.compile(r"\**\s*output\s*\**\s*[:=]\s*\**\s*[\"'`]?\s*([01])(?![0-9.]*[0-9])", re.IGNORECASE)
_BARE_RE = re.compile(r"^\s*\**\s*[\"'`]?([01])[\"'`]?\s*\**\s*\.?\s*$")


def parse_judgement(answer: str | None) -> int | None:
    """The 0/1 label of a judge answer, or ``None`` when there is none.

    Accepts ``**output**: 1``, ``output: 0``, ``Output = **1**``, ``**output**: '1'`` (the last such line
    wins, since the explanation may quote the format), or an answer that is only ``0`` / ``1``. Anything
    else (``output: 2``, ``output: 0.5``, ``valid``, an empty answer) is ``None``.
    """
    if not answer:
        return None
    matches = _OUTPUT_RE.findall(answer)
    if matches:
        return int(matches[-1])
    bare = _BARE_RE.match(answer)
    return int(bare.group(1)) if bare else None


# ----------------------------------------------------------------------------------------------------- record


def token_text(tokenizer, context_ids: list[int], token_id: int) -> str:
    """Surface text of ``token_id`` after ``context_ids`` (keeps the piece's leading space, which decoding a
    piece on its own drops)."""
    before = tokenizer.decode(context_ids)
    after = tokenizer.decode(list(context_ids) + [int(token_id)])
    if after.startswith(before):
        return after[len(before):]
    return tokenizer.sp.id_to_piece(int(token_id)).replace("\u2581", " ")


def record_positions(model, batch, tokenizer, *, context_tokens: int,
                     max_positions: int | None = None) -> list[dict]:
    """One record per valid position of ``batch`` (row-major; the first ``max_positions`` if given).

    ``model(x).logits`` [B, T, V] is read in float32; greedy is the argmax with <CALL> excluded.
    """
    import torch

    from lacy.losses import token_log_probs

    call_id = tokenizer.call_id
    with torch.no_grad():
        logits = model(batch.x).logits.float()
        loss = -token_log_probs(logits, batch.y, call_id).true_without_call
        logits[..., call_id] = float("-inf")  # in place: a paper-size batch's logits are ~15 GB in float32
        greedy = logits.argmax(-1)
    x, y = batch.x.cpu().numpy(), batch.y.cpu().numpy()
    fact, valid = batch.fact.cpu().numpy(), batch.valid.cpu().numpy()
    grammatical = batch.grammatical.cpu().numpy()
    loss, greedy = loss.cpu().numpy(), greedy.cpu().numpy()
    records: list[dict] = []
    for row in range(x.shape[0]):
        doc_start = 0  # index into x of the first token of the current document
        for t in range(x.shape[1]):
            if not valid[row, t]:  # y[t] = x[t + 1] opens a document
                doc_start = t + 1
                continue
            if max_positions is not None and len(records) >= max_positions:
                return records
            ctx = [int(i) for i in x[row, max(doc_start, t + 1 - context_tokens):t + 1]]
            g, truth = int(greedy[row, t]), int(y[row, t])
            label = "fact" if fact[row, t] else ("grammatical" if grammatical[row, t] else "other")
            records.append({
                "id": f"{row}:{t}", "row": row, "position": t,
                "context": tokenizer.decode(ctx),
                "context_tokens": len(ctx), "truncated": t + 1 - doc_start > context_tokens,
                "greedy_id": g, "greedy": token_text(tokenizer, ctx, g),
                "truth_id": truth, "truth": token_text(tokenizer, ctx, truth),
                "correct": g == truth, "loss": float(loss[row, t]),
                "label": label, "class": FACT_CLASS if fact[row, t] else NONFACT_CLASS,
            })
    return records


def _record_command(args: argparse.Namespace) -> None:
    from lacy.batches import TokenWindows
    from lacy.distributed import default_device
    from lacy.tokenizer import LacyTokenizer
    from lacy.model import load_trained

    device = default_device()
    tokenizer = LacyTokenizer.load(args.model)
    model = load_trained(args.model, device)
    windows = TokenWindows.from_directory(args.annotation, "validation", model.config.n_positions, seed=args.seed)
    batch = next(windows.sequential(args.batch_size, max_batches=1)).to(device)
    records = record_positions(model, batch, tokenizer, context_tokens=args.context_tokens,
                               max_positions=args.max_positions or None)
    from lacy.io import write_jsonl

    trained = json.loads((args.model / "train.json").read_text()) if (args.model / "train.json").is_file() else {}
    for r in records:
        r.update(checkpoint_step=trained.get("steps"), checkpoint_tokens=trained.get("tokens"))
    write_jsonl(args.out, records)
    correct = sum(r["correct"] for r in records)
    log.info("%d positions (%d fact), greedy accuracy %.3f", len(records),
             sum(r["class"] == FACT_CLASS for r in records), correct / max(len(records), 1))


# ------------------------------------------------------------------------------------------------------ judge


def read_judged(path: Path) -> dict[str, dict]:
    """Judged records already in ``path`` by id; a truncated last line (a crash mid-write) is cut off."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping a truncated last line", path)
        with open(path, "r+b") as f:
            f.truncate(keep)
        data = data[:keep]
    done = {}
    for line_no, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not JSON ({err.msg}); delete the file to rejudge") from err
            done[record["id"]] = record
    return done


SCORINGS = ("generated", "next_token")
#: The two labels as they follow ``**output**:`` in the prompt's examples.
LABEL_OPTIONS = (" 0", " 1")


def judge_position(llm, position: dict, scoring: str = "generated") -> dict:
    """``position`` plus ``acceptable`` (1 / 0 / None), ``judge`` (exact / llm / unparsable), ``attempts``
    and the judge's last ``answer``."""
    out = dict(position)
    if position["correct"]:
        out.update(acceptable=1, judge="exact", attempts=0, answer=None)
        return out
    if scoring == "next_token":
        answer = llm.choose(label_prompt(position["context"], position["greedy"], position["truth"]),
                            LABEL_OPTIONS)
        out.update(acceptable=int(answer.strip()), judge="llm", attempts=1, answer=answer)
        return out
    if scoring != "generated":
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    prompt = judge_prompt(position["context"], position["greedy"], position["truth"])
    answer = None
    for attempt, p in enumerate((prompt, prompt + FORMAT_REMINDER), start=1):
        answer = llm.complete(p)
        label = parse_judgement(answer)
        if label is not None:
            out.update(acceptable=label, judge="llm", attempts=attempt, answer=answer)
            return out
    out.update(acceptable=None, judge="unparsable", attempts=2, answer=answer)
    return out


def judged_sample(positions: list[dict], max_judged: int | None, seed: int = 0) -> set[str]:
    """Ids of the positions to score: all, or the shortest prefix of a seeded random order of all positions
    that holds ``max_judged`` non-exact ones (exact and non-exact sampled alike: no bias)."""
    if max_judged is None:
        return {p["id"] for p in positions}
    chosen, judged = set(), 0
    for i in np.random.default_rng(seed).permutation(len(positions)):
        if judged == max_judged:
            break
        chosen.add(positions[i]["id"])
        judged += not positions[i]["correct"]
    return chosen


def judge_positions(llm, positions: list[dict], out: Path, workers: int = 4, *, scoring: str = "generated",
                    judged_by: str | None = None, max_judged: int | None = None, seed: int = 0) -> dict:
    """Judge every position not yet in ``out`` (append-only JSONL), and summarise the whole file.

    ``judged_by`` (default: the LLM's name) names the judge in every record; a file judged by another judge is
    an error, never resumed. With ``max_judged`` only :func:`judged_sample` is judged."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    judged_by = judged_by or llm.name
    done = read_judged(out)
    others = {r.get("judged_by") for r in done.values()} - {judged_by}
    if others:
        raise ValueError(f"{out} was judged by {', '.join(map(str, others))}, not {judged_by}; delete it to rejudge")
    sample = judged_sample(positions, max_judged, seed)
    todo = [p for p in positions if p["id"] not in done]
    log.info("%d positions, %d already judged, %d to go (%d of them sampled for the judge %s)", len(positions),
             len(done), len(todo), sum(p["id"] in sample for p in todo), judged_by)

    def judge(position: dict) -> dict:
        if position["id"] in sample:
            record = judge_position(llm, position, scoring)
        else:
            record = dict(position, acceptable=None, judge="unsampled", attempts=0, answer=None)
        record["judged_by"] = judged_by
        return record

    with open(out, "a", encoding="utf-8") as f, ThreadPoolExecutor(max(1, workers)) as pool:
        for record in pool.map(judge, todo):  # in order; each flushed at once
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            done[record["id"]] = record
    return summarise(done.values())


def summarise(records: Iterable[dict]) -> dict:
    records = list(records)
    by = {k: sum(r["judge"] == k for r in records) for k in ("exact", "llm", "unparsable", "unsampled")}
    scored = [r["acceptable"] for r in records if r["acceptable"] is not None]
    return {"positions": len(records), **by, "retried": sum(r.get("attempts", 0) == 2 for r in records),
            "acceptability": float(np.mean(scored)) if scored else math.nan,
            "accuracy": float(np.mean([r["correct"] for r in records])) if records else math.nan}


def judge_checkpoints(llm, positions: list[Path], judged: list[Path], summaries: list[Path | None] | None = None, *,
                      judge_name: str | None = None, scoring: str = "generated", workers: int = 4, max_judged: int = 0,
                      seed: int = 0) -> list[dict]:
    """Judge the positions of each checkpoint (§3, §A.1) with one ``llm``: ``positions[i]`` (from ``record``) into
    ``judged[i]`` (resumable, :func:`judge_positions`) and its summary into ``summaries[i]`` when given.
    ``judge_name`` (default: the LLM's name) names the judge; ``max_judged``: the non-exact positions judged per
    checkpoint, in a seeded sample (0: all). Returns the summaries."""
    from lacy.io import read_jsonl, write_json

    summaries = summaries or [None] * len(positions)
    if not len(positions) == len(judged) == len(summaries):
        raise ValueError("give one out file (and one summary file, if any) per positions file")
    judged_by = judge_name or llm.name
    results = []
    for positions_path, out, summary_path in zip(positions, judged, summaries):
        records = [r for _, r in read_jsonl(positions_path)]
        summary = judge_positions(llm, records, out, workers, scoring=scoring, judged_by=judged_by,
                                  max_judged=max_judged or None, seed=seed)
        summary.update(judge=judged_by, judge_llm=llm.name, scoring=scoring)
        log.info("%s, judge %s: %d positions: %d exact, %d judged, %d unparsable (not scored), %d not sampled; "
                 "acceptability %.3f", out, judged_by, summary["positions"], summary["exact"], summary["llm"],
                 summary["unparsable"], summary["unsampled"], summary["acceptability"])
        if summary_path:
            write_json(summary_path, summary)
        results.append(summary)
    return results


#: :func:`judge_checkpoints`' own values of the options ``lacy acceptability judge`` leaves out.
DEFAULTS = keyword_defaults(judge_checkpoints)


def _judge_command(args: argparse.Namespace) -> None:
    from lacy.llm import llm_from_args

    judge_checkpoints(llm_from_args(args), args.positions, args.out, args.summary, judge_name=args.judge_name,
                      scoring=args.scoring, workers=args.workers, max_judged=args.max_judged, seed=args.seed)


# ------------------------------------------------------------------------------------------------------- plot


def quantile_bins(losses: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index in ``[0, n_bins)`` of every loss and the ``n_bins + 1`` quantile edges.

    Bin k holds losses in ``[edge_k, edge_{k+1})`` (the last bin also its upper edge), so with distinct
    losses every bin holds ``len / n_bins`` of them, up to rounding; ties may leave bins empty.
    """
    losses = np.asarray(losses, dtype=np.float64)
    edges = np.quantile(losses, np.linspace(0.0, 1.0, n_bins + 1))
    return np.searchsorted(edges[1:-1], losses, side="right"), edges


def binned_rows(label: str, records: list[dict], n_bins: int) -> list[dict]:
    """One CSV row per (class, bin): loss range, counts, accuracy, acceptability over scored positions."""
    if not records:
        raise ValueError(f"{label}: no judged positions")
    bins, edges = quantile_bins([r["loss"] for r in records], n_bins)
    judge = judged_by(records)
    rows = []
    for cls in CLASSES:
        for k in range(n_bins):
            members = [r for r, b in zip(records, bins) if b == k and r["class"] == cls]
            scored = [r["acceptable"] for r in members if r.get("acceptable") is not None]
            rows.append({
                "label": label, "judged_by": judge, "class": cls, "bin": k,
                "loss_lo": float(edges[k]), "loss_hi": float(edges[k + 1]),
                "loss_mean": float(np.mean([r["loss"] for r in members])) if members else math.nan,
                "n": len(members),
                "accuracy": float(np.mean([r["correct"] for r in members])) if members else math.nan,
                "n_scored": len(scored),
                "acceptability": float(np.mean(scored)) if scored else math.nan,
                "n_unparsable": sum(r.get("judge") == "unparsable" for r in members),
            })
    return rows


def judged_by(records: list[dict]) -> str:
    """The judge named in ``records`` (one per file: ``judge_positions`` never mixes judges)."""
    return ", ".join(sorted({str(r.get("judged_by")) for r in records}))


def checkpoint_label(label: str, records: list[dict]) -> str:
    """``label`` with the checkpoint's step and training tokens when ``record`` found them."""
    step, tokens = records[0].get("checkpoint_step"), records[0].get("checkpoint_tokens")
    if step is None or tokens is None:
        return label
    scale, unit = next((s, u) for s, u in ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1, "")) if tokens >= s or s == 1)
    return f"{label} (step {step:,}, {tokens / scale:.3g}{unit} tokens)"


def _parse_labelled(spec: str) -> tuple[str, Path]:
    if "=" not in spec:
        raise ValueError(f"--judged {spec!r}: expected LABEL=PATH")
    label, path = spec.split("=", 1)
    return label, Path(path)


def plot(judged: list[tuple[str, Path]], out: Path, n_bins: int = 10, title: str | None = None) -> list[dict]:
    """Accuracy and acceptability by loss quantile, fact / non-fact (§3, §A.1; Figures 3, 8, 9) of each
    ``(label, judged JSONL)``: the CSV (``out`` with suffix .csv), then the figure as ``out`` and a PNG beside it."""
    from lacy.io import atomic_output, read_jsonl, write_csv

    out = Path(out)
    rows: list[dict] = []
    labels, judges = [], []
    for label, path in judged:
        records = [r for _, r in read_jsonl(path)]
        unparsable = sum(r.get("judge") == "unparsable" for r in records)
        if unparsable:
            log.warning("%s: %d of %d positions have an unparsable judgement; they are not scored", label,
                        unparsable, len(records))
        labels.append(checkpoint_label(label, records))
        judges.append(judged_by(records))
        rows += binned_rows(labels[-1], records, n_bins)
    write_csv(out.with_suffix(".csv"), rows, list(rows[0]))
    try:
        import matplotlib
    except ImportError as err:
        raise ValueError("plotting needs matplotlib (pip install matplotlib); the CSV "
                         f"{out.with_suffix('.csv')} is written") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(labels), 2, figsize=(10, 3.4 * len(labels) + 0.6), squeeze=False, sharey=True)
    for i, label in enumerate(labels):
        for j, metric in enumerate(("accuracy", "acceptability")):
            ax = axes[i][j]
            for cls, marker in zip(CLASSES, ("o", "s")):
                sel = [r for r in rows if r["label"] == label and r["class"] == cls]
                ax.plot([r["bin"] + 1 for r in sel], [r[metric] for r in sel], marker=marker,
                        label="factual" if cls == FACT_CLASS else "non-factual")
            ax.set_title(f"{label}\n{metric}", fontsize=9)
            ax.set_xlabel(f"token loss quantile bin (1 = lowest of {n_bins})")
            ax.set_xticks(range(1, n_bins + 1))
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("share of positions")
            ax.legend()
    judge_line = "acceptability judged by " + "; ".join(dict.fromkeys(judges))
    fig.suptitle(f"{title}\n{judge_line}" if title else judge_line, fontsize=10)
    fig.tight_layout()
    for target in (out, out.with_suffix(".png")):
        with atomic_output(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lstrip(".") or "pdf", dpi=150)
    plt.close(fig)
    log.info("wrote %s, %s and %s", out, out.with_suffix(".png"), out.with_suffix(".csv"))
    return rows


def _plot_command(args: argparse.Namespace) -> None:
    plot([_parse_labelled(s) for s in args.judged], args.out, args.bins, args.title)


# -------------------------------------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy acceptability record|judge|plot``."""
    parser = subparsers.add_parser("acceptability", help="accuracy vs LLM-judged acceptability by loss (§3, §A.1)")
    sub = parser.add_subparsers(dest="acceptability_command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    record = sub.add_parser("record", help="greedy vs true next token, loss and class for one validation batch",
                            formatter_class=fmt)
    record.add_argument("--model", type=Path, required=True, help="model directory (with its tokenizer)")
    record.add_argument("--annotation", type=Path, required=True, help="annotation directory")
    record.add_argument("--out", type=Path, required=True, help="positions JSONL to write")
    record.add_argument("--batch-size", type=int, required=True,
                        help="validation windows (acceptability.batch_size; 112 in the paper)")
    record.add_argument("--max-positions", type=int, default=0, help="keep the first N positions (0: all)")
    record.add_argument("--context-tokens", type=int, required=True,
                        help="context shown to the judge: at most this many last tokens of the document")
    record.add_argument("--seed", type=int, required=True,
                        help="which validation windows (acceptability.sample_seed)")
    record.set_defaults(func=_record_command)

    judge = sub.add_parser("judge", help="LLM-judge the acceptability of each greedy token (resumable)",
                           formatter_class=fmt)
    judge.add_argument("--positions", type=Path, action="append", required=True,
                       help="JSONL from 'acceptability record'; repeat (with --out) to judge several with one "
                            "loaded judge")
    judge.add_argument("--out", type=Path, action="append", required=True,
                       help="judged JSONL (appended to; rerun resumes), one per --positions")
    add_llm_arguments(judge, llm_help="judge model (paper: Gemini 2.0 Flash)")
    judge.add_argument("--judge-name", default=None,
                       help="the judge's name in records, summary, CSV and figure (default: backend:model)")
    judge.add_argument("--scoring", choices=SCORINGS, default=DEFAULTS["scoring"],
                       help="generated: the judge writes explanation and label (paper); next_token: the more "
                            "probable of ' 0' / ' 1' after '**output**:' (a local base model)")
    judge.add_argument("--max-judged", type=int, default=DEFAULTS["max_judged"],
                       help="judge a seeded random sample of positions holding this many non-exact ones (0: all)")
    judge.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the --max-judged sample")
    judge.add_argument("--workers", type=int, default=DEFAULTS["workers"], help="concurrent judge requests")
    judge.add_argument("--summary", type=Path, action="append", default=None,
                       help="summary JSON (counts, means), one per --positions if given")
    judge.set_defaults(func=_judge_command)

    plot_parser = sub.add_parser("plot", help="accuracy and acceptability by loss quantile, fact / non-fact",
                                 formatter_class=fmt)
    plot_parser.add_argument("--judged", action="append", required=True, metavar="LABEL=JSONL",
                             help="judged positions of one checkpoint; repeat for several")
    plot_parser.add_argument("--out", type=Path, required=True, help="figure (PDF); PNG and CSV go beside it")
    plot_parser.add_argument("--bins", type=int, default=10, help="loss quantile bins")
    plot_parser.add_argument("--title", default=None, help="figure title (the judge's name is added below it)")
    plot_parser.set_defaults(func=_plot_command)
