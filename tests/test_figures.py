"""Figures and tables (issue 7): seed aggregation, result reading, every figure kind; Figure 2's split panels and
the partner alone; Figure 4 without the model code. The summary's tests are in test_report.py."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import pytest

from lacy.figures import (ALL_METHODS, FIGURES, Context, Estimate, Results, combine_seeds, draw_figure, leakage_table,
                          nlu_table, result_path, write_table)

RUNS = list(ALL_METHODS)
SETS = ("bigbench_qa_wikidata", "corpus_person_cloze")
TASKS = ("bigbench_local_social_iqa", "bigbench_local_physical_intuition")
#: The workflow's results layout (``result_layout`` in workflow/rules/common.smk: its rules' output patterns),
#: relative to the results' parent; test_workflow runs the figure rules on what ``fake_results`` writes here.
PATTERNS = {
    "fact_precision": "fact_precision/{partner}/{method}/seed{seed}.{scorer}.json",
    "fact_precision.equal_steps": "fact_precision/{partner}/{method}/seed{seed}.equal_steps.{scorer}.json",
    "fact_precision_alone": "fact_precision/{partner}/alone.{scorer}.json",
    "cascade": "cascade/{partner}/{method}/seed{seed}.summary.json",
    "leakage": "leakage/{method}/seed{seed}.json",
    "leakage.equal_steps": "leakage/{method}/seed{seed}.equal_steps.json",
    "leakage_generations": "leakage/{method}/seed{seed}.generations.jsonl.gz",
    "nlu": "nlu/{method}/seed{seed}.json",
    "validation": "validation_losses/{method}/seed{seed}.json",
    "entities": "cascade/entities.jsonl",
}


def layout(root: Path) -> dict[str, str]:
    """The results layout under ``root``."""
    return {kind: str(Path(root) / pattern) for kind, pattern in PATTERNS.items()}


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


#: Evaluation persons of the fake results: held out (never trained on) and in the training split; "Abstainer"
#: is held out and makes no claim in any model's biography (left out of every mean, as the scorer does).
PERSONS = {"Ada": "validation", "Bea": "validation", "Cid": "validation", "Abstainer": "validation",
           "Dov": "train", "Eva": "train", "Fay": "train"}
#: Each person's score offset from a model's overall score: LaCy is far ahead on held-out persons and behind on
#: training-split persons, every other model the other way round, so that a split mixed up shows.
JITTER = {"Ada": -0.02, "Bea": 0.0, "Cid": 0.02, "Dov": -0.02, "Eva": 0.0, "Fay": 0.02}


def per_entity(score: float, held_out: float, train: float) -> list[dict]:
    """Per-person entries in the scorer's format whose mean over responding persons is ``score``."""
    entries = []
    for person, split in PERSONS.items():
        if person == "Abstainer":
            entries.append({"entity": person, "n_facts": 0, "n_supported": 0, "abstained": True,
                            "no_reference": False, "score": None, "facts": []})
            continue
        value = round(score + (held_out if split == "validation" else train) + JITTER[person], 6)
        entries.append({"entity": person, "n_facts": 10, "n_supported": round(10 * value), "abstained": False,
                        "no_reference": False, "score": value, "facts": []})
    return entries


def fake_results(root: Path, seeds=(0,), runs=RUNS, lacy_score=0.40, lacy_leak=0.05, other_leak=0.15,
                 baseline_loss=3.3, partner="gemma3") -> None:
    """Result files in the workflow's layout, with LaCy best on fact precision of held-out persons (worst on
    training-split persons) and on leakage; the cascade partner (``partner``) writing alone; the persons'
    splits."""
    (root / "cascade").mkdir(parents=True, exist_ok=True)
    (root / "cascade/entities.jsonl").write_text("\n".join(json.dumps({"entity": p, "split": s, "description": ""})
                                                           for p, s in PERSONS.items()))
    _write(root / f"fact_precision/{partner}/alone.offline.json",
           {"metric": "offline_fact_precision", "score": 0.7, "ci95": [0.6, 0.8],
            "per_entity": per_entity(0.7, -0.1, 0.1)})
    for seed in seeds:
        for i, run in enumerate(runs):
            best = run.endswith("lacy")
            score = lacy_score if best else 0.20 + 0.01 * i + 0.005 * seed
            _write(result_path(layout(root), "fact_precision", run, seed, partner, "offline"),
                   {"metric": "offline_fact_precision", "score": score, "ci95": [score - 0.02, score + 0.02],
                    "per_entity": per_entity(score, 0.3, -0.3) if best else per_entity(score, -0.05, 0.05)})
            rate = 0.0 if run == "baseline" else 0.22
            _write(result_path(layout(root), "cascade", run, seed, partner),
                   {"target_call_rate": rate, "realised_call_rate": rate and 0.2})
            leak = lacy_leak if best else other_leak
            _write(result_path(layout(root), "leakage", run, seed),
                   {"sets": {s: {"queries": 100, "leaked": round(100 * leak), "fact_leakage": leak,
                                 "ci95": [max(leak - 0.03, 0), leak and leak + 0.03]} for s in SETS}})
            generations = result_path(layout(root), "leakage_generations", run, seed)
            with gzip.open(generations, "wt") as f:
                for query_set in SETS:
                    for q in range(100):
                        f.write(json.dumps({"set": query_set, "id": f"q{q}", "leaked": q < round(100 * leak)}) + "\n")
            _write(result_path(layout(root), "nlu", run, seed),
                   {"tasks": {t: {"acc": 0.4 + 0.001 * i, "acc_stderr": 0.005} for t in TASKS}})
            if run != "baseline":
                _write(result_path(layout(root), "validation", run, seed),
                       {"call_loss": 6.0 if best else 5.0, "noncall_loss": 3.0, "total_loss": 3.4,
                        "baseline_call_loss": 5.5, "baseline_noncall_loss": 2.9, "baseline_total_loss": baseline_loss,
                        "call_loss_ci95": [5.9, 6.1] if best else [4.9, 5.1],
                        "call_loss_without_call": 5.0 if best else 4.0,
                        "call_loss_without_call_ci95": [4.9, 5.1] if best else [3.9, 4.1],
                        "baseline_call_loss_without_call": 4.5, "baseline_call_loss_without_call_ci95": [4.4, 4.6],
                        "call_loss_gap": 0.5 if best else -0.5,
                        "call_loss_gap_ci95": [0.4, 0.6] if best else [-0.6, -0.4],
                        "baseline_mask_excess": -0.2, "baseline_mask_excess_ci95": [-0.3, -0.1],
                        "top_call_rate": 0.999,
                        "baseline_call_loss_ci95": [5.4, 5.6],
                        "baseline_total_loss_ci95": [baseline_loss - 0.1, baseline_loss + 0.1],
                        "call_fact_share": 0.6 if best else 0.3, "fact_share": 0.3, "fact_share_ci95": [0.29, 0.31],
                        "call_fact_share_ci95": [0.55, 0.65] if best else [0.25, 0.35],
                        "fact_enrichment": 0.3 if best else 0.0,
                        "fact_enrichment_ci95": [0.25, 0.35] if best else [-0.03, 0.03]})


def context(root: Path, seeds=(0,), alone=True) -> Context:
    return Context(Results(layout(root), list(seeds), "gemma3", "offline"), {"cpu-small models": RUNS},
                   {"main": "gemma3"}, {"main": "gemma3-270m-gguf"},
                   {"gemma3": "gemma3-270m-gguf alone"} if alone else {}, {"gemma3": "Llama-3.2-1B"} if alone else {})


def test_one_seed_keeps_its_own_interval_and_several_seeds_get_a_t_interval():
    assert combine_seeds([(0.3, [0.2, 0.4])]) == Estimate(0.3, 0.2, 0.4, 1)
    several = combine_seeds([(1.0, None), (2.0, None), (3.0, None)])
    assert several.value == pytest.approx(2.0) and several.seeds == 3
    assert several.low == pytest.approx(2.0 - 4.302653 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert combine_seeds([(None, None)]) is None


def test_results_read_percentages_pooled_leakage_and_seed_means(tmp_path):
    fake_results(tmp_path, seeds=(0, 1))
    results = Results(layout(tmp_path), [0, 1], "gemma3", "offline")
    assert results.fact_precision("lacy").value == pytest.approx(40.0)
    assert results.fact_precision("baseline").value == pytest.approx(100 * (0.20 + 0.0025))
    assert results.fact_leakage("lacy").value == pytest.approx(5.0)
    assert results.fact_leakage("rho1", "corpus_person_cloze").value == pytest.approx(15.0)
    assert results.nlu_accuracy("baseline", TASKS[0]).value == pytest.approx(40.0)
    assert results.validation_loss("lacy", "call_loss", baseline=True).value == pytest.approx(5.5)


def test_results_are_read_where_the_layout_puts_them():
    """The workflow's rules declare each result's path pattern; result_path fills in run, seed, partner, scorer and
    the equal-steps variant, and names a kind the layout lacks."""
    assert result_path(layout("r"), "fact_precision", "1.3b/lacy", 2, "llama", "llm", ".equal_steps") == Path(
        "r/fact_precision/llama/1.3b/lacy/seed2.equal_steps.llm.json")
    assert result_path(layout("r"), "validation", "reference", 0) == Path("r/validation_losses/reference/seed0.json")
    with pytest.raises(ValueError, match="no 'nlu.equal_steps' files"):
        result_path(layout("r"), "nlu", "lacy", 0, variant=".equal_steps")


def test_a_missing_or_malformed_result_names_the_file_and_field(tmp_path):
    results = Results(layout(tmp_path), [0], "gemma3", "offline")
    with pytest.raises(FileNotFoundError, match="fact_precision/gemma3/lacy/seed0.offline.json"):
        results.fact_precision("lacy")
    _write(result_path(layout(tmp_path), "leakage", "lacy", 0), {"model": "x"})
    with pytest.raises(ValueError, match=r"leakage/lacy/seed0.json: no field 'sets'"):
        results.fact_leakage("lacy")


@pytest.mark.parametrize("name", ["fig2", "fig5", "fig6", "fig7", "fig16", "fig19", "fig21"])
def test_every_figure_kind_writes_a_pdf_and_a_png(tmp_path, name):
    fake_results(tmp_path / "results")
    out = tmp_path / "figures" / f"{name}.pdf"
    draw_figure(name, context(tmp_path / "results"), out)
    assert out.read_bytes().startswith(b"%PDF") and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.parent.glob(".*partial*"))


def test_every_paper_results_figure_has_a_spec_with_a_caption():
    expected = {2, 5, 6, 7, *range(10, 25)}
    assert {int(name[3:]) for name in FIGURES} == expected
    assert all(spec.caption.startswith(f"Paper Figure {name[3:]}") for name, spec in FIGURES.items())


def test_nlu_table_puts_paper_values_beside_ours(tmp_path):
    fake_results(tmp_path)
    rows = nlu_table(Results(layout(tmp_path), [0]), ["baseline", "lacy"], {t: 40.0 for t in TASKS})
    assert rows[0]["model"] == "Random chance" and rows[0]["average"] == "40.0"
    lacy = rows[2]
    assert lacy["model"] == "LaCy" and lacy["paper_average"] == "39.9"
    assert lacy[TASKS[0]].startswith("40.") and "[" in lacy[TASKS[0]]
    write_table(rows, tmp_path / "table1.csv", "Table 1: test")
    assert list(csv.DictReader(open(tmp_path / "table1.csv")))[2]["paper_average"] == "39.9"
    markdown = (tmp_path / "table1.md").read_text()
    assert markdown.startswith("Table 1: test") and "SIQA (BIG-bench)" in markdown


def test_leakage_table_reports_each_set_with_its_interval_and_the_pooled_rate(tmp_path):
    fake_results(tmp_path)
    rows = leakage_table(Results(layout(tmp_path), [0]), ["baseline", "lacy"])
    assert rows[1] == {"model": "LaCy", "bigbench_qa_wikidata": "5.0 [2.0, 8.0]",
                       "corpus_person_cloze": "5.0 [2.0, 8.0]", "pooled": "5.0 [2.0, 8.0]", "paper_pooled": "11.28"}
    write_table(rows, tmp_path / "fact_leakage.csv", "Fact leakage")
    assert "| model | BigBench QA Wikidata | corpus person cloze (stand-in) | pooled | paper pooled |" in \
        (tmp_path / "fact_leakage.md").read_text()


def test_figure4_pages_every_method_per_entity(tmp_path):
    from lacy.figures import FIGURE4_METHODS, draw_figure4, figure4_pages

    generations = {}
    for run in ("baseline", "lacy"):
        records = [{"entity": name, "prompt": f"Tell me a bio of {name}. {name} is",
                    "tokens": [{"text": " a", "source": "slm"}, {"text": " 1898", "source": "partner"}],
                    "n_calls": 1, "n_steps": 2, "call_rate": 0.5} for name in ("Ada Lovelace", "Alvar Aalto", "X")]
        generations[run] = tmp_path / f"{run}.jsonl"
        generations[run].write_text("\n".join(json.dumps(r) for r in records))
    out = tmp_path / "fig4.pdf"
    draw_figure4(generations, 2, "gemma3-270m-gguf", out)
    pages = re.search(rb"/Count (\d+)", out.read_bytes())
    assert pages and int(pages[1]) == 4, "two entities x two methods"
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert FIGURE4_METHODS == ("baseline", "rho1", "llm_judge", "lacy"), "the paper's Figure 4 methods"
    titles = [page["view_title"] for page in figure4_pages(generations, 2, "gemma3-270m-gguf")]
    assert titles[:2] == ["Figure 4: Baseline (baseline), cascade partner gemma3-270m-gguf; not in this run: Rho-1, "
                          "LLM judge"] + ["Figure 4: LaCy (lacy), cascade partner gemma3-270m-gguf; not in this run: "
                                          "Rho-1, LLM judge"]


def _drawn_overview(root: Path, runs=("baseline", "rho1", "lacy"), alone=True):
    from lacy.figures import _plt, draw_overview

    plt = _plt()
    fig = plt.figure(figsize=(15, 4.2))
    draw_overview(fig, FIGURES["fig2"], context(root, alone=alone), list(runs))
    return plt, fig


def _bar_heights(ax) -> list[float]:
    return [round(patch.get_height(), 6) for patch in ax.patches if type(patch).__name__ == "Rectangle"
            and patch.get_width() < 1]


def test_figure_2_shows_held_out_and_training_split_persons_in_separate_panels(tmp_path):
    """Left: held-out persons, where LaCy is ahead (70 %); middle: training-split persons, where it is behind
    (10 %); the mean over all persons (40 %, the scorer's score) is in neither."""
    fake_results(tmp_path)
    plt, fig = _drawn_overview(tmp_path)
    held_out, train, leakage = fig.axes[:3]
    assert held_out.get_title().startswith("held-out persons (4)")
    assert train.get_title().startswith("training-split persons (3)")
    # baseline (i = 0), rho1 (i = 2), lacy: scores 0.20 / 0.22 / 0.40, held-out offset -0.05 / -0.05 / +0.3
    assert _bar_heights(held_out)[:3] == pytest.approx([15.0, 17.0, 70.0])
    assert _bar_heights(train)[:3] == pytest.approx([25.0, 27.0, 10.0])
    assert "Without calls" in leakage.get_title()
    plt.close(fig)


def test_figure_2_draws_each_partner_alone_as_a_reference_line_with_its_interval(tmp_path):
    fake_results(tmp_path)
    plt, fig = _drawn_overview(tmp_path)
    held_out, train = fig.axes[:2]
    for ax, value in ((held_out, 60.0), (train, 80.0)):  # the partner alone: 0.7 overall, -0.1 / +0.1 by split
        lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
        label = next(name for name in lines if name.startswith("gemma3-270m-gguf alone: "))
        assert lines[label] == pytest.approx(value) and label.startswith(f"gemma3-270m-gguf alone: {value:.1f} [")
        low, high = map(float, re.search(r"\[([\d.]+), ([\d.]+)\]", label).groups())
        assert low < value < high
        assert any(p.get_y() == pytest.approx(low) and p.get_height() == pytest.approx(high - low)
                   for p in ax.patches), "its interval, shaded"
    paper = [line for line in held_out.get_lines() if line.get_label().startswith("paper: Llama-3.2-1B alone")]
    assert paper and paper[0].get_ydata()[0] == pytest.approx(34.2)
    plt.close(fig)
    plt, fig = _drawn_overview(tmp_path, alone=False)
    assert not [line for line in fig.axes[0].get_lines() if "alone" in line.get_label()]
    plt.close(fig)


def test_figure_4_is_laid_out_from_the_records_without_importing_torch(tmp_path):
    """lacy.figures is imported when the Snakefile is parsed, where torch need not exist: Figure 4 reads the
    records' own fields (prompt, tokens with their source) instead of lacy.cascade's model code."""
    import subprocess
    import sys

    record = {"entity": "A", "prompt": "Tell me a bio of A. A is", "n_calls": 1, "n_steps": 2, "call_rate": 0.5,
              "tokens": [{"text": " a\nwriter", "source": "slm"}, {"text": " 1898", "source": "partner"}]}
    (tmp_path / "lacy.jsonl").write_text(json.dumps(record))
    generations, out = str(tmp_path / "lacy.jsonl"), str(tmp_path / "f.pdf")
    code = ("import sys; from pathlib import Path; from lacy.figures import draw_figure4; "
            f"draw_figure4({{'lacy': Path({generations!r})}}, 1, 'p', Path({out!r}));"
            " assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    from lacy.render import styled_words

    assert styled_words(record) == [[("Tell", "prompt")], [("me", "prompt")], [("a", "prompt")],
                                        [("bio", "prompt")], [("of", "prompt")], [("A.", "prompt")], [("A", "prompt")],
                                        [("is", "prompt")], [("a", "slm")], None, [("writer", "slm")],
                                        [("1898", "partner")]]


def test_fact_precision_by_split_reads_each_persons_score_as_the_scorer_aggregates_it(tmp_path):
    """FactScore (the LLM scorer) averages the length-penalised per-person score (γ); the offline precision the
    supported share; a person without a reference article is left out like an abstention."""
    (tmp_path / "cascade").mkdir()
    (tmp_path / "cascade/entities.jsonl").write_text("\n".join(json.dumps({"entity": p, "split": "validation"})
                                                               for p in ("A", "B", "C")))
    entries = [{"entity": "A", "score": 0.8, "score_length_penalised": 0.4},
               {"entity": "B", "score": 0.6, "score_length_penalised": 0.6},
               {"entity": "C", "score": None, "score_length_penalised": None, "no_reference": True}]
    _write(result_path(layout(tmp_path), "fact_precision", "lacy", 0, "gemma3", "llm"),
           {"metric": "factscore", "score": 0.5, "per_entity": entries})
    comparison = Results(layout(tmp_path), [0], "gemma3", "llm").fact_precision_by_split(["lacy"], "validation")
    assert comparison.estimate("lacy").value == pytest.approx(50.0) and comparison.scored == {"lacy": 2}
    _write(result_path(layout(tmp_path), "fact_precision", "lacy", 0, "gemma3", "offline"),
           {"metric": "offline_fact_precision", "score": 0.7, "per_entity": entries})
    offline = Results(layout(tmp_path), [0], "gemma3", "offline").fact_precision_by_split(["lacy"], "validation")
    assert offline.estimate("lacy").value == pytest.approx(70.0)
    train = Results(layout(tmp_path), [0], "gemma3", "offline").fact_precision_by_split(["lacy"], "train")
    assert train.units == 0 and train.estimate("lacy") is None


def test_persons_absent_from_the_corpus_count_with_the_held_out_ones(tmp_path):
    """FactScore's entities (paper configuration) are matched to no corpus article (split "absent"): they are not
    known to be trained on and form the main panel, all of them, as the paper scores all 183 (§B)."""
    from lacy.figures import entity_splits

    path = tmp_path / "entities.jsonl"
    path.write_text("\n".join(json.dumps({"entity": e, "split": s, "description": ""})
                              for e, s in [("A", "absent"), ("B", "train"), ("C", "validation")]) + "\n")
    assert entity_splits(path) == {"A": "validation", "B": "train", "C": "validation"}
