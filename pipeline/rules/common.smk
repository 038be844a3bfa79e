# Validation, wildcard constraints and the get_* helpers every rule uses.
import json
import os
import sys

from pipeline import layout
from pipeline.codehash import env_code_hash, group_code_hash, method_code_hash, stage_code_hash
from pipeline.config import ConfigError, load_workflow

try:
    WF = load_workflow(config, source="config/config.yaml (+ --config)")
except ConfigError as exc:
    raise WorkflowError(f"config error: {exc}")

# Jobs run `python -m pipeline ...` with the interpreter Snakemake itself runs under, even
# when the virtual environment is not activated (the command text stays path-free).
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

SCALE = WF.scale
PAPERS = ",".join(WF.papers)  # the selected papers, for the rules that span all of them
CONDA_ENV = "../conda/rlrepro.yaml"
RESULTS = WF.main["results_dir"]
REPORTS = WF.main["reports_dir"]
# every path below comes from pipeline/layout.py, called with wildcard patterns
LAYOUT = layout.Layout(results=RESULTS, reports=REPORTS)
RUN = layout.run_key("{scale}", "{paper}", "{experiment}", "{method}", "{seed}")
STAGE = layout.stage_key("{scale}", "{paper}", "{stage_id}")
GROUP = layout.group_key("{scale}", "{paper}", "{experiment}", "{method}", "{first}", "{last}")


def run_file(name):
    """A file of the run-directory contract, as a pattern over the run wildcards."""
    return str(LAYOUT.run_file(RUN, name))


def stage_file(name):
    """A file of a stage's directory (the run contract's training files), as a pattern."""
    return str(LAYOUT.run_file(STAGE, name))


def group_file(name):
    """A file of a seed group's directory, as a pattern over the group wildcards."""
    return str(LAYOUT.run_file(GROUP, name))


def run_log(stage):
    return str(LAYOUT.run_log(stage, "{scale}", "{paper}", "{experiment}", "{method}", "{seed}"))


def paper_file(kind):
    """summary / stats / claims of {scale}/{paper}."""
    return str(getattr(LAYOUT, kind)("{scale}", "{paper}"))


def scale_log(*parts):
    return str(LAYOUT.log("{scale}", *parts))


def cli(scale):
    """The command line of a stage at ``scale`` (a value, or the rule's wildcard)."""
    return (
        f"python -m pipeline --scale {scale} "
        f"--set paper_dir={WF.main['paper_dir']} --set results_dir={RESULTS} "
        f"--set reports_dir={REPORTS} --set device={WF.main['device']}"
    )


CLI = cli("{wildcards.scale}")


wildcard_constraints:
    scale="smoke|small|paper",
    paper="[a-z0-9_]+",
    experiment="[A-Za-z0-9_-]+",
    method="[A-Za-z0-9_-]+",
    seed="[0-9]+",
    env_key="[A-Za-z0-9_.-]+",
    stage_id="[a-z0-9_]+-[0-9a-f]{10}",
    first="[0-9]+",
    last="[0-9]+",


def _job(wc):
    return WF.job(wc.paper, wc.experiment, wc.method, int(wc.seed))


def get_env_assets(wc):
    return str(LAYOUT.env_info(wc.scale, _job(wc).env_key))


def get_env_dir(wc):
    return str(LAYOUT.env_dir(wc.scale, _job(wc).env_key))


def get_code_hash(wc):
    job = _job(wc)
    return method_code_hash(job.method, job.env)


def get_config_hash(wc):
    return _job(wc).config_hash()


def get_env_code_hash(wc):
    name, _ = WF.envs()[wc.env_key]
    return env_code_hash(name)


def get_env_name(wc):
    return WF.envs()[wc.env_key][0]


def get_env_kwargs(wc):
    # canonical JSON: a reordered YAML mapping must not look like a changed param
    return json.dumps(WF.envs()[wc.env_key][1], sort_keys=True)


def get_stage_models(wc):
    """The model.pt of every stage a run reads."""
    job = _job(wc)
    return [str(LAYOUT.run_file(layout.stage_key(job.scale, job.paper, i), layout.MODEL)) for i in job.stages.values()]


def get_seed_group(wc):
    """A grouped seed's train job reads its group's manifest (none for a seed trained alone)."""
    job = _job(wc)
    return [str(LAYOUT.run_file(job.group_key, layout.MANIFEST))] if job.seed_group else []


def _group(wc):
    return WF.group_job(wc.paper, wc.experiment, wc.method, int(wc.first), int(wc.last))


def get_group_env_assets(wc):
    return str(LAYOUT.env_info(wc.scale, _group(wc).env_key))


def get_group_stage_models(wc):
    job = _group(wc)
    return [str(LAYOUT.run_file(layout.stage_key(job.scale, job.paper, i), layout.MODEL)) for i in job.stages.values()]


def get_group_env_dir(wc):
    return str(LAYOUT.env_dir(wc.scale, _group(wc).env_key))


def get_group_code_hash(wc):
    job = _group(wc)
    return group_code_hash(job.method, job.env)


def get_group_config_hash(wc):
    return _group(wc).config_hash()


def get_group_runtime(wc, attempt):
    return _group(wc).runtime_min * attempt


def _stage(wc):
    return WF.stage_job(wc.paper, wc.stage_id)


def get_stage_env_assets(wc):
    return str(LAYOUT.env_info(wc.scale, _stage(wc).env_key))


def get_stage_env_dir(wc):
    return str(LAYOUT.env_dir(wc.scale, _stage(wc).env_key))


def get_stage_upstream(wc):
    job = _stage(wc)
    return [str(LAYOUT.run_file(layout.stage_key(job.scale, job.paper, i), layout.MODEL)) for i in job.needs.values()]


def get_stage_code_hash(wc):
    job = _stage(wc)
    return stage_code_hash(job.module, job.env)


def get_stage_config_hash(wc):
    return _stage(wc).config_hash()


def get_stage_runtime(wc, attempt):
    return _stage(wc).runtime_min * attempt


def get_runtime(wc, attempt):
    return _job(wc).runtime_min * attempt


def get_paper_runs(wc, name):
    return [str(LAYOUT.run_file(j.key, name)) for j in WF.jobs(wc.paper)]


def get_paper_file(wc):
    return str(WF.paper_files[wc.paper])


def _figures(scale, paper):
    return [str(LAYOUT.figure(scale, paper, f["id"])) for f in WF.papers[paper]["figures"]]


def get_report_inputs(wc):
    out = []
    for p in WF.papers:
        out += [str(LAYOUT.stats(wc.scale, p)), str(LAYOUT.claims(wc.scale, p))]
        out += _figures(wc.scale, p)
    return out


def get_all_evals(wc):
    return [str(LAYOUT.run_file(j.key, layout.EVAL)) for j in WF.jobs()]


def get_final_outputs():
    out = [str(LAYOUT.report(SCALE))]
    if WF.main["tracking"]["register"]:
        out.append(str(LAYOUT.tracking_registered(SCALE)))
    return out


# One process imports torch & co. once and forks a child per job (pipeline/jobserver.py): on
# local execution only; a cluster's jobs run on other machines and start as usual.
_JOBSERVER = {}


def _start_jobserver(log):
    from pipeline import jobserver

    if WF.main["jobserver"] in ("off", False) or not workflow.local_exec or workflow.remote_exec:
        return
    # not waiting: a rerun with nothing to do must not pay the server's imports
    started = jobserver.start(os.getpid(), str(LAYOUT.log("jobserver")), wait=False)
    if started:
        os.environ[jobserver.ENV], _JOBSERVER["pid"] = started


def _stop_jobserver(log):
    from pipeline import jobserver

    os.environ.pop(jobserver.ENV, None)
    if "pid" in _JOBSERVER:
        jobserver.stop(_JOBSERVER.pop("pid"))


onstart:
    _start_jobserver(log)


onsuccess:
    _stop_jobserver(log)


onerror:
    _stop_jobserver(log)
