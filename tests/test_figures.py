"""Figures, tables and the summary (issue 7): seed aggregation, result reading, every figure kind, verdicts."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from lacy.figures import (ALL_METHODS, FIGURES, Context, Estimate, Results, combine_seeds, draw_figure, leakage_table,
                          nlu_table, result_path, write_table)
from lacy.report import ordering_verdict, summary_markdown

RUNS = list(ALL_METHODS)
SETS = ("bigbench_qa_wikidata", "corpus_person_cloze")
TASKS = ("bigbench_local_social_iqa", "bigbench_local_physical_intuition")


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def fake_results(root: Path, seeds=(0,), runs=RUNS, lacy_score=0.40) -> None:
    """Result files in the workflow's layout, with LaCy best on fact precision and leakage."""
    for seed in seeds:
        for i, run in enumerate(runs):
            best = run.endswith("lacy")
            score = lacy_score if best else 0.20 + 0.01 * i + 0.005 * seed
            _write(result_path(root, "fact_precision", run, seed, "gemma3", "offline"),
                   {"metric": "offline_fact_precision", "score": score, "ci95": [score - 0.02, score + 0.02]})
            rate = 0.0 if run == "baseline" else 0.22
            _write(result_path(root, "cascade", run, seed, "gemma3"),
                   {"target_call_rate": rate, "realised_call_rate": rate and 0.2})
            leak = 0.05 if best else 0.15
            _write(result_path(root, "leakage", run, seed),
                   {"sets": {s: {"queries": 100, "leaked": int(100 * leak), "fact_leakage": leak,
                                 "ci95": [leak - 0.03, leak + 0.03]} for s in SETS}})
            _write(result_path(root, "nlu", run, seed),
                   {"tasks": {t: {"acc": 0.4 + 0.001 * i, "acc_stderr": 0.01} for t in TASKS}})
            if run != "baseline":
                _write(result_path(root, "validation", run, seed),
                       {"call_loss": 6.0 if best else 5.0, "noncall_loss": 3.0, "total_loss": 3.4,
                        "baseline_call_loss": 5.5, "baseline_noncall_loss": 2.9, "baseline_total_loss": 3.3})


def context(root: Path, seeds=(0,)) -> Context:
    return Context(Results(root, list(seeds), "gemma3", "offline"), {"cpu-small models": RUNS},
                   {"main": "gemma3"}, {"main": "gemma3-270m-gguf"})


def test_one_seed_keeps_its_own_interval_and_several_seeds_get_a_t_interval():
    assert combine_seeds([(0.3, [0.2, 0.4])]) == Estimate(0.3, 0.2, 0.4, 1)
    several = combine_seeds([(1.0, None), (2.0, None), (3.0, None)])
    assert several.value == pytest.approx(2.0) and several.seeds == 3
    assert several.low == pytest.approx(2.0 - 4.302653 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert combine_seeds([(None, None)]) is None


def test_results_read_percentages_pooled_leakage_and_seed_means(tmp_path):
    fake_results(tmp_path, seeds=(0, 1))
    results = Results(tmp_path, [0, 1], "gemma3", "offline")
    assert results.fact_precision("lacy").value == pytest.approx(40.0)
    assert results.fact_precision("baseline").value == pytest.approx(100 * (0.20 + 0.0025))
    assert results.fact_leakage("lacy").value == pytest.approx(5.0)
    assert results.fact_leakage("rho1", "corpus_person_cloze").value == pytest.approx(15.0)
    assert results.nlu_accuracy("baseline", TASKS[0]).value == pytest.approx(40.0)
    assert results.validation_loss("lacy", "call_loss", baseline=True).value == pytest.approx(5.5)


def test_a_missing_or_malformed_result_names_the_file_and_field(tmp_path):
    results = Results(tmp_path, [0], "gemma3", "offline")
    with pytest.raises(FileNotFoundError, match="fact_precision/gemma3/lacy/seed0.offline.json"):
        results.fact_precision("lacy")
    _write(result_path(tmp_path, "leakage", "lacy", 0), {"model": "x"})
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
    rows = nlu_table(Results(tmp_path, [0]), ["baseline", "lacy"], {t: 40.0 for t in TASKS})
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
    rows = leakage_table(Results(tmp_path, [0]), ["baseline", "lacy"])
    assert rows[1] == {"model": "LaCy", "bigbench_qa_wikidata": "5.0 [2.0, 8.0]",
                       "corpus_person_cloze": "5.0 [2.0, 8.0]", "pooled": "5.0 [2.0, 8.0]", "paper_pooled": "11.28"}
    write_table(rows, tmp_path / "fact_leakage.csv", "Fact leakage")
    assert "| model | BigBench QA Wikidata | corpus person cloze (stand-in) | pooled | paper pooled |" in \
        (tmp_path / "fact_leakage.md").read_text()


def test_ordering_verdicts():
    best = {"lacy": Estimate(30, 28, 32), "rho1": Estimate(20, 18, 22)}
    assert ordering_verdict(best) == "**yes**"
    close = {"lacy": Estimate(30, 25, 35), "rho1": Estimate(29, 24, 34)}
    assert "not significant" in ordering_verdict(close)
    assert ordering_verdict(best, highest=False) == "**no**: Rho-1 is lowest"
    assert ordering_verdict(close, highest=False) == ("**no**: Rho-1 is lowest, but its interval overlaps LaCy's"
                                                      " (not significant at this scale)")
    assert ordering_verdict({"rho1": Estimate(1)}).startswith("n/a")
    assert ordering_verdict({"lacy": Estimate(0), "rho1": Estimate(0), "spacy": Estimate(1)}, highest=False) == \
        "**no**: tied with Rho-1 at 0.0"


def test_summary_reads_each_claim_and_the_overlap(tmp_path):
    fake_results(tmp_path)
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps({"total": {"label_fractions": {"fact": 0.3}}}))
    entities = tmp_path / "entities.jsonl"
    entities.write_text("\n".join(json.dumps({"entity": e, "split": s})
                                  for e, s in [("A", "train"), ("B", "validation"), ("C", "train")]))
    text = summary_markdown(context(tmp_path), annotation_summary=annotation, entities=entities, table2=None,
                            not_built=["fig12: no second model scale"])
    assert "offline fact precision (stand-in, not FactScore)" in text
    for heading in ("FactScore ordering", "Fact-leakage ordering", "NLU parity", "Call loss", "Labelling cost"):
        assert f"## {heading}" in text
    assert text.count("Holds in this run: **yes**") >= 3  # fact precision, leakage, NLU parity
    assert "2 of 3 evaluation entities have their article in the training split" in text
    assert "- fig12: no second model scale" in text
    assert "| LaCy | 22.0 | 20.0 |" in text  # call budget: target and realised
    assert "| Baseline | 0.0 | 0.0 |" in text  # the baseline writes alone (§5.2)
    assert "## Reference model (§A.4.1)" in text and "Not trained in this run" in text


def test_summary_reports_the_reference_beside_the_baseline(tmp_path):
    fake_results(tmp_path)
    _write(result_path(tmp_path, "validation", "reference", 0),
           {"total_loss": 3.1, "total_loss_ci95": [3.0, 3.2], "baseline_total_loss": 3.4,
            "baseline_total_loss_ci95": [3.3, 3.5], "total_loss_gap": 0.3, "total_loss_gap_ci95": [0.25, 0.35]})
    (tmp_path / "annotation.json").write_text(json.dumps({"total": {"label_fractions": {"fact": 0.3}}}))
    (tmp_path / "entities.jsonl").write_text(json.dumps({"entity": "A", "split": "train"}))
    text = summary_markdown(context(tmp_path), annotation_summary=tmp_path / "annotation.json",
                            entities=tmp_path / "entities.jsonl", table2=None, not_built=[])
    assert "| reference | 3.100 [3.000, 3.200] |\n| Baseline | 3.400 [3.300, 3.500] |" in text
    assert "The reference is 0.300 [0.250, 0.350] nats below the baseline" in text
    assert "Stronger than the baseline in this run: **yes**." in text


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
