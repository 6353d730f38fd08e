"""``results/summary.md``: the run read claim by claim against the paper, the page a person reads first.

One table per claim of the paper, each with the paper's number, ours and whether the claim holds *in this
run*:

* FactScore ordering (§5.2, Figure 2 left): LaCy scores highest of the compared methods.
* Fact-leakage ordering (§5.3, Figure 2 right): LaCy leaks least (pooled over the query sets).
* NLU parity (§5.5, Table 1): no calling method's average accuracy differs from the baseline's by more than
  :data:`NLU_PARITY_POINTS` points (the paper's differences are at most 0.5 points; the tolerance is our
  choice, written here and in the table).
* Call loss (§5.3, Figure 5): LaCy's validation call loss is the highest of the calling methods, and above
  the baseline's loss on the same mask (it learns even less about the tokens it delegates).
* Labelling cost (§5.6, Table 2): LaCy's labels need no GPU; measured hours per 1B tokens beside the paper's.

"Holds" compares point estimates; when the 95 % intervals of the best and the runner-up overlap, the verdict
says so ("not significant at this scale"). A claim whose methods this configuration does not train is "n/a".
The summary also reports the call budget actually realised in the cascades (§5.1: an equal budget of 22 %;
§A.5: the paper's 15 % target realises ~22 %), the spaCy fact-token share (§A.2.1: ~25 %), the train/test overlap of the evaluation
entities, and which paper figures this configuration does not build, with the reason.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from lacy.figures import (MAIN_METHODS, METHOD_LABELS, SCORER_LABELS, Context, Estimate, add_context_arguments,
                          context_from_args, method_of, reported, result_path)
from lacy.io import atomic_output, read_jsonl
from lacy.plan import REFERENCE

log = logging.getLogger(__name__)

NLU_PARITY_POINTS = 2.0


def _cell(estimate: Estimate | None, digits: int = 1) -> str:
    return "—" if estimate is None else estimate.text(digits)


def _paper(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _number(text: str) -> str:
    """A CSV cell for Markdown: numbers to one decimal, anything else as it is."""
    try:
        return f"{float(text):.1f}"
    except ValueError:
        return text


def _overlap(a: Estimate, b: Estimate) -> bool:
    if a.low is None or b.low is None:
        return False
    return a.low <= b.high and b.low <= a.high


def ordering_verdict(values: dict[str, Estimate], best: str = "lacy", highest: bool = True) -> str:
    """Whether ``best`` has the highest (or lowest) value of ``values``, and whether that is significant."""
    present = {m: e for m, e in values.items() if e is not None}
    if best not in present or len(present) < 2:
        return "n/a (LaCy or every other method is missing from this run)"
    ranked = sorted(present, key=lambda m: present[m].value, reverse=highest)
    tied = [m for m in ranked if m != best and present[m].value == present[best].value]
    if tied and present[best].value == present[ranked[0]].value:
        return f"**no**: tied with {', '.join(METHOD_LABELS[m] for m in tied)} at {present[best].value:.1f}"
    if ranked[0] != best:
        verdict = f"**no**: {METHOD_LABELS[ranked[0]]} is {'highest' if highest else 'lowest'}"
        if _overlap(present[best], present[ranked[0]]):
            verdict += ", but its interval overlaps LaCy's (not significant at this scale)"
        return verdict
    runner_up = present[ranked[1]]
    if _overlap(present[best], runner_up):
        return f"yes, but its interval overlaps {METHOD_LABELS[ranked[1]]}'s (not significant at this scale)"
    return "**yes**"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def factscore_claim(ctx: Context, runs: list[str]) -> list[str]:
    paper = reported()["factscore"]
    values = {method_of(r): ctx.results.fact_precision(r) for r in runs}
    rows = [[METHOD_LABELS[m], _paper(paper.get(m)), _cell(v)] for m, v in values.items()]
    return ["## FactScore ordering (§5.2, Figure 2 left)", "",
            f"Claim: LaCy reaches the highest FactScore with a cascade partner. Ours: {ctx.metric}, partner "
            f"{ctx.partner_labels.get('main', ctx.results.partner)}.", "",
            *_markdown_table(["method", "paper FactScore (Llama-3.2-1B) %", f"ours: {ctx.metric} % [95 % CI]"], rows),
            "", f"Holds in this run: {ordering_verdict(values)}.", ""]


def leakage_claim(ctx: Context, runs: list[str]) -> list[str]:
    paper = reported()["fact_leakage"]
    sets = ctx.results.leakage_sets(runs[0])
    rows, pooled = [], {}
    for run in runs:
        method = method_of(run)
        pooled[method] = ctx.results.fact_leakage(run)
        rows.append([METHOD_LABELS[method], _paper(paper.get(method)), _cell(pooled[method]),
                     *(_cell(ctx.results.fact_leakage(run, s)) for s in sets)])
    return ["## Fact-leakage ordering (§5.3, Figure 2 right)", "",
            "Claim: without calls (<CALL> logit at -inf), LaCy answers the fewest factual queries itself.", "",
            "Pooled: all query sets' leaked queries over all their queries (a larger set weighs more), its 95 % "
            "interval a bootstrap resampling within each set; the verdict reads the pooled intervals.", "",
            *_markdown_table(["method", "paper %", "ours, pooled % [95 % CI]", *(f"ours: {s} % [95 % CI]" for s in sets)],
                             rows),
            "", f"Holds in this run: {ordering_verdict(pooled, highest=False)}.", ""]


def nlu_claim(ctx: Context, runs: list[str]) -> list[str]:
    paper = reported()["nlu_average"]
    tasks = ctx.results.nlu_tasks(runs[0])
    averages = {}
    for run in runs:
        scores = [ctx.results.nlu_accuracy(run, t) for t in tasks]
        averages[method_of(run)] = (sum(s.value for s in scores) / len(scores)
                                    if all(s is not None for s in scores) else None)
    base = averages.get("baseline")
    rows = [[METHOD_LABELS[m], _paper(paper.get(m), 1), "—" if a is None else f"{a:.1f}",
             "—" if a is None or base is None else f"{a - base:+.1f}"] for m, a in averages.items()]
    gaps = [abs(a - base) for m, a in averages.items() if m != "baseline" and a is not None and base is not None]
    if not gaps:
        verdict = "n/a (needs the baseline and a calling method)"
    elif max(gaps) <= NLU_PARITY_POINTS:
        verdict = f"**yes**: every calling method within {NLU_PARITY_POINTS:.0f} points of the baseline"
    else:
        verdict = f"**no**: a calling method is {max(gaps):.1f} points from the baseline"
    return ["## NLU parity (§5.5, Table 1)", "",
            f"Claim: offloading facts neither helps nor hurts NLU. Ours: lm-eval accuracy on {', '.join(tasks)}; "
            f"parity means within {NLU_PARITY_POINTS:.0f} points of the baseline's average (our tolerance; the "
            "paper's differences are at most 0.5 points on ARC-Easy, HellaSwag, PIQA, SIQA).", "",
            *_markdown_table(["method", "paper average %", "ours average %", "ours − baseline"], rows),
            "", f"Holds in this run: {verdict}.", ""]


def call_loss_claim(ctx: Context, runs: list[str]) -> list[str]:
    paper = reported()["validation_call_loss"]
    calling = [r for r in runs if method_of(r) != "baseline"]
    own = {method_of(r): ctx.results.validation_loss(r, "call_loss") for r in calling}
    base = {method_of(r): ctx.results.validation_loss(r, "call_loss", baseline=True) for r in calling}
    rows = [[METHOD_LABELS[m], _paper(paper.get(m)), _cell(own[m], 2), _cell(base[m], 2)] for m in own]
    verdict = ordering_verdict(own)
    if "lacy" in own and own["lacy"] is not None and base["lacy"] is not None:
        above = own["lacy"].value > base["lacy"].value
        verdict += (f"; LaCy's call loss is {'above' if above else '**below**'} the baseline's on the same mask "
                    f"({own['lacy'].value:.2f} vs {base['lacy'].value:.2f})")
    return ["## Call loss (§5.3, Figure 5)", "",
            "Claim: LaCy has the highest validation loss on the tokens it delegates (5.72 in the paper), higher "
            "than the baseline's on the same tokens.", "",
            *_markdown_table(["method", "paper call loss", "ours", "baseline on the same mask"], rows),
            "", f"Holds in this run: {verdict}.", ""]


def reference_model(ctx: Context) -> list[str]:
    """The reference model of Rho-1 and spaCy+Refloss beside the baseline (§A.4.1): it must be the stronger
    model, or their excess-loss rankings order tokens by noise."""
    header = ["## Reference model (§A.4.1)", "",
              "Rho-1 and spaCy+Refloss rank tokens by a reference model's loss; the paper's reference is a 1.3B model "
              "trained 2.54M steps, 6.35x a calling model's 400k. Validation loss (nats per token, <CALL> excluded) "
              "on the same validation windows:", ""]
    if not result_path(ctx.results.root, "validation", REFERENCE, ctx.results.seeds[0]).exists():
        return header + ["Not trained in this run (neither Rho-1 nor spaCy+Refloss is configured).", ""]
    reference = ctx.results.validation_loss(REFERENCE, "total_loss")
    baseline = ctx.results.validation_loss(REFERENCE, "total_loss", baseline=True)
    gap = ctx.results.validation_loss(REFERENCE, "total_loss_gap")
    rows = [["reference", _cell(reference, 3)], ["Baseline", _cell(baseline, 3)]]
    stronger = "**yes**" if gap.low is not None and gap.low > 0 else "**no** (its interval reaches 0)"
    return header + [*_markdown_table(["model", "validation loss [95 % CI over batches]"], rows), "",
                     f"The reference is {_cell(gap, 3)} nats below the baseline (paired interval over the same "
                     f"batches). Stronger than the baseline in this run: {stronger}.", ""]


def labelling_claim(table2: Path | None) -> list[str]:
    header = ["## Labelling cost (§5.6, Table 2)", "",
              "Claim: LaCy's labels come from a CPU spaCy pass (152 h per 1B tokens on one core in the paper); "
              "LLM judge and Rho-1 need a GPU."]
    if table2 is None or not Path(table2).exists():
        return header + ["", "Not measured in this run (no Table 2 in this configuration).", ""]
    with open(table2, newline="") as f:
        rows = list(csv.DictReader(f))
    return header + ["", *_markdown_table(list(rows[0]), [[_number(v) for v in r.values()] for r in rows]), "",
                     f"Full table: `{table2}`.", ""]


def call_budget(ctx: Context, runs: list[str]) -> list[str]:
    paper = reported()
    rows = [[METHOD_LABELS[method_of(r)], _cell(ctx.results.target_call_rate(r)),
             _cell(ctx.results.realised_call_rate(r))] for r in runs]
    return ["## Realised call budget (§5.1, §A.5)", "",
            f"Methods are compared at an equal call budget: a running quantile on the <CALL> logit with a correction "
            f"for the calls owed (`lacy.cascade`). The paper targets {100 * paper['call_rate_target']:.0f} % and "
            f"realises about {100 * paper['call_rate_realised']:.0f} %; we target the realised budget. The baseline, "
            f"trained without <CALL> (§5.2), writes alone: its budget is 0.", "",
            *_markdown_table(["method", "target, %", "calls per decoding step, %"], rows), ""]


def data_facts(annotation_summary: Path, entities: Path) -> list[str]:
    fractions = json.loads(Path(annotation_summary).read_text())["total"]["label_fractions"]
    records = [record for _, record in read_jsonl(entities)]
    splits = {s: sum(r["split"] == s for r in records) for s in ("train", "validation", "absent")}
    return ["## Data and evaluation entities", "",
            f"- spaCy fact tokens: {100 * fractions['fact']:.1f} % of all tokens (paper: about "
            f"{100 * reported()['fact_token_fraction']:.0f} %).",
            f"- Train/test overlap: {splits['train']} of {len(records)} evaluation entities have their article in the "
            f"training split, {splits['validation']} in the validation split, {splits['absent']} in neither. "
            "Facts about entities in the training split can be memorised, so leakage and fact precision on them "
            "measure what the model stored, not what it can infer.", ""]


def summary_markdown(ctx: Context, *, annotation_summary: Path, entities: Path, table2: Path | None,
                     not_built: list[str]) -> str:
    runs = [r for r in next(iter(ctx.runs.values())) if method_of(r) in MAIN_METHODS]
    scale = next(iter(ctx.runs))
    lines = ["# LaCy reproduction: summary", "",
             f"Main scale: {scale}; seeds: {', '.join(map(str, ctx.results.seeds))}; fact precision: "
             f"{ctx.metric}. Every number below is from this run, beside the paper's; intervals are 95 %.", ""]
    if ctx.results.scorer == "offline":
        lines += [f"*No LLM is configured, so fact precision is the {SCORER_LABELS['offline']}: spaCy claims checked "
                  "against each subject's own article (docs/factscore.md). It is not FactScore, and its values are "
                  "not comparable with the paper's FactScore column.*", ""]
    lines += factscore_claim(ctx, runs) + leakage_claim(ctx, runs) + nlu_claim(ctx, runs)
    lines += call_loss_claim(ctx, runs) + reference_model(ctx) + labelling_claim(table2) + call_budget(ctx, runs)
    lines += data_facts(annotation_summary, entities)
    lines += ["## Paper figures not built in this configuration", ""]
    lines += [f"- {entry}" for entry in not_built] or ["- none"]
    return "\n".join(lines) + "\n"


def write_summary(ctx: Context, out: Path, *, annotation_summary: Path, entities: Path, table2: Path | None,
                  not_built: list[str]) -> None:
    """results/summary.md: :func:`summary_markdown`, written atomically."""
    text = summary_markdown(ctx, annotation_summary=annotation_summary, entities=entities, table2=table2,
                            not_built=not_built)
    with atomic_output(out) as tmp:
        tmp.write_text(text)
    log.info("wrote %s", out)


def _summary_command(args: argparse.Namespace) -> None:
    write_summary(context_from_args(args), args.out, annotation_summary=args.annotation_summary,
                  entities=args.entities, table2=args.table2, not_built=args.not_built)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy summary``."""
    summary = subparsers.add_parser("summary", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                    help="results/summary.md: each claim of the paper, its number, ours, verdict")
    summary.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    summary.add_argument("--annotation-summary", type=Path, required=True, help="results/annotation/summary.json")
    summary.add_argument("--entities", type=Path, required=True, help="evaluation entities JSONL (with splits)")
    summary.add_argument("--table2", type=Path, default=None, help="Table 2 CSV, when this run measures it")
    summary.add_argument("--not-built", action="append", default=[], help="'figN: reason', repeatable")
    add_context_arguments(summary)
    summary.set_defaults(func=_summary_command)
