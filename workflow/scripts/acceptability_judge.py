"""Rule `acceptability_judge`: the acceptability of every recorded greedy token, judged by the LLM
`acceptability.judge.llm` of the config (lacy.acceptability.judge_checkpoints, §3, §A.1), both checkpoints with
one judge, under the judge's configured name, scoring, workers and sample, its answers in the LLM cache."""

from pathlib import Path

from lacy.acceptability import judge_checkpoints
from lacy.cli import workflow_script
from lacy.llm import make_llm

with workflow_script(snakemake.log[0]):
    judge_checkpoints(make_llm(cache_dir=Path(snakemake.params.cache), **snakemake.params.llm),
                      [Path(p) for p in snakemake.input.positions], [Path(p) for p in snakemake.output.judged],
                      [Path(p) for p in snakemake.output.summary], judge_name=snakemake.params.name,
                      scoring=snakemake.params.scoring, workers=snakemake.params.workers,
                      max_judged=snakemake.params.max_judged, seed=snakemake.params.seed)
