# Figure 10 (§5.4, §C.2): the ablations that ignore tokens train longer than the calling models (Table 4:
# LaCy + Ignorefacts 440k, LaCy + Ignore 460k steps against 400k), so the paper also evaluates them at the
# calling models' step count. Their training exports the model at that step (`equal_steps/`), and the cascade,
# its fact precision and the fact leakage run on it exactly as on a final model (`seed{seed}.equal_steps.*`).


use rule train as train_with_equal_steps_export with:
    output:
        **rules.train.output,
        equal_steps="results/models/{method}/seed{seed}/equal_steps/model.safetensors",
    params:
        export=lambda wildcards, output: command_line_options({
            "export_at_fraction": plan.equal_steps_fraction(config, wildcards.method),
            "export_dir": subpath(output.equal_steps, parent=True)}),
    wildcard_constraints:
        method="|".join(EQUAL_STEPS_METHODS) or "^$",


ruleorder: train_with_equal_steps_export > train


use rule cascade_generate as cascade_generate_equal_steps with:
    input:
        model=rules.train_with_equal_steps_export.output.equal_steps,
        entities=rules.evaluation_entities.output[0],
        knowledge=rag_knowledge,
    output:
        generations="results/cascade/{partner}/{method}/seed{seed}.equal_steps.jsonl",
        summary="results/cascade/{partner}/{method}/seed{seed}.equal_steps.summary.json",
        html="results/cascade/{partner}/{method}/seed{seed}.equal_steps.html",
        pdf="results/cascade/{partner}/{method}/seed{seed}.equal_steps.pdf",
    log:
        "logs/cascade/{partner}/{method}/seed{seed}.equal_steps.log",


use rule fact_precision as fact_precision_equal_steps with:
    input:
        generations=rules.cascade_generate_equal_steps.output.generations,
        knowledge=knowledge_input(),
        demos=fact_precision_demos,
    output:
        "results/fact_precision/{partner}/{method}/seed{seed}.equal_steps.{scorer}.json",
    log:
        "logs/fact_precision/{partner}/{method}/seed{seed}.equal_steps.{scorer}.log",


use rule fact_leakage as fact_leakage_equal_steps with:
    input:
        model=rules.train_with_equal_steps_export.output.equal_steps,
        queries=expand("results/leakage/queries/{name}.jsonl", name=config["leakage"]["sets"]),
    output:
        summary="results/leakage/{method}/seed{seed}.equal_steps.json",
        generations="results/leakage/{method}/seed{seed}.equal_steps.generations.jsonl.gz",
    log:
        "logs/leakage/{method}/seed{seed}.equal_steps.log",
