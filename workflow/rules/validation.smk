# Stage 5: validation call / non-call losses of every calling model, and of the baseline on its mask
# (§5.3, §A.4.3, Figures 5 and 19-24).


rule validation_losses:
    input:
        model=rules.train.output.model,
        baseline="results/models/baseline/seed{seed}/model.safetensors",
        annotation=annotation_shard_stats(),
    output:
        "results/validation_losses/{method}/seed{seed}.json",
    params:
        rate=config["evaluation"]["validation_call_rate"],
        batch_size=config["evaluation"]["batch_size"],
        max_batches=config["evaluation"]["validation_batches"],
    log:
        "logs/validation_losses/{method}/seed{seed}.log",
    conda:
        "../../envs/training.yaml"
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=TRAIN["mem_mb"] // max(1, TRAIN["gpus_per_node"]),
        runtime=120,
    shell:
        "python -m lacy validation-losses evaluate --model $(dirname {input.model})"
        " --baseline $(dirname {input.baseline}) --annotation results/annotation --method {wildcards.method}"
        " --seed {wildcards.seed} --rate {params.rate} --batch-size {params.batch_size}"
        " --max-batches {params.max_batches} --out {output} 2> {log}"


rule validation_losses_table:
    input:
        expand(
            "results/validation_losses/{method}/seed{seed}.json",
            method=CALLING_METHODS,
            seed=config["seeds"],
        ),
    output:
        "results/tables/validation_losses.csv",
    log:
        "logs/validation_losses/table.log",
    conda:
        "../../envs/training.yaml"
    shell:
        "python -m lacy validation-losses table --out {output} {input} 2> {log}"
