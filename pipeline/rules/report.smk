# The static, offline HTML reproduction report of one scale.
rule report:
    input:
        get_report_inputs,
    output:
        str(LAYOUT.report("{scale}")),
    conda:
        CONDA_ENV
    log:
        scale_log("report"),
    shell:
        f"{CLI} --papers {PAPERS} report --out {{output}} > {{log}} 2>&1"
