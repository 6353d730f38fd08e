"""Rule `fact_precision` (and its partner-alone and equal-steps variants): the factual precision of a cascade's
biographies (lacy.factscore.score_generations, §5.2, §B) by the `scorer` wildcard, FactScore ("llm") or the offline
stand-in, against the declared `knowledge` input (FactScore's database, or the corpus's corpus.json), with the
config's `fact_precision` judge, retrieval and demonstrations, the judge's answers cached in LLM_CACHE."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.factscore import score_generations

with workflow_script(snakemake.log[0]):
    demos = snakemake.input.demos  # the LLM scorer's, when fact_precision.demos names them (fact_precision_demos)
    score_generations(snakemake.wildcards.scorer, Path(snakemake.input.generations), [Path(snakemake.input.knowledge)],
                      Path(snakemake.output[0]), llm=snakemake.params.llm, cache_dir=Path(snakemake.params.cache),
                      retrieval=snakemake.params.retrieval, demos=demos[0] if demos else None)
