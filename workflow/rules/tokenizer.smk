# Stage 2: SentencePiece on the training split, plus one <CALL> id (§5.1, Table 3: 32,000 + 1).


rule tokenizer:
    input:
        corpus=corpus_stats(),
        shards=corpus_shards("train"),
    output:
        model="results/tokenizer/tokenizer.model",
        meta="results/tokenizer/lacy_tokenizer.json",
    params:
        corpus=subpath(input.corpus, parent=True),
        out=subpath(output.model, parent=True),
        vocab_size=config["tokenizer"]["vocab_size"],
        model_type=config["tokenizer"]["model_type"],
        max_documents=config["tokenizer"]["max_documents"] or 0,
        seed=config["tokenizer"]["seed"],
        threads=config["tokenizer"]["threads"],  # the model depends on them: never the cores a job is granted
    log:
        "logs/tokenizer.log",
    conda:
        "../../envs/data.yaml"
    threads: cluster_threads(config["tokenizer"]["threads"])
    resources:
        mem_mb=lambda wildcards, attempt: cluster_mem_mb(16000 * attempt),
        runtime=240,
    shell:
        "python -m lacy tokenizer train --corpus {params.corpus} --out {params.out}"
        " --vocab-size {params.vocab_size} --model-type {params.model_type}"
        " --max-documents {params.max_documents} --seed {params.seed} --threads {params.threads} 2> {log}"
