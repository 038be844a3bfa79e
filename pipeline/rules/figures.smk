# The paper's figures, drawn from the aggregates only.
rule figures:
    input:
        paper=get_paper_file,
        summary=paper_file("summary"),
        stats=paper_file("stats"),
    output:
        png=str(LAYOUT.figure("{scale}", "{paper}", "{figure}", "png")),
        pdf=str(LAYOUT.figure("{scale}", "{paper}", "{figure}", "pdf")),
    conda:
        CONDA_ENV
    log:
        scale_log("figures", "{paper}", "{figure}"),
    shell:
        CLI + " --papers {wildcards.paper} figures --paper {wildcards.paper}"
        " --figure {wildcards.figure} --summary {input.summary} --stats {input.stats}"
        " --png {output.png} --pdf {output.pdf} > {log} 2>&1"
