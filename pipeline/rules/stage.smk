# A stage several runs read (methods/common/stages.py: VPDD's tokenizer, its pre-trained video
# model), trained once before them under the run contract. Its id is a hash of what it reads, so
# runs agreeing on it share this job; `params` carry its code hash, so editing its module reruns
# it, and the runs reading it rerun after it (their input is newer).
rule stage:
    input:
        env=get_stage_env_assets,
        upstream=get_stage_upstream,
    output:
        config=stage_file(layout.CONFIG),
        manifest=stage_file(layout.MANIFEST),
        curve=stage_file(layout.CURVE),
        model=stage_file(layout.MODEL),
    params:
        code=get_stage_code_hash,
        cfg=get_stage_config_hash,
        out_dir=str(LAYOUT.run_dir(STAGE)),
        assets=get_stage_env_dir,
    threads: WF.main["threads_per_run"]
    resources:
        runtime=get_stage_runtime,
    conda:
        CONDA_ENV
    log:
        str(LAYOUT.stage_log("stage", "{scale}", "{paper}", "{stage_id}")),
    shell:
        CLI + " --papers {wildcards.paper} stage --paper {wildcards.paper} --stage-id {wildcards.stage_id}"
        " --threads {threads} --out-dir {params.out_dir} --assets-dir {params.assets} --log {log}"
