# DVC: `make snapshot` (= snakemake --forcerun snapshot snapshot) adds results/ and reports/<scale>/
# and pushes them to the configured remote. Never part of `all`; DVC holds a repo lock, so
# it runs only here, locally, once. The rule has no wildcards: the configured scale is spelled in.
rule snapshot:
    input:
        get_final_outputs(),
    output:
        touch(str(LAYOUT.logs / "snapshot.done")),
    conda:
        CONDA_ENV
    log:
        str(LAYOUT.log("snapshot")),
    shell:
        f"{cli(SCALE)} --papers {PAPERS} snapshot > {{log}} 2>&1"
