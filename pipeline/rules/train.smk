# One training run per (paper, experiment, method, seed). `params` carry the hash of the
# method's source and of the run's config slice, so only runs whose code or config changed
# rerun. Resumable checkpoints live in work/ckpt/ (undeclared: a failed job keeps them).
# Snakemake deletes {log} before each attempt, so `--log` writes every attempt to its own
# <log stem>.attempt<N>.log and links {log} to the latest (no `> {log}` redirection here).
rule train:
    input:
        env=get_env_assets,
        stages=get_stage_models,
    output:
        config=run_file(layout.CONFIG),
        manifest=run_file(layout.MANIFEST),
        curve=run_file(layout.CURVE),
        model=run_file(layout.MODEL),
    params:
        code=get_code_hash,
        cfg=get_config_hash,
        run_dir=str(LAYOUT.run_dir(RUN)),
        assets=get_env_dir,
    threads: WF.main["threads_per_run"]
    resources:
        runtime=get_runtime,
    conda:
        CONDA_ENV
    log:
        run_log("train"),
    shell:
        CLI + " --papers {wildcards.paper} train --paper {wildcards.paper}"
        " --experiment {wildcards.experiment} --method {wildcards.method}"
        " --seed {wildcards.seed} --threads {threads} --run-dir {params.run_dir}"
        " --assets-dir {params.assets} --log {log}"
