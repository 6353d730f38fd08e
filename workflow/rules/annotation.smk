# Stage 3: spaCy fact annotation (§A.2.1): word classes fact / grammatical / other, inherited by
# SentencePiece tokens; one job per corpus shard, written as memory-mapped token and label arrays.


rule annotate_shard:
    input:
        corpus=CORPUS_SHARD,
        tokenizer=rules.tokenizer.output.model,
    output:
        tokens="results/annotation/{split}/part-{shard}.tokens.npy",
        labels="results/annotation/{split}/part-{shard}.labels.npy",
        docs="results/annotation/{split}/part-{shard}.docs.npy",
        stats="results/annotation/{split}/part-{shard}.json",
    params:
        tokenizer=subpath(input.tokenizer, parent=True),
        out_prefix=subpath(output.stats, strip_suffix=".json"),
        spacy_model=config["annotation"]["spacy_model"],
        batch_size=config["annotation"]["batch_size"],
        max_chars=config["annotation"]["max_chars"],
    log:
        "logs/annotation/{split}/part-{shard}.log",
    conda:
        "../../envs/annotation.yaml"
    threads: cluster_threads(config["annotation"]["n_process"])
    resources:
        mem_mb=lambda wildcards, threads: cluster_mem_mb(2000 + 1500 * threads),
        runtime=240,
    shell:
        "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lacy annotate shard --corpus {input.corpus} --tokenizer {params.tokenizer}"
        " --out-prefix {params.out_prefix}"
        " --spacy-model {params.spacy_model} --n-process {threads} --batch-size {params.batch_size}"
        " --max-chars {params.max_chars} 2> {log}"


rule annotation_summary:
    input:
        annotation_shard_stats(),
    output:
        summary="results/annotation/summary.json",
    log:
        "logs/annotation/summary.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m lacy annotate summary --out {output.summary} {input} 2> {log}"
