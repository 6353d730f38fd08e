# Stage 6: biography generation in a cascade with a bigger partner, scored for factual precision
# (§5.1 "Inference and Cascading", §5.2, §A.5, Figures 2-left, 4, 13).

rule factscore_release:
    output:
        entities="resources/factscore/data/labeled/prompt_entities.txt",
        knowledge="resources/factscore/enwiki-20230401.db",
        demos="resources/factscore/demos/demons.json",
    params:
        release=subpath(output.knowledge, parent=True),
    log:
        "logs/cascade/factscore_release.log",
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=600,
    shell:
        "python -m lacy corpus factscore-release --out {params.release} 2> {log}"


rule evaluation_entities:
    input:
        unpack(entity_inputs),
    output:
        "results/cascade/entities.jsonl",
    params:
        corpus=subpath(input.corpus, parent=True),
        entities=CASCADE["entities"],
    log:
        "logs/cascade/entities.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/entities.py"


rule cascade_generate:
    input:
        model=rules.train.output.model,
        entities=rules.evaluation_entities.output[0],
        knowledge=rag_knowledge,
    output:
        generations="results/cascade/{partner}/{method}/seed{seed}.jsonl",
        summary="results/cascade/{partner}/{method}/seed{seed}.summary.json",
        html="results/cascade/{partner}/{method}/seed{seed}.html",
        pdf="results/cascade/{partner}/{method}/seed{seed}.pdf",
    params:
        model=subpath(input.model, parent=True),
        partner=lambda wildcards: PARTNERS[wildcards.partner],
        call_rate=lambda wildcards: plan.cascade_call_budget(config, wildcards.method),
        max_new_tokens=CASCADE["max_new_tokens"],
        batch_size=CASCADE["batch_size"],
        partner_calls=CASCADE["partner_calls"],
        cache=LLM_CACHE,
    log:
        "logs/cascade/{partner}/{method}/seed{seed}.log",
    conda:
        "../../envs/evaluation.yaml"
    threads: 1  # token-by-token decoding: one thread each, two cascades side by side, is faster on 2 cores
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=cluster_mem_mb(16000),
        runtime=240,
    script:
        "../scripts/cascade.py"


rule partner_alone:
    """The partner writing the whole biography from the same prompt (the paper's reference bars: Llama-3.2-1B
    alone, Qwen3-32B + RAG alone)."""
    input:
        entities=rules.evaluation_entities.output[0],
        knowledge=rag_knowledge,
    output:
        generations="results/cascade/{partner}/alone.jsonl",
        summary="results/cascade/{partner}/alone.summary.json",
        html="results/cascade/{partner}/alone.html",
        pdf="results/cascade/{partner}/alone.pdf",
    params:
        partner=lambda wildcards: PARTNERS[wildcards.partner],
        max_new_tokens=CASCADE["max_new_tokens"],
        batch_size=CASCADE["batch_size"],
        cache=LLM_CACHE,
    log:
        "logs/cascade/{partner}/alone.log",
    conda:
        "../../envs/evaluation.yaml"
    threads: 1
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=cluster_mem_mb(16000),
        runtime=240,
    script:
        "../scripts/partner_alone.py"


rule fact_precision:
    input:
        generations=rules.cascade_generate.output.generations,
        knowledge=knowledge_input(),
        demos=fact_precision_demos,
    output:
        "results/fact_precision/{partner}/{method}/seed{seed}.{scorer}.json",
    params:
        llm=lambda wildcards: config["fact_precision"]["llm"] if wildcards.scorer == "llm" else None,
        retrieval=lambda wildcards: config["fact_precision"]["retrieval"] if wildcards.scorer == "llm" else None,
        cache=LLM_CACHE,
    log:
        "logs/fact_precision/{partner}/{method}/seed{seed}.{scorer}.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        runtime=240,
    script:
        "../scripts/fact_precision.py"


use rule fact_precision as fact_precision_partner_alone with:
    input:
        generations=rules.partner_alone.output.generations,
        knowledge=knowledge_input(),
        demos=fact_precision_demos,
    output:
        "results/fact_precision/{partner}/alone.{scorer}.json",
    log:
        "logs/fact_precision/{partner}/alone.{scorer}.log",
