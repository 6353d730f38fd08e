# Stage 9: every results figure and table of the paper, drawn from this run beside the paper's numbers
# (lacy/reported.yaml), and results/summary.md, the claim-by-claim reading of the run.
# `snakemake --report results/report.html` collects the figures with their captions.


rule figure:
    input:
        lambda wildcards: figure_inputs(wildcards.figure),
    output:
        pdf="results/figures/{figure}.pdf",
        png=report("results/figures/{figure}.png", caption="../report/figure.rst", category="Figures",
                   labels={"figure": "{figure}"}),
    params:
        options=lambda wildcards: figure_options(wildcards.figure, plan.figure_scales(config, wildcards.figure)),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy figure {wildcards.figure} --out {output.pdf} {params.options} 2> {log}"


rule figure4:
    input:
        **figure4_generations(),
    output:
        pdf="results/figures/fig4.pdf",
        png=report("results/figures/fig4.png", caption="../report/fig4.rst", category="Figures",
                   labels={"figure": "fig4"}),
    params:
        generations=lambda wildcards, input: " ".join(f"--generations {run}={path}" for run, path in input.items()),
        partner=PARTNERS[FIGURE_PARTNERS["main"]]["model"] if FIGURE_PARTNERS["main"] else None,
    log:
        "logs/figures/fig4.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy figure4 {params.generations} --partner-label {params.partner:q} --out {output.pdf} 2> {log}"


rule table:
    input:
        results=lambda wildcards: [str(result_path("results", TABLES[wildcards.table].kind, run, seed))
                                   for run in plan.figure_runs(config, wildcards.table, None) for seed in config["seeds"]],
        tasks=lambda wildcards: rules.nlu_local_tasks.output if TABLES[wildcards.table].kind == "nlu" and any(
            t.startswith("bigbench_local_") for t in config["nlu"]["tasks"]) else [],
    output:
        csv="results/tables/{table}.csv",
        md=report("results/tables/{table}.md", caption="../report/table.rst", category="Tables",
                  labels={"table": "{table}"}),
    params:
        options=lambda wildcards: figure_options(wildcards.table, [None]),
        tasks=lambda wildcards, input: f"--tasks-dir {input.tasks}" if input.tasks else "",
        caption=lambda wildcards: TABLES[wildcards.table].caption,
    log:
        "logs/figures/{table}.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy table {wildcards.table} --out {output.csv} {params.tasks} {params.options} 2> {log}"


rule summary:
    input:
        unpack(summary_inputs),
    output:
        report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    params:
        options=figure_options("table1", [None]),
        not_built=" ".join(f"--not-built {shlex.quote(f'{name}: {reason}')}"
                           for name, reason in plan.not_built(config).items()),
    log:
        "logs/figures/summary.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy summary --out {output} --annotation-summary {input.annotation} --entities {input.entities}"
        " --table2 {input.table2}"
        " {params.options} {params.not_built} 2> {log}"
