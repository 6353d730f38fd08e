# Which paper figures and tables this configuration builds, and from which result files (workflow/rules/figures.smk).

from lacy.figures import EQUAL_STEPS, FIGURE4_METHODS, FIGURES, TABLES, method_of, result_path

#: The cascade partners the figures show: the first plain partner (Llama-3.2-1B in the paper) and the first
#: RAG-prompted one (Qwen3-32B + RAG, §A.5), where configured.
FIGURE_PARTNERS = {
    role: next((p["name"] for p in CASCADE["partners"] if ("rag" in p) == (role == "rag")), None)
    for role in ("main", "rag")
}
#: Display names of the model scales: the main one by its preset, extra ones (§C) by their config name.
SCALE_LABELS = {None: f"{config['model']['preset']} models", **{s: f"{s} models" for s in SCALE_NAMES}}


wildcard_constraints:
    figure="|".join(FIGURES),
    table="|".join(TABLES),


def figure_scales(name):
    """The model scales a figure draws: the main one, the first extra one, or both (Figure 13)."""
    spec = FIGURES[name]
    if spec.kind == "scales_factscore":
        return [None, *SCALE_NAMES[:1]]
    if spec.scale == "large":
        return SCALE_NAMES[:1]
    return [None]


def figure_runs(name, scale):
    """The runs of ``scale`` whose method the figure shows."""
    methods = (FIGURES[name] if name in FIGURES else TABLES[name]).methods
    return [r for r in runs(scale) if method_of(r) in methods]


def figure_available(name):
    """Whether this configuration has what figure ``name`` draws (scale, partner, at least two methods)."""
    spec = FIGURES[name]
    scales = figure_scales(name)
    if not scales or FIGURE_PARTNERS[spec.partner] is None:
        return False
    if "validation" in spec.needs and "baseline" not in config["methods"]:
        return False
    return all(len(figure_runs(name, s)) >= 2 for s in scales)


def figure_variants(name):
    """Figure 10 reads the longer-trained ablations at the calling models' step count."""
    return {run: EQUAL_STEPS for run in EQUAL_STEPS_METHODS} if FIGURES[name].equal_steps else {}


def figure_inputs(name):
    spec = FIGURES[name]
    partner = FIGURE_PARTNERS[spec.partner]
    variants = figure_variants(name)
    files = []
    for scale in figure_scales(name):
        for run in figure_runs(name, scale):
            for kind in spec.needs:
                if kind == "validation" and method_of(run) == "baseline":
                    continue
                files += [str(result_path("results", kind, run, seed, partner, FACT_SCORER, variants.get(run, "")))
                          for seed in config["seeds"]]
    return files


def figure_options(name, scales):
    options = [f"--scale {shlex.quote('='.join([SCALE_LABELS[s], ','.join(figure_runs(name, s))]))}" for s in scales]
    options.append("--seeds " + " ".join(str(s) for s in config["seeds"]))
    options.append(f"--scorer {FACT_SCORER}")
    options += [f"--variant {run}={suffix}" for run, suffix in figure_variants(name).items()] if name in FIGURES else []
    for role, partner in FIGURE_PARTNERS.items():
        if partner is not None:
            label = shlex.quote(f"{role}={PARTNERS[partner]}")
            options.append(f"--partner {role}={partner} --partner-label {label}")
    return " ".join(options)


def figure_targets():
    """The figures and tables this configuration can build (the summary lists the others and why not)."""
    figures = [f"results/figures/{name}.pdf" for name in FIGURES if figure_available(name)]
    figures += ["results/figures/fig4.pdf"] if figure4_generations() else []
    tables = [f"results/tables/{name}.csv" for name in TABLES if len(figure_runs(name, None)) >= 1]
    return figures + tables + ["results/summary.md"]


def figure_unavailable_reason(name):
    spec = FIGURES[name]
    if not figure_scales(name):
        return "no second model scale is configured (`scales`; the paper's 1.3B models, §C)"
    if FIGURE_PARTNERS[spec.partner] is None:
        return "no RAG-prompted cascade partner is configured (a `cascade.partners` entry with `rag`, §A.5)"
    return "fewer than two of its methods (or no baseline) are trained in this configuration"


def summary_inputs(wildcards):
    main_runs = figure_runs("table1", None)
    partner = FIGURE_PARTNERS["main"]
    files = []
    for run in main_runs:
        kinds = ["leakage", "nlu"] + (["fact_precision", "cascade"] if partner else [])
        kinds += ["validation"] if run != "baseline" and "baseline" in config["methods"] else []
        files += [str(result_path("results", k, run, s, partner, FACT_SCORER)) for k in kinds for s in config["seeds"]]
    if REFERENCE_METHODS & set(config["methods"]) and "baseline" in config["methods"]:
        files += [str(result_path("results", "validation", REFERENCE, s)) for s in config["seeds"]]
    return {"annotation": rules.annotation_summary.output.summary, "entities": rules.evaluation_entities.output[0],
            "table2": rules.labelling_cost_table.output.csv, "results": files}



def figure4_generations():
    """Figure 4: the main partner's generations of the methods the paper shows, first seed, main scale."""
    partner = FIGURE_PARTNERS["main"]
    if partner is None:
        return {}
    return {run: f"results/cascade/{partner}/{run}/seed{config['seeds'][0]}.jsonl"
            for method in FIGURE4_METHODS for run in runs(None) if method_of(run) == method}
