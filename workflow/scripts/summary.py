"""Rule `summary`: results/summary.md, the claim-by-claim reading of the run (lacy.report.write_summary), with
the partners scored alone (lacy.plan.partner_alone_context), where the rules put the results
(result_layout in workflow/rules/common.smk), the fluency gate's threshold
(evaluation.fluent_loss_nats) and the figures this configuration cannot draw and why (lacy.plan.not_built)."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.figures import make_context
from lacy.report import write_summary

with workflow_script(snakemake.log[0]):
    context = make_context(**snakemake.params.context, layout=snakemake.params.layout, alone=snakemake.params.alone)
    write_summary(context, Path(snakemake.output[0]),
                  annotation_summary=Path(snakemake.input.annotation), entities=Path(snakemake.input.entities),
                  table2=Path(snakemake.input.table2), fluent_loss_nats=snakemake.params.fluent_loss_nats,
                  validation_call_rate=snakemake.params.validation_call_rate,
                  not_built=[f"{name}: {reason}" for name, reason in snakemake.params.not_built.items()])
