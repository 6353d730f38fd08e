"""Rule `leakage_popqa_rephrase`: PopQA's long-tail questions rephrased into sentence starts by an LLM
(lacy.leakage.write_popqa_queries, §B), the LLM being `leakage.rephrase_llm` of the config, its answers cached in
the workflow's LLM cache."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.leakage import write_popqa_queries
from lacy.llm import make_llm

with workflow_script(snakemake.log[0]):
    write_popqa_queries(Path(snakemake.input.rows), make_llm(cache_dir=Path(snakemake.params.cache),
                                                              **snakemake.params.llm), Path(snakemake.output[0]))
