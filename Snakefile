# mmneuro workflow: per-session audio and neural preprocessing -> dataset -> one training job per
# model -> analysis (-> scores against the planted truth, on demo data) -> report. Rules live in
# workflow/rules/, one file per stage; they call the `mmneuro` command (python -m mmneuro), so
# everything they do can also be run by hand.
#
#   snakemake --cores 2 --configfile config/config.yaml
#   snakemake --report results/report.html

configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/audio.smk"
include: "workflow/rules/neural.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/consistency.smk"
include: "workflow/rules/apply.smk"
include: "workflow/rules/nwb.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
