# Stage 7: fact leakage with calls disabled (§5.3, Figure 2-right) and NLU without cascade (§5.5,
# Tables 1 and 6), both on every trained model.


rule bigbench_tasks:
    output:
        qa_wikidata="resources/bigbench/qa_wikidata/task.json",
        social_iqa="resources/bigbench/social_iqa/task.json",
        physical_intuition="resources/bigbench/physical_intuition/task.json",
    params:
        out=subpath(output.qa_wikidata, ancestor=2),
    log:
        "logs/leakage/bigbench_extract.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy bigbench extract --out {params.out} 2> {log}"


rule leakage_qa_wikidata:
    input:
        task=rules.bigbench_tasks.output.qa_wikidata,
    output:
        "results/leakage/queries/bigbench_qa_wikidata.jsonl",
    params:
        bigbench=subpath(input.task, ancestor=2),
    log:
        "logs/leakage/queries_qa_wikidata.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy leakage build-qa-wikidata --bigbench {params.bigbench} --out {output} 2> {log}"


rule leakage_person_cloze:
    input:
        corpus=corpus_stats(),
    output:
        "results/leakage/queries/corpus_person_cloze.jsonl",
    params:
        corpus=subpath(input.corpus, parent=True),
    log:
        "logs/leakage/queries_person_cloze.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy leakage build-cloze --corpus {params.corpus} --split train --out {output} 2> {log}"


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
        rows=rules.leakage_popqa_download.output[0],
    output:
        "results/leakage/queries/popqa_long_tail.jsonl",
    params:
        llm=config["leakage"]["rephrase_llm"],
        cache=LLM_CACHE,
    log:
        "logs/leakage/popqa_rephrase.log",
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/leakage_popqa_rephrase.py"


rule fact_leakage:
    input:
        model=rules.train.output.model,
        queries=expand("results/leakage/queries/{name}.jsonl", name=config["leakage"]["sets"]),
    output:
        summary="results/leakage/{method}/seed{seed}.json",
        generations="results/leakage/{method}/seed{seed}.generations.jsonl.gz",
    params:
        model=subpath(input.model, parent=True),
        sets=config["leakage"]["sets"],  # the name of each of input.queries
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
    script:
        "../scripts/fact_leakage.py"


rule nlu_local_tasks:
    input:
        social_iqa=rules.bigbench_tasks.output.social_iqa,
        physical_intuition=rules.bigbench_tasks.output.physical_intuition,
    output:
        directory("results/nlu/tasks"),
    params:
        bigbench=subpath(input.social_iqa, ancestor=2),
    log:
        "logs/nlu/tasks.log",
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "python -m lacy nlu tasks --bigbench {params.bigbench} --out {output} 2> {log}"


rule nlu:
    input:
        unpack(nlu_inputs),
    output:
        "results/nlu/{method}/seed{seed}.json",
    params:
        model=subpath(input.model, parent=True),
        tasks=config["nlu"]["tasks"],
        limit=config["nlu"]["limit"],
    log:
        "logs/nlu/{method}/seed{seed}.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=MODEL_JOB_MEM_MB,
        runtime=240,
    script:
        "../scripts/nlu.py"
