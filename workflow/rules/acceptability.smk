# Stage 8: accuracy vs acceptability (§3, §A.1; Figures 3, 8 and 9). For one validation batch, the greedy and
# the true next token at every position, with the token's loss and spaCy class, judged for acceptability by an
# LLM with the §A.1 prompt; then accuracy and acceptability by loss quantile, fact vs non-fact.
# The studied run is `acceptability.run` (the paper: a model of standard next-token training, i.e. our
# baseline), at its final checkpoint (Figures 3 and 9) and after `early_fraction` of its steps (Figure 8:
# 10B of ~50B tokens), which that run's training job exports as a declared output.


use rule train as train_with_early_export with:
    output:
        **rules.train.output,
        early=directory("results/models/{method}/seed{seed}/early"),
    params:
        export=lambda wildcards, output: command_line_options({
            "export_at_fraction": ACCEPTABILITY["early_fraction"], "export_dir": output.early}),
    wildcard_constraints:
        method=re.escape(ACCEPTABILITY["run"]),
        seed=str(ACCEPTABILITY["seed"]),


ruleorder: train_with_early_export > train


rule acceptability_record:
    input:
        # the run's final model, or the early checkpoint its training exported
        model=lambda wildcards: (
            rules.train.output.summary if wildcards.ckpt == "final" else rules.train_with_early_export.output.early
        ).format(method=ACCEPTABILITY["run"], seed=ACCEPTABILITY["seed"]),
        annotation=annotation_shard_stats(),
    output:
        "results/acceptability/{ckpt}/positions.jsonl",
    params:
        model=lambda wildcards, input: input.model if wildcards.ckpt == "early" else subpath(input.model, parent=True),
        annotation=subpath(lambda wildcards, input: input.annotation[0], ancestor=2),
        batch_size=ACCEPTABILITY["batch_size"],
        context_tokens=ACCEPTABILITY["context_tokens"],
        seed=ACCEPTABILITY["sample_seed"],
    wildcard_constraints:
        ckpt="|".join(CHECKPOINTS),
    log:
        "logs/acceptability/{ckpt}_record.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=MODEL_JOB_MEM_MB,
        runtime=120,
    shell:
        "python -m lacy acceptability record --model {params.model} --annotation {params.annotation} --out {output}"
        " --batch-size {params.batch_size} --context-tokens {params.context_tokens} --seed {params.seed} 2> {log}"


rule acceptability_judge:
    input:
        positions=expand(rules.acceptability_record.output[0], ckpt=CHECKPOINTS),
    output:
        judged=expand("results/acceptability/{ckpt}/judged.jsonl", ckpt=CHECKPOINTS),
        summary=expand("results/acceptability/{ckpt}/summary.json", ckpt=CHECKPOINTS),
    params:
        llm=ACCEPTABILITY["judge"]["llm"],
        cache=LLM_CACHE,
        name=ACCEPTABILITY["judge"]["name"],
        scoring=ACCEPTABILITY["judge"]["scoring"],
        workers=ACCEPTABILITY["judge"]["workers"],
        max_judged=ACCEPTABILITY["max_judged"],
        seed=ACCEPTABILITY["sample_seed"],
    log:
        "logs/acceptability/judge.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        mem_mb=cluster_mem_mb(16000),
        runtime=720,  # the paper's ~10^5 judgements; a retry resumes from the answer cache
    script:
        "../scripts/acceptability_judge.py"


rule acceptability_figure:
    input:
        judged=lambda wildcards: rules.acceptability_judge.output.judged[
            CHECKPOINTS.index(ACCEPTABILITY_FIGURES[wildcards.fig][0])
        ],
    output:
        pdf="results/figures/{fig}.pdf",
        png=report("results/figures/{fig}.png", caption="../report/acceptability.rst", category="Figures",
                   labels={"figure": "{fig}"}),
        csv="results/figures/{fig}.csv",
    params:
        label=lambda wildcards: plan.acceptability_label(config, ACCEPTABILITY_FIGURES[wildcards.fig][0]),
        title=lambda wildcards: ACCEPTABILITY_FIGURES[wildcards.fig][1],
        bins=ACCEPTABILITY["bins"],
    wildcard_constraints:
        fig="|".join(ACCEPTABILITY_FIGURES),
    log:
        "logs/acceptability/{fig}.log",
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/acceptability_figure.py"

