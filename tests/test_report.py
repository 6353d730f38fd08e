"""results/summary.md (lacy.report): verdicts read from intervals, paired comparisons, held-out vs training-split
persons, the partner alone, the fluency gate and the leakage floor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_figures import _write, context, fake_results, layout

from lacy.figures import Comparison, Estimate, result_path
from lacy.report import (DOES_NOT_HOLD, HOLDS, NOT_APPLICABLE, NOT_MEASURABLE, NOT_RESOLVED, ordering_verdict,
                         parity_verdict, separation_verdict, summary_markdown)


def test_ordering_verdict_reads_lacys_paired_differences():
    """LaCy − method for every other method: all above 0 holds, one entirely below does not hold, else open."""
    assert ordering_verdict({"rho1": Estimate(2, 0.5, 3.5), "baseline": Estimate(5, 3, 7)}).word == HOLDS
    against = ordering_verdict({"rho1": Estimate(-2, -3.5, -0.5), "baseline": Estimate(5, 3, 7)})
    assert against.word == DOES_NOT_HOLD and "Rho-1" in against.reason
    open_ = ordering_verdict({"rho1": Estimate(2, -0.5, 4.5), "baseline": Estimate(5, 3, 7)})
    assert open_.word == NOT_RESOLVED and "Rho-1" in open_.reason
    assert ordering_verdict({"rho1": None, "baseline": Estimate(5, 3, 7)}).word == NOT_RESOLVED
    assert ordering_verdict({"rho1": Estimate(0, 0, 0)}).word == NOT_RESOLVED, "nothing leaks: no ordering"
    assert ordering_verdict({}).word == NOT_APPLICABLE
    # lower is better (leakage): LaCy − method below 0 holds
    assert ordering_verdict({"rho1": Estimate(-2, -3, -1)}, higher_is_better=False).word == HOLDS
    assert ordering_verdict({"rho1": Estimate(2, 1, 3)}, higher_is_better=False).word == DOES_NOT_HOLD


def test_a_paired_difference_resolves_what_overlapping_intervals_cannot():
    """Persons vary far more than the methods: LaCy is 5 points ahead of Rho-1 on every held-out person. Each
    method's own interval overlaps the other's, yet the paired difference lies above 0, so the claim holds."""
    persons = np.linspace(0.05, 0.9, 25)
    comparison = Comparison.of({"lacy": (persons + 0.05)[None, :], "rho1": persons[None, :]})
    lacy, rho1 = comparison.estimate("lacy"), comparison.estimate("rho1")
    assert lacy.low < rho1.high, "unpaired, the intervals overlap"
    difference = comparison.difference("lacy", "rho1")
    assert difference.value == pytest.approx(5.0) and difference.low > 0
    assert ordering_verdict({"rho1": difference}).word == HOLDS


def test_separation_and_parity_verdicts():
    assert separation_verdict({"lacy": Estimate(6, 5.9, 6.1), "rho1": Estimate(5, 4.9, 5.1)}).word == HOLDS
    assert separation_verdict({"lacy": Estimate(6, 5.5, 6.5), "rho1": Estimate(5.8, 5.3, 6.3)}).word == NOT_RESOLVED
    assert separation_verdict({"lacy": Estimate(4, 3.9, 4.1), "rho1": Estimate(5, 4.9, 5.1)}).word == DOES_NOT_HOLD
    assert separation_verdict({"lacy": Estimate(4, 3.9, 4.1)}).word == NOT_APPLICABLE
    assert parity_verdict({"lacy": Estimate(0.5, -1, 1.5), "rho1": Estimate(-1, -1.9, -0.1)}).word == HOLDS
    assert parity_verdict({"lacy": Estimate(0.5, -3, 4)}).word == NOT_RESOLVED
    assert parity_verdict({"lacy": Estimate(5, 3, 7)}).word == DOES_NOT_HOLD


def _inputs(tmp_path: Path) -> dict:
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps({"total": {"label_fractions": {"fact": 0.3}}}))
    return {"annotation_summary": annotation, "entities": tmp_path / "cascade/entities.jsonl", "table2": None}


def summary(tmp_path: Path, fluent_loss_nats: float = 4.0, **context_options) -> str:
    return summary_markdown(context(tmp_path, **context_options), **_inputs(tmp_path),
                            fluent_loss_nats=fluent_loss_nats, validation_call_rate=0.15,
                            not_built=["fig12: no second model scale"])


def verdicts(text: str) -> dict[str, str]:
    """Each section's verdict lines, by section heading."""
    found = {}
    for section in re.split(r"\n(?=#{2,3} )", text):
        heading = section.splitlines()[0].lstrip("# ")
        found[heading] = "\n".join(line for line in section.splitlines()
                                   if "Verdict" in line or "Training-split" in line)
    return found


def test_summary_judges_held_out_and_training_split_persons_separately(tmp_path):
    """The fake results put LaCy far ahead on held-out persons and behind on training-split persons: the claim
    (held-out) holds, the training split's reading does not, and neither is the mixed mean's."""
    fake_results(tmp_path)
    text = summary(tmp_path)
    fact = verdicts(text)["Fact precision ordering (§5.2, Figure 2 left)"]
    assert f"Verdict (held-out persons, the claim): **{HOLDS}**" in fact
    assert f"Training-split persons (not the claim; memorisation can help here): **{DOES_NOT_HOLD}**" in fact
    lacy = next(line for line in text.splitlines() if line.startswith("| LaCy | 22.71 |"))
    assert lacy.split(" | ")[2].startswith("70.0 [") and lacy.split(" | ")[5].startswith("10.0 [")
    assert lacy.split(" | ")[4] == "3 / 4", "the abstaining held-out person is not scored"
    assert "- Evaluation persons: 4 held out" in text and "3 in the training split" in text


def test_summary_shows_the_partner_alone_beside_the_methods(tmp_path):
    fake_results(tmp_path)
    row = next(line for line in summary(tmp_path).splitlines() if line.startswith("| partner alone:"))
    assert row.startswith("| partner alone: gemma3-270m-gguf alone | 34.2 (Llama-3.2-1B alone) | 60.0 [")
    assert " | 80.0 [" in row
    assert "are not scored in this run" in summary(tmp_path, alone=False)


def test_every_claim_reads_its_intervals_when_the_models_are_fluent(tmp_path):
    fake_results(tmp_path)
    text = summary(tmp_path, fluent_loss_nats=4.0)
    found = verdicts(text)
    assert "Gate: **open**" in text and "3.300 [3.200, 3.400] nats per token" in text
    assert f"Verdict: **{HOLDS}**" in found["Fact-leakage ordering (§5.3, Figure 2 right)"]
    assert f"Verdict: **{HOLDS}**" in found["NLU parity (§5.5, Table 1)"]
    assert f"highest of the calling methods: **{HOLDS}**" in found["Call loss (§5.3, Figure 5)"]
    call_loss = found["Call loss (§5.3, Figure 5)"]
    assert f"above the baseline's on the same mask: **{HOLDS}**: LaCy learns less" in call_loss
    assert f"a-priori difficult tokens (the baseline's loss on LaCy's mask above its mean loss): **{DOES_NOT_HOLD}**" \
        in call_loss, "the fixture's calls fall on tokens easier than average (a paired gap below 0)"
    assert "| 99.9 |" in text, "the share of positions where <CALL> is the top logit"
    assert f"**{NOT_MEASURABLE}**" not in text
    assert "| LaCy | 11.28 | 5.0 [" in text and "| -10.0 [" in text, "pooled leakage and LaCy − method, paired"
    assert text.index("## Outcome claims") < text.index("### Fact precision") < text.index("## Mechanism measures") \
        < text.index("### Call loss")


def test_the_fluency_gate_makes_outcome_claims_not_measurable_and_keeps_mechanism_verdicts(tmp_path):
    """The same results with a baseline above the threshold: every outcome claim reads "not measurable at this
    scale" with the baseline's loss; the call loss (a mechanism measure) keeps its verdict."""
    fake_results(tmp_path, baseline_loss=5.9)
    text = summary(tmp_path, fluent_loss_nats=4.0)
    found = verdicts(text)
    assert "Gate: **closed**" in text
    for claim in ("Fact precision ordering (§5.2, Figure 2 left)", "Fact-leakage ordering (§5.3, Figure 2 right)",
                  "NLU parity (§5.5, Table 1)"):
        assert f"**{NOT_MEASURABLE}**: the baseline's validation loss is 5.90 nats per token, above the fluency " \
               f"gate's 4.00" in found[claim], claim
        assert f"(the intervals alone read: {HOLDS})" in found[claim], claim
    assert f"highest of the calling methods: **{HOLDS}**" in found["Call loss (§5.3, Figure 5)"]


def test_leakage_nobody_shows_is_not_measurable_rather_than_a_verdict(tmp_path):
    fake_results(tmp_path, lacy_leak=0.0, other_leak=0.0)
    leakage = verdicts(summary(tmp_path))["Fact-leakage ordering (§5.3, Figure 2 right)"]
    assert f"Verdict: **{NOT_MEASURABLE}**: 200 queries per model" in leakage
    assert "0 leaked over all" in leakage and "The models do not learn corpus facts" in leakage
    assert f"**{HOLDS}**" not in leakage and NOT_RESOLVED not in leakage


def test_summary_keeps_the_run_facts(tmp_path):
    fake_results(tmp_path)
    text = summary(tmp_path)
    assert "offline fact precision (stand-in, not FactScore)" in text
    assert "- fig12: no second model scale" in text
    assert "| LaCy | 22.0 | 20.0 |" in text  # call budget: target and realised
    assert "| Baseline | 0.0 | 0.0 |" in text  # the baseline writes alone (§5.2)
    assert "### Reference model (§A.4.1)" in text and "Not trained in this run" in text


def test_where_the_calls_fall_is_a_mechanism_measure_with_its_paired_enrichment(tmp_path):
    fake_results(tmp_path, baseline_loss=5.9)  # the fluency gate closed: mechanism verdicts stand
    calls = verdicts(summary(tmp_path))["Calls on spaCy fact tokens (§4, §A.2.1)"]
    assert f"LaCy calls on fact tokens more often than they occur: **{HOLDS}**" in calls
    assert f"most often of the calling methods: **{HOLDS}**" in calls
    text = summary(tmp_path)
    assert "| LaCy | 60.0 [55.0, 65.0] | +30.0 [+25.0, +35.0] |" in text
    assert "Fact tokens among all validation positions: 30.0 [29.0, 31.0] %." in text
    for run in ("loss_based", "lacy"):  # results written before validation recorded where the calls fall
        path = result_path(layout(tmp_path), "validation", run, 0)
        record = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in record.items() if "fact" not in k}))
    assert "Not recorded: these validation-loss results" in summary(tmp_path)


def test_summary_reports_the_reference_beside_the_baseline(tmp_path):
    fake_results(tmp_path)
    _write(result_path(layout(tmp_path), "validation", "reference", 0),
           {"total_loss": 3.1, "total_loss_ci95": [3.0, 3.2], "baseline_total_loss": 3.4,
            "baseline_total_loss_ci95": [3.3, 3.5], "total_loss_gap": 0.3, "total_loss_gap_ci95": [0.25, 0.35]})
    text = summary(tmp_path)
    assert "| reference | 3.100 [3.000, 3.200] |\n| Baseline | 3.400 [3.300, 3.500] |" in text
    assert "The reference is 0.300 [0.250, 0.350] nats below the baseline" in text
    assert f"the reference is stronger than the baseline: **{HOLDS}**" in text


def test_several_seeds_resample_persons_and_seeds_and_a_rag_partner_alone_serves(tmp_path):
    """Two seeds: the fact-precision intervals resample persons and seeds (crossed), NLU differences take a
    Student-t interval over the seeds. A configuration whose only partner is RAG-prompted reads its cascades."""
    from lacy.figures import Context, Results

    fake_results(tmp_path, seeds=(0, 1))
    text = summary(tmp_path, seeds=(0, 1))
    assert "over persons and the 2 seeds, crossed" in text
    assert "2 seed(s)" in text and "| LaCy | 22.71 | 70.0 [" in text
    rag_only = Context(Results(layout(tmp_path), [0, 1], "", "offline"), {"cpu-small models": ["baseline", "rho1", "lacy"]},
                       {"main": "gemma3"}, {"main": "gemma3-270m-gguf + RAG (local)"},
                       {"gemma3": "gemma3-270m-gguf + RAG (local) alone"},
                       {"gemma3": "Qwen3-32B + RAG"})
    text = summary_markdown(rag_only, **_inputs(tmp_path), fluent_loss_nats=4.0, validation_call_rate=0.15,
                            not_built=[])
    assert "partner gemma3-270m-gguf + RAG (local), on held-out persons" in text
    assert "| partner alone: gemma3-270m-gguf + RAG (local) alone | 79.0 (Qwen3-32B + RAG alone) | 60.0 [" in text
    assert f"Verdict (held-out persons, the claim): **{HOLDS}**" in text


def test_a_partner_alone_stands_beside_the_paper_partner_of_its_kind():
    """The plan names each partner alone with the paper's partner it stands in for: a RAG-prompted one (the
    embedded default's only partner is the first, "main" one) is Qwen3-32B + RAG's analogue, a plain one
    Llama-3.2-1B's; make_context carries both."""
    from lacy import plan
    from lacy.figures import make_context

    config = {"cascade": {"partner_alone": True, "partners": [
        {"name": "gemma3_rag", "model": "gemma3-270m-gguf", "rag": {"knowledge": "corpus", "base_url": None}},
        {"name": "gemma3", "model": "gemma3-270m-gguf"}]}}
    alone = plan.partner_alone_context(config)
    assert alone == {"gemma3_rag": {"label": "gemma3-270m-gguf + RAG (local) alone", "paper": "Qwen3-32B + RAG"},
                     "gemma3": {"label": "gemma3-270m-gguf alone", "paper": "Llama-3.2-1B"}}
    ctx = make_context({"s": ["lacy"]}, [0], "offline", {"main": "gemma3_rag"}, {}, {}, layout={}, alone=alone)
    assert ctx.alone["gemma3_rag"] == "gemma3-270m-gguf + RAG (local) alone"
    assert ctx.alone_paper == {"gemma3_rag": "Qwen3-32B + RAG", "gemma3": "Llama-3.2-1B"}
    config["cascade"]["partner_alone"] = False
    assert plan.partner_alone_context(config) == {}


def test_the_summary_says_how_many_persons_are_not_found_in_the_corpus(tmp_path):
    """FactScore's entities that dwiki cannot match (split "absent") are scored with the held-out persons; the
    summary counts them apart and says their articles may have been trained on."""
    from lacy.report import data_facts

    inputs = _inputs(tmp_path)
    inputs["entities"].parent.mkdir(parents=True)
    inputs["entities"].write_text("\n".join(json.dumps({"entity": name, "split": split}) for name, split in
                                            [("A", "validation"), ("B", "train"), ("C", "absent"), ("D", "absent")]))
    text = "\n".join(data_facts(inputs["annotation_summary"], inputs["entities"]))
    assert "1 held out" in text and "1 in the training split" in text
    assert "2 more are not found in the corpus" in text and "may have been trained on" in text
