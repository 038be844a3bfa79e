# Build each environment once, check that it steps, cache its exact target distribution
# (target.npz beside info.json, for enumerable environments only; info.json is written last).
rule setup_env:
    output:
        info=str(LAYOUT.env_info("{scale}", "{env_key}")),
    params:
        code=get_env_code_hash,
        kwargs=get_env_kwargs,
        assets=str(LAYOUT.env_dir("{scale}", "{env_key}")),
    conda:
        CONDA_ENV
    log:
        scale_log("setup", "{env_key}"),
    shell:
        # the env keys come from the selected papers (--config papers=[...] may name one that
        # config.yaml's list does not)
        CLI + f" --papers {PAPERS} setup --env-key {{wildcards.env_key}} --assets-dir {{params.assets}} > {{log}} 2>&1"
