"""Every result figure and table of the paper, drawn from this run's outputs beside the paper's numbers.

Each figure follows its caption in the paper (panels, axes, method set); :data:`FIGURES` says which is which.
The paper's reported value (``lacy/reported.yaml``) is drawn next to ours wherever the paper gives one, as a
black marker labelled "paper", never in place of ours. Error bars are 95 % intervals: with one seed, the
seeded bootstrap over entities / queries of that run (FactScore §5.2, fact leakage §5.3) or ±1.96 standard
errors (NLU, lm-eval's stderr); with several seeds, a Student-t interval over the seeds' values (figures
aggregate over ``seeds``). Validation losses (§A.4.3) have no interval within one seed.

When the run's fact-precision metric is the offline stand-in (no LLM configured), axes and titles say
"offline fact precision", and the paper's FactScore markers are labelled as such: the two are different
metrics, shown side by side only so that a reader sees both.

Runs are named as the workflow names them: a method (``lacy``) at the main scale, ``"{scale}/{method}"``
(``1.3b/lacy``) at an extra scale (§C, the 1.3B models).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable, Sequence

import yaml

import numpy as np

from lacy.io import atomic_output, read_jsonl, write_csv
from lacy.render import generation_page, render_pdf
from lacy.stats import RESAMPLES, crossed_bootstrap, paired_difference, pooled_proportion_ci, resampled_interval

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "baseline": "Baseline",
    "loss_based": "Loss-based calls",
    "rho1": "Rho-1",
    "llm_judge": "LLM judge",
    "lacy": "LaCy",
    "spacy": "spaCy only",
    "spacy_refloss": "spaCy + Reference model",
    "lacy_ignorefacts": "LaCy + Ignorefacts",
    "lacy_ignore": "LaCy + Ignore",
}
#: Figure 2 / Table 1: LaCy against the methods it is compared with (§5.1 "Model comparisons").
MAIN_METHODS = ("baseline", "loss_based", "rho1", "llm_judge", "lacy")
#: Figure 6 / §5.4: LaCy and its ablations.
ABLATION_METHODS = ("lacy", "spacy", "spacy_refloss", "lacy_ignorefacts", "lacy_ignore")
#: Table 6 and Figures 19-24: every method.
ALL_METHODS = tuple(METHOD_LABELS)
COLOURS = dict(zip(METHOD_LABELS, ("#7f7f7f", "#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#8c564b",
                                     "#e377c2", "#17becf", "#bcbd22")))
LOSS_KINDS = {"total_loss": "Total loss", "noncall_loss": "Non-call loss", "call_loss": "Call loss"}
LEAKAGE_LABELS = {"bigbench_qa_wikidata": "BigBench QA Wikidata", "popqa_long_tail": "PopQA long tail",
                  "corpus_person_cloze": "corpus person cloze (stand-in)"}
NLU_LABELS = {"arc_easy": "ARC-Easy", "hellaswag": "HellaSwag", "piqa": "PIQA", "siqa": "SIQA",
              "bigbench_local_social_iqa": "SIQA (BIG-bench)",
              "bigbench_local_physical_intuition": "physical intuition (BIG-bench)"}
SCORER_LABELS = {"llm": "FactScore", "offline": "offline fact precision (stand-in, not FactScore)"}


@cache
def reported() -> dict:
    """The paper's numbers (``lacy/reported.yaml``)."""
    return yaml.safe_load((Path(__file__).with_name("reported.yaml")).read_text())


def method_of(run: str) -> str:
    """``"1.3b/lacy"`` → ``"lacy"``."""
    return run.rsplit("/", 1)[-1]


# --- where results live and how seeds are combined ---------------------------------------------------

#: The suffix of results of a model exported at the calling models' step count (Figure 10).
EQUAL_STEPS = ".equal_steps"
#: Where each result a figure, table or the summary reads lies: result kind -> the path pattern its workflow rule
#: declares, with the rule's wildcards ``{partner}``, ``{method}`` (a run), ``{seed}``, ``{scorer}``. The
#: workflow passes its rules' own patterns (``result_layout`` in ``workflow/rules/common.smk``), so no path is
#: written twice. Kinds: ``fact_precision``, ``cascade`` (the cascade summary), ``leakage``,
#: ``leakage_generations``, ``nlu``, ``validation``, each with an :data:`EQUAL_STEPS` variant where the workflow
#: has one; ``fact_precision_alone`` (a partner writing alone) and ``entities`` (the evaluation persons).
Layout = dict[str, str]


def result_path(layout: Layout, kind: str, run: str, seed: int, partner: str = "", scorer: str = "",
                variant: str = "") -> Path:
    """The file the workflow writes for one run and seed (:data:`Layout`); ``variant`` (:data:`EQUAL_STEPS`)
    selects the results of a run's exported intermediate model."""
    return Path(_pattern(layout, kind + variant).format(partner=partner, method=run, seed=seed, scorer=scorer))


def alone_path(layout: Layout, partner: str, scorer: str) -> Path:
    """The fact precision of a cascade partner writing biographies alone, without an SLM (§5.2: Llama-3.2-1B alone;
    §A.5: Qwen3-32B + RAG alone), in the format of a method's."""
    return Path(_pattern(layout, "fact_precision_alone").format(partner=partner, scorer=scorer))


def _pattern(layout: Layout, kind: str) -> str:
    if kind not in layout:
        raise ValueError(f"the results layout has no {kind!r} files (kinds: {', '.join(sorted(layout))})")
    return layout[kind]


#: The evaluation persons of ``results/cascade/entities.jsonl``, by split: persons whose article was held out
#: from training (the main evaluation: the model cannot have stored their facts) and persons of the training
#: split (their facts can be memorised), reported separately.
PERSON_SPLITS = {"validation": "held-out persons", "train": "training-split persons"}


def entity_splits(path: Path) -> dict[str, str]:
    """Each evaluation person's split (``validation``, ``train``) from ``entities.jsonl``, in file order. A person
    whose article is not found in the corpus (``absent``: FactScore's 183 entities, which dwiki's untitled documents
    cannot be matched with) is not known to be trained on and counts with the held-out persons, so the paper
    configuration scores all of them, as the paper does (§B)."""
    return {record["entity"]: "train" if record["split"] == "train" else "validation" for _, record in read_jsonl(path)}


@dataclass(frozen=True)
class Estimate:
    """A reproduced value with its 95 % interval (``None`` when there is none) and the seeds behind it."""

    value: float
    low: float | None = None
    high: float | None = None
    seeds: int = 1

    def scaled(self, factor: float) -> "Estimate":
        scale = (lambda x: None if x is None else x * factor)
        return Estimate(self.value * factor, scale(self.low), scale(self.high), self.seeds)

    def text(self, digits: int = 1) -> str:
        interval = "" if self.low is None else f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return f"{self.value:.{digits}f}{interval}"


def combine_seeds(per_seed: Sequence[tuple[float, Sequence[float] | None]]) -> Estimate | None:
    """One seed: its value and its own interval. Several: the mean and a Student-t 95 % interval."""
    per_seed = [(v, ci) for v, ci in per_seed if v is not None]
    if not per_seed:
        return None
    if len(per_seed) == 1:
        value, ci = per_seed[0]
        return Estimate(value, *(ci or (None, None)))
    from scipy import stats

    values = [v for v, _ in per_seed]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing result file (has its rule run?)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg})") from None


def _field(record: dict, key: str, path: Path):
    if key not in record:
        raise ValueError(f"{path}: no field {key!r}")
    return record[key]


@dataclass
class Comparison:
    """Several runs (or partners alone) measured on the same units (persons, queries) and seeds: each one's
    estimate with its seeded bootstrap interval and the paired differences between them
    (:func:`lacy.stats.crossed_bootstrap`: the same resampled units and seeds for every row). Values in %."""

    names: list[str]
    point: np.ndarray
    resamples: np.ndarray
    units: int
    seeds: int
    scored: dict[str, int] = field(default_factory=dict)  # name -> units with a value (summed over seeds)

    @classmethod
    def of(cls, values: dict[str, np.ndarray], strata: Sequence | None = None) -> "Comparison":
        """From ``values``: name -> [seeds, units] array with NaN for a unit without a value."""
        names = list(values)
        stacked = np.stack([np.asarray(values[n], dtype=np.float64) for n in names]) if names else np.zeros((0, 1, 0))
        _, seeds, units = stacked.shape
        scored = {n: int(np.isfinite(stacked[i]).sum()) for i, n in enumerate(names)}
        if not units or not names:
            return cls(names, np.full(len(names), np.nan), np.full((len(names), 0), np.nan), units, seeds, scored)
        point, resamples = crossed_bootstrap(stacked, RESAMPLES, seed=0, strata=strata)
        return cls(names, point, resamples, units, seeds, scored)

    def estimate(self, name: str) -> Estimate | None:
        i = self.names.index(name)
        interval = resampled_interval(self.resamples[i])
        if not np.isfinite(self.point[i]) or interval is None:
            return None
        return Estimate(100 * float(self.point[i]), 100 * interval[0], 100 * interval[1], self.seeds)

    def difference(self, a: str, b: str) -> Estimate | None:
        """``a`` minus ``b`` in points, with the paired interval; ``None`` when either has no value."""
        found = paired_difference(self.point, self.resamples, self.names.index(a), self.names.index(b))
        if found is None:
            return None
        value, (low, high) = found
        return Estimate(100 * value, 100 * low, 100 * high, self.seeds)


def _entity_value(record: dict, entry: dict) -> float:
    """One person's score as the scorer aggregates it (lacy.factscore.summarise): FactScore's is length-penalised
    (γ), the offline fact precision's is the supported share; NaN for an abstention or a person without a
    reference article, whom the score's mean leaves out."""
    key = "score_length_penalised" if record.get("metric") == "factscore" else "score"
    value = entry.get(key)
    return np.nan if value is None else float(value)


@dataclass
class Results:
    """This run's per-run, per-seed outputs where the workflow's ``layout`` puts them, seeds combined."""

    layout: Layout
    seeds: Sequence[int]
    partner: str = ""
    scorer: str = "offline"
    variants: dict[str, str] = field(default_factory=dict)  # run -> result variant (Figure 10)

    def _each_seed(self, kind: str, run: str, pick: Callable[[dict, Path], tuple[float, Sequence | None]],
                   partner: str | None = None) -> Estimate | None:
        values = []
        for seed in self.seeds:
            path = result_path(self.layout, kind, run, seed, partner or self.partner, self.scorer,
                               self.variants.get(run, ""))
            values.append(pick(_read(path), path))
        return combine_seeds(values)

    def fact_precision(self, run: str, partner: str | None = None) -> Estimate | None:
        """FactScore or offline fact precision (%), §5.2."""
        estimate = self._each_seed("fact_precision", run,
                                   lambda r, p: (_field(r, "score", p), r.get("ci95")), partner)
        return estimate and estimate.scaled(100)

    def entity_splits(self) -> dict[str, str]:
        """The evaluation persons' splits (``results/cascade/entities.jsonl``)."""
        path = Path(_pattern(self.layout, "entities"))
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing result file (has its rule run?)")
        return entity_splits(path)

    def _person_values(self, record: dict, path: Path, persons: list[str]) -> np.ndarray:
        by_person = {entry["entity"]: _entity_value(record, entry) for entry in _field(record, "per_entity", path)}
        return np.array([by_person.get(p, np.nan) for p in persons])

    def fact_precision_by_split(self, runs: Sequence[str], split: str, partner: str | None = None) -> Comparison:
        """Fact precision of ``runs`` on the evaluation persons of one split (:data:`PERSON_SPLITS`), from the
        per-person scores, with intervals over persons (and seeds) and paired differences (§5.2)."""
        persons = [p for p, s in self.entity_splits().items() if s == split]
        values = {}
        for run in runs:
            rows = []
            for seed in self.seeds:
                path = result_path(self.layout, "fact_precision", run, seed, partner or self.partner, self.scorer,
                                   self.variants.get(run, ""))
                rows.append(self._person_values(_read(path), path, persons))
            values[run] = np.array(rows).reshape(len(self.seeds), len(persons))
        return Comparison.of(values)

    def partner_alone_by_split(self, partners: Sequence[str], split: str) -> Comparison:
        """Fact precision of each cascade partner writing alone (no SLM, no seed) on one split's persons."""
        persons = [p for p, s in self.entity_splits().items() if s == split]
        values = {}
        for partner in partners:
            path = alone_path(self.layout, partner, self.scorer)
            values[partner] = self._person_values(_read(path), path, persons).reshape(1, len(persons))
        return Comparison.of(values)

    def leakage_by_query(self, runs: Sequence[str]) -> Comparison:
        """Fact leakage of ``runs`` pooled over the query sets, from each query's outcome
        (``seed{seed}.generations.jsonl.gz``): the same queries for every model, resampled within each set, so
        differences are paired (§5.3)."""
        outcomes = {}
        for run in runs:
            for seed in self.seeds:
                path = result_path(self.layout, "leakage_generations", run, seed, variant=self.variants.get(run, ""))
                if not path.exists():
                    raise FileNotFoundError(f"{path}: missing result file (has its rule run?)")
                outcomes[run, seed] = {(r["set"], r["id"]): float(r["leaked"]) for _, r in read_jsonl(path)}
        queries = list(dict.fromkeys(q for found in outcomes.values() for q in found))
        values = {run: np.array([[outcomes[run, seed].get(q, np.nan) for q in queries] for seed in self.seeds])
                  for run in runs}
        return Comparison.of(values, strata=[query_set for query_set, _ in queries])

    def fact_precision_alone(self, partner: str) -> Estimate | None:
        """A cascade partner's own fact precision (%) writing alone, over every evaluation person, as scored."""
        path = alone_path(self.layout, partner, self.scorer)
        record = _read(path)
        score = _field(record, "score", path)
        return None if score is None else Estimate(score, *(record.get("ci95") or (None, None))).scaled(100)

    def realised_call_rate(self, run: str, partner: str | None = None) -> Estimate | None:
        """Share of decoding steps that called the partner (§5.1, §A.5), %."""
        return self._call_rate("realised_call_rate", run, partner)

    def target_call_rate(self, run: str, partner: str | None = None) -> Estimate | None:
        """The call budget the cascade was run at, %."""
        return self._call_rate("target_call_rate", run, partner)

    def _call_rate(self, key: str, run: str, partner: str | None) -> Estimate | None:
        estimate = self._each_seed("cascade", run, lambda r, p: (_field(r, key, p), None), partner)
        return estimate and estimate.scaled(100)

    def leakage_sets(self, run: str) -> list[str]:
        path = result_path(self.layout, "leakage", run, self.seeds[0])
        return list(_field(_read(path), "sets", path))

    def fact_leakage(self, run: str, query_set: str | None = None) -> Estimate | None:
        """Fact leakage (%), §5.3: of one query set, or pooled over all sets: all sets' leaked queries over all
        their queries (so a larger set weighs more), with a bootstrap interval resampling within each set."""
        def pick(record: dict, path: Path):
            sets = _field(record, "sets", path)
            if query_set is not None:
                entry = _field(sets, query_set, path)
                return entry["fact_leakage"], entry.get("ci95")
            counts = [(s["leaked"], s["queries"]) for s in sets.values()]
            queries = sum(n for _, n in counts)
            return (sum(k for k, _ in counts) / queries if queries else None), pooled_proportion_ci(counts)

        estimate = self._each_seed("leakage", run, pick)
        return estimate and estimate.scaled(100)

    def leaked_queries(self, run: str) -> tuple[int, int]:
        """(leaked, queries) of ``run`` over all query sets and seeds, as its leakage results count them."""
        leaked = queries = 0
        for seed in self.seeds:
            path = result_path(self.layout, "leakage", run, seed, variant=self.variants.get(run, ""))
            for counts in _field(_read(path), "sets", path).values():
                leaked, queries = leaked + counts["leaked"], queries + counts["queries"]
        return leaked, queries

    def validation_loss(self, run: str, kind: str, baseline: bool = False) -> Estimate | None:
        """Eq. A.5/A.6 losses of a calling model (or the baseline on its call mask), §A.4.3, with the interval over
        validation batches; ``total_loss_gap``: the baseline's total loss minus the model's, paired."""
        key = f"baseline_{kind}" if baseline else kind
        return self._each_seed("validation", run, lambda r, p: (_field(r, key, p), r.get(f"{key}_ci95")))

    def nlu_tasks(self, run: str) -> list[str]:
        path = result_path(self.layout, "nlu", run, self.seeds[0])
        return list(_field(_read(path), "tasks", path))

    def nlu_accuracy(self, run: str, task: str) -> Estimate | None:
        """lm-eval ``acc`` (%) of one task, ±1.96 stderr for one seed (§5.5)."""
        def pick(record: dict, path: Path):
            row = _field(_field(record, "tasks", path), task, path)
            acc, stderr = row.get("acc"), row.get("acc_stderr")
            ci = (None if acc is None or stderr in (None, "N/A")
                  else (max(acc - 1.96 * stderr, 0.0), min(acc + 1.96 * stderr, 1.0)))
            return acc, ci

        estimate = self._each_seed("nlu", run, pick)
        return estimate and estimate.scaled(100)

    def nlu_average_per_seed(self, run: str, tasks: Sequence[str]) -> list[tuple[float, float | None] | None]:
        """Per seed: lm-eval ``acc`` (%) averaged over ``tasks`` and its standard error, √(Σ stderr²) / tasks
        (tasks are independent item sets); None for a seed missing a task's accuracy, a None error for one
        without lm-eval's stderr."""
        averages = []
        for seed in self.seeds:
            path = result_path(self.layout, "nlu", run, seed, variant=self.variants.get(run, ""))
            rows = [_field(_field(_read(path), "tasks", path), t, path) for t in tasks]
            if any(row.get("acc") is None for row in rows):
                averages.append(None)
                continue
            errors = [row.get("acc_stderr") for row in rows]
            error = (None if any(e in (None, "N/A") for e in errors)
                     else math.sqrt(sum(e * e for e in errors)) / len(rows))
            averages.append((100 * sum(row["acc"] for row in rows) / len(rows), None if error is None else 100 * error))
        return averages


# --- figures -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FigureSpec:
    """One results figure of the paper: what it draws, for which methods, scale and cascade partner."""

    kind: str
    methods: tuple[str, ...]
    scale: str = "main"          # "main" (334M in the paper) or "large" (the 1.3B runs, §C)
    partner: str = "main"        # "main" (Llama-3.2-1B in the paper) or "rag" (Qwen3-32B + RAG, §A.5)
    losses: tuple[str, ...] = ()
    title: str = ""
    caption: str = ""
    equal_steps: bool = False    # runs that train longer are read at the calling models' step count (Figure 10)

    @property
    def needs(self) -> tuple[str, ...]:
        """The result kinds the figure reads."""
        return {"overview": ("fact_precision", "leakage"), "ablation": ("fact_precision", "leakage"),
                "loss_vs_score": ("fact_precision", "validation"), "loss_bars": ("validation",),
                "scales_factscore": ("fact_precision",)}[self.kind]


CALLING = tuple(m for m in ALL_METHODS if m != "baseline")
MAIN_CALLING = tuple(m for m in MAIN_METHODS if m != "baseline")
FIGURES: dict[str, FigureSpec] = {
    "fig2": FigureSpec(
        "overview", MAIN_METHODS, title="Results overview",
        caption="Paper Figure 2. Left: factual precision of biographies generated in a cascade (greedy, <CALL> budget"
                " by running quantile) about held-out persons (never trained on), and in the middle about "
                "training-split persons, with 95 % bootstrap intervals over persons (and seeds) and each cascade "
                "partner writing alone as a dashed line with its interval shaded; right: fact leakage, the share of "
                "QA queries whose gold answer the model produces with calls disabled. Black diamonds and dotted "
                "lines: the paper's 334M values (FactScore with Llama-3.2-1B) and its partners alone."),
    "fig5": FigureSpec(
        "loss_bars", MAIN_CALLING, losses=("call_loss", "noncall_loss"),
        title="Validation losses on each model's call mask",
        caption="Paper Figure 5. Validation call loss (left) and non-call loss (right) of each calling model on its "
                "own decoded call mask (top 15 % <CALL> logits, §A.4.3); light bars: the baseline model on the same "
                "mask. Black diamond: the paper's LaCy call loss."),
    "fig6": FigureSpec(
        "ablation", ABLATION_METHODS, title="LaCy ablations",
        caption="Paper Figure 6. Factual precision with the cascade against fact leakage without calls, for LaCy and "
                "its ablations (§5.4); methods that ignore x % of tokens trained x % longer."),
    "fig7": FigureSpec(
        "loss_vs_score", MAIN_METHODS, title="Validation loss against fact precision",
        caption="Paper Figure 7. Total, non-call and call validation loss against factual precision: in the paper, no"
                " loss predicts FactScore."),
    "fig10": FigureSpec(
        "ablation", ABLATION_METHODS, title="LaCy ablations at an equal number of training steps", equal_steps=True,
        caption="Paper Figure 10: Figure 6 with every method evaluated after the calling models' number of steps "
                "(400k in the paper): LaCy + Ignorefacts and LaCy + Ignore are read from the model their training "
                "exported at that step."),
    "fig11": FigureSpec(
        "overview", MAIN_METHODS, title="Results overview",
        caption="Paper Figure 11 (appendix copy of Figure 2) for the main model scale."),
    "fig12": FigureSpec(
        "overview", MAIN_METHODS, scale="large", title="Results overview",
        caption="Paper Figure 12: Figure 2 for the second model scale (the paper's 1.3B models)."),
    "fig13": FigureSpec(
        "scales_factscore", MAIN_METHODS, partner="rag", title="RAG-enhanced cascade partner",
        caption="Paper Figure 13. Factual precision with the RAG-prompted partner (§A.5), one panel per model scale; "
                "dotted line: the paper's FactScore of the RAG partner alone."),
    "fig14": FigureSpec(
        "ablation", ABLATION_METHODS, partner="rag", title="LaCy ablations, RAG partner",
        caption="Paper Figure 14: Figure 6 with the RAG-prompted cascade partner."),
    "fig15": FigureSpec(
        "loss_vs_score", MAIN_METHODS, title="Validation loss against fact precision",
        caption="Paper Figure 15: validation losses against factual precision, main methods, main scale."),
    "fig16": FigureSpec(
        "loss_vs_score", ABLATION_METHODS, title="Validation loss against fact precision, ablations",
        caption="Paper Figure 16: validation losses against factual precision, LaCy ablations, main scale."),
    "fig17": FigureSpec(
        "loss_vs_score", MAIN_METHODS, scale="large", title="Validation loss against fact precision",
        caption="Paper Figure 17: validation losses against factual precision, main methods, second scale."),
    "fig18": FigureSpec(
        "loss_vs_score", ABLATION_METHODS, scale="large", title="Validation loss against fact precision, ablations",
        caption="Paper Figure 18: validation losses against factual precision, LaCy ablations, second scale."),
    "fig19": FigureSpec(
        "loss_bars", CALLING, losses=("call_loss",), title="Call loss comparison",
        caption="Paper Figure 19: validation call loss of every calling method, beside the baseline on the same mask "
                "(main scale)."),
    "fig20": FigureSpec(
        "loss_bars", CALLING, losses=("noncall_loss",), title="Non-call loss comparison",
        caption="Paper Figure 20: validation non-call loss of every calling method, beside the baseline on the same "
                "mask (main scale)."),
    "fig21": FigureSpec(
        "loss_bars", CALLING, losses=("total_loss",), title="Total loss comparison",
        caption="Paper Figure 21: validation total loss of every calling method, beside the baseline (main scale)."),
    "fig22": FigureSpec(
        "loss_bars", CALLING, scale="large", losses=("call_loss",), title="Call loss comparison",
        caption="Paper Figure 22: validation call loss, second scale."),
    "fig23": FigureSpec(
        "loss_bars", CALLING, scale="large", losses=("noncall_loss",), title="Non-call loss comparison",
        caption="Paper Figure 23: validation non-call loss, second scale."),
    "fig24": FigureSpec(
        "loss_bars", CALLING, scale="large", losses=("total_loss",), title="Total loss comparison",
        caption="Paper Figure 24: validation total loss, second scale."),
}


@dataclass
class Context:
    """What a figure is drawn from: results, the runs of each scale, partners and their display names."""

    results: Results
    runs: dict[str, list[str]]                    # scale label (e.g. "334M-equivalent main scale") -> runs
    partners: dict[str, str] = field(default_factory=dict)   # "main"/"rag" -> partner name in the workflow
    partner_labels: dict[str, str] = field(default_factory=dict)
    alone: dict[str, str] = field(default_factory=dict)      # partner name -> label, for partners scored alone
    alone_paper: dict[str, str] = field(default_factory=dict)  # partner name -> the paper's partner alone it stands
                                                               # in for (reported.yaml: partner_alone_factscore)

    def partner_role(self, partner: str) -> str | None:
        """The figure role of a partner (``main``, ``rag``), None for a partner no figure cascades with."""
        return next((role for role, name in self.partners.items() if name == partner), None)

    @property
    def metric(self) -> str:
        return SCORER_LABELS[self.results.scorer]

    @property
    def metric_short(self) -> str:
        """For axis labels; the figure's title or legend carries the full name."""
        return {"llm": "FactScore", "offline": "offline fact precision"}[self.results.scorer]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _error(estimate: Estimate) -> list[list[float]] | None:
    if estimate.low is None:
        return None
    return [[max(estimate.value - estimate.low, 0)], [max(estimate.high - estimate.value, 0)]]


def _paper_marker(ax, x: float, value: float | None, label_once: list) -> None:
    """The paper's reported value as a black diamond beside our bar."""
    if value is None:
        return
    ax.plot([x], [value], marker="D", color="black", markersize=5, linestyle="none",
            label=None if label_once else "paper (reported)")
    label_once.append(True)


def _bars(ax, runs: list[str], values: dict[str, Estimate | None], paper: dict[str, float], ylabel: str,
          *, baseline: dict[str, Estimate | None] | None = None) -> None:
    """One bar per run (optionally a light bar of the baseline on the same mask beside it) + paper markers."""
    labelled: list = []
    width = 0.38 if baseline else 0.7
    for i, run in enumerate(runs):
        method = method_of(run)
        estimate = values.get(run)
        x = i - width / 2 if baseline else i
        if estimate is not None:
            ax.bar(x, estimate.value, width, color=COLOURS[method], yerr=_error(estimate), capsize=3)
            ax.annotate(f"{estimate.value:.2f}", (x, estimate.high or estimate.value), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
        else:
            ax.annotate("no score", (x, 0), ha="center", va="bottom", fontsize=7, rotation=90, color="0.4")
        if baseline and baseline.get(run) is not None:
            ax.bar(i + width / 2, baseline[run].value, width, color=COLOURS[method], alpha=0.35,
                   label=None if i else "Baseline on the same mask")
        _paper_marker(ax, i + (0.5 if baseline else 0.42), paper.get(method), labelled)
    ax.set_xticks(range(len(runs)), [METHOD_LABELS[method_of(r)] for r in runs], rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    if labelled or baseline:
        ax.legend(fontsize=7)


def _partner_alone_lines(ax, ctx: Context, split: str, paper_too: bool) -> None:
    """Each partner writing alone as a reference: a dashed line at its fact precision on this split's persons,
    its 95 % interval shaded; with ``paper_too``, the paper's FactScore of the partner it stands in for, dotted."""
    if ctx.alone:
        alone = ctx.results.partner_alone_by_split(list(ctx.alone), split)
        for j, (partner, label) in enumerate(ctx.alone.items()):
            estimate = alone.estimate(partner)
            if estimate is None:
                continue
            colour = ("#d62728", "#1f3b73", "#6b6b00")[j % 3]
            ax.axhline(estimate.value, color=colour, linestyle="--", linewidth=1,
                       label=f"{label}: {estimate.text()} %")
            ax.axhspan(estimate.low, estimate.high, color=colour, alpha=0.12, linewidth=0)
    if paper_too:
        for name in dict.fromkeys(ctx.alone_paper[p] for p in ctx.alone if p in ctx.alone_paper):
            value = reported()["partner_alone_factscore"][name]
            ax.axhline(value, color="black", linestyle=":", linewidth=1,
                       label=f"paper: {name} alone, FactScore {value:.1f} %")


def draw_fact_precision_split(ax, ctx: Context, runs: list[str], split: str, partner: str | None = None,
                              paper: dict[str, float] | None = None) -> None:
    """Fact precision of ``runs`` with the cascade on one split's persons (:data:`PERSON_SPLITS`), 95 % bootstrap
    intervals over persons (and seeds), the partners alone as reference lines."""
    comparison = ctx.results.fact_precision_by_split(runs, split, partner)
    partner = partner or ctx.results.partner
    label = ctx.partner_labels.get(ctx.partner_role(partner) or "", partner)
    ax.set_title(f"{PERSON_SPLITS[split]} ({comparison.units}), with cascade ({label})", fontsize=9)
    if not comparison.units:
        ax.text(0.5, 0.5, f"no {PERSON_SPLITS[split]} in this run", transform=ax.transAxes, ha="center",
                fontsize=8, color="0.4")
    _bars(ax, runs, {r: comparison.estimate(r) for r in runs}, paper or {}, f"{ctx.metric_short} (%)")
    _partner_alone_lines(ax, ctx, split, paper_too=paper is not None)
    # reference lines do not widen the axis: make room for them, and for the legend above the tallest
    heights = [y for line in ax.get_lines() for y in line.get_ydata()] + [p.get_y() + p.get_height()
                                                                          for p in ax.patches]
    ax.set_ylim(0, 1.3 * max([h for h in heights if math.isfinite(h)] + [1.0]))
    ax.set_xlim(-0.6, len(runs) - 0.4)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left")


def draw_overview(fig, spec: FigureSpec, ctx: Context, runs: list[str]) -> None:
    """Figures 2, 11, 12: fact precision with the cascade on held-out persons (left; the paper's values beside
    ours) and on training-split persons (middle), each with the partners alone as reference lines; fact leakage
    without calls (right)."""
    results, paper = ctx.results, reported()
    held_out, train, right = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1, 1]})
    draw_fact_precision_split(held_out, ctx, runs, "validation", paper=paper["factscore"])
    draw_fact_precision_split(train, ctx, runs, "train")
    held_out.set_ylabel(f"{ctx.metric} (%)", fontsize=8)
    sets = results.leakage_sets(runs[0])
    width = 0.8 / len(sets)
    labelled: list = []
    for j, name in enumerate(sets):
        for i, run in enumerate(runs):
            estimate = results.fact_leakage(run, name)
            if estimate is not None:
                right.bar(i - 0.4 + width * (j + 0.5), estimate.value, width, color=COLOURS[method_of(run)],
                          alpha=1.0 - 0.45 * j, yerr=_error(estimate), capsize=2,
                          label=LEAKAGE_LABELS.get(name, name) if i == 0 else None)
                right.annotate(f"{estimate.value:.1f}", (i - 0.4 + width * (j + 0.5), estimate.high or estimate.value),
                               ha="center", va="bottom", fontsize=6, xytext=(0, 2), textcoords="offset points")
    for i, run in enumerate(runs):
        _paper_marker(right, i + 0.45, paper["fact_leakage"].get(method_of(run)), labelled)
    right.set_xticks(range(len(runs)), [METHOD_LABELS[method_of(r)] for r in runs], rotation=30, ha="right")
    right.set_ylabel("fact leakage (%)")
    right.set_title("Without calls (<CALL> logit = -inf); lower is better", fontsize=9)
    right.legend(fontsize=7)


def draw_ablation(fig, spec: FigureSpec, ctx: Context, runs: list[str]) -> None:
    """Figures 6, 10, 14: fact precision (with cascade) against fact leakage (without), one point a method."""
    results, paper = ctx.results, reported()
    partner = ctx.partners[spec.partner]
    ax = fig.subplots()
    labelled: list = []
    missing = []
    for run in runs:
        method = method_of(run)
        score, leak = results.fact_precision(run, partner), results.fact_leakage(run)
        if score is None or leak is None:
            missing.append(METHOD_LABELS[method])
            continue
        ax.errorbar(leak.value, score.value, xerr=_error(leak), yerr=_error(score), marker="o",
                    color=COLOURS[method], label=METHOD_LABELS[method], capsize=3)
        if spec.partner == "main" and method in paper["factscore"]:
            ax.plot(paper["fact_leakage"][method], paper["factscore"][method], marker="D", color="black",
                    linestyle="none", label=None if labelled else "paper (LaCy)")
            labelled.append(True)
    if missing:
        ax.text(0.02, 0.02, "no score (every biography abstained or no claim): " + ", ".join(missing),
                transform=ax.transAxes, fontsize=7, color="0.4")
    ax.set_xlabel("fact leakage, pooled query sets (%), without calls; lower is better")
    ax.set_ylabel(f"{ctx.metric_short} (%), with cascade")
    ax.set_title(f"{ctx.metric}; cascade partner {ctx.partner_labels.get(spec.partner, partner)}", fontsize=9)
    ax.legend(fontsize=7)


def draw_loss_vs_score(fig, spec: FigureSpec, ctx: Context, runs: list[str]) -> None:
    """Figures 7, 15-18: total, non-call and call validation loss against fact precision."""
    results = ctx.results
    axes = fig.subplots(1, 3, sharey=True)
    baseline_total = next((results.validation_loss(r, "total_loss", baseline=True) for r in runs
                           if method_of(r) != "baseline"), None)
    for ax, (kind, label) in zip(axes, LOSS_KINDS.items()):
        for run in runs:
            method = method_of(run)
            if method == "baseline":
                loss = baseline_total if kind == "total_loss" else None
            else:
                loss = results.validation_loss(run, kind)
            score = results.fact_precision(run)
            if loss is None or score is None:
                continue
            ax.errorbar(loss.value, score.value, yerr=_error(score), marker="o", color=COLOURS[method],
                        label=METHOD_LABELS[method], capsize=3)
        ax.set_xlabel(f"validation {label.lower()}")
    axes[0].set_ylabel(f"{ctx.metric_short} (%)")
    axes[1].set_title(ctx.metric, fontsize=9)
    axes[0].legend(fontsize=7)


def draw_loss_bars(fig, spec: FigureSpec, ctx: Context, runs: list[str]) -> None:
    """Figures 5, 19-24: each calling model's loss on its own call mask, beside the baseline's on that mask."""
    results, paper = ctx.results, reported()
    axes = fig.subplots(1, len(spec.losses), squeeze=False)[0]
    runs = [r for r in runs if method_of(r) != "baseline"]
    for ax, kind in zip(axes, spec.losses):
        own = {r: results.validation_loss(r, kind) for r in runs}
        base = {r: results.validation_loss(r, kind, baseline=True) for r in runs}
        reported_values = paper["validation_call_loss"] if kind == "call_loss" and spec.scale == "main" else {}
        _bars(ax, runs, own, reported_values, f"validation {LOSS_KINDS[kind].lower()}", baseline=base)
        ax.set_title(LOSS_KINDS[kind], fontsize=9)


def draw_scales_factscore(fig, spec: FigureSpec, ctx: Context, runs_by_scale: dict[str, list[str]]) -> None:
    """Figure 13: fact precision with the RAG partner, one panel per model scale."""
    paper = reported()["partner_alone_factscore"]["Qwen3-32B + RAG"]
    axes = fig.subplots(1, len(runs_by_scale), squeeze=False)[0]
    partner = ctx.partners["rag"]
    for ax, (scale, runs) in zip(axes, runs_by_scale.items()):
        _bars(ax, runs, {r: ctx.results.fact_precision(r, partner) for r in runs}, {}, f"{ctx.metric} (%)")
        if partner in ctx.alone:  # ours alone over every evaluation person, as the bars
            alone = ctx.results.fact_precision_alone(partner)
            if alone is not None:
                ax.axhline(alone.value, color="#1f3b73", linestyle="--", linewidth=1,
                           label=f"{ctx.alone[partner]}: {alone.text()} %")
                ax.axhspan(alone.low, alone.high, color="#1f3b73", alpha=0.12, linewidth=0)
        ax.axhline(paper, color="black", linestyle=":", linewidth=1,
                   label=f"paper: Qwen3-32B + RAG alone, FactScore {paper:.0f} %")
        ax.set_title(scale, fontsize=9)
        ax.legend(fontsize=7)


DRAW = {"overview": draw_overview, "ablation": draw_ablation, "loss_vs_score": draw_loss_vs_score,
        "loss_bars": draw_loss_bars}


def save_figure(fig, pdf: Path) -> Path:
    """Write ``pdf`` and a PNG beside it, each atomically; returns the PNG path."""
    pdf = Path(pdf)
    png = pdf.with_suffix(".png")
    for path, fmt in ((pdf, "pdf"), (png, "png")):
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    return png


def draw_figure(name: str, ctx: Context, out: Path) -> None:
    """Draw paper figure ``name`` (``"fig2"``) for the runs of ``ctx`` and save it to ``out`` (+ PNG)."""
    spec = FIGURES[name]
    plt = _plt()
    wide = spec.kind in ("overview", "loss_vs_score") or len(spec.losses) > 1
    fig = plt.figure(figsize=(15 if spec.kind == "overview" else 11 if wide else 6.5, 4.2))
    scales = list(ctx.runs)
    if spec.kind == "scales_factscore":
        draw_scales_factscore(fig, spec, ctx, {s: _present(spec, ctx.runs[s]) for s in scales})
        scale_label = " / ".join(scales)
    else:
        scale_label = scales[0] if spec.scale == "main" else scales[-1]
        DRAW[spec.kind](fig, spec, ctx, _present(spec, ctx.runs[scale_label]))
    fig.suptitle(f"{name.replace('fig', 'Figure ')}: {spec.title} ({scale_label})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def _present(spec: FigureSpec, runs: list[str]) -> list[str]:
    """The runs of this scale whose method the figure shows, in the figure's method order."""
    by_method = {method_of(r): r for r in runs}
    return [by_method[m] for m in spec.methods if m in by_method]


#: Figure 4 shows these methods' biographies side by side (the baseline writes alone: it never calls).
FIGURE4_METHODS = ("baseline", "rho1", "llm_judge", "lacy")
#: Biographies per method in Figure 4 (the paper shows two subjects).
FIGURE4_ENTITIES = 2


def figure4_pages(generations: dict[str, Path], n_entities: int, partner_label: str) -> list[dict]:
    """Figure 4's pages: the first ``n_entities`` records of each run, grouped by entity, each titled with its
    method and the methods of the paper's Figure 4 that this run lacks (§5.2)."""
    by_run = {run: [record for _, record in read_jsonl(path)][:n_entities] for run, path in generations.items()}
    absent = [METHOD_LABELS[m] for m in FIGURE4_METHODS if m not in {method_of(run) for run in generations}]
    missing = f"; not in this run: {', '.join(absent)}" if absent else ""
    pages = []
    for i in range(n_entities):
        for run, records in by_run.items():
            if i < len(records):
                title = f"Figure 4: {METHOD_LABELS[method_of(run)]} ({run}), cascade partner {partner_label}{missing}"
                pages.append(records[i] | {"view_title": title})
    if not pages:
        raise ValueError(f"no generations in {', '.join(map(str, generations.values()))}")
    return pages


def draw_figure4(generations: dict[str, Path], n_entities: int, partner_label: str, out: Path) -> None:
    """Figure 4: the first ``n_entities`` biographies of each run, cascade-partner tokens highlighted (§5.2).

    One PDF page per entity and method (``figure4_pages``, laid out by :func:`lacy.render.generation_page` from
    the records' own fields, without importing the cascade's model code); the PNG beside it shows the first page
    with calls.
    """
    pages = figure4_pages(generations, n_entities, partner_label)
    render_pdf(pages, Path(out), "Figure 4: cascaded biographies")
    preview = next((page for page in pages if page.get("n_calls")), pages[0])  # a page with calls, e.g. LaCy's
    with atomic_output(Path(out).with_suffix(".png")) as tmp:
        generation_page(preview, preview["view_title"]).savefig(tmp, format="png", dpi=150)


# --- tables ------------------------------------------------------------------------------------------

def nlu_table(results: Results, runs: list[str], chance: dict[str, float] | None = None) -> list[dict]:
    """Tables 1 and 6: lm-eval accuracy (%) per task and the average, beside the paper's average.

    The paper's per-task values are given where our task is the paper's task; its average always (on ARC-Easy,
    HellaSwag, PIQA and SIQA, which the default configuration replaces by local BIG-bench tasks).
    """
    paper = reported()
    tasks = results.nlu_tasks(runs[0])
    rows = []
    if chance:
        row = {"model": "Random chance", **{t: f"{chance[t]:.1f}" for t in tasks if t in chance}}
        if all(t in chance for t in tasks):
            row["average"] = f"{sum(chance[t] for t in tasks) / len(tasks):.1f}"
        row["paper_average"] = f"{sum(paper['nlu_random_chance'].values()) / 4:.1f}"
        rows.append(row)
    for run in runs:
        method = method_of(run)
        scores = {t: results.nlu_accuracy(run, t) for t in tasks}
        row = {"model": METHOD_LABELS[method]}
        for task, estimate in scores.items():
            row[task] = "" if estimate is None else estimate.text()
            if task in paper["nlu_tasks"] and method in paper["nlu"]:
                row[f"paper_{task}"] = f"{paper['nlu'][method][task]:.1f}"
        known = [e.value for e in scores.values() if e is not None]
        row["average"] = f"{sum(known) / len(known):.1f}" if len(known) == len(tasks) else ""
        row["paper_average"] = f"{paper['nlu_average'][method]:.1f}" if method in paper["nlu_average"] else ""
        rows.append(row)
    return rows


def write_table(rows: list[dict], csv_path: Path, caption: str) -> None:
    """Write ``rows`` as CSV and as a Markdown table (``.md`` beside it) with a caption, atomically."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    columns = [k for k in keys if not k.startswith("paper_")] + [k for k in keys if k.startswith("paper_")]
    csv_path = Path(csv_path)
    write_csv(csv_path, rows, columns)
    header = [{**NLU_LABELS, **LEAKAGE_LABELS}.get(c, c).replace("paper_", "paper ") for c in columns]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    with atomic_output(csv_path.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def local_task_chance(tasks_dir: Path | None) -> dict[str, float]:
    """Random-chance accuracy (%) of each task: the paper's for its tasks, mean 1/choices for local ones."""
    chance = dict(reported()["nlu_random_chance"])
    if tasks_dir is None:
        return chance
    for data in sorted(Path(tasks_dir).glob("*.jsonl")):
        choices = [len(record["choices"]) for _, record in read_jsonl(data)]
        if choices:
            chance[data.stem] = 100 * sum(1 / c for c in choices) / len(choices)
    return chance


def leakage_table(results: Results, runs: list[str]) -> list[dict]:
    """Fact leakage (%) of every run on each query set and pooled, [95 % interval], beside the paper's (§5.3)."""
    paper = reported()["fact_leakage"]
    rows = []
    for run in runs:
        method = method_of(run)
        row = {"model": METHOD_LABELS[method]}
        for query_set in results.leakage_sets(run):
            estimate = results.fact_leakage(run, query_set)
            row[query_set] = "" if estimate is None else estimate.text()
        pooled = results.fact_leakage(run)
        row["pooled"] = "" if pooled is None else pooled.text()
        row["paper_pooled"] = f"{paper[method]:.2f}" if method in paper else ""
        rows.append(row)
    return rows


@dataclass(frozen=True)
class TableSpec:
    """A results table: what it reports (``nlu`` or ``leakage``), for which methods, and its caption."""

    kind: str
    methods: tuple[str, ...]
    caption: str


TABLES = {
    "table1": TableSpec("nlu", MAIN_METHODS, "Table 1: NLU accuracy (%) of <CALL>-augmented models without cascade "
                                             "(lm-eval, loglikelihood multiple choice; [95 % interval])."),
    "table6": TableSpec("nlu", ALL_METHODS, "Table 6: NLU accuracy (%) of all methods, including ablations, without "
                                            "cascade (lm-eval, loglikelihood multiple choice; [95 % interval])."),
    "fact_leakage": TableSpec("leakage", ALL_METHODS,
                              "Fact leakage (%) with calls disabled, the values behind Figure 2 (right) and Figure 6, "
                              "per query set [95 % bootstrap interval] and pooled (all sets' leaked queries over all "
                              "their queries, resampled within each set); lower is better (§5.3)."),
}


# --- what a figure is drawn from, and the command line ---------------------------------------------------

def make_context(runs: dict[str, list[str]], seeds: Sequence[int], scorer: str, partners: dict[str, str],
                 partner_labels: dict[str, str], variants: dict[str, str], *, layout: Layout,
                 alone: dict[str, dict[str, str]] | None = None) -> Context:
    """The :class:`Context` of a figure, table or the summary: :func:`lacy.plan.figure_context` gives the
    workflow's values, its rules' ``layout`` (:data:`Layout`) where the results lie, and
    :func:`lacy.plan.partner_alone_context` the partners scored alone, each ``{"label": ..., "paper": ...}``."""
    alone = alone or {}
    return Context(Results(dict(layout), list(seeds), partners.get("main", ""), scorer, dict(variants)),
                   {label: list(names) for label, names in runs.items()}, dict(partners), dict(partner_labels),
                   {name: spec["label"] for name, spec in alone.items()},
                   {name: spec["paper"] for name, spec in alone.items() if spec.get("paper")})


def _figure4_command(args: argparse.Namespace) -> None:
    generations = dict(entry.split("=", 1) for entry in args.generations)
    draw_figure4({run: Path(path) for run, path in generations.items()}, args.entities, args.partner_label, args.out)
    log.info("wrote %s and its PNG", args.out)


def write_paper_table(name: str, ctx: Context, out: Path, tasks_dir: Path | None = None) -> None:
    """Write results table ``name`` (``"table1"``) for the main-scale runs of ``ctx`` to ``out`` (+ Markdown)."""
    spec = TABLES[name]
    runs = _present(FigureSpec("table", spec.methods), next(iter(ctx.runs.values())))
    rows = (nlu_table(ctx.results, runs, local_task_chance(tasks_dir)) if spec.kind == "nlu"
            else leakage_table(ctx.results, runs))
    write_table(rows, out, spec.caption)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lacy figure4``. The results figures, tables and the summary read a whole run's results where its
    rules put them: ``snakemake results/figures/fig2.pdf`` (or ``results/tables/table1.csv``) draws one."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    fig4 = subparsers.add_parser("figure4", formatter_class=fmt,
                                 help="Figure 4: cascaded biographies with the partner's tokens highlighted")
    fig4.add_argument("--generations", action="append", required=True,
                      help="RUN=results/cascade/{partner}/{run}/seed{seed}.jsonl, repeatable, in page order")
    fig4.add_argument("--entities", type=int, default=FIGURE4_ENTITIES, help="biographies per run")
    fig4.add_argument("--partner-label", default="", help="the cascade partner's display name")
    fig4.add_argument("--out", type=Path, required=True, help="PDF to write (a PNG of the first page beside it)")
    fig4.set_defaults(func=_figure4_command)
