"""Rule `figure`: one results figure of the paper (lacy.figures.draw_figure), from the context the rule's params
hold (lacy.plan.figure_context, and lacy.plan.partner_alone_context: the partners scored alone)."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.figures import draw_figure, make_context

with workflow_script(snakemake.log[0]):
    context = make_context(**snakemake.params.context, layout=snakemake.params.layout, alone=snakemake.params.alone)
    draw_figure(snakemake.wildcards.figure, context, Path(snakemake.output.pdf))
