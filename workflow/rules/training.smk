# Stage 4: pretrain the reference model, then one SLM per method and seed (§4, §5.1, §A.4, Tables 4-5), at the
# main size and at each extra scale of config `scales` (§C: results/models/1.3b/{method}/seed{seed}/).
# Rolling checkpoints live in results/checkpoints/, outside the declared outputs, which Snakemake deletes
# when a job fails: a job killed by its SLURM time limit resumes there on retry. The run the acceptability
# study needs also exports an early checkpoint (`train_with_early_export`, workflow/rules/acceptability.smk).


rule train:
    input:
        unpack(training_inputs),
    output:
        model="results/models/{method}/seed{seed}/model.safetensors",
        config="results/models/{method}/seed{seed}/config.json",
        summary="results/models/{method}/seed{seed}/train.json",
        metrics="results/models/{method}/seed{seed}/metrics.jsonl",
    params:
        launcher=plan.training_launcher(config),
        annotation=subpath(lambda wildcards, input: input.annotation[0], ancestor=2),
        tokenizer=subpath(input.tokenizer, parent=True),
        labels=training_label_options,
        out=subpath(output.model, parent=True),
        run_dir="results/checkpoints/{method}/seed{seed}",
        torch_threads=TRAIN["cpus_per_gpu"],
        settings=training_settings,
        export="",
    log:
        "logs/train/{method}/seed{seed}.log",
    conda:
        "../../envs/training.yaml"
    threads: plan.training_threads(config)
    priority: lambda wildcards: plan.training_priority(wildcards.method)
    resources:
        gpu=TRAIN["gpus_per_node"] * TRAIN["nodes"],  # the SLURM executor's --gpus is per job, not per node
        nodes=TRAIN["nodes"],
        mem_mb=TRAIN["mem_mb"],
        runtime=TRAIN["runtime_minutes"],
    shell:
        "{params.launcher} -m lacy train --annotation {params.annotation} --tokenizer {params.tokenizer}"
        " {params.labels} --out {params.out} --run-dir {params.run_dir} --threads {params.torch_threads}"
        " {params.settings} {params.export} 2> {log}"
