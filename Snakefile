# rl-repro: environment setup -> train -> evaluate -> aggregate -> figures -> claims -> report,
# plus register (MLflow) and snapshot (DVC). Rules: pipeline/rules/*.smk.
import gc
import sys

from snakemake.utils import min_version

# Planning allocates millions of small objects (jobs, files, wildcards), and CPython's default
# collector (a pass every 700 allocations) rescans them over and over: ~0.6 s of a paper-scale
# dry run (bench/README.md). Only this process plans; jobs and the job server are fresh interpreters.
gc.freeze()
gc.set_threshold(50_000, 20, 100)

min_version("9.0")

sys.path.insert(0, workflow.basedir)


configfile: "config/config.yaml"


# jobs find `python` through PATH (see pipeline/rules/common.smk)
envvars:
    "PATH",


include: "pipeline/rules/common.smk"
include: "pipeline/rules/setup.smk"
include: "pipeline/rules/stage.smk"
include: "pipeline/rules/train.smk"
include: "pipeline/rules/evaluate.smk"
include: "pipeline/rules/aggregate.smk"
include: "pipeline/rules/figures.smk"
include: "pipeline/rules/claims.smk"
include: "pipeline/rules/report.smk"
include: "pipeline/rules/track.smk"
include: "pipeline/rules/version.smk"


localrules:
    all,
    aggregate,
    figures,
    claims,
    report,
    init_tracking,
    register,
    snapshot,


rule all:
    input:
        get_final_outputs(),
    default_target: True
