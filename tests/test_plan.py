"""lacy.plan: what a configuration builds, as pure functions of the validated configuration."""

from __future__ import annotations

import copy
import shlex
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from lacy import plan
from lacy.config import load_schema, validate_config
from lacy.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "workflow/schemas/config.schema.yaml")


def configured(*names: str, edit=None) -> dict:
    """config.yaml, each named file over it as Snakemake merges them, an edit, then the schema's defaults."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for name in names:
        update_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    if edit:
        edit(config)
    validate_config(config, SCHEMA)
    return config


DEFAULT = configured()
PAPER = configured("paper.yaml")


def with_1_3b(config):
    config["scales"][0]["enabled"] = True


PAPER_1_3B = configured("paper.yaml", edit=with_1_3b)


def test_runs_name_a_method_per_scale():
    assert plan.runs(DEFAULT) == DEFAULT["methods"]
    assert plan.all_runs(PAPER) == PAPER["methods"], "the 1.3B scale is switched off"
    assert plan.all_runs(PAPER_1_3B) == PAPER["methods"] + [f"1.3b/{m}" for m in PAPER["methods"]]
    for run in plan.all_runs(PAPER_1_3B):
        assert plan.scaled_run(*plan.split_run(run)) == run
    assert plan.baseline_run("1.3b/lacy") == "1.3b/baseline" and plan.baseline_run("lacy") == "baseline"
    assert plan.calling_methods(DEFAULT) == [m for m in DEFAULT["methods"] if m != "baseline"]


def test_duplicate_scale_names_are_an_error():
    config = copy.deepcopy(PAPER)
    config["scales"].append(dict(config["scales"][0]))
    with pytest.raises(ValueError, match="names must be unique"):
        plan.scales(config)


@pytest.mark.parametrize("config, steps", [
    # the default's reference states its own count: as many steps as a calling model (config.yaml)
    (DEFAULT, {"baseline": 680, "lacy": 800, "rho1": 800, "lacy_ignorefacts": 880, "lacy_ignore": 920,
               "reference": 800}),
    (PAPER, {"baseline": 340000, "lacy": 400000, "llm_judge": 400000, "lacy_ignorefacts": 440000,
             "lacy_ignore": 460000, "reference": 2540000}),
])
def test_table_4_step_counts_scaled_by_step_scale(config, steps):
    assert {run: plan.training_steps(config, run) for run in steps} == steps


@pytest.mark.parametrize("step_scale", [0.0004, 0.001, 0.01, 1.0])
def test_the_reference_keeps_table_4s_ratio_to_the_calling_models(step_scale):
    config = copy.deepcopy(PAPER)
    config["training"]["step_scale"] = step_scale
    ratio = plan.training_steps(config, plan.REFERENCE) / plan.training_steps(config, "lacy")
    assert ratio == pytest.approx(2540000 / 400000, rel=0.01)  # 6.35x, up to rounding to whole steps


def test_step_counts_are_the_same_at_every_scale():
    assert plan.training_steps(PAPER_1_3B, "1.3b/lacy") == plan.training_steps(PAPER_1_3B, "lacy")
    assert plan.training_steps(PAPER_1_3B, "1.3b/baseline") == 340000


def test_model_sizes_of_the_main_scale_an_extra_scale_and_the_reference():
    assert plan.model_size(PAPER_1_3B, "lacy") == {"preset": "medium", "batch_size": 128, "grad_accum": 4,
                                                   "lr": 2.0e-4, "warmup": 2560}
    assert plan.model_size(PAPER_1_3B, "1.3b/lacy") == {"preset": "xl", "batch_size": 112, "grad_accum": 2,
                                                        "lr": 1.0e-4, "warmup": 6400}
    assert plan.model_size(PAPER, "reference") == {"preset": "xl", "batch_size": 112, "grad_accum": 2,
                                                   "lr": 1.5e-4, "warmup": 6400}
    # the default's reference states no batch: it takes training's
    assert plan.model_size(DEFAULT, "reference") == {"preset": "cpu-reference", "batch_size": 16, "grad_accum": 1,
                                                     "lr": 1.0e-3, "warmup": 20}


def test_training_settings_are_every_trainconfig_field_but_the_fixed_betas():
    from lacy.training import TrainConfig

    settings = plan.training_settings(DEFAULT, "reference", 3)
    assert set(settings) == {f.name for f in fields(TrainConfig)} - {"betas"}
    assert settings["method"] == "baseline" and settings["steps"] == 800 and settings["seed"] == 3
    assert settings["weight_decay"] == 0.1 and settings["compile"] is False
    assert plan.training_settings(PAPER, "lacy", 0)["compile"] is True


@pytest.mark.parametrize("config, run", [("DEFAULT", "reference"), ("PAPER", "lacy"), ("PAPER_1_3B", "1.3b/rho1")])
def test_the_training_command_parses_back_to_the_runs_settings(config, run):
    """The train rule's options (lacy.cli.command_line_options of lacy.plan.training_settings, and the optional
    inputs) parse with `lacy train`'s own parser to exactly the run's TrainConfig values and paths."""
    from lacy.cli import build_parser, command_line_options

    config = {"DEFAULT": DEFAULT, "PAPER": PAPER, "PAPER_1_3B": PAPER_1_3B}[config]
    settings = plan.training_settings(config, run, 2)
    optional = {"reference": "results/models/reference/seed2", "llm_judge": None,
                "export_at_fraction": 400000 / 440000, "export_dir": "results/models/x y/equal_steps"}
    argv = ["train", "--annotation", "a", "--tokenizer", "t", "--out", "o", "--run-dir", "r",
            *shlex.split(command_line_options(settings)), *shlex.split(command_line_options(optional))]
    args = vars(build_parser("train").parse_args(argv))
    assert {k: args[k] for k in settings} == settings
    assert args["reference"] == Path("results/models/reference/seed2") and args["llm_judge"] is None
    assert args["export_at_fraction"] == 400000 / 440000 and args["export_dir"] == Path("results/models/x y/equal_steps")


def test_the_critical_path_trains_first():
    priority = {run: plan.training_priority(run) for run in ("reference", "rho1", "1.3b/spacy_refloss", "lacy")}
    assert priority == {"reference": 3, "rho1": 2, "1.3b/spacy_refloss": 2, "lacy": 1}


def test_launchers():
    assert plan.training_launcher(DEFAULT) == "python"
    assert plan.training_launcher(PAPER) == "torchrun --standalone --nproc_per_node 8"
    config = copy.deepcopy(PAPER)
    config["training"]["nodes"] = 2
    assert plan.training_launcher(config).startswith("srun --overlap --ntasks-per-node 1 torchrun --nnodes 2")


def test_start_up_checks():
    plan.check(DEFAULT)
    plan.check(PAPER_1_3B)
    config = copy.deepcopy(DEFAULT)
    config["training"]["grad_accum"] = 3
    with pytest.raises(ValueError, match="batch size 16 does not split into grad_accum 3 x 1 processes"):
        plan.check(config)
    config = copy.deepcopy(PAPER)
    config["cluster"]["cpus"] = 32
    with pytest.raises(ValueError, match="a training job needs 64 CPUs"):
        plan.check(config)
    config = copy.deepcopy(DEFAULT)
    config["acceptability"]["run"] = "llm_judge"
    with pytest.raises(ValueError, match="acceptability: run 'llm_judge' seed 0 is not trained"):
        plan.check(config)
    config = copy.deepcopy(DEFAULT)  # FactScore's judge over our corpus, without FActScore's demonstrations
    config["fact_precision"]["llm"] = copy.deepcopy(PAPER["fact_precision"]["llm"])
    with pytest.raises(ValueError, match="fact_precision.demos: FactScore's judge"):
        plan.check(config)
    config["fact_precision"]["demos"] = "demons.json"
    plan.check(config)


def test_cluster_caps():
    assert plan.cluster_threads(DEFAULT, 4) == 2 and plan.cluster_threads(DEFAULT, 0) == 1
    assert plan.cluster_mem_mb(DEFAULT, 16000) == 8000 and plan.cluster_mem_mb(PAPER, 16000) == 16000
    assert plan.model_job_mem_mb(PAPER) == 60000 and plan.model_job_mem_mb(DEFAULT) == 4000


def test_figure_10s_runs_are_the_longer_ablations_at_the_calling_step_count():
    assert plan.equal_steps_methods(DEFAULT) == [], "the default trains neither Ignore ablation"
    assert plan.equal_steps_methods(PAPER) == ["lacy_ignorefacts", "lacy_ignore"]
    assert plan.equal_steps_fraction(PAPER, "lacy_ignorefacts") == 400000 / 440000
    config = copy.deepcopy(PAPER)
    config["acceptability"]["run"] = "lacy_ignore"  # its training exports the early model instead
    assert plan.equal_steps_methods(config) == ["lacy_ignorefacts"]
    assert plan.figure_variants(PAPER, "fig10") == {"lacy_ignorefacts": ".equal_steps", "lacy_ignore": ".equal_steps"}
    assert plan.figure_variants(PAPER, "fig2") == {}


def test_which_figures_each_configuration_draws_and_why_not():
    assert plan.figures(DEFAULT) == ["fig2", "fig5", "fig6", "fig7", "fig11", "fig15", "fig16", "fig19",
                                     "fig20", "fig21"]
    assert plan.not_built(DEFAULT)["fig10"].startswith("no method trains longer than the calling models")
    assert plan.not_built(DEFAULT)["fig12"] == "no second model scale is configured (`scales`; the paper's 1.3B models, §C)"
    assert plan.not_built(DEFAULT)["fig13"].startswith("no RAG-prompted cascade partner")
    assert len(plan.figures(PAPER)) == 13 and len(plan.figures(PAPER_1_3B)) == 19
    assert set(plan.figures(PAPER_1_3B)) | set(plan.not_built(PAPER_1_3B)) == set(FIGURES)
    assert not set(plan.figures(PAPER_1_3B)) & set(plan.not_built(PAPER_1_3B))
    config = copy.deepcopy(DEFAULT)
    config["methods"] = ["lacy"]
    assert plan.figures(config) == []
    assert set(plan.not_built(config).values()) == {
        "fewer than two of its methods (or no baseline) are trained in this configuration",
        "no second model scale is configured (`scales`; the paper's 1.3B models, §C)",
        "no method trains longer than the calling models (LaCy + Ignorefacts, LaCy + Ignore)",
        "no RAG-prompted cascade partner is configured besides the first one (a further `cascade.partners` entry "
        "with `rag`, §A.5)"}
    assert plan.figure_scales(PAPER_1_3B, "fig13") == [None, "1.3b"]
    assert plan.figure_runs(PAPER_1_3B, "fig12", "1.3b")[0] == "1.3b/baseline"


def test_tables_partners_and_figure_4():
    assert plan.tables(DEFAULT) == ["table1", "table6", "fact_leakage"]
    assert plan.figure_partners(DEFAULT) == {"main": "gemma3_rag", "rag": None}
    assert plan.figure_partners(PAPER) == {"main": "llama", "rag": "qwen3_rag"}
    assert plan.figure4_runs(DEFAULT) == ["baseline", "rho1", "lacy"]
    assert plan.figure4_runs(PAPER) == ["baseline", "rho1", "llm_judge", "lacy"]
    assert plan.scale_label(PAPER, None) == "medium models" and plan.scale_label(PAPER, "1.3b") == "1.3b models"


def test_scorer_and_labels():
    assert plan.fact_scorer(DEFAULT) == "offline" and plan.fact_scorer(PAPER) == "llm"
    assert not plan.has_llm_judge_labels(DEFAULT) and plan.has_llm_judge_labels(PAPER)
    assert plan.acceptability_figures(DEFAULT)["fig8"][1].startswith("Figure 8: accuracy vs acceptability after 20% ")


def test_figure_context_is_what_the_figure_scripts_hand_the_package():
    from lacy.figures import make_context

    context = plan.figure_context(PAPER_1_3B, "fig13")
    assert context == {
        "runs": {"medium models": ["baseline", "loss_based", "rho1", "llm_judge", "lacy"],
                 "1.3b models": ["1.3b/baseline", "1.3b/loss_based", "1.3b/rho1", "1.3b/llm_judge", "1.3b/lacy"]},
        "seeds": [0], "scorer": "llm", "variants": {}, "partners": {"main": "llama", "rag": "qwen3_rag"},
        "partner_labels": {"main": "meta-llama/Llama-3.2-1B", "rag": "Qwen/Qwen3-32B + RAG"}}
    with_ablations = copy.deepcopy(DEFAULT)
    with_ablations["methods"] += ["lacy_ignorefacts", "lacy_ignore"]
    assert plan.figure_context(with_ablations, "fig10")["variants"] == {"lacy_ignorefacts": ".equal_steps",
                                                                        "lacy_ignore": ".equal_steps"}
    table = plan.figure_context(DEFAULT, "table6")
    assert table["runs"] == {"cpu-small models": DEFAULT["methods"]} and table["variants"] == {}
    assert plan.figure_context(DEFAULT, "table1")["partners"] == {"main": "gemma3_rag"}
    assert plan.figure_context(DEFAULT, "table1")["partner_labels"] == {"main": "gemma3-270m-gguf + RAG (local)"}
    ctx = make_context(**context, layout={})
    assert ctx.results.partner == "llama" and ctx.results.scorer == "llm" and list(ctx.runs) == list(context["runs"])


def test_acceptability_figures_label_the_judged_checkpoint_of_the_studied_run():
    assert plan.acceptability_label(PAPER, "early") == "baseline seed 0, early checkpoint"
    studied = configured(edit=lambda c: c["acceptability"].update(run="lacy", seed=1))
    assert plan.acceptability_label(studied, "final") == "lacy seed 1, final checkpoint"


def test_the_paper_evaluations_nlu_tasks_and_llms_as_the_rules_hand_them_over():
    """What rules nlu, acceptability_judge and leakage_popqa_rephrase pass on: §5.5's four lm-eval tasks, and
    Gemini 2.0 Flash (§B) as specs whose keys are make_llm's parameters."""
    import inspect

    from lacy.llm import make_llm
    from lacy.nlu import PAPER_TASKS

    assert PAPER["nlu"]["tasks"] == ["arc_easy", "hellaswag", "piqa", "siqa"] == list(PAPER_TASKS)
    gemini = {"backend": "gemini", "model": "gemini-2.0-flash", "base_url": None, "api_key_env": "GEMINI_API_KEY"}
    judge = PAPER["acceptability"]["judge"]
    assert (judge["llm"], judge["name"], judge["scoring"]) == (gemini, "Gemini 2.0 Flash", "generated")
    assert PAPER["leakage"]["rephrase_llm"] == gemini and "popqa_long_tail" in PAPER["leakage"]["sets"]
    for spec in (judge["llm"], PAPER["leakage"]["rephrase_llm"], DEFAULT["acceptability"]["judge"]["llm"]):
        inspect.signature(make_llm).bind(cache_dir=Path("results/llm_cache"), **spec)


def test_cascade_call_budget_and_the_values_the_cascade_rules_pass():
    """What the cascade and fact-precision rules hand their scripts: the run's call budget (§5.2: the baseline,
    trained without <CALL>, never calls), the partner's config entry, and ``fact_precision`` as the schema fills it
    (its judge a spec whose keys are make_llm's parameters)."""
    import inspect

    from lacy.llm import make_llm

    assert plan.cascade_call_budget(DEFAULT, "baseline") == 0.0
    assert plan.cascade_call_budget(DEFAULT, "lacy") == plan.cascade_call_budget(PAPER, "rho1") == 0.22
    assert plan.cascade_call_budget(PAPER_1_3B, "1.3b/baseline") == 0.0
    assert plan.cascade_call_budget(PAPER_1_3B, "1.3b/lacy") == 0.22
    assert plan.partners(DEFAULT) == {"gemma3_rag": {"name": "gemma3_rag", "model": "gemma3-270m-gguf", "rag": {
        "knowledge": "corpus", "base_url": None, "api_key_env": None, "top_logprobs": None}}}
    assert plan.partners(PAPER) == {
        "llama": {"name": "llama", "model": "meta-llama/Llama-3.2-1B"},
        "qwen3_rag": {"name": "qwen3_rag", "model": "Qwen/Qwen3-32B", "rag": {
            "base_url": "http://localhost:8000/v1", "api_key_env": "VLLM_API_KEY",
            "knowledge": "resources/factscore/enwiki-20230401.db", "top_logprobs": None}}}
    # FActScore as the paper computes it (§B): GPT-3.5-turbo, GTR retrieval, the release's demonstrations
    assert plan.fact_scorer(PAPER) == "llm" and plan.fact_scorer(DEFAULT) == "offline"
    assert PAPER["fact_precision"] == {
        "llm": {"backend": "openai", "model": "gpt-3.5-turbo", "base_url": None, "api_key_env": "OPENAI_API_KEY"},
        "knowledge": "resources/factscore/enwiki-20230401.db", "retrieval": "gtr-t5-large",
        "demos": "resources/factscore/demos/demons.json"}
    assert DEFAULT["fact_precision"] == {"llm": None, "knowledge": "corpus", "retrieval": "bm25", "demos": None}
    inspect.signature(make_llm).bind(cache_dir=Path("results/llm_cache"), **PAPER["fact_precision"]["llm"])
    assert DEFAULT["cascade"]["entities"] == {"source": "corpus", "n_heldout": 48, "n_train": 16, "seed": 0}
    assert PAPER["cascade"]["entities"] == {"source": "factscore",
                                            "path": "resources/factscore/data/labeled/prompt_entities.txt",
                                            "n_heldout": 48, "n_train": 16, "seed": 0}


def test_what_each_figure_table_and_the_summary_read():
    """The results the figure, table and summary rules declare as inputs (lacy.plan.results_read, summary_results):
    the kinds each one needs, no validation losses of a baseline, Figure 10's equal-steps variants, the main
    partner's cascade and the reference's validation losses for the summary."""
    fig2 = plan.results_read(DEFAULT, "fig2")
    assert {(r["kind"], r["run"]) for r in fig2} == {(k, m) for k in ("fact_precision", "leakage")
                                                     for m in ("baseline", "loss_based", "rho1", "lacy")}
    assert {(r["partner"], r["scorer"], r["seed"], r["variant"]) for r in fig2} == {("gemma3_rag", "offline", 0, "")}
    assert {r["run"] for r in plan.results_read(DEFAULT, "fig5")} == {"loss_based", "rho1", "lacy"}
    fig15 = {(r["kind"], r["run"]) for r in plan.results_read(DEFAULT, "fig15")}  # losses against fact precision
    assert ("fact_precision", "baseline") in fig15 and ("validation", "baseline") not in fig15
    assert {(r["kind"], r["partner"]) for r in plan.results_read(DEFAULT, "table1")} == {("nlu", "")}
    with_ablations = copy.deepcopy(DEFAULT)
    with_ablations["methods"] += ["lacy_ignorefacts", "lacy_ignore"]
    variants = {r["run"]: r["variant"] for r in plan.results_read(with_ablations, "fig10")}
    assert variants["lacy_ignore"] == ".equal_steps" and variants["lacy"] == ""
    assert plan.partners_alone_drawn(DEFAULT, "fig2") == ["gemma3_rag"] and plan.partners_alone_drawn(DEFAULT, "fig5") == []
    assert plan.partners_alone_drawn(PAPER, "fig13") == ["qwen3_rag"] and plan.partners_alone_drawn(PAPER, "fig2") == [
        "llama", "qwen3_rag"]
    summary = {(r["kind"], r["run"]) for r in plan.summary_results(DEFAULT)}
    assert ("validation", "reference") in summary and ("validation", "baseline") not in summary
    assert ("cascade", "lacy") in summary and ("leakage_generations", "baseline") in summary
    assert {r["partner"] for r in plan.summary_results(DEFAULT)} == {"gemma3_rag"}
