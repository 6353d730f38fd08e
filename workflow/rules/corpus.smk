# Stage 1: the pretraining corpus, split 90/10 by document and sharded (§5.1, §A.2).


if config["data"]["source"] == "dwiki":

    rule download_dwiki:
        output:
            directory("resources/dwiki"),
        params:
            repo_id=config["data"]["dwiki"]["repo_id"],
            revision=config["data"]["dwiki"]["revision"],
        log:
            "logs/corpus/download_dwiki.log",
        conda:
            "../../envs/data.yaml"
        resources:
            runtime=600,
            mem_mb=cluster_mem_mb(8000),
        shell:
            "python -m lacy download-dwiki --repo-id {params.repo_id} --revision {params.revision}"
            " --out {output} 2> {log}"

    rule corpus_dwiki:
        input:
            rules.download_dwiki.output,
        output:
            shards=expand(CORPUS_SHARD, split=SPLITS, shard=SHARDS),
            stats="results/corpus/corpus.json",
        params:
            out=subpath(output.stats, parent=True),
            shards=config["data"]["shards"],
            validation_fraction=config["data"]["validation_fraction"],
            seed=config["data"]["split_seed"],
            max_documents=config["data"]["max_documents"] or 0,
        log:
            "logs/corpus/corpus_dwiki.log",
        conda:
            "../../envs/data.yaml"
        resources:
            runtime=600,
            mem_mb=cluster_mem_mb(16000),
        shell:
            "python -m lacy corpus-dwiki --raw {input} --out {params.out} --shards {params.shards}"
            " --validation-fraction {params.validation_fraction} --seed {params.seed}"
            " --max-documents {params.max_documents} 2> {log}"

else:

    rule corpus_wiki_offline:
        output:
            shards=expand(CORPUS_SHARD, split=SPLITS, shard=SHARDS),
            stats="results/corpus/corpus.json",
        params:
            out=subpath(output.stats, parent=True),
            shards=config["data"]["shards"],
            validation_fraction=config["data"]["validation_fraction"],
            seed=config["data"]["split_seed"],
            max_documents=config["data"]["max_documents"] or 0,
            documents=config["data"]["documents"],
        log:
            "logs/corpus/corpus_wiki_offline.log",
        conda:
            "../../envs/data.yaml"
        shell:
            "python -m lacy corpus wiki-offline --out {params.out} --shards {params.shards}"
            " --validation-fraction {params.validation_fraction} --seed {params.seed}"
            " --max-documents {params.max_documents} --documents {params.documents} 2> {log}"
