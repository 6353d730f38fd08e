# Configuration validation, shared names and input functions. What the configuration asks for (runs, step
# counts, model sizes, which figures it can draw) is decided in the package, by lacy.plan.

import re
import shlex
import sys
from pathlib import Path

# The rules run `python -m lacy ...` from this checkout's src/ in whatever environment a rule gets
# (the local venv, or a per-rule conda env with --sdm conda on a cluster, where lacy is not installed).
# Without a per-rule conda env, `python` is the interpreter running Snakemake (e.g. .venv/bin/python), even
# when that environment is not activated. `script:` rules run through the same shell prefix.
LACY_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LACY_SRC)
_PATH = "" if workflow.deployment_settings.deployment_method else f"{shlex.quote(str(Path(sys.executable).parent))}:"
shell.prefix(f"export PYTHONPATH={shlex.quote(LACY_SRC)}${{{{PYTHONPATH:+:$PYTHONPATH}}}} PATH={_PATH}$PATH; ")

from lacy import plan  # noqa: E402
from lacy.cli import command_line_options  # noqa: E402
from lacy.config import load_schema, validate_config  # noqa: E402
from lacy.figures import FIGURES, TABLES, alone_path, result_path  # noqa: E402

# Errors named by key path, then the schema's `default:` values filled in (lacy.config): every default is
# written once, in workflow/schemas/config.schema.yaml, and the rules index config[...] strictly.
validate_config(config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"),
                source=", ".join(str(f) for f in workflow.configfiles) or "config")
plan.check(config)

SPLITS = ["train", "validation"]
LLM_CACHE = "results/llm_cache"  # every LLM answer (judges, rephrasing, served partners), cached on disk
CORPUS_SHARD = "results/corpus/{split}/part-{shard}.jsonl.gz"  # either corpus rule's shards (data.source)
SHARDS = [f"{k:05d}" for k in range(config["data"]["shards"])]
TRAIN = config["training"]
CASCADE = config["cascade"]
ACCEPTABILITY = config["acceptability"]
REFERENCE = plan.REFERENCE
SCALE_NAMES = plan.scale_names(config)
CALLING_METHODS = plan.calling_methods(config)
EQUAL_STEPS_METHODS = plan.equal_steps_methods(config)
PARTNERS = plan.partners(config)
FIGURE_PARTNERS = plan.figure_partners(config)
FACT_SCORER = plan.fact_scorer(config)
HAS_LLM_JUDGE_LABELS = plan.has_llm_judge_labels(config)
MODEL_JOB_MEM_MB = plan.model_job_mem_mb(config)
ACCEPTABILITY_FIGURES = plan.acceptability_figures(config)
CHECKPOINTS = list(plan.ACCEPTABILITY_CHECKPOINTS)

if not HAS_LLM_JUDGE_LABELS:
    logger.info(
        f"note: data.source is {config['data']['source']!r}, which carries no LMLM LLM-judge annotations; "
        "the 'llm_judge' method (§A.2.2) is not part of this run."
    )

# A run: "lacy", "1.3b/lacy", or the reference model (no scale prefix: one reference for all scales).
_SCALE_PATTERN = "|".join(map(re.escape, SCALE_NAMES)) or "(?!)"  # (?!) matches nothing: no extra scale
_RUN_PATTERN = "|".join(config["methods"]) if not SCALE_NAMES else (
    f"(?:(?:{_SCALE_PATTERN})/)?(?:{'|'.join(config['methods'])})")


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d{5}",
    method=f"{_RUN_PATTERN}|{REFERENCE}",
    seed=r"\d+",
    scale=_SCALE_PATTERN,
    partner="|".join(PARTNERS),
    scorer="llm|offline",
    figure="|".join(FIGURES),
    table="|".join(TABLES),


def cluster_threads(threads):
    return plan.cluster_threads(config, threads)


def cluster_mem_mb(mem_mb):
    return plan.cluster_mem_mb(config, mem_mb)


# --- targets -----------------------------------------------------------------------------------------


def corpus_shards(split):
    return expand(CORPUS_SHARD, split=split, shard=SHARDS)


def corpus_stats():
    """The corpus's statistics file, beside its shards: the corpus's handle for the rules that read it whole."""
    corpus = rules.corpus_dwiki if config["data"]["source"] == "dwiki" else rules.corpus_wiki_offline
    return corpus.output.stats


def annotation_shard_stats():
    return expand(rules.annotate_shard.output.stats, split=SPLITS, shard=SHARDS)


def llm_judge_shard_stats():
    return expand(rules.llm_judge_labels.output.stats, split=SPLITS, shard=SHARDS)


def trained_models():
    return expand(rules.train.output.summary, method=plan.all_runs(config), seed=config["seeds"])


def evaluation_targets():
    """Per run (method, at every scale) and seed: cascade generations and their fact precision, fact leakage, NLU;
    and each partner's biographies alone."""
    return expand(
        rules.fact_precision.output[0],
        partner=list(PARTNERS),
        method=plan.all_runs(config),
        seed=config["seeds"],
        scorer=FACT_SCORER,
    ) + expand(
        rules.fact_precision_partner_alone.output[0], partner=plan.partner_alone_partners(config), scorer=FACT_SCORER,
    ) + expand(
        [rules.fact_leakage.output.summary, rules.nlu.output[0]],
        method=plan.all_runs(config),
        seed=config["seeds"],
    )


def get_final_output():
    """The default target (`all`): models, evaluations, tables, the acceptability study, figures, summary."""
    targets = [rules.annotation_summary.output.summary, *trained_models(), *evaluation_targets(),
               *rules.labelling_cost_table.output]
    if "baseline" in config["methods"] and CALLING_METHODS:
        targets.append(rules.validation_losses_table.output[0])
        targets += expand(rules.validation_losses_table_of_scale.output[0], scale=SCALE_NAMES)
    if HAS_LLM_JUDGE_LABELS:
        targets.append(rules.llm_judge_summary.output.summary)
    targets += expand(rules.acceptability_figure.output, fig=list(ACCEPTABILITY_FIGURES))
    targets += expand(rules.figure.output.pdf, figure=plan.figures(config))
    targets += [rules.figure4.output.pdf] if plan.figure4_runs(config) else []
    targets += expand(rules.table.output.csv, table=plan.tables(config))
    return targets + [rules.summary.output[0]]


# --- training (Table 4) ------------------------------------------------------------------------------


def training_settings(wildcards):
    """`lacy train` options of one run's settings (lacy.plan.training_settings); Snakemake reruns exactly the runs
    whose settings change. Rendered by the package (lacy.cli.command_line_options): the rule is a shell command
    because a launcher (torchrun, srun) runs it."""
    return command_line_options(plan.training_settings(config, wildcards.method, int(wildcards.seed)))


def training_inputs(wildcards):
    inputs = {"tokenizer": rules.tokenizer.output.meta, "annotation": annotation_shard_stats()}
    _, method = plan.split_run(wildcards.method)
    if method == "llm_judge":
        inputs["llm_judge"] = llm_judge_shard_stats()
    if method in plan.REFERENCE_METHODS:
        inputs["reference"] = expand(rules.train.output.model, method=REFERENCE, seed=wildcards.seed)[0]
    return inputs


def training_label_options(wildcards, input):
    """`lacy train`'s inputs that only some methods read: the LLM-judge labels (llm_judge, §A.2.2) and the reference
    model (Rho-1, spaCy + Refloss, §A.4.1), as directories of the files training_inputs declares."""
    return command_line_options({
        "llm_judge": subpath(input.llm_judge[0], ancestor=2) if "llm_judge" in input.keys() else None,
        "reference": subpath(input.reference, parent=True) if "reference" in input.keys() else None,
    })


def labelling_cost_inputs(wildcards):
    """Table 2 (§5.6): every annotation shard's timing, and the Rho-1 timing when this run trains the reference."""
    inputs = {"annotation": annotation_shard_stats()}
    if plan.trains_reference(config):
        inputs["rho1"] = rules.labelling_cost_rho1.output[0]
    return inputs


# --- evaluation: cascade, fact precision, leakage, NLU ---------------------------------------------


def entity_inputs(wildcards):
    inputs = {"corpus": corpus_stats()}
    if CASCADE["entities"]["source"] == "factscore":
        inputs["factscore"] = CASCADE["entities"]["path"]
    return inputs


def knowledge_input(knowledge=None):
    """The reference articles (default: fact precision's): the corpus (``corpus``) or a file such as FactScore's
    Wikipedia dump."""
    knowledge = knowledge or config["fact_precision"]["knowledge"]
    return corpus_stats() if knowledge == "corpus" else knowledge


def fact_precision_demos(wildcards):
    """FActScore's demonstrations, an input of the LLM scorer when the config names them (§B)."""
    demos = config["fact_precision"]["demos"]
    return [demos] if wildcards.scorer == "llm" and demos else []


def rag_knowledge(wildcards):
    """The RAG partner's articles (§A.5): our corpus or a file such as FactScore's dump; none for a local partner."""
    rag = PARTNERS[wildcards.partner].get("rag")
    return [] if rag is None else [knowledge_input(rag["knowledge"])]


def nlu_inputs(wildcards):
    inputs = {"model": expand(rules.train.output.model, method=wildcards.method, seed=wildcards.seed)[0]}
    if any(task.startswith("bigbench_local_") for task in config["nlu"]["tasks"]):
        inputs["tasks"] = rules.nlu_local_tasks.output[0]
    return inputs


# --- figures and tables (lacy.plan decides which this configuration draws) --------------------------


def result_layout():
    """Where each result the figures, tables and the summary read lies (lacy.figures.Layout): the path patterns its
    rules declare (as plain strings: script params are pickled), which lacy.figures.result_path fills in."""
    patterns = {
        "fact_precision": rules.fact_precision.output[0],
        "fact_precision.equal_steps": rules.fact_precision_equal_steps.output[0],
        "fact_precision_alone": rules.fact_precision_partner_alone.output[0],
        "cascade": rules.cascade_generate.output.summary,
        "cascade.equal_steps": rules.cascade_generate_equal_steps.output.summary,
        "leakage": rules.fact_leakage.output.summary,
        "leakage.equal_steps": rules.fact_leakage_equal_steps.output.summary,
        "leakage_generations": rules.fact_leakage.output.generations,
        "leakage_generations.equal_steps": rules.fact_leakage_equal_steps.output.generations,
        "nlu": rules.nlu.output[0],
        "validation": rules.validation_losses.output[0],
        "entities": rules.evaluation_entities.output[0],
    }
    return {kind: str(pattern) for kind, pattern in patterns.items()}


def results_files(results):
    """The files of results given as lacy.figures.result_path's arguments (lacy.plan.results_read)."""
    return [str(result_path(result_layout(), **result)) for result in results]


def alone_files(partners):
    return [str(alone_path(result_layout(), partner, FACT_SCORER)) for partner in partners]


def figure_inputs(name):
    """Figure `name`'s results (lacy.plan.results_read), the partners alone it draws, and for Figures 2, 11 and 12
    the evaluation persons' splits."""
    files = results_files(plan.results_read(config, name)) + alone_files(plan.partners_alone_drawn(config, name))
    return files + ([rules.evaluation_entities.output[0]] if FIGURES[name].kind == "overview" else [])


def summary_inputs(wildcards):
    files = results_files(plan.summary_results(config)) + alone_files(plan.partner_alone_partners(config))
    return {"annotation": rules.annotation_summary.output.summary, "entities": rules.evaluation_entities.output[0],
            "table2": rules.labelling_cost_table.output.csv, "results": files}


def figure4_generations():
    """Figure 4: the main partner's generations of the methods the paper shows, first seed, main scale."""
    return {run: expand(rules.cascade_generate.output.generations, partner=FIGURE_PARTNERS["main"], method=run,
                        seed=config["seeds"][0])[0] for run in plan.figure4_runs(config)}
