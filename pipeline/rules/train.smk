# One training run per (paper, experiment, method, seed). `params` carry the hash of the
# method's source and of the run's config slice, so only runs whose code or config changed
# rerun. Resumable checkpoints live in work/ckpt/ (undeclared: a failed job keeps them).
# Snakemake deletes {log} before each attempt, so `--log` writes every attempt to its own
# <log stem>.attempt<N>.log and links {log} to the latest (no `> {log}` redirection here).
rule train:
    input:
        env=get_env_assets,
    output:
        config=run_file("config.yaml"),
        manifest=run_file("manifest.json"),
        curve=run_file("curve.csv"),
        model=run_file("model.pt"),
    params:
        code=get_code_hash,
        cfg=get_config_hash,
    threads: WF.main["threads_per_run"]
    resources:
        runtime=get_runtime,
    conda:
        CONDA_ENV
    log:
        "logs/{scale}/train/{paper}/{experiment}/{method}/seed{seed}.log",
    shell:
        CLI + " --papers {wildcards.paper} train --paper {wildcards.paper}"
        " --experiment {wildcards.experiment} --method {wildcards.method}"
        " --seed {wildcards.seed} --threads {threads} --log {log}"
