"""What a configuration asks the workflow to build: runs, step counts, model sizes, figures and tables.

Every function here is a pure function of a validated configuration (``config``, with the schema's defaults
filled in by :func:`lacy.config.validate_config`); the Snakemake rule files call them and hold rules only.

Runs are named as everywhere in the workflow: a method (``lacy``) at the main size, ``"{scale}/{method}"``
(``1.3b/lacy``) at an extra size of ``scales`` (§C), and ``reference``, the one reference model of Rho-1 and
spaCy + Refloss (§A.4.1), shared by all sizes.

Only :mod:`lacy.figures`' figure specifications are imported (no torch): the Snakefile imports this module in
whatever environment Snakemake itself runs in.
"""

from __future__ import annotations

from typing import Any

from lacy.figures import EQUAL_STEPS, FIGURE4_METHODS, FIGURES, TABLES, method_of

Config = dict[str, Any]

#: The reference model's run name (§A.4.1).
REFERENCE = "reference"
#: Methods whose training reads the reference model's per-token losses.
REFERENCE_METHODS = frozenset({"rho1", "spacy_refloss"})
#: Table 4's step groups: these train their own step count, every other calling method the "calling" one.
STEP_GROUPS = ("baseline", "lacy_ignorefacts", "lacy_ignore")
#: Main-size runs that train longer than the calling models and are also evaluated at their step count (Fig. 10).
LONGER_ABLATIONS = ("lacy_ignorefacts", "lacy_ignore")


# --- runs and scales ---------------------------------------------------------------------------------

def scales(config: Config) -> dict[str, dict]:
    """The enabled extra model sizes (§C) by name, in config order; names must be unique."""
    names = [s["name"] for s in config["scales"]]
    if len(set(names)) < len(names):
        raise ValueError(f"scales: names must be unique, got {names}")
    return {s["name"]: s for s in config["scales"] if s["enabled"]}


def scale_names(config: Config) -> list[str]:
    return list(scales(config))


def runs(config: Config, scale: str | None = None) -> list[str]:
    """Run names of one size: the plain method names for the main size (None), else "{scale}/{method}"."""
    return [scaled_run(scale, m) for m in config["methods"]]


def split_run(run: str) -> tuple[str | None, str]:
    """(scale, method) of a run name: ("1.3b", "lacy") for "1.3b/lacy", (None, "lacy") for "lacy"."""
    scale, _, method = run.rpartition("/")
    return scale or None, method


def scaled_run(scale: str | None, method: str) -> str:
    """The run of ``method`` at ``scale`` (e.g. the baseline a calling model is compared with, §A.4.3)."""
    return method if scale is None else f"{scale}/{method}"


def all_runs(config: Config) -> list[str]:
    """Every trained SLM: the main size's runs, then each extra size's, in config order."""
    return runs(config) + [run for scale in scale_names(config) for run in runs(config, scale)]


def baseline_run(run: str) -> str:
    """The baseline of a run's size, whose losses on the run's call mask are reported beside it (§A.4.3)."""
    return scaled_run(split_run(run)[0], "baseline")


def calling_methods(config: Config) -> list[str]:
    """The methods trained with ``<CALL>``: every configured one but the baseline."""
    return [m for m in config["methods"] if m != "baseline"]


def trains_reference(config: Config) -> bool:
    """Whether a configured method needs the reference model (Rho-1, spaCy + Refloss)."""
    return bool(REFERENCE_METHODS & set(config["methods"]))


def has_llm_judge_labels(config: Config) -> bool:
    """Only the LMLM corpus (data.source dwiki) carries the LLM-judge annotations of §A.2.2."""
    return config["data"]["source"] == "dwiki"


# --- training (Table 4) ------------------------------------------------------------------------------

def model_size(config: Config, run: str) -> dict:
    """Preset and Table 4 optimisation settings of a run: the reference's, an extra size's or the main ones.
    The reference and an extra size without ``batch_size`` / ``grad_accum`` take ``training``'s."""
    training = config["training"]
    main = {"preset": config["model"]["preset"], "batch_size": training["batch_size"],
            "grad_accum": training["grad_accum"], "lr": training["lr"], "warmup": training["warmup"]}
    if run == REFERENCE:
        own = config["reference"]
    else:
        scale, _ = split_run(run)
        own = {} if scale is None else scales(config)[scale]
    return {**main, **{k: v for k, v in own.items() if k in main}}


def training_steps(config: Config, run: str) -> int:
    """Table 4: calling models train longer so all methods see as many true-token gradients; the step counts
    are the same at every size. The reference model's count is scaled alike, so that it keeps Table 4's ratio
    to the calling models (2.54M : 400k) in every configuration."""
    training = config["training"]
    if run == REFERENCE:
        steps = config["reference"]["steps"]
    else:
        method = split_run(run)[1]
        steps = training["steps"][method if method in STEP_GROUPS else "calling"]
    return max(1, round(steps * training["step_scale"]))


def training_settings(config: Config, run: str, seed: int) -> dict:
    """Every ``TrainConfig`` value of one run (:class:`lacy.training.TrainConfig`), as ``lacy train`` takes
    them; Snakemake tracks them as params, so it reruns exactly the runs whose settings change."""
    size = model_size(config, run)
    training = config["training"]
    return {
        "method": "baseline" if run == REFERENCE else split_run(run)[1],
        "preset": size["preset"],
        "steps": training_steps(config, run),
        "lr": size["lr"],
        "warmup": size["warmup"],
        "context": config["model"]["context"],
        "batch_size": size["batch_size"],
        "grad_accum": size["grad_accum"],
        "weight_decay": training["weight_decay"],
        "grad_clip": training["grad_clip"],
        "call_rate": training["call_rate"],
        "ignore_rate": training["ignore_rate"],
        "precision": training["precision"],
        "seed": seed,
        "checkpoint_every": training["checkpoint_every"],
        "log_every": training["log_every"],
        "compile": training["compile"],
    }


def training_priority(run: str) -> int:
    """Critical path first: the reference model, which Rho-1 and spaCy+Refloss wait for, then those two, then
    the other trainings, ahead of the evaluations (Snakemake's default priority 0). Only the order changes."""
    method = split_run(run)[1]
    return 3 if method == REFERENCE else 2 if method in REFERENCE_METHODS else 1


def training_processes(config: Config) -> int:
    """Training processes of one run: one per GPU over all nodes, one on CPU."""
    return max(1, config["training"]["gpus_per_node"]) * config["training"]["nodes"]


def training_launcher(config: Config) -> str:
    """python on CPU or one GPU; torchrun for several GPUs, under srun across several nodes."""
    gpus, nodes = config["training"]["gpus_per_node"], config["training"]["nodes"]
    if gpus <= 1 and nodes == 1:
        return "python"
    if nodes == 1:
        return f"torchrun --standalone --nproc_per_node {gpus}"
    # --overlap: the SLURM executor already runs this job's command inside a job step (srun -n1)
    return (f"srun --overlap --ntasks-per-node 1 torchrun --nnodes {nodes} --nproc_per_node {gpus} --rdzv_backend c10d"
            " --rdzv_endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500")


def check_batch_split(config: Config) -> None:
    """Fail at start-up, not hours into a SLURM job: every batch must split over GPUs x accumulation steps."""
    processes = training_processes(config)
    for run in [REFERENCE] + [scaled_run(scale, "baseline") for scale in [None] + scale_names(config)]:
        size = model_size(config, run)
        if size["batch_size"] % (size["grad_accum"] * processes):
            raise ValueError(f"{run}: batch size {size['batch_size']} does not split into grad_accum "
                             f"{size['grad_accum']} x {processes} processes (training.gpus_per_node x nodes)")


def equal_steps_methods(config: Config) -> list[str]:
    """Figure 10 (§C.2): main-size runs that train longer than the calling models and are also evaluated at the
    calling models' step count (not the acceptability study's run, whose training exports its early model)."""
    return [m for m in LONGER_ABLATIONS if m in config["methods"]
            and training_steps(config, m) != training_steps(config, "lacy") and m != config["acceptability"]["run"]]


def equal_steps_fraction(config: Config, method: str) -> float:
    """The share of ``method``'s steps at which it has trained as many steps as a calling model."""
    return training_steps(config, "lacy") / training_steps(config, method)


# --- cluster size: no job asks SLURM for more than one node has ------------------------------------

def cluster_threads(config: Config, threads: int) -> int:
    """A CPU rule's threads, at most the CPUs of one node."""
    return max(1, min(threads, config["cluster"]["cpus"]))


def cluster_mem_mb(config: Config, mem_mb: int) -> int:
    """A CPU rule's memory, at most that of one node."""
    return min(mem_mb, config["cluster"]["mem_mb"])


def training_threads(config: Config) -> int:
    return max(1, config["training"]["gpus_per_node"]) * config["training"]["cpus_per_gpu"]


def model_job_mem_mb(config: Config) -> int:
    """Host memory of a one-GPU job that loads trained models (up to 1.3B parameters, 5 GB each in fp32)."""
    return config["training"]["mem_mb"] // max(1, config["training"]["gpus_per_node"])


def check_cluster_fits_training(config: Config) -> None:
    """Fail at start-up, not with a job that waits forever: a training job must fit on one node."""
    threads, cluster, mem_mb = training_threads(config), config["cluster"], config["training"]["mem_mb"]
    if threads > cluster["cpus"] or mem_mb > cluster["mem_mb"]:
        raise ValueError(f"a training job needs {threads} CPUs (training.gpus_per_node x cpus_per_gpu) and "
                         f"{mem_mb} MB (training.mem_mb), more than one node has: cluster.cpus "
                         f"{cluster['cpus']}, cluster.mem_mb {cluster['mem_mb']}")


def check(config: Config) -> None:
    """Every start-up check a schema cannot express."""
    scales(config)
    check_batch_split(config)
    check_cluster_fits_training(config)
    acceptability = config["acceptability"]
    if acceptability["run"] not in all_runs(config) or acceptability["seed"] not in config["seeds"]:
        raise ValueError(f"acceptability: run {acceptability['run']!r} seed {acceptability['seed']} is not trained "
                         f"here (runs: {', '.join(all_runs(config))}; seeds: {config['seeds']})")
    check_factscore_demos(config)


def check_factscore_demos(config: Config) -> None:
    """FactScore's judge (fact_precision.llm) needs its demonstrations (§B): ``fact_precision.demos``, or the ones
    its release keeps beside its Wikipedia database (``knowledge: *.db``)."""
    fact_precision = config["fact_precision"]
    if fact_precision["llm"] and not fact_precision["demos"] and not fact_precision["knowledge"].endswith(".db"):
        raise ValueError(f"fact_precision.demos: FactScore's judge (fact_precision.llm) needs its demonstrations; "
                         f"knowledge {fact_precision['knowledge']!r} is no FactScore database to find them beside")


# --- evaluation --------------------------------------------------------------------------------------

def fact_scorer(config: Config) -> str:
    """The paper's FactScore needs an LLM ("llm"); without one the stand-in "offline fact precision"."""
    return "llm" if config["fact_precision"]["llm"] else "offline"


def partners(config: Config) -> dict[str, dict]:
    """The cascade partners (§5.1, §A.5) by name."""
    return {p["name"]: p for p in config["cascade"]["partners"]}


def call_budget_of(method: str, call_rate: float) -> float:
    """The call budget a method is cascaded at: ``call_rate`` for every ``<CALL>``-trained method, 0 for the
    baseline, which §5.2 compares as "the baseline with no <CALL> augmentation": it never learnt the ``<CALL>``
    token, so it writes the whole biography alone."""
    return 0.0 if method == "baseline" else call_rate


def cascade_call_budget(config: Config, run: str) -> float:
    """The call budget a run is cascaded at (:func:`call_budget_of` its method): ``cascade.call_rate`` (§5.1: 22 %),
    0 for the baseline."""
    return call_budget_of(split_run(run)[1], config["cascade"]["call_rate"])


def partner_label(spec: dict) -> str:
    """A cascade partner's display name: its model, with "+ RAG" when it reads the subject's article (§A.5) and
    "(local)" when that runs in-process, as the cascade names it."""
    rag = spec.get("rag")
    return spec["model"] if rag is None else f"{spec['model']} + RAG" + ("" if rag["base_url"] else " (local)")


def partner_alone_partners(config: Config) -> list[str]:
    """The partners that also write whole biographies alone (the paper's reference bars: Llama-3.2-1B alone,
    Qwen3-32B + RAG alone), when ``cascade.partner_alone`` asks for them."""
    return list(partners(config)) if config["cascade"]["partner_alone"] else []


# --- figures and tables ------------------------------------------------------------------------------

def figure_partners(config: Config) -> dict[str, str | None]:
    """The cascade partners the figures show: the first configured one ("main": Llama-3.2-1B in the paper; the
    local RAG-prompted Gemma in the embedded default, its only partner) and the first RAG-prompted one besides it
    ("rag": Qwen3-32B + RAG, §A.5), or None where there is none."""
    names = [p["name"] for p in config["cascade"]["partners"]]
    rag = next((p["name"] for p in config["cascade"]["partners"][1:] if "rag" in p), None)
    return {"main": names[0], "rag": rag}


def scale_label(config: Config, scale: str | None) -> str:
    """Display name of a model size: the main one by its preset, an extra one (§C) by its config name."""
    return f"{config['model']['preset']} models" if scale is None else f"{scale} models"


def figure_scales(config: Config, name: str) -> list[str | None]:
    """The model sizes a figure draws: the main one, the first extra one, or both (Figure 13)."""
    spec = FIGURES[name]
    extra = scale_names(config)[:1]
    if spec.kind == "scales_factscore":
        return [None, *extra]
    return extra if spec.scale == "large" else [None]


def figure_runs(config: Config, name: str, scale: str | None) -> list[str]:
    """The runs of ``scale`` whose method figure or table ``name`` shows."""
    methods = (FIGURES[name] if name in FIGURES else TABLES[name]).methods
    return [r for r in runs(config, scale) if method_of(r) in methods]


def figure_unavailable_reason(config: Config, name: str) -> str | None:
    """Why this configuration cannot draw figure ``name`` (None: it can): a missing size, partner or method."""
    spec = FIGURES[name]
    scales_drawn = figure_scales(config, name)
    if not scales_drawn:
        return "no second model scale is configured (`scales`; the paper's 1.3B models, §C)"
    if figure_partners(config)[spec.partner] is None:
        return ("no RAG-prompted cascade partner is configured besides the first one (a further `cascade.partners` "
                "entry with `rag`, §A.5)")
    if spec.equal_steps and not equal_steps_methods(config):
        return "no method trains longer than the calling models (LaCy + Ignorefacts, LaCy + Ignore)"
    if ("validation" in spec.needs and "baseline" not in config["methods"]) or any(
            len(figure_runs(config, name, s)) < 2 for s in scales_drawn):
        return "fewer than two of its methods (or no baseline) are trained in this configuration"
    return None


def figures(config: Config) -> list[str]:
    """The results figures of :data:`lacy.figures.FIGURES` this configuration draws, in the paper's order."""
    return [name for name in FIGURES if figure_unavailable_reason(config, name) is None]


def not_built(config: Config) -> dict[str, str]:
    """The results figures this configuration cannot draw, each with the reason (the summary lists them)."""
    return {name: reason for name in FIGURES if (reason := figure_unavailable_reason(config, name))}


def tables(config: Config) -> list[str]:
    """The results tables this configuration writes: those with at least one of their methods."""
    return [name for name in TABLES if figure_runs(config, name, None)]


def figure_variants(config: Config, name: str) -> dict[str, str]:
    """Figure 10 reads the longer-trained ablations at the calling models' step count."""
    return {run: EQUAL_STEPS for run in equal_steps_methods(config)} if FIGURES[name].equal_steps else {}


def results_read(config: Config, name: str) -> list[dict]:
    """The results figure or table ``name`` reads, each as :func:`lacy.figures.result_path`'s arguments after the
    layout (kind, run, seed, partner, scorer, variant): every kind the figure needs (the validation losses of
    calling models only: a baseline has no call mask) of each run it draws, seed by seed."""
    if name in TABLES:
        kinds, partner, variants, scales_drawn = (TABLES[name].kind,), "", {}, [None]
    else:
        spec = FIGURES[name]
        kinds, partner = spec.needs, figure_partners(config)[spec.partner]
        variants, scales_drawn = figure_variants(config, name), figure_scales(config, name)
    return [{"kind": kind, "run": run, "seed": seed, "partner": partner, "scorer": fact_scorer(config),
             "variant": variants.get(run, "")}
            for scale in scales_drawn for run in figure_runs(config, name, scale) for kind in kinds
            if not (kind == "validation" and method_of(run) == "baseline") for seed in config["seeds"]]


def partners_alone_drawn(config: Config, name: str) -> list[str]:
    """The partners writing alone that figure ``name`` draws as reference lines: every one in Figures 2, 11 and 12
    (beside fact precision by the persons' split), Figure 13's own partner in Figure 13, none elsewhere."""
    kind = FIGURES[name].kind
    if kind == "overview":
        return partner_alone_partners(config)
    main = figure_partners(config)[FIGURES[name].partner]
    return [p for p in partner_alone_partners(config) if kind == "scales_factscore" and p == main]


#: What the summary (lacy.report) reads of each Table 1 run: leakage with its per-query outcomes, NLU, fact
#: precision and the cascade's call rates, and the validation losses of a calling model beside a baseline.
SUMMARY_KINDS = ("leakage", "leakage_generations", "nlu", "fact_precision", "cascade")


def summary_results(config: Config) -> list[dict]:
    """The results the summary reads, as :func:`results_read` gives a figure's: :data:`SUMMARY_KINDS` of each of
    Table 1's runs with the main partner, the validation losses of its calling runs and of the reference model when
    the run has a baseline to compare them with."""
    partner, scorer, seeds = figure_partners(config)["main"], fact_scorer(config), config["seeds"]
    has_baseline = "baseline" in config["methods"]
    runs = figure_runs(config, "table1", None)
    read = [(kind, run) for run in runs for kind in SUMMARY_KINDS + (
        ("validation",) if run != "baseline" and has_baseline else ())]
    read += [("validation", REFERENCE)] if trains_reference(config) and has_baseline else []
    return [{"kind": kind, "run": run, "seed": seed, "partner": partner, "scorer": scorer, "variant": ""}
            for kind, run in read for seed in seeds]


def figure_context(config: Config, name: str) -> dict:
    """What figure or table ``name`` (or the summary, which reads Table 1's runs) is drawn from, as
    :func:`lacy.figures.make_context` takes it: the runs of each size it shows by display label, the seeds, the
    fact-precision scorer, the results variants of Figure 10, and the cascade partners by role with their labels."""
    figure_partners_ = {role: p for role, p in figure_partners(config).items() if p is not None}
    scales_drawn = figure_scales(config, name) if name in FIGURES else [None]
    return {
        "runs": {scale_label(config, s): figure_runs(config, name, s) for s in scales_drawn},
        "seeds": list(config["seeds"]),
        "scorer": fact_scorer(config),
        "variants": figure_variants(config, name) if name in FIGURES else {},
        "partners": figure_partners_,
        "partner_labels": {role: partner_label(partners(config)[p]) for role, p in figure_partners_.items()},
    }


def figure4_runs(config: Config) -> list[str]:
    """Figure 4: the main-size runs of the methods the paper shows (none without a plain cascade partner)."""
    if figure_partners(config)["main"] is None:
        return []
    return [run for method in FIGURE4_METHODS for run in runs(config) if method_of(run) == method]


# --- accuracy vs acceptability (§3, §A.1) ------------------------------------------------------------

#: The studied run's checkpoints: after ``acceptability.early_fraction`` of its steps, and its final model.
ACCEPTABILITY_CHECKPOINTS = ("early", "final")


def acceptability_figures(config: Config) -> dict[str, tuple[str, str]]:
    """Figures 3, 8 and 9: each one's checkpoint and title, as its caption in the paper says."""
    early = config["acceptability"]["early_fraction"]
    return {
        "fig3": ("final", "Figure 3: accuracy vs acceptability by token loss, final checkpoint"),
        "fig8": ("early", f"Figure 8: accuracy vs acceptability after {early:.0%} of the steps "
                          "(paper: 10B of ~50B tokens)"),
        "fig9": ("final", "Figure 9: accuracy vs acceptability at the end of training (paper: 50B tokens, as Figure 3)"),
    }


def acceptability_label(config: Config, checkpoint: str) -> str:
    """How an acceptability figure names the judged checkpoint of the studied run (§3)."""
    return f"{config['acceptability']['run']} seed {config['acceptability']['seed']}, {checkpoint} checkpoint"


# --- the cascade partners writing alone, as the figures and the summary show them ----------------------

def partner_alone_context(config: Config) -> dict[str, dict[str, str]]:
    """Each partner writing alone (:func:`partner_alone_partners`) as :func:`lacy.figures.make_context` takes it:
    its display name (:func:`partner_label`, "alone") and the partner alone of the paper it stands in
    for (a key of ``reported.yaml``'s ``partner_alone_factscore``: Qwen3-32B + RAG for a RAG-prompted partner,
    Llama-3.2-1B for a plain one)."""
    specs = partners(config)
    return {name: {"label": f"{partner_label(specs[name])} alone",
                   "paper": "Qwen3-32B + RAG" if "rag" in specs[name] else "Llama-3.2-1B"}
            for name in partner_alone_partners(config)}
