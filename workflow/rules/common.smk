# Configuration validation, shared names and input functions.

import re
import shlex
import sys
from pathlib import Path

# The rules run `python -m lacy ...` from this checkout's src/ in whatever environment a rule gets
# (the local venv, or a per-rule conda env with --sdm conda on a cluster, where lacy is not installed).
# Without a per-rule conda env, `python` is the interpreter running Snakemake (e.g. .venv/bin/python), even
# when that environment is not activated.
LACY_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LACY_SRC)
_PATH = "" if workflow.deployment_settings.deployment_method else f"{shlex.quote(str(Path(sys.executable).parent))}:"
shell.prefix(f"export PYTHONPATH={shlex.quote(LACY_SRC)}${{{{PYTHONPATH:+:$PYTHONPATH}}}} PATH={_PATH}$PATH; ")

from lacy.cascade import call_budget_of  # noqa: E402
from lacy.config import load_schema, validate_config  # noqa: E402

validate_config(config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"),
                source=", ".join(str(f) for f in workflow.configfiles) or "config")

SPLITS = ["train", "validation"]
SHARDS = [f"{k:05d}" for k in range(config["data"]["shards"])]
HAS_LLM_JUDGE_LABELS = config["data"]["source"] == "dwiki"

if not HAS_LLM_JUDGE_LABELS:
    logger.info(
        f"note: data.source is {config['data']['source']!r}, which carries no LMLM LLM-judge annotations; "
        "the 'llm_judge' method (§A.2.2) is not part of this run."
    )


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d{5}",


def corpus_shards(split):
    return expand("results/corpus/{split}/part-{shard}.jsonl.gz", split=split, shard=SHARDS)


def annotation_shard_stats():
    return expand("results/annotation/{split}/part-{shard}.json", split=SPLITS, shard=SHARDS)


def llm_judge_shard_stats():
    return expand("results/llm_judge/{split}/part-{shard}.json", split=SPLITS, shard=SHARDS)


def final_targets():
    """Everything `rule all` builds; grows with each stage of the pipeline."""
    targets = [rules.annotation_summary.output.summary, *trained_models(), *evaluation_targets(),
               *rules.labelling_cost_table.output]
    if "baseline" in config["methods"] and CALLING_METHODS:
        targets.append(rules.validation_losses_table.output[0])
        targets += expand(rules.validation_losses_table_of_scale.output[0], scale=SCALE_NAMES)
    if HAS_LLM_JUDGE_LABELS:
        targets.append(rules.llm_judge_summary.output.summary)
    return targets


# --- training (Table 4) -----------------------------------------------------------------------------

TRAIN = config["training"]
REFERENCE = "reference"
REFERENCE_METHODS = {"rho1", "spacy_refloss"}

# Extra model sizes (§C: the 1.3B runs). A run of an extra scale is named "{scale}/{method}" and lives at
# results/models/{scale}/{method}/seed{seed}/; every downstream output nests the same way. The main size is
# `model.preset` with `training.*`; the reference model is one, shared by all scales.
_ALL_SCALES = [s["name"] for s in config.get("scales", [])]
if len(set(_ALL_SCALES)) < len(_ALL_SCALES):
    raise ValueError(f"scales: names must be unique, got {_ALL_SCALES}")
SCALES = {s["name"]: s for s in config.get("scales", []) if s.get("enabled", True)}
SCALE_NAMES = list(SCALES)


def runs(scale=None):
    """Run names of one scale: the plain method names for the main scale (None), else "{scale}/{method}"."""
    return list(config["methods"]) if scale is None else [f"{scale}/{m}" for m in config["methods"]]


def split_run(run):
    """(scale, method) of a run name: ("1.3b", "lacy") for "1.3b/lacy", (None, "lacy") for "lacy"."""
    scale, _, method = run.rpartition("/")
    return scale or None, method


def all_runs():
    """Every trained SLM: the main scale's runs, then each extra scale's, in config order."""
    return runs() + [run for scale in SCALE_NAMES for run in runs(scale)]


def scaled_run(scale, method):
    """The run of ``method`` at ``scale`` (e.g. the baseline a calling model is compared with, §A.4.3)."""
    return method if scale is None else f"{scale}/{method}"


def model_size(run):
    """Preset and Table 4 optimisation settings of a run: the reference's, an extra scale's or the main ones."""
    if run == REFERENCE:
        reference = config["reference"]
        return {"preset": reference["preset"], "batch_size": reference.get("batch_size", TRAIN["batch_size"]),
                "grad_accum": reference.get("grad_accum", TRAIN["grad_accum"]), "lr": reference["lr"],
                "warmup": reference["warmup"]}
    scale, _ = split_run(run)
    main = {"preset": config["model"]["preset"], "batch_size": TRAIN["batch_size"],
            "grad_accum": TRAIN["grad_accum"], "lr": TRAIN["lr"], "warmup": TRAIN["warmup"]}
    return main if scale is None else {**main, **{k: v for k, v in SCALES[scale].items() if k in main}}


def _check_batch_split():
    """Fail at start-up, not hours into a SLURM job: every batch must split over GPUs x accumulation steps."""
    processes = max(1, TRAIN["gpus_per_node"]) * TRAIN["nodes"]
    for run in [REFERENCE] + [scaled_run(scale, "baseline") for scale in [None] + SCALE_NAMES]:
        size = model_size(run)
        if size["batch_size"] % (size["grad_accum"] * processes):
            raise ValueError(f"{run}: batch size {size['batch_size']} does not split into grad_accum "
                             f"{size['grad_accum']} x {processes} processes (training.gpus_per_node x nodes)")


_check_batch_split()

# --- cluster size: no job asks SLURM for more than one node has (config `cluster`) ----------------------------

CLUSTER = {"cpus": 2, "mem_mb": 8000, **config.get("cluster", {})}


def cluster_threads(threads):
    """A CPU rule's threads, at most the CPUs of one node."""
    return max(1, min(threads, CLUSTER["cpus"]))


def cluster_mem_mb(mem_mb):
    """A CPU rule's memory, at most that of one node."""
    return min(mem_mb, CLUSTER["mem_mb"])


def _check_cluster_fits_training():
    """Fail at start-up, not with a job that waits forever: a training job must fit on one node."""
    threads = max(1, TRAIN["gpus_per_node"]) * TRAIN["cpus_per_gpu"]
    if threads > CLUSTER["cpus"] or TRAIN["mem_mb"] > CLUSTER["mem_mb"]:
        raise ValueError(f"a training job needs {threads} CPUs (training.gpus_per_node x cpus_per_gpu) and "
                         f"{TRAIN['mem_mb']} MB (training.mem_mb), more than one node has: cluster.cpus "
                         f"{CLUSTER['cpus']}, cluster.mem_mb {CLUSTER['mem_mb']}")


_check_cluster_fits_training()


_SCALE_PATTERN = "|".join(map(re.escape, SCALE_NAMES)) or "(?!)"  # (?!) matches nothing: no extra scale
#: A run: "lacy", "1.3b/lacy", or the reference model (no scale prefix: one reference for all scales).
_RUN_PATTERN = "|".join(config["methods"]) if not SCALE_NAMES else (
    f"(?:(?:{_SCALE_PATTERN})/)?(?:{'|'.join(config['methods'])})")


wildcard_constraints:
    method=f"{_RUN_PATTERN}|{REFERENCE}",
    seed=r"\d+",
    scale=_SCALE_PATTERN,


def training_steps(run):
    """Table 4: calling models train longer so all methods see as many true-token gradients; the step counts
    are the same at every scale. The reference model's count is scaled alike, so that it keeps Table 4's ratio
    to the calling models (2.54M : 400k) in every configuration."""
    if run == REFERENCE:
        steps = config["reference"]["steps"]
    else:
        group = {"baseline": "baseline", "lacy_ignorefacts": "lacy_ignorefacts", "lacy_ignore": "lacy_ignore"}
        steps = TRAIN["steps"][group.get(split_run(run)[1], "calling")]
    return max(1, round(steps * TRAIN["step_scale"]))


#: Figure 10 (§C.2): main-scale runs that train longer than the calling models and are also evaluated at the
#: calling models' step count (not the acceptability study's run, whose training exports its early model instead).
EQUAL_STEPS_METHODS = [m for m in ("lacy_ignorefacts", "lacy_ignore") if m in config["methods"]
                       and training_steps(m) != training_steps("lacy") and m != config["acceptability"]["run"]]


def equal_steps_fraction(method):
    """The share of ``method``'s steps at which it has trained as many steps as a calling model."""
    return training_steps("lacy") / training_steps(method)


def training_settings(run, seed):
    """`lacy train` options for one run; Snakemake reruns exactly the runs whose options change."""
    size = model_size(run)
    values = {
        "method": "baseline" if run == REFERENCE else split_run(run)[1],
        "preset": size["preset"],
        "steps": training_steps(run),
        "lr": size["lr"],
        "warmup": size["warmup"],
        "context": config["model"]["context"],
        "batch-size": size["batch_size"],
        "grad-accum": size["grad_accum"],
        "weight-decay": TRAIN.get("weight_decay", 0.1),
        "grad-clip": TRAIN.get("grad_clip", 1.0),
        "call-rate": TRAIN["call_rate"],
        "ignore-rate": TRAIN["ignore_rate"],
        "precision": TRAIN["precision"],
        "seed": seed,
        "checkpoint-every": TRAIN.get("checkpoint_every", 500),
        "log-every": TRAIN.get("log_every", 10),
    }
    options = " ".join(f"--{k} {v}" for k, v in values.items())
    return options + (" --compile" if TRAIN.get("compile") else "")


def baseline_run(run):
    """The baseline of a run's scale, whose losses on the run's call mask are reported beside it (§A.4.3)."""
    return scaled_run(split_run(run)[0], "baseline")


def labelling_cost_inputs(wildcards):
    """Table 2 (§5.6): every annotation shard's timing, and the Rho-1 timing when this run trains the reference."""
    inputs = {"annotation": annotation_shard_stats()}
    if REFERENCE_METHODS & set(config["methods"]):
        inputs["rho1"] = rules.labelling_cost_rho1.output[0]
    return inputs


def training_launcher():
    """python on CPU or one GPU; torchrun for several GPUs, under srun across several nodes."""
    gpus, nodes = TRAIN["gpus_per_node"], TRAIN["nodes"]
    if gpus <= 1 and nodes == 1:
        return "python"
    if nodes == 1:
        return f"torchrun --standalone --nproc_per_node {gpus}"
    # --overlap: the SLURM executor already runs this job's command inside a job step (srun -n1)
    return (f"srun --overlap --ntasks-per-node 1 torchrun --nnodes {nodes} --nproc_per_node {gpus} --rdzv_backend c10d"
            " --rdzv_endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500")


def training_inputs(wildcards):
    inputs = {"tokenizer": rules.tokenizer.output.meta, "annotation": annotation_shard_stats()}
    _, method = split_run(wildcards.method)
    if method == "llm_judge":
        inputs["llm_judge"] = llm_judge_shard_stats()
    if method in REFERENCE_METHODS:
        inputs["reference"] = f"results/models/{REFERENCE}/seed{wildcards.seed}/model.safetensors"
    return inputs


def training_priority(wildcards):
    """Critical path first: the reference model, which Rho-1 and spaCy+Refloss wait for, then those two, then
    the other trainings, ahead of the evaluations (Snakemake's default priority 0). Only the order changes."""
    method = split_run(wildcards.method)[1]
    return 3 if method == REFERENCE else 2 if method in REFERENCE_METHODS else 1


def training_data_options(wildcards, input):
    options = f"--annotation results/annotation --tokenizer $(dirname {input.tokenizer})"
    if "llm_judge" in input.keys():
        options += " --llm-judge results/llm_judge"
    if "reference" in input.keys():
        options += f" --reference $(dirname {input.reference})"
    return options


CALLING_METHODS = [m for m in config["methods"] if m != "baseline"]
#: Host memory of a one-GPU job that loads trained models (up to 1.3B parameters, 5 GB each in fp32).
MODEL_JOB_MEM_MB = TRAIN["mem_mb"] // max(1, TRAIN["gpus_per_node"])


def trained_models():
    return expand("results/models/{method}/seed{seed}/train.json", method=all_runs(), seed=config["seeds"])


# --- evaluation: cascade, fact precision, leakage, NLU ---------------------------------------------

CASCADE = config["cascade"]
PARTNERS = {p["name"]: p["model"] for p in CASCADE["partners"]}
#: The paper's FactScore needs an LLM; without one the stand-in "offline fact precision" is computed.
FACT_SCORER = "llm" if config["fact_precision"].get("llm") else "offline"


wildcard_constraints:
    partner="|".join(PARTNERS),
    scorer="llm|offline",


def entity_inputs(wildcards):
    inputs = {"corpus": "results/corpus/corpus.json"}
    if CASCADE["entities"]["source"] == "factscore":
        inputs["factscore"] = CASCADE["entities"]["path"]
    return inputs


def entity_options():
    entities = CASCADE["entities"]
    if entities["source"] == "factscore":
        return f"--factscore-list {entities['path']}"
    return f"--n {entities['n']} --seed {entities['seed']}"


def llm_options(llm):
    options = f"--backend {llm['backend']} --llm {llm['model']}" if llm else ""
    if llm.get("base_url"):
        options += f" --base-url {llm['base_url']}"
    if llm.get("api_key_env"):
        options += f" --api-key-env {llm['api_key_env']}"
    return options


def knowledge_input(knowledge=None):
    """The reference articles (default: fact precision's): the corpus (``corpus``) or a file such as FactScore's
    Wikipedia dump."""
    knowledge = knowledge or config["fact_precision"]["knowledge"]
    return "results/corpus/corpus.json" if knowledge == "corpus" else knowledge


def knowledge_option(path):
    return str(Path(path).parent) if path == "results/corpus/corpus.json" else path


def fact_precision_demos(wildcards):
    """FActScore's demonstrations, an input of the LLM scorer when the config names them (§B)."""
    demos = config["fact_precision"].get("demos")
    return [demos] if wildcards.scorer == "llm" and demos else []


def fact_precision_options(wildcards):
    """The LLM scorer's judge, cache, and FActScore's retrieval and demonstrations (§B); the demonstrations come
    with the release's database (rule factscore_release), the knowledge input of the paper configuration."""
    if wildcards.scorer == "offline":
        return ""
    fact_precision = config["fact_precision"]
    options = llm_options(fact_precision["llm"]) + " --cache-dir results/llm_cache"
    options += f" --retrieval {fact_precision.get('retrieval', 'gtr-t5-large')}"
    return options + (f" --demos {fact_precision['demos']}" if fact_precision.get("demos") else "")


def nlu_inputs(wildcards):
    inputs = {"model": f"results/models/{wildcards.method}/seed{wildcards.seed}/model.safetensors"}
    if any(task.startswith("bigbench_local_") for task in config["nlu"]["tasks"]):
        inputs["tasks"] = rules.nlu_local_tasks.output[0]
    return inputs


def evaluation_targets():
    """Per run (method, at every scale) and seed: cascade generations and their fact precision, fact leakage, NLU."""
    return expand(
        "results/fact_precision/{partner}/{method}/seed{seed}.{scorer}.json",
        partner=list(PARTNERS),
        method=all_runs(),
        seed=config["seeds"],
        scorer=FACT_SCORER,
    ) + expand(
        ["results/leakage/{method}/seed{seed}.json", "results/nlu/{method}/seed{seed}.json"],
        method=all_runs(),
        seed=config["seeds"],
    )
