# Each claim of the paper decided by an exact one-sided test, Holm-adjusted across the paper's
# claims (pipeline/claims.py): reproduced / not reproduced / inconclusive / not decidable / fact.
rule claims:
    input:
        paper=get_paper_file,
        stats=results("{scale}/{paper}/stats.json"),
    output:
        results("{scale}/{paper}/claims.json"),
    params:
        alpha=WF.main["stats"]["alpha"],
        correction=WF.main["stats"]["correction"],
    conda:
        CONDA_ENV
    log:
        "logs/{scale}/claims/{paper}.log",
    shell:
        CLI + " --papers {wildcards.paper} claims --paper {wildcards.paper} > {log} 2>&1"
