"""``results/summary.md``: the run read claim by claim against the paper, the page a person reads first.

The summary separates two kinds of results:

* **Outcome claims**, measured on text the models write or score, which mean something only when the models
  write fluent text: fact precision of cascaded biographies (§5.2, Figure 2 left), fact leakage without calls
  (§5.3, Figure 2 right), NLU parity (§5.5, Table 1).
* **Mechanism measures**, measured by teacher forcing on validation windows, which need no fluent text: the
  call loss and non-call loss of each model on its own call mask beside the baseline's on the same mask (§5.3,
  Figure 5), the share of each model's calls that fall on spaCy fact tokens (§4, §A.2.1), and the reference
  model against the baseline (§A.4.1).

A **fluency gate** reads the baseline's validation loss (nats per token, ``<CALL>`` excluded; recorded beside
every calling model's, on the same windows) against ``evaluation.fluent_loss_nats``: above it, every outcome
claim reads "not measurable at this scale" with the number, and its table is reported, not judged; the mechanism
measures keep their verdicts.

Every verdict is read from 95 % intervals, never from point estimates, and is one of :data:`HOLDS`,
:data:`DOES_NOT_HOLD`, :data:`NOT_RESOLVED` (or :data:`NOT_MEASURABLE`, or "n/a" when the run lacks the
methods). Where two models are measured on the same units the comparison is paired
(:func:`lacy.stats.crossed_bootstrap`): LaCy minus each method per evaluation person (fact precision) or per query
(leakage), over the same resampled units and seeds; the reference model's paired gap over the same validation
batches is the one validation JSON records. An ordering claim ("LaCy is highest") holds when every paired
difference's interval lies on LaCy's side of 0, does not hold when some lies entirely on the other side, and is
not resolved otherwise (:func:`ordering_verdict`). Where units are not shared (call losses, each on its own call
mask) the verdict needs the intervals themselves to be separated (:func:`separation_verdict`). NLU parity holds
when every calling method's difference from the baseline has its interval inside ±:data:`NLU_PARITY_POINTS`
(:func:`parity_verdict`). Fact leakage below :data:`LEAKAGE_FLOOR_PERCENT` for every model (upper interval
bounds) is reported as not measurable, with its numbers, instead of a verdict.

Fact precision is read on held-out persons (split ``validation`` of ``results/cascade/entities.jsonl``, never
trained on: the main evaluation), and separately on training-split persons (their facts can be memorised), with
each cascade partner writing alone as a reference where the run scores it. Under each claim the summary says what
this scale can and cannot show: how wide its intervals are against the size of the paper's effect.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from lacy.figures import (MAIN_METHODS, METHOD_LABELS, PERSON_SPLITS, SCORER_LABELS, Comparison, Context, Estimate,
                          combine_seeds, method_of, reported, result_path)
from lacy.io import atomic_output, read_jsonl
from lacy.plan import REFERENCE
from lacy.stats import normal_difference_ci

log = logging.getLogger(__name__)

#: NLU parity: every calling method's average accuracy within this many points of the baseline's (the paper's
#: differences are at most 0.5 points; the tolerance is our choice, written in the table).
NLU_PARITY_POINTS = 2.0
#: Fact leakage is "not measurable at this scale" when every model's pooled 95 % interval ends below this (%):
#: the paper's models leak 11-20 % of queries and differ by 3-8 points.
LEAKAGE_FLOOR_PERCENT = 3.0

HOLDS, DOES_NOT_HOLD, NOT_RESOLVED = "holds", "does not hold", "not resolved at this scale"
NOT_MEASURABLE, NOT_APPLICABLE = "not measurable at this scale", "n/a"


@dataclass(frozen=True)
class Verdict:
    """A claim's reading in this run: one of the words above, and why."""

    word: str
    reason: str = ""

    def text(self) -> str:
        return f"**{self.word}**" + (f": {self.reason}" if self.reason else "")


def _side(estimate: Estimate) -> int:
    """+1 when the interval lies above 0, -1 below, 0 when it reaches 0 (or there is none)."""
    if estimate.low is None:
        return 0
    return 1 if estimate.low > 0 else -1 if estimate.high < 0 else 0


def ordering_verdict(differences: dict[str, Estimate | None], higher_is_better: bool = True) -> Verdict:
    """LaCy is best: ``differences`` are LaCy minus each other method, paired, with intervals. Holds when every
    interval lies on LaCy's side of 0 (above for a higher-is-better measure), does not hold when some lies entirely
    on the other side, not resolved otherwise (an interval reaching 0, or a method without a difference)."""
    if not differences:
        return Verdict(NOT_APPLICABLE, "LaCy or every other method is missing from this run")
    better = 1 if higher_is_better else -1
    against = [m for m, d in differences.items() if d is not None and _side(d) == -better]
    if against:
        worse = ", ".join(f"{METHOD_LABELS[m]} (LaCy − it: {differences[m].text()})" for m in against)
        return Verdict(DOES_NOT_HOLD, f"LaCy is {'below' if higher_is_better else 'above'} {worse}")
    if all(d is not None and _side(d) == better for d in differences.values()):
        return Verdict(HOLDS, "every paired interval of LaCy − method lies "
                              f"{'above' if higher_is_better else 'below'} 0")
    open_ = [METHOD_LABELS[m] for m, d in differences.items() if d is None or _side(d) == 0]
    return Verdict(NOT_RESOLVED, f"the paired interval against {', '.join(open_)} reaches 0 (or is missing)")


def separation_verdict(values: dict[str, Estimate | None], best: str = "lacy", highest: bool = True) -> Verdict:
    """``best`` has the highest (lowest) value, for measures on different units (no pairing): holds when its
    interval lies entirely beyond every other's, does not hold when another's lies entirely beyond its own, not
    resolved when intervals overlap."""
    present = {m: e for m, e in values.items() if e is not None and e.low is not None}
    if best not in present or len(present) < 2:
        return Verdict(NOT_APPLICABLE, "LaCy or every other method is missing from this run")
    ours = present[best]
    others = {m: e for m, e in present.items() if m != best}
    beyond = (lambda a, b: a.low > b.high) if highest else (lambda a, b: a.high < b.low)
    ahead = [m for m, e in others.items() if beyond(e, ours)]
    if ahead:
        return Verdict(DOES_NOT_HOLD, f"{', '.join(METHOD_LABELS[m] for m in ahead)}'s interval lies entirely "
                                      f"{'above' if highest else 'below'} LaCy's")
    if all(beyond(ours, e) for e in others.values()):
        names = "every other's" if len(others) > 1 else f"{METHOD_LABELS[next(iter(others))]}'s"
        return Verdict(HOLDS, f"LaCy's interval lies entirely {'above' if highest else 'below'} {names}")
    overlap = [METHOD_LABELS[m] for m, e in others.items() if not beyond(ours, e)]
    return Verdict(NOT_RESOLVED, f"LaCy's interval overlaps {', '.join(overlap)}'s")


def parity_verdict(differences: dict[str, Estimate | None], tolerance: float = NLU_PARITY_POINTS) -> Verdict:
    """Every calling method within ``tolerance`` of the baseline: ``differences`` are method − baseline with
    intervals. Holds when every interval lies inside ±tolerance, does not hold when one lies entirely outside,
    not resolved otherwise."""
    known = {m: d for m, d in differences.items() if d is not None and d.low is not None}
    if not differences:
        return Verdict(NOT_APPLICABLE, "needs the baseline and a calling method")
    outside = [m for m, d in known.items() if d.low > tolerance or d.high < -tolerance]
    if outside:
        return Verdict(DOES_NOT_HOLD, ", ".join(f"{METHOD_LABELS[m]} differs by {known[m].text()} points"
                                                for m in outside))
    if len(known) == len(differences) and all(-tolerance <= d.low and d.high <= tolerance for d in known.values()):
        return Verdict(HOLDS, f"every difference's interval lies within ±{tolerance:.0f} points")
    open_ = [METHOD_LABELS[m] for m in differences if m not in known or not -tolerance <= known[m].low
             or not known[m].high <= tolerance]
    return Verdict(NOT_RESOLVED, f"the interval of {', '.join(open_)} reaches beyond ±{tolerance:.0f} points")


def _cell(estimate: Estimate | None, digits: int = 1) -> str:
    return "—" if estimate is None else estimate.text(digits)


def _signed(estimate: Estimate | None, digits: int = 1) -> str:
    if estimate is None:
        return "—"
    interval = "" if estimate.low is None else f" [{estimate.low:+.{digits}f}, {estimate.high:+.{digits}f}]"
    return f"{estimate.value:+.{digits}f}{interval}"


def _share(estimate: Estimate | None) -> str:
    """A share (0-1) as a percentage with one decimal."""
    return "—" if estimate is None else f"{100 * estimate.value:.1f}"


def _paper(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _number(text: str) -> str:
    """A CSV cell for Markdown: numbers to one decimal, anything else as it is."""
    try:
        return f"{float(text):.1f}"
    except ValueError:
        return text


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _width(estimate: Estimate | None) -> float | None:
    return None if estimate is None or estimate.low is None else estimate.high - estimate.low


def _reach(widths: list[float], effects: dict[str, float], unit: str) -> str:
    """Whether effects of the paper's size could be told apart here: an effect is within reach when it exceeds
    the half-width of the narrowest paired interval (a rough guide: a smaller effect cannot leave 0 outside)."""
    if not widths:
        return "no interval to judge it by"
    half = min(widths) / 2
    parts = [f"{label} ({size:.1f} {unit}) {'is' if size > half else 'is not'} within reach"
             for label, size in effects.items()]
    return (f"the paired intervals span {min(widths):.1f}-{max(widths):.1f} {unit} (half-width at best "
            f"{half:.1f}): " + "; ".join(parts))


# --- the fluency gate ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """The fluency gate: the baseline's validation loss against the threshold; ``open`` when its whole interval
    (the value where there is none) lies at or below the threshold, never from a point estimate alone."""

    loss: Estimate | None
    threshold: float

    @property
    def open(self) -> bool:
        return self.loss is None or (self.loss.value if self.loss.high is None else self.loss.high) <= self.threshold

    def verdict(self, measured: Verdict) -> Verdict:
        """An outcome claim's verdict: the intervals' own reading when the gate is open, else not measurable."""
        if self.open or measured.word == NOT_APPLICABLE:
            return measured
        return Verdict(NOT_MEASURABLE, f"the baseline's validation loss is {self.loss.value:.2f} nats per token, "
                                       f"above the fluency gate's {self.threshold:.2f}, so the models do not write "
                                       f"the fluent text this claim is measured on (the intervals alone read: "
                                       f"{measured.word})")


def baseline_loss(ctx: Context, runs: list[str]) -> Estimate | None:
    """The baseline's validation loss, recorded beside each calling model's (the same windows for every one):
    read from the first calling run of the main scale; None when no calling model is validated."""
    for run in runs:
        if method_of(run) != "baseline" and result_path(ctx.results.layout, "validation", run,
                                                        ctx.results.seeds[0]).exists():
            return ctx.results.validation_loss(run, "total_loss", baseline=True)
    return None


def fluency_gate(gate: Gate) -> list[str]:
    lines = ["## Fluency gate", "",
             "Outcome claims (fact precision of biographies, fact leakage, NLU) are measured on text the models "
             "write or score and mean something only when the models write fluent text. Mechanism measures "
             "(validation call and non-call losses on the call mask, where the calls fall) are measured by teacher "
             "forcing and need none.",
             ""]
    if gate.loss is None:
        return lines + [f"No calling model's validation losses (which record the baseline's) are in this run: the "
                        f"gate (`evaluation.fluent_loss_nats` = {gate.threshold:.2f}) cannot be read, and the outcome "
                        "claims are judged by their intervals alone.", ""]
    state = ("**open** (the interval lies at or below it): the outcome claims below are judged by their intervals"
             if gate.open else
             "**closed**: every outcome claim below reads \"not measurable at this scale\"; its numbers are reported,"
             " not judged. The mechanism measures keep their verdicts")
    return lines + [f"The baseline's validation loss is {gate.loss.text(3)} nats per token (<CALL> excluded, the same "
                    f"validation windows as every calling model) against `evaluation.fluent_loss_nats` = "
                    f"{gate.threshold:.2f}. Gate: {state}.", ""]


# --- (a) outcome claims --------------------------------------------------------------------------------

def _summary_partner(ctx: Context) -> str | None:
    """The cascade partner the fact-precision claim reads: the first configured one (Llama-3.2-1B in the paper;
    the embedded default's RAG-prompted Gemma)."""
    return ctx.partners.get("main")


def _lacy_differences(comparison: Comparison, runs: list[str]) -> dict[str, Estimate | None]:
    if "lacy" not in [method_of(r) for r in runs]:
        return {}
    lacy = next(r for r in runs if method_of(r) == "lacy")
    if comparison.estimate(lacy) is None:
        return {}
    return {method_of(r): comparison.difference(lacy, r) for r in runs if r != lacy}


def _scored(comparison: Comparison, run: str) -> str:
    return f"{comparison.scored.get(run, 0)} / {comparison.units * comparison.seeds}"


def fact_precision_claim(ctx: Context, runs: list[str], gate: Gate) -> list[str]:
    paper = reported()["factscore"]
    partner = _summary_partner(ctx)
    header = ["### Fact precision ordering (§5.2, Figure 2 left)", ""]
    if partner is None:
        return header + ["No cascade partner is configured: no biographies are written.", ""]
    role = ctx.partner_role(partner)
    label = ctx.partner_labels.get(role, partner)
    by_split = {split: ctx.results.fact_precision_by_split(runs, split, partner) for split in PERSON_SPLITS}
    alone = {split: ctx.results.partner_alone_by_split(list(ctx.alone), split) for split in PERSON_SPLITS}
    seeds = len(ctx.results.seeds)
    scheme = ("persons" if seeds == 1 else
              f"persons and the {seeds} seeds, crossed: each resample draws persons and seeds with replacement, "
              "the same for every method")
    lines = header + [
        f"Claim: LaCy reaches the highest FactScore with a cascade partner. Ours: {ctx.metric}, partner {label}, on "
        "held-out persons (split validation of `results/cascade/entities.jsonl`: their articles were never trained "
        "on; the main evaluation), and separately on training-split persons, whose facts the models can have "
        "memorised.", "",
        f"Intervals: 95 % seeded bootstrap over {scheme}. A person whose biography makes no claim (abstained) or who "
        "has no reference article is left out of a model's mean, as the scorer does; comparisons are paired, LaCy "
        "minus the method over the same resampled persons. Persons scored: responding persons / persons × seeds.", ""]
    rows = []
    differences = {split: _lacy_differences(by_split[split], runs) for split in PERSON_SPLITS}
    for run in runs:
        method = method_of(run)
        row = [METHOD_LABELS[method], _paper(paper.get(method))]
        for split in PERSON_SPLITS:
            diff = differences[split].get(method)
            row += [_cell(by_split[split].estimate(run)), "—" if method == "lacy" else _signed(diff),
                    _scored(by_split[split], run)]
        rows.append(row)
    for name, alone_label in ctx.alone.items():
        paper_name = ctx.alone_paper.get(name)
        paper_value = reported()["partner_alone_factscore"].get(paper_name)
        row = [f"partner alone: {alone_label}",
               f"{_paper(paper_value, 1)} ({paper_name} alone)" if paper_value else "—"]
        for split in PERSON_SPLITS:
            row += [_cell(alone[split].estimate(name)), "—", _scored(alone[split], name)]
        rows.append(row)
    columns = ["method", "paper FactScore (Llama-3.2-1B) %"]
    for split, split_label in PERSON_SPLITS.items():
        columns += [f"{split_label}: ours % [95 % CI]", "LaCy − method, paired", "persons scored"]
    lines += _markdown_table(columns, rows) + [""]
    if not ctx.alone:
        lines += ["The cascade partners writing alone are not scored in this run (the paper: Llama-3.2-1B alone "
                  f"{reported()['partner_alone_factscore']['Llama-3.2-1B']:.1f} % FactScore, Qwen3-32B + RAG alone "
                  f"{reported()['partner_alone_factscore']['Qwen3-32B + RAG']:.0f} %).", ""]
    held_out = by_split["validation"]
    if not held_out.units:
        measured = Verdict(NOT_APPLICABLE, "this run's entities.jsonl lists no held-out person")
    else:
        measured = ordering_verdict(differences["validation"])
    lines += [f"Verdict (held-out persons, the claim): {gate.verdict(measured).text()}.", ""]
    if by_split["train"].units:
        lines += [f"Training-split persons (not the claim; memorisation can help here): "
                  f"{gate.verdict(ordering_verdict(differences['train'])).text()}.", ""]
    effects = {}
    if "lacy" in paper:
        others = {m: v for m, v in paper.items() if m != "lacy" and m in {method_of(r) for r in runs}}
        if others:
            runner_up = max(others, key=others.get)
            effects[f"the paper's LaCy lead over the runner-up {METHOD_LABELS[runner_up]}"] = (
                paper["lacy"] - others[runner_up])
        if "baseline" in others:
            effects["its lead over the baseline"] = paper["lacy"] - paper["baseline"]
    reach = {}
    for split, split_label in PERSON_SPLITS.items():
        widths = [w for d in differences[split].values() if (w := _width(d)) is not None]
        reach[split] = (f"no {split_label}" if not by_split[split].units else
                        f"on {split_label} {_reach(widths, effects, 'points')}")
    lines += [f"What this scale can show: {held_out.units} held-out and {by_split['train'].units} training-split "
              f"persons, {seeds} seed(s); {reach['validation']}; {reach['train']}"
              + (" (the paper's effects are FactScore points, ours another metric: a rough guide only)"
                 if ctx.results.scorer != "llm" else "") + ".", ""]
    return lines


def leakage_claim(ctx: Context, runs: list[str], gate: Gate) -> list[str]:
    paper = reported()["fact_leakage"]
    sets = ctx.results.leakage_sets(runs[0])
    comparison = ctx.results.leakage_by_query(runs)
    differences = _lacy_differences(comparison, runs)
    rows = []
    for run in runs:
        method = method_of(run)
        rows.append([METHOD_LABELS[method], _paper(paper.get(method)), _cell(comparison.estimate(run)),
                     "—" if method == "lacy" else _signed(differences.get(method)),
                     *(_cell(ctx.results.fact_leakage(run, s)) for s in sets)])
    lines = ["### Fact-leakage ordering (§5.3, Figure 2 right)", "",
             "Claim: without calls (<CALL> logit at -inf), LaCy answers the fewest factual queries itself.", "",
             "Pooled: all query sets' leaked queries over all their queries (a larger set weighs more); intervals: "
             "95 % seeded bootstrap over queries within each set (and over seeds when there are several); LaCy minus "
             "the method is paired over the same queries.", "",
             *_markdown_table(["method", "paper %", "ours, pooled % [95 % CI]", "LaCy − method, paired",
                               *(f"ours: {s} % [95 % CI]" for s in sets)], rows), ""]
    estimates = [e for r in runs if (e := comparison.estimate(r)) is not None]
    leaked = sum(ctx.results.leaked_queries(r)[0] for r in runs)
    floor = bool(estimates) and all(e.high < LEAKAGE_FLOOR_PERCENT for e in estimates)
    if floor:
        highest = max(e.high for e in estimates)
        verdict = Verdict(NOT_MEASURABLE, (
            f"{comparison.units} queries per model ({', '.join(sets)}), {leaked} leaked over all "
            f"{len(runs)} models and {comparison.seeds} seed(s); every model's pooled interval ends at or below "
            f"{highest:.1f} %, under the {LEAKAGE_FLOOR_PERCENT:.0f} % floor. The models do not learn corpus facts at "
            "this training budget, so there is nothing to leak and no ordering to read: this says the scale is too "
            "small, not whether the claim holds"))
        if not gate.open:
            verdict = Verdict(NOT_MEASURABLE, verdict.reason + "; the fluency gate is closed as well")
    else:
        verdict = gate.verdict(ordering_verdict(differences, higher_is_better=False))
    widths = [w for d in differences.values() if (w := _width(d)) is not None]
    effects = {}
    others = {m: v for m, v in paper.items() if m != "lacy" and m in {method_of(r) for r in runs}}
    if "lacy" in paper and others:
        runner_up = min(others, key=others.get)
        effects[f"the paper's LaCy lead over {METHOD_LABELS[runner_up]}"] = others[runner_up] - paper["lacy"]
    if floor:
        reach = ("nothing about the ordering: where nothing leaks, every paired interval is [0, 0] and a lead of the "
                 f"paper's size ({', '.join(f'{v:.1f} points' for v in effects.values()) or 'a few points'}) would "
                 "need models that leak at the paper's 11-20 %")
    else:
        reach = _reach(widths, effects, "points")
    return lines + [f"Verdict: {verdict.text()}.", "",
                    f"What this scale can show: {comparison.units} queries per model; {reach}.", ""]


def _nlu_difference(ours: list, base: list) -> Estimate | None:
    """A method's average accuracy minus the baseline's, from (average, standard error) per seed: one seed, an
    interval from the two errors; several, a Student-t interval over the seeds' differences (seed i against the
    baseline's seed i)."""
    pairs = [(o, b) for o, b in zip(ours, base) if o is not None and b is not None]
    if len(ours) > 1:
        return combine_seeds([(o[0] - b[0], None) for o, b in pairs])
    if not pairs:
        return None
    (value, error), (base_value, base_error) = pairs[0]
    if error is None or base_error is None:
        return Estimate(value - base_value)
    return Estimate(value - base_value, *normal_difference_ci(value, error, base_value, base_error))


def nlu_claim(ctx: Context, runs: list[str], gate: Gate) -> list[str]:
    paper = reported()["nlu_average"]
    tasks = ctx.results.nlu_tasks(runs[0])
    per_seed = {run: ctx.results.nlu_average_per_seed(run, tasks) for run in runs}
    baseline = next((r for r in runs if method_of(r) == "baseline"), None)
    averages = {run: combine_seeds([(None, None) if s is None else
                                    (s[0], None if s[1] is None else (s[0] - 1.96 * s[1], s[0] + 1.96 * s[1]))
                                    for s in seeds]) for run, seeds in per_seed.items()}
    differences = {method_of(run): _nlu_difference(seeds, per_seed[baseline]) for run, seeds in per_seed.items()
                   if baseline is not None and run != baseline}
    rows = [[METHOD_LABELS[method_of(r)], _paper(paper.get(method_of(r)), 1), _cell(averages[r]),
             "—" if r == baseline else _signed(differences.get(method_of(r)))] for r in runs]
    verdict = gate.verdict(parity_verdict(differences))
    widths = [w for d in differences.values() if (w := _width(d)) is not None]
    lines = ["### NLU parity (§5.5, Table 1)", "",
             f"Claim: offloading facts neither helps nor hurts NLU. Ours: lm-eval accuracy on {', '.join(tasks)}; "
             f"parity means every calling method's difference from the baseline's average has its 95 % interval within "
             f"±{NLU_PARITY_POINTS:.0f} points (our tolerance; the paper's differences are at most 0.5 points on "
             "ARC-Easy, HellaSwag, PIQA, SIQA). Intervals: ±1.96 lm-eval standard errors for one seed, the "
             "difference's from both errors as if independent (conservative on the same items; lm-eval writes "
             "no per-item results here); a Student-t interval over seeds for several.", "",
             *_markdown_table(["method", "paper average %", "ours average % [95 % CI]", "ours − baseline [95 % CI]"],
                              rows), "",
             f"Verdict: {verdict.text()}.", ""]
    reach = ("no interval to judge it by" if not widths else
             f"the difference intervals span {min(widths):.1f}-{max(widths):.1f} points against a ±"
             f"{NLU_PARITY_POINTS:.0f}-point tolerance: parity "
             f"{'can' if max(widths) < 2 * NLU_PARITY_POINTS else 'cannot'}"
             " be shown at this number of items (Table 1 gives random chance beside the accuracies)")
    return lines + [f"What this scale can show: {reach}.", ""]


# --- (b) mechanism measures ----------------------------------------------------------------------------

def _gap_verdict(gap: Estimate | None, above: str, below: str) -> Verdict:
    """A paired gap's reading: holds when its interval lies above 0, does not hold below, else not resolved."""
    side = 0 if gap is None else _side(gap)
    return (Verdict(HOLDS, f"{above}: the paired interval {gap.text()} lies above 0") if side > 0 else
            Verdict(DOES_NOT_HOLD, f"{below}: the paired interval {gap.text()} lies below 0") if side < 0 else
            Verdict(NOT_RESOLVED, "the paired interval reaches 0"))


def call_loss_claim(ctx: Context, runs: list[str], call_rate: float) -> list[str]:
    """§5.3 / Figure 5: the loss of each calling model on the tokens it delegates, beside the baseline's on the same
    tokens. The verdicts read the loss under p_\\CALL (``call_loss_without_call``): Eq. A.5's full-distribution call
    loss also counts the mass a model puts on <CALL> where it calls, which makes any confident caller "highest"."""
    paper = reported()["validation_call_loss"]
    calling = [r for r in runs if method_of(r) != "baseline"]
    header = ["### Call loss (§5.3, Figure 5)", "",
              "Claim: LaCy has the highest validation loss on the tokens it delegates (5.72 in the paper), higher "
              "than the baseline's on the same tokens, and calls fall on a-priori difficult tokens (§5.3). Each "
              f"model's call mask is its own top {call_rate:.0%} <CALL> logits on the validation windows (§A.4.3); "
              "Eq. A.5's call loss (full distribution, so it includes the mass on <CALL>) is shown beside the same "
              "positions' loss with <CALL> excluded, which the verdicts read; intervals are 95 % bootstrap intervals "
              "over validation batches, the gaps paired over the same batches.", ""]
    if not calling or not result_path(ctx.results.layout, "validation", calling[0], ctx.results.seeds[0]).exists():
        return header + ["Not measured in this run (no calling model beside a baseline).", ""]
    value = {(method_of(r), key): ctx.results.validation_loss(r, key)
             for r in calling for key in ("call_loss", "call_loss_without_call", "baseline_call_loss_without_call",
                                          "noncall_loss", "baseline_noncall_loss", "call_loss_gap",
                                          "baseline_mask_excess", "top_call_rate")}
    methods = [method_of(r) for r in calling]
    rows = [[METHOD_LABELS[m], _paper(paper.get(m)), _cell(value[m, "call_loss"], 2),
             _cell(value[m, "call_loss_without_call"], 2), _cell(value[m, "baseline_call_loss_without_call"], 2),
             _cell(value[m, "call_loss_gap"], 2), _cell(value[m, "baseline_mask_excess"], 2),
             _cell(value[m, "noncall_loss"], 2), _cell(value[m, "baseline_noncall_loss"], 2),
             _share(value[m, "top_call_rate"])] for m in methods]
    highest = separation_verdict({m: value[m, "call_loss_without_call"] for m in methods})
    lacy = "lacy" in methods
    above = (_gap_verdict(value["lacy", "call_loss_gap"], "LaCy learns less of what it delegates",
                          "LaCy predicts its delegated tokens better than the baseline")
             if lacy else Verdict(NOT_APPLICABLE, "LaCy is not trained in this run"))
    hard = (_gap_verdict(value["lacy", "baseline_mask_excess"], "the tokens LaCy delegates are harder than average",
                         "the tokens LaCy delegates are easier than average for the baseline")
            if lacy else Verdict(NOT_APPLICABLE, "LaCy is not trained in this run"))
    lines = header + [*_markdown_table(
        ["method", "paper call loss", "call loss, Eq. A.5", "call loss, <CALL> excluded", "baseline, same mask",
         "model − baseline (paired)", "baseline: mask − its mean (paired)", "non-call loss",
         "baseline, same mask", "<CALL> top logit, % of positions"], rows), "",
        f"Verdict, LaCy's call loss (<CALL> excluded) highest of the calling methods: {highest.text()}. Each model "
        "calls on its own tokens, so the comparison is unpaired: the intervals must separate.", "",
        f"Verdict, LaCy's call loss above the baseline's on the same mask: {above.text()}.", "",
        f"Verdict, LaCy's calls fall on a-priori difficult tokens (the baseline's loss on LaCy's mask above its mean "
        f"loss): {hard.text()}.", ""]
    return lines + ["What this scale can show: the losses are averaged over thousands of tokens, so their intervals "
                    "are narrow even for these small models; they say which tokens each model delegates and learns, "
                    "not whether the cascade writes better biographies (the paper, §5.7: no loss predicts "
                    "FactScore). Where <CALL> is the top logit at almost every position, the decoded mask is the top "
                    "of the <CALL> logit alone (§A.4.3's cap).", ""]


def calls_on_facts(ctx: Context, runs: list[str]) -> list[str]:
    """Where each model calls on validation windows, against the spaCy labels (§4, §A.2.1): the share of its call
    positions whose true next token is a fact token, beside the share of fact tokens among all positions (what a
    mask blind to facts reaches), and their difference with the paired interval validation records
    (``fact_enrichment``)."""
    calling = [r for r in runs if method_of(r) != "baseline"]
    header = ["### Calls on spaCy fact tokens (§4, §A.2.1)", "",
              "Claim: LaCy delegates where the facts are (§5.2, Figure 4: \"LaCy indeed learns to delegate when the "
              "next token is factual\"). Ours: the share of each model's decoded call positions whose true next "
              "token is a spaCy fact token, beside the share of fact tokens among all validation positions; "
              "enrichment is their difference, with the paired interval over the same batches.", ""]
    if not calling or not result_path(ctx.results.layout, "validation", calling[0], ctx.results.seeds[0]).exists():
        return header + ["Not measured in this run (no calling model beside a baseline).", ""]
    first = json.loads(result_path(ctx.results.layout, "validation", calling[0], ctx.results.seeds[0]).read_text())
    if "call_fact_share" not in first:
        return header + [f"Not recorded: these validation-loss results carry the share of decoded calls "
                         f"({100 * first.get('call_rate', float('nan')):.1f} % of tokens) but not which labels the "
                         "called tokens have (results written before `lacy validation` recorded `call_fact_share`; "
                         "rerun the validation_losses jobs).", ""]
    share = {method_of(r): ctx.results.validation_loss(r, "call_fact_share") for r in calling}
    enrichment = {method_of(r): ctx.results.validation_loss(r, "fact_enrichment") for r in calling}
    base = ctx.results.validation_loss(calling[0], "fact_share")
    rows = [[METHOD_LABELS[m], _cell(share[m] and share[m].scaled(100)),
             _signed(enrichment[m] and enrichment[m].scaled(100))] for m in share]
    lines = header + [f"Fact tokens among all validation positions: {_cell(base and base.scaled(100))} %.", "",
                      *_markdown_table(["method", "calls on fact tokens, % [95 % CI]",
                                        "enrichment, points (paired) [95 % CI]"], rows), ""]
    if "lacy" in enrichment and enrichment["lacy"] is not None:
        side = _side(enrichment["lacy"])
        above = (Verdict(HOLDS, "the paired interval of LaCy's enrichment lies above 0") if side > 0 else
                 Verdict(DOES_NOT_HOLD, "LaCy calls on fact tokens less often than they occur") if side < 0 else
                 Verdict(NOT_RESOLVED, "the paired interval of LaCy's enrichment reaches 0"))
    else:
        above = Verdict(NOT_APPLICABLE, "LaCy is not trained in this run")
    most = separation_verdict(share)
    return lines + [f"Verdict, LaCy calls on fact tokens more often than they occur: {above.text()}.", "",
                    f"Verdict, LaCy's calls fall on fact tokens most often of the calling methods: {most.text()} "
                    "(each model's own call positions: unpaired, the intervals must separate).", ""]


def reference_model(ctx: Context) -> list[str]:
    """The reference model of Rho-1 and spaCy+Refloss beside the baseline (§A.4.1): it must be the stronger
    model, or their excess-loss rankings order tokens by noise."""
    header = ["### Reference model (§A.4.1)", "",
              "Rho-1 and spaCy+Refloss rank tokens by a reference model's loss; the paper's reference is a 1.3B model "
              "trained 2.54M steps, 6.35x a calling model's 400k. Validation loss (nats per token, <CALL> excluded) "
              "on the same validation windows:", ""]
    if not result_path(ctx.results.layout, "validation", REFERENCE, ctx.results.seeds[0]).exists():
        return header + ["Not trained in this run (neither Rho-1 nor spaCy+Refloss is configured).", ""]
    reference = ctx.results.validation_loss(REFERENCE, "total_loss")
    baseline = ctx.results.validation_loss(REFERENCE, "total_loss", baseline=True)
    gap = ctx.results.validation_loss(REFERENCE, "total_loss_gap")
    rows = [["reference", _cell(reference, 3)], ["Baseline", _cell(baseline, 3)]]
    side = 0 if gap is None else _side(gap)
    verdict = (Verdict(HOLDS, "the paired interval lies above 0") if side > 0 else
               Verdict(DOES_NOT_HOLD, "the reference is worse: the paired interval lies below 0") if side < 0 else
               Verdict(NOT_RESOLVED, "the paired interval reaches 0 (or is missing)"))
    return header + [*_markdown_table(["model", "validation loss [95 % CI over batches]"], rows), "",
                     f"The reference is {_cell(gap, 3)} nats below the baseline (paired interval over the same "
                     f"batches). Verdict, the reference is stronger than the baseline: {verdict.text()}.", ""]


# --- the run's facts -----------------------------------------------------------------------------------

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
    partner = _summary_partner(ctx)
    if partner is None:
        return []
    rows = [[METHOD_LABELS[method_of(r)], _cell(ctx.results.target_call_rate(r, partner)),
             _cell(ctx.results.realised_call_rate(r, partner))] for r in runs]
    return ["## Realised call budget (§5.1, §A.5)", "",
            f"Methods are compared at an equal call budget: a running quantile on the <CALL> logit with a correction "
            f"for the calls owed (`lacy.cascade`). The paper targets {100 * paper['call_rate_target']:.0f} % and "
            f"realises about {100 * paper['call_rate_realised']:.0f} %; we target the realised budget. The baseline, "
            f"trained without <CALL> (§5.2), writes alone: its budget is 0.", "",
            *_markdown_table(["method", "target, %", "calls per decoding step, %"], rows), ""]


def data_facts(annotation_summary: Path, entities: Path) -> list[str]:
    fractions = json.loads(Path(annotation_summary).read_text())["total"]["label_fractions"]
    splits = [record["split"] for _, record in read_jsonl(entities)]
    counts = {s: splits.count(s) for s in PERSON_SPLITS}
    absent = splits.count("absent")
    return ["## Data and evaluation persons", "",
            f"- spaCy fact tokens: {100 * fractions['fact']:.1f} % of all tokens (paper: about "
            f"{100 * reported()['fact_token_fraction']:.0f} %).",
            f"- Evaluation persons: {counts['validation']} held out (their article is in the validation split: it was "
            f"never trained on, though a training biography may name them; the main evaluation), {counts['train']} in the training split (reported separately: "
            f"facts the model stored can help there)" + (
                f"; {absent} more are not found in the corpus (FactScore's list: dwiki's documents carry no titles to "
                "match) and are scored with the held-out persons, though their articles may have been trained on"
                if absent else "") + ".", ""]


def summary_markdown(ctx: Context, *, annotation_summary: Path, entities: Path, table2: Path | None,
                     fluent_loss_nats: float, validation_call_rate: float, not_built: list[str]) -> str:
    runs = [r for r in next(iter(ctx.runs.values())) if method_of(r) in MAIN_METHODS]
    scale = next(iter(ctx.runs))
    gate = Gate(baseline_loss(ctx, runs), fluent_loss_nats)
    lines = ["# LaCy reproduction: summary", "",
             f"Main scale: {scale}; seeds: {', '.join(map(str, ctx.results.seeds))}; fact precision: "
             f"{ctx.metric}. Every number below is from this run, beside the paper's; intervals are 95 %. Each claim "
             f"reads \"{HOLDS}\", \"{DOES_NOT_HOLD}\" or \"{NOT_RESOLVED}\" from its intervals (paired where two "
             f"models share the units), or \"{NOT_MEASURABLE}\" with the reason.", ""]
    if ctx.results.scorer == "offline":
        lines += [f"*No LLM is configured, so fact precision is the {SCORER_LABELS['offline']}: spaCy claims checked "
                  "against each subject's own article (docs/factscore.md). It is not FactScore, and its values are "
                  "not comparable with the paper's FactScore column.*", ""]
    lines += fluency_gate(gate)
    lines += ["## Outcome claims (need fluent text)", ""]
    lines += fact_precision_claim(ctx, runs, gate) + leakage_claim(ctx, runs, gate) + nlu_claim(ctx, runs, gate)
    lines += ["## Mechanism measures (need no fluent text)", "",
              "Measured by teacher forcing on validation windows, so they are read whatever the fluency gate says.", ""]
    lines += call_loss_claim(ctx, runs, validation_call_rate) + calls_on_facts(ctx, runs) + reference_model(ctx)
    lines += labelling_claim(table2) + call_budget(ctx, runs) + data_facts(annotation_summary, entities)
    lines += ["## Paper figures not built in this configuration", ""]
    lines += [f"- {entry}" for entry in not_built] or ["- none"]
    return "\n".join(lines) + "\n"


def write_summary(ctx: Context, out: Path, *, annotation_summary: Path, entities: Path, table2: Path | None,
                  fluent_loss_nats: float, validation_call_rate: float, not_built: list[str]) -> None:
    """results/summary.md: :func:`summary_markdown`, written atomically."""
    text = summary_markdown(ctx, annotation_summary=annotation_summary, entities=entities, table2=table2,
                            fluent_loss_nats=fluent_loss_nats, validation_call_rate=validation_call_rate,
                            not_built=not_built)
    with atomic_output(out) as tmp:
        tmp.write_text(text)
    log.info("wrote %s", out)
