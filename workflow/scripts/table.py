"""Rule `table`: one results table of the paper (lacy.figures.write_paper_table), from the context the rule's
params hold (lacy.plan.figure_context) and, for NLU tables, the local tasks' directory (random chance)."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.figures import make_context, write_paper_table

with workflow_script(snakemake.log[0]):
    tasks = Path(snakemake.input.tasks) if snakemake.input.tasks else None  # only for lm-eval tasks built here
    context = make_context(**snakemake.params.context, layout=snakemake.params.layout)
    write_paper_table(snakemake.wildcards.table, context, Path(snakemake.output.csv), tasks)
