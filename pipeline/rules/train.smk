# One training run per (paper, experiment, method, seed). `params` carry the hash of the
# method's source and of the run's config slice, so only runs whose code or config changed
# rerun. Resumable checkpoints live in work/ckpt/ (undeclared: a failed job keeps them).
# Snakemake deletes {log} before each attempt, so `--log` writes every attempt to its own
# <log stem>.attempt<N>.log and links {log} to the latest (no `> {log}` redirection here).
# A seed of a seed group (seed_batch > 1) was trained by its group job (rule train_group below):
# its train job only takes the group's files for that seed into its run directory.
rule train:
    input:
        env=get_env_assets,
        stages=get_stage_models,
        group=get_seed_group,
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


# k seeds of one (experiment, method) trained in one process (seed_batch: k in the paper config;
# the loop is methods.control.group_loop). Its output is the group's manifest, written after every
# member's run files (in the group directory's seed<N> folders: pipeline.layout.group_key).
rule train_group:
    input:
        env=get_group_env_assets,
        stages=get_group_stage_models,
    output:
        manifest=group_file(layout.MANIFEST),
    params:
        code=get_group_code_hash,
        cfg=get_group_config_hash,
        group_dir=str(LAYOUT.run_dir(GROUP)),
        assets=get_group_env_dir,
    threads: WF.main["threads_per_run"]
    resources:
        runtime=get_group_runtime,
    conda:
        CONDA_ENV
    log:
        str(LAYOUT.group_log("{scale}", "{paper}", "{experiment}", "{method}", "{first}", "{last}")),
    shell:
        CLI + " --papers {wildcards.paper} train-group --paper {wildcards.paper}"
        " --experiment {wildcards.experiment} --method {wildcards.method}"
        " --first {wildcards.first} --last {wildcards.last} --threads {threads}"
        " --group-dir {params.group_dir} --assets-dir {params.assets} --log {log}"
