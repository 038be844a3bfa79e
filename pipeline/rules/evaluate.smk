# Final metrics of a trained model (exact TV, sampled rewards, ...).
rule evaluate:
    input:
        model=run_file(layout.MODEL),
        config=run_file(layout.CONFIG),
        env=get_env_assets,
    output:
        run_file(layout.EVAL),
    params:
        code=get_code_hash,
        assets=get_env_dir,
    conda:
        CONDA_ENV
    log:
        run_log("evaluate"),
    shell:
        CLI + " --papers {wildcards.paper} evaluate --paper {wildcards.paper}"
        " --experiment {wildcards.experiment} --method {wildcards.method}"
        " --seed {wildcards.seed} --assets-dir {params.assets} --model {input.model} --config {input.config}"
        " --out {output} > {log} 2>&1"
