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
        context=lambda wildcards: plan.figure_context(config, wildcards.figure),
        layout=result_layout(),
        alone=plan.partner_alone_context(config),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/figure.py"


rule figure4:
    input:
        **figure4_generations(),
    output:
        pdf="results/figures/fig4.pdf",
        png=report("results/figures/fig4.png", caption="../report/fig4.rst", category="Figures",
                   labels={"figure": "fig4"}),
    params:
        partner=plan.partner_label(PARTNERS[FIGURE_PARTNERS["main"]]),
    log:
        "logs/figures/fig4.log",
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/figure4.py"


rule table:
    input:
        results=lambda wildcards: results_files(plan.results_read(config, wildcards.table)),
        tasks=lambda wildcards: rules.nlu_local_tasks.output[0] if TABLES[wildcards.table].kind == "nlu" and any(
            t.startswith("bigbench_local_") for t in config["nlu"]["tasks"]) else [],
    output:
        csv="results/tables/{table}.csv",
        md=report("results/tables/{table}.md", caption="../report/table.rst", category="Tables",
                  labels={"table": "{table}"}),
    params:
        context=lambda wildcards: plan.figure_context(config, wildcards.table),
        layout=result_layout(),
        caption=lambda wildcards: TABLES[wildcards.table].caption,
    log:
        "logs/figures/{table}.log",
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/table.py"


rule summary:
    input:
        unpack(summary_inputs),
    output:
        report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    params:
        context=plan.figure_context(config, "table1"),  # the summary reads Table 1's runs
        layout=result_layout(),
        alone=plan.partner_alone_context(config),
        fluent_loss_nats=config["evaluation"]["fluent_loss_nats"],
        validation_call_rate=config["evaluation"]["validation_call_rate"],
        not_built=plan.not_built(config),
    log:
        "logs/figures/summary.log",
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/summary.py"
