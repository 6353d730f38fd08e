# Stage 6: biography generation in a cascade with a bigger partner, scored for factual precision
# (§5.1 "Inference and Cascading", §5.2, §A.5, Figures 2-left, 4, 13).

rule factscore_release:
    output:
        entities="resources/factscore/data/labeled/prompt_entities.txt",
        knowledge="resources/factscore/enwiki-20230401.db",
        demos="resources/factscore/demos/demons.json",
    log:
        "logs/cascade/factscore_release.log",
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=600,
    shell:
        "python -m lacy corpus factscore-release --out resources/factscore 2> {log}"


rule evaluation_entities:
    input:
        unpack(entity_inputs),
    output:
        "results/cascade/entities.jsonl",
    params:
        options=entity_options(),
    log:
        "logs/cascade/entities.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m lacy corpus entities --corpus $(dirname {input.corpus}) --out {output} {params.options} 2> {log}"


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
        partner=partner_options,
        call_rate=lambda wildcards: plan.call_budget_of(plan.split_run(wildcards.method)[1], CASCADE["call_rate"]),
        max_new_tokens=CASCADE["max_new_tokens"],
        batch_size=CASCADE["batch_size"],
        partner_calls=CASCADE["partner_calls"],
    log:
        "logs/cascade/{partner}/{method}/seed{seed}.log",
    conda:
        "../../envs/evaluation.yaml"
    threads: 1  # token-by-token decoding: one thread each, two cascades side by side, is faster on 2 cores
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=cluster_mem_mb(16000),
        runtime=240,
    shell:
        "python -m lacy cascade --entities {input.entities} --model $(dirname {input.model})"
        " {params.partner} --call-rate {params.call_rate} --max-new-tokens {params.max_new_tokens}"
        " --batch-size {params.batch_size} --partner-calls {params.partner_calls} --out {output.generations}"
        " --summary {output.summary} --html {output.html} --pdf {output.pdf} --threads {threads} 2> {log}"


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
        partner=partner_options,
        max_new_tokens=CASCADE["max_new_tokens"],
        batch_size=CASCADE["batch_size"],
    log:
        "logs/cascade/{partner}/alone.log",
    conda:
        "../../envs/evaluation.yaml"
    threads: 1
    resources:
        gpu=min(1, TRAIN["gpus_per_node"]),
        mem_mb=cluster_mem_mb(16000),
        runtime=240,
    shell:
        "python -m lacy cascade --partner-alone --entities {input.entities} {params.partner}"
        " --max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size} --out {output.generations}"
        " --summary {output.summary} --html {output.html} --pdf {output.pdf} --threads {threads} 2> {log}"


rule fact_precision:
    input:
        generations=rules.cascade_generate.output.generations,
        knowledge=knowledge_input(),
        demos=fact_precision_demos,
    output:
        "results/fact_precision/{partner}/{method}/seed{seed}.{scorer}.json",
    params:
        options=fact_precision_options,
        knowledge=lambda wildcards, input: knowledge_option(input.knowledge),
    log:
        "logs/fact_precision/{partner}/{method}/seed{seed}.{scorer}.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        runtime=240,
    shell:
        "python -m lacy factscore {wildcards.scorer} --generations {input.generations}"
        " --knowledge {params.knowledge} --out {output} {params.options} 2> {log}"


use rule fact_precision as fact_precision_partner_alone with:
    input:
        generations=rules.partner_alone.output.generations,
        knowledge=knowledge_input(),
        demos=fact_precision_demos,
    output:
        "results/fact_precision/{partner}/alone.{scorer}.json",
    log:
        "logs/fact_precision/{partner}/alone.{scorer}.log",
