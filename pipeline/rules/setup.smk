# Build each environment once, check that it steps, cache its exact target distribution
# (target.npz beside info.json, for enumerable environments only; info.json is written last).
rule setup_env:
    output:
        info=str(LAYOUT.env_info("{scale}", "{env_key}")),
    params:
        code=get_env_code_hash,
        env=get_env_name,
        kwargs=get_env_kwargs,
        assets=str(LAYOUT.env_dir("{scale}", "{env_key}")),
    conda:
        CONDA_ENV
    log:
        scale_log("setup", "{env_key}"),
    shell:
        # the env itself, not the selected papers, is on the command line: papers sharing an env
        # share this job, and selecting another paper must not change its command (a changed
        # command re-runs it and, through its newer output, every run of every paper using it)
        CLI + " setup --env-key {wildcards.env_key} --env {params.env} --env-kwargs {params.kwargs:q}"
        " --assets-dir {params.assets} > {log} 2>&1"
