"""Rule `labelling_cost_table`: Table 2, the labelling overhead of each method (lacy.labelling_cost.write_table2,
§5.6), from every annotation shard's timing, the Rho-1 timing when the run trains the reference model
(labelling_cost_inputs), and whether the run has LMLM LLM-judge labels (lacy.plan.has_llm_judge_labels)."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.labelling_cost import write_table2

with workflow_script(snakemake.log[0]):
    rho1 = snakemake.input.get("rho1")  # only when the run trains the reference model
    write_table2([Path(p) for p in snakemake.input.annotation], Path(rho1) if rho1 else None,
                 snakemake.params.llm_judge_labels, Path(snakemake.output.csv), Path(snakemake.output.md))
