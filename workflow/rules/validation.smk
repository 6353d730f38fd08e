# Stage 5: validation call / non-call losses of every calling model, and of the baseline on its mask
# (§5.3, §A.4.3, Figures 5 and 19-24). A run of an extra scale (§C) is compared with that scale's baseline.


rule validation_losses:
    input:
        model=rules.train.output.model,
        baseline=lambda wildcards: expand(rules.train.output.model, method=plan.baseline_run(wildcards.method), seed=wildcards.seed),
        annotation=annotation_shard_stats(),
    output:
        "results/validation_losses/{method}/seed{seed}.json",
    params:
        model=subpath(input.model, parent=True),
        baseline=subpath(lambda wildcards, input: input.baseline[0], parent=True),
        annotation=subpath(lambda wildcards, input: input.annotation[0], ancestor=2),
        method=lambda wildcards: plan.split_run(wildcards.method)[1],
        rate=config["evaluation"]["validation_call_rate"],
        batch_size=config["evaluation"]["batch_size"],
        max_batches=config["evaluation"]["validation_batches"],
    log:
        "logs/validation_losses/{method}/seed{seed}.log",
    conda:
        "../../envs/training.yaml"
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=MODEL_JOB_MEM_MB,
        runtime=120,
    shell:
        "python -m lacy validation-losses evaluate --model {params.model} --baseline {params.baseline}"
        " --annotation {params.annotation} --method {params.method}"
        " --seed {wildcards.seed} --rate {params.rate} --batch-size {params.batch_size}"
        " --max-batches {params.max_batches} --out {output} 2> {log}"


rule validation_losses_table:
    input:
        expand(rules.validation_losses.output[0], method=CALLING_METHODS, seed=config["seeds"]),
    output:
        "results/tables/validation_losses.csv",
    log:
        "logs/validation_losses/table.log",
    conda:
        "../../envs/training.yaml"
    shell:
        "python -m lacy validation-losses table --out {output} {input} 2> {log}"


use rule validation_losses_table as validation_losses_table_of_scale with:
    input:
        lambda wildcards: expand(rules.validation_losses.output[0],
                                 method=[f"{wildcards.scale}/{method}" for method in CALLING_METHODS], seed=config["seeds"]),
    output:
        "results/tables/{scale}/validation_losses.csv",
    log:
        "logs/validation_losses/{scale}/table.log",
