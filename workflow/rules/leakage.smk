# Stage 7: fact leakage with calls disabled (§5.3, Figure 2-right) and NLU without cascade (§5.5,
# Tables 1 and 6), both on every trained model.


rule bigbench_tasks:
    output:
        qa_wikidata="resources/bigbench/qa_wikidata/task.json",
        social_iqa="resources/bigbench/social_iqa/task.json",
        physical_intuition="resources/bigbench/physical_intuition/task.json",
    log:
        "logs/leakage/bigbench_extract.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy bigbench extract --out resources/bigbench 2> {log}"


rule leakage_qa_wikidata:
    input:
        rules.bigbench_tasks.output.qa_wikidata,
    output:
        "results/leakage/queries/bigbench_qa_wikidata.jsonl",
    log:
        "logs/leakage/queries_qa_wikidata.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy leakage build-qa-wikidata --bigbench resources/bigbench --out {output} 2> {log}"


rule leakage_person_cloze:
    input:
        corpus="results/corpus/corpus.json",
    output:
        "results/leakage/queries/corpus_person_cloze.jsonl",
    log:
        "logs/leakage/queries_person_cloze.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy leakage build-cloze --corpus $(dirname {input.corpus}) --split train --out {output} 2> {log}"


rule leakage_popqa_download:
    output:
        "resources/popqa/popqa_long_tail.jsonl",
    log:
        "logs/leakage/popqa_download.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy leakage download-popqa --out {output} 2> {log}"


rule leakage_popqa_rephrase:
    input:
        rules.leakage_popqa_download.output[0],
    output:
        "results/leakage/queries/popqa_long_tail.jsonl",
    params:
        llm=llm_options(config["leakage"]["rephrase_llm"]),
    log:
        "logs/leakage/popqa_rephrase.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy leakage rephrase-popqa --input {input} --out {output} {params.llm}"
        " --cache-dir results/llm_cache 2> {log}"


rule fact_leakage:
    input:
        model=rules.train.output.model,
        queries=expand("results/leakage/queries/{name}.jsonl", name=config["leakage"]["sets"]),
    output:
        summary="results/leakage/{method}/seed{seed}.json",
        generations="results/leakage/{method}/seed{seed}.generations.jsonl.gz",
    params:
        queries=lambda wildcards, input: " ".join(f"--queries {Path(q).stem}={q}" for q in input.queries),
        max_queries=config["leakage"]["max_queries"],
        shots=config["leakage"]["shots"],
    log:
        "logs/leakage/{method}/seed{seed}.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=MODEL_JOB_MEM_MB,
        runtime=240,
    shell:
        "python -m lacy leakage run --model $(dirname {input.model}) {params.queries}"
        " --max-queries {params.max_queries} --shots {params.shots} --out {output.summary}"
        " --generations {output.generations} 2> {log}"


rule nlu_local_tasks:
    input:
        social_iqa=rules.bigbench_tasks.output.social_iqa,
        physical_intuition=rules.bigbench_tasks.output.physical_intuition,
    output:
        directory("results/nlu/tasks"),
    log:
        "logs/nlu/tasks.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy nlu tasks --bigbench resources/bigbench --out {output} 2> {log}"


rule nlu:
    input:
        unpack(nlu_inputs),
    output:
        "results/nlu/{method}/seed{seed}.json",
    params:
        tasks=",".join(config["nlu"]["tasks"]),
        limit=config["nlu"]["limit"],
        include=lambda wildcards, input: f"--include-path {input.tasks}" if "tasks" in input.keys() else "",
    log:
        "logs/nlu/{method}/seed{seed}.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=MODEL_JOB_MEM_MB,
        runtime=240,
    shell:
        "python -m lacy nlu run --model $(dirname {input.model}) --tasks {params.tasks} {params.include}"
        " --limit {params.limit} --out {output} 2> {log}"
