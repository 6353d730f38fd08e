"""Rule `partner_alone`: the cascade partner writing every token of each biography alone, from the cascade's prompt
(lacy.cascade_cli.write_cascade without a model; the paper's reference bars, §5.2). The partner is its
`cascade.partners` entry, reading its articles from the declared `knowledge` input (a RAG partner's, none else) and
caching a served partner's answers in LLM_CACHE; the lengths and batch size are the config's `cascade`."""

from pathlib import Path

from lacy.cascade_cli import write_cascade
from lacy.cli import workflow_script

with workflow_script(snakemake.log[0]):
    write_cascade(Path(snakemake.input.entities), snakemake.params.partner, model=None,
                  knowledge=[Path(k) for k in snakemake.input.knowledge], cache_dir=Path(snakemake.params.cache),
                  call_rate=None, max_new_tokens=snakemake.params.max_new_tokens,
                  batch_size=snakemake.params.batch_size, out=Path(snakemake.output.generations),
                  summary=Path(snakemake.output.summary), html=Path(snakemake.output.html),
                  pdf=Path(snakemake.output.pdf), threads=snakemake.threads)
