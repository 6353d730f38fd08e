"""Rule `fact_leakage` (and `fact_leakage_equal_steps`): fact leakage of one model with calls disabled
(lacy.leakage.run_leakage, §5.3), on the query sets `leakage.sets` of the config, each named as there, with the
config's shots and per-set sample size."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.leakage import run_leakage

with workflow_script(snakemake.log[0]):
    run_leakage(Path(snakemake.params.model),
                dict(zip(snakemake.params.sets, map(Path, snakemake.input.queries), strict=True)),
                Path(snakemake.output.summary), Path(snakemake.output.generations), shots=snakemake.params.shots,
                max_queries=snakemake.params.max_queries)
