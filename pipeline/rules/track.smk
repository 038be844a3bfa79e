# MLflow: initialise the store once (SQLite's first-time migration is not safe under
# concurrent writers), then batch-register every finished run. Local and sequential; the
# MLflow store is an index for browsing, never an input of figures or claims.
rule init_tracking:
    output:
        str(LAYOUT.tracking_store("{scale}")),
    conda:
        CONDA_ENV
    log:
        scale_log("init_tracking"),
    shell:
        f"{CLI} --papers {PAPERS} init-tracking --marker {{output}} > {{log}} 2>&1"


rule register:
    input:
        store=str(LAYOUT.tracking_store("{scale}")),
        evals=get_all_evals,
    output:
        str(LAYOUT.tracking_registered("{scale}")),
    conda:
        CONDA_ENV
    log:
        scale_log("register"),
    shell:
        f"{CLI} --papers {PAPERS} register --marker {{output}} > {{log}} 2>&1"
