# Stage 3b (paper configuration only): LMLM's LLM-judge annotations converted to per-token CALL labels
# aligned with the annotation stage's tokens (§A.2.2).


if HAS_LLM_JUDGE_LABELS:

    rule llm_judge_labels:
        input:
            corpus=CORPUS_SHARD,
            tokenizer=rules.tokenizer.output.model,
            tokens=rules.annotate_shard.output.tokens,
        output:
            calls="results/llm_judge/{split}/part-{shard}.calls.npy",
            stats="results/llm_judge/{split}/part-{shard}.json",
        params:
            tokenizer=subpath(input.tokenizer, parent=True),
        log:
            "logs/llm_judge/{split}/part-{shard}.log",
        conda:
            "../../envs/data.yaml"
        resources:
            mem_mb=4000,
            runtime=120,
        shell:
            "python -m lacy llm-judge labels --corpus {input.corpus} --tokenizer {params.tokenizer}"
            " --tokens {input.tokens} --out {output.calls} --stats {output.stats} 2> {log}"

    rule llm_judge_summary:
        input:
            llm_judge_shard_stats(),
        output:
            summary="results/llm_judge/summary.json",
        log:
            "logs/llm_judge/summary.log",
        conda:
            "../../envs/data.yaml"
        shell:
            "python -m lacy llm-judge summary --out {output.summary} {input} 2> {log}"
