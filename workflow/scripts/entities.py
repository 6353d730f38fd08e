"""Rule `evaluation_entities`: the cascade's biography subjects (lacy.corpus.persons.write_evaluation_entities,
§5.2), by the config's `cascade.entities` (source, corpus sample sizes and seed, or FActScore's entity list), with
the split of each subject's article in the corpus directory of the declared `corpus.json`."""

from pathlib import Path

from lacy.cli import workflow_script
from lacy.corpus.persons import write_evaluation_entities

with workflow_script(snakemake.log[0]):
    write_evaluation_entities(Path(snakemake.params.corpus), Path(snakemake.output[0]), **snakemake.params.entities)
