# lacy-repro: reproduce "LaCy: What Small Language Models Can and Should Learn is Not Just a Question
# of Loss" (arXiv 2602.12005) end to end. Stages, in pipeline order, live in workflow/rules/.
#
#   snakemake --cores all                                                  # embedded default, offline
#   snakemake results/figures/fig2.pdf --profile slurm --configfile config/paper.yaml   # paper scale

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/annotation.smk"
include: "workflow/rules/llm_judge.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/validation.smk"
include: "workflow/rules/cascade.smk"
include: "workflow/rules/leakage.smk"
include: "workflow/rules/acceptability.smk"
include: "workflow/rules/equal_steps.smk"
include: "workflow/rules/labelling_cost.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
