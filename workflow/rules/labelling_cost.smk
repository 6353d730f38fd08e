# Stage 8: Table 2, the labelling overhead of each method on this run's hardware (§5.6): LaCy's from the timing
# the annotation jobs record, Rho-1's by timing the reference model's per-token losses on this run's device.


rule labelling_cost_rho1:
    input:
        reference=expand(rules.train.output.model, method=REFERENCE, seed=config["seeds"][0]),
        annotation=annotation_shard_stats(),
    output:
        "results/labelling_cost/rho1.json",
    params:
        reference=subpath(lambda wildcards, input: input.reference[0], parent=True),
        annotation=subpath(lambda wildcards, input: input.annotation[0], ancestor=2),
        batch_size=config["evaluation"]["batch_size"],
        batches=config["evaluation"]["labelling_cost_batches"],
        precision=TRAIN["precision"],
    log:
        "logs/labelling_cost/rho1.log",
    conda:
        "../../envs/training.yaml"
    threads: TRAIN["cpus_per_gpu"]
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=MODEL_JOB_MEM_MB,
        runtime=60,
    shell:
        "python -m lacy labelling-cost rho1 --reference {params.reference} --annotation {params.annotation}"
        " --batch-size {params.batch_size} --batches {params.batches} --precision {params.precision}"
        " --threads {threads} --out {output} 2> {log}"


rule labelling_cost_table:
    input:
        unpack(labelling_cost_inputs),
    output:
        csv="results/tables/table2.csv",
        md=report("results/tables/table2.md", caption="../report/table2.rst", category="Tables",
                  labels={"table": "table2"}),
    params:
        llm_judge_labels=HAS_LLM_JUDGE_LABELS,
    log:
        "logs/labelling_cost/table2.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/labelling_cost_table.py"
