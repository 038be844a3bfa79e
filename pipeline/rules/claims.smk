# Each claim of the paper decided by an exact one-sided test, Holm-adjusted across the paper's
# claims (pipeline/claims.py): reproduced / not reproduced / inconclusive / not decidable / fact.
rule claims:
    input:
        paper=get_paper_file,
        stats=paper_file("stats"),
    output:
        paper_file("claims"),
    params:
        alpha=WF.main["stats"]["alpha"],
        correction=WF.main["stats"]["correction"],
    conda:
        CONDA_ENV
    log:
        scale_log("claims", "{paper}"),
    shell:
        CLI + " --papers {wildcards.paper} claims --paper {wildcards.paper}"
        " --stats {input.stats} --out {output} > {log} 2>&1"
