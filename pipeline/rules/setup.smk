# Build each environment once, check that it steps, cache its exact target distribution
# (target.npz beside info.json, for enumerable environments only; info.json is written last).
rule setup_env:
    output:
        info=results("{scale}/_envs/{env_key}/info.json"),
    params:
        code=get_env_code_hash,
        kwargs=get_env_kwargs,
    conda:
        CONDA_ENV
    log:
        "logs/{scale}/setup/{env_key}.log",
    shell:
        CLI + " setup --env-key {wildcards.env_key} > {log} 2>&1"
