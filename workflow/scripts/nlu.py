"""Rule `nlu`: NLU of one model without cascade through lm-eval (lacy.nlu.evaluate_nlu, §5.5), on the config's
`nlu.tasks` with its `nlu.limit`, and the local BIG-bench tasks' directory when the rule has them as input
(nlu_inputs)."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.nlu import evaluate_nlu

with workflow_script(snakemake.log[0]):
    tasks_dir = snakemake.input.get("tasks")  # only when nlu.tasks names local BIG-bench tasks
    evaluate_nlu(Path(snakemake.params.model), list(snakemake.params.tasks), Path(snakemake.output[0]),
                 Path(tasks_dir) if tasks_dir else None, limit=snakemake.params.limit)
