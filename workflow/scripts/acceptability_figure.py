"""Rule `acceptability_figure`: Figure 3, 8 or 9, accuracy and acceptability by token loss, fact / non-fact
(lacy.acceptability.plot, §3, §A.1), of the judged checkpoint the figure shows (lacy.plan.acceptability_figures),
labelled with the studied run (lacy.plan.acceptability_label), in the config's `acceptability.bins`."""

from pathlib import Path

from lacy.acceptability import plot
from lacy.cli import workflow_script

with workflow_script(snakemake.log[0]):
    plot([(snakemake.params.label, Path(snakemake.input.judged))], Path(snakemake.output.pdf), snakemake.params.bins,
         snakemake.params.title)
