"""Rule `cascade_generate` (and `cascade_generate_equal_steps`): biographies by the trained SLM in a cascade with a
partner (lacy.cascade_cli.write_cascade, §5.1, §5.2, §A.5). The partner is its `cascade.partners` entry, reading
its articles from the declared `knowledge` input (a RAG partner's, none else) and caching a served partner's answers
in LLM_CACHE; the call budget is lacy.plan.cascade_call_budget of the run; the rest is the config's `cascade`."""

from pathlib import Path

from lacy.cascade_cli import write_cascade
from lacy.cli import workflow_script

with workflow_script(snakemake.log[0]):
    write_cascade(Path(snakemake.input.entities), snakemake.params.partner, model=Path(snakemake.params.model),
                  knowledge=[Path(k) for k in snakemake.input.knowledge], cache_dir=Path(snakemake.params.cache),
                  call_rate=snakemake.params.call_rate, max_new_tokens=snakemake.params.max_new_tokens,
                  batch_size=snakemake.params.batch_size, partner_calls=snakemake.params.partner_calls,
                  out=Path(snakemake.output.generations), summary=Path(snakemake.output.summary),
                  html=Path(snakemake.output.html), pdf=Path(snakemake.output.pdf), threads=snakemake.threads)
