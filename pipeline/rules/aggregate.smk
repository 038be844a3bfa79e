# IQM / mean with stratified-bootstrap CIs and probability of improvement (rliable).
rule aggregate:
    input:
        paper=get_paper_file,
        curves=lambda wc: get_paper_runs(wc, layout.CURVE),
        evals=lambda wc: get_paper_runs(wc, layout.EVAL),
    output:
        summary=paper_file("summary"),
        stats=paper_file("stats"),
    params:
        stats=WF.main["stats"],
    conda:
        CONDA_ENV
    log:
        scale_log("aggregate", "{paper}"),
    shell:
        CLI + " --papers {wildcards.paper} aggregate --paper {wildcards.paper}"
        " --summary {output.summary} --stats {output.stats} > {log} 2>&1"
