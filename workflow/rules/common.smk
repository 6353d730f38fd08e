# Configuration validation, shared names and input functions.

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
    targets = [rules.annotation_summary.output.summary, *trained_models(), *evaluation_targets()]
    if "baseline" in config["methods"] and CALLING_METHODS:
        targets.append(rules.validation_losses_table.output[0])
    if HAS_LLM_JUDGE_LABELS:
        targets.append(rules.llm_judge_summary.output.summary)
    return targets


# --- training (Table 4) -----------------------------------------------------------------------------

TRAIN = config["training"]
REFERENCE = "reference"
REFERENCE_METHODS = {"rho1", "spacy_refloss"}


wildcard_constraints:
    method="|".join(config["methods"] + [REFERENCE]),
    seed=r"\d+",


def training_steps(method):
    """Table 4: calling models train longer so all methods see as many true-token gradients."""
    if method == REFERENCE:
        return config["reference"]["steps"]
    group = {"baseline": "baseline", "lacy_ignorefacts": "lacy_ignorefacts", "lacy_ignore": "lacy_ignore"}
    steps = TRAIN["steps"][group.get(method, "calling")]
    return max(1, round(steps * TRAIN["step_scale"]))


def training_settings(method, seed):
    """`lacy train` options for one run; Snakemake reruns exactly the runs whose options change."""
    is_reference = method == REFERENCE
    values = {
        "method": "baseline" if is_reference else method,
        "preset": config["reference"]["preset"] if is_reference else config["model"]["preset"],
        "steps": training_steps(method),
        "lr": config["reference"]["lr"] if is_reference else TRAIN["lr"],
        "warmup": config["reference"]["warmup"] if is_reference else TRAIN["warmup"],
        "context": config["model"]["context"],
        "batch-size": TRAIN["batch_size"],
        "grad-accum": TRAIN["grad_accum"],
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


def training_launcher():
    """python on CPU or one GPU; torchrun for several GPUs, under srun across several nodes."""
    gpus, nodes = TRAIN["gpus_per_node"], TRAIN["nodes"]
    if gpus <= 1 and nodes == 1:
        return "python"
    if nodes == 1:
        return f"torchrun --standalone --nproc_per_node {gpus}"
    return (f"srun --ntasks-per-node 1 torchrun --nnodes {nodes} --nproc_per_node {gpus} --rdzv_backend c10d"
            " --rdzv_endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500")


def training_inputs(wildcards):
    inputs = {"tokenizer": rules.tokenizer.output.meta, "annotation": annotation_shard_stats()}
    if wildcards.method == "llm_judge":
        inputs["llm_judge"] = llm_judge_shard_stats()
    if wildcards.method in REFERENCE_METHODS:
        inputs["reference"] = f"results/models/{REFERENCE}/seed{wildcards.seed}/model.safetensors"
    return inputs


def training_data_options(wildcards, input):
    options = f"--annotation results/annotation --tokenizer $(dirname {input.tokenizer})"
    if "llm_judge" in input.keys():
        options += " --llm-judge results/llm_judge"
    if "reference" in input.keys():
        options += f" --reference $(dirname {input.reference})"
    return options


CALLING_METHODS = [m for m in config["methods"] if m != "baseline"]


def trained_models():
    return expand("results/models/{method}/seed{seed}/train.json", method=config["methods"], seed=config["seeds"])


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


def knowledge_input():
    """The reference articles: the corpus (``corpus``) or a file such as FactScore's Wikipedia dump."""
    knowledge = config["fact_precision"]["knowledge"]
    return "results/corpus/corpus.json" if knowledge == "corpus" else knowledge


def knowledge_option(path):
    return str(Path(path).parent) if path == "results/corpus/corpus.json" else path


def fact_precision_options(wildcards):
    if wildcards.scorer == "offline":
        return ""
    llm = config["fact_precision"]["llm"]
    return llm_options(llm) + " --cache-dir results/llm_cache"


def nlu_inputs(wildcards):
    inputs = {"model": f"results/models/{wildcards.method}/seed{wildcards.seed}/model.safetensors"}
    if any(task.startswith("bigbench_local_") for task in config["nlu"]["tasks"]):
        inputs["tasks"] = rules.nlu_local_tasks.output[0]
    return inputs


def evaluation_targets():
    """Per method and seed: cascade generations and their fact precision, fact leakage, NLU."""
    return expand(
        "results/fact_precision/{partner}/{method}/seed{seed}.{scorer}.json",
        partner=list(PARTNERS),
        method=config["methods"],
        seed=config["seeds"],
        scorer=FACT_SCORER,
    ) + expand(
        ["results/leakage/{method}/seed{seed}.json", "results/nlu/{method}/seed{seed}.json"],
        method=config["methods"],
        seed=config["seeds"],
    )
