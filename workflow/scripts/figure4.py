"""Rule `figure4`: Figure 4, cascaded biographies with the partner's tokens highlighted (lacy.figures.draw_figure4),
from the generations the rule names as inputs, one per run, in page order."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.figures import FIGURE4_ENTITIES, draw_figure4

with workflow_script(snakemake.log[0]):
    draw_figure4({run: Path(path) for run, path in snakemake.input.items()}, FIGURE4_ENTITIES, snakemake.params.partner,
                 Path(snakemake.output.pdf))
