"""The DAG-overhead part of ``bench/run_bench.py`` (see its docstring, item 3): the paper-scale
dry run in the repository, beside the same DAG shape written as plain Snakemake (the floor), the
dry run with every paper configured twice, and a no-op rerun of a completed smoke workflow in a
temporary git copy of the workflow. ``bench_dag(repeats, cores)`` returns the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# what a workspace copy needs to run the workflow
WORKSPACE_ITEMS = (
    "Snakefile",
    "pipeline",
    "methods",
    "envs",
    "config",
    "profiles",
    "dvc.yaml",
    "reports/README.md",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- DAG overhead
def snakemake_exe() -> str:
    return str(Path(sys.executable).parent / "snakemake")


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def workflow_env() -> dict:
    env = dict(os.environ)
    env.setdefault("RLREPRO_DATA_MIRROR", str(REPO.parent / "shared" / "data"))
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@invalid",
    )
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def make_workspace(dest: Path, env: dict) -> None:
    dest.mkdir(parents=True)
    for item in WORKSPACE_ITEMS:
        src = REPO / item
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True)


def doubled_papers(ws: Path) -> list[str]:
    """Add a renamed copy of every configured paper to the workspace; return all names."""
    import yaml

    cfg_path = ws / "config/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    papers = list(cfg["papers"])
    for name in list(papers):
        text = (ws / "config/papers" / f"{name}.yaml").read_text()
        (ws / "config/papers" / f"{name}copy.yaml").write_text(
            text.replace(f"paper: {name}\n", f"paper: {name}copy\n", 1)
        )
        papers.append(f"{name}copy")
    return papers


def jobs_in_dryrun(text: str) -> int | None:
    """The job count of a dry run's summary table ("total  N")."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return None


def tail(proc: subprocess.CompletedProcess, n: int = 25) -> str:
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-n:])


# The floor: the same DAG shape written as plain Snakemake, with nothing of ours in it. Every
# run is a train job (its four outputs and a log) and an evaluate job, every paper an aggregate
# job, and one report job; paths, wildcards and shell commands are constants.
BARE_SNAKEFILE = """
import json
RUNS = json.load(open("runs.json"))
PAPERS = sorted({r[0] for r in RUNS})
RUN = "results/paper/{paper}/{experiment}/{method}/seed{seed}"

rule all:
    input: "reports/paper/index.html"

rule train:
    output: RUN + "/config.yaml", RUN + "/manifest.json", RUN + "/curve.csv", RUN + "/model.pt"
    log: "logs/train/{paper}/{experiment}/{method}/seed{seed}.log"
    shell: "touch {output}"

rule evaluate:
    input: RUN + "/model.pt", RUN + "/config.yaml"
    output: RUN + "/eval.json"
    log: "logs/evaluate/{paper}/{experiment}/{method}/seed{seed}.log"
    shell: "touch {output}"

def paper_runs(wc):
    return [f"results/paper/{p}/{e}/{m}/seed{s}/{f}" for p, e, m, s in RUNS
            if p == wc.paper for f in ("curve.csv", "eval.json")]

rule aggregate:
    input: paper_runs
    output: "results/paper/{paper}/stats.json"
    shell: "touch {output}"

rule report:
    input: expand("results/paper/{paper}/stats.json", paper=PAPERS)
    output: "reports/paper/index.html"
    shell: "touch {output}"
"""


def bare_dryrun(repeats: int, env: dict) -> dict:
    """`snakemake -n` of the paper-scale DAG's shape in plain Snakemake (see BARE_SNAKEFILE)."""
    sys.path.insert(0, str(REPO))
    from pipeline.config import load_from_files

    runs = [[j.paper, j.experiment, j.method, j.seed] for j in load_from_files(overrides={"scale": "paper"}).jobs()]
    with tempfile.TemporaryDirectory(prefix="rlrepro-bench-bare-") as tmp:
        (Path(tmp) / "Snakefile").write_text(BARE_SNAKEFILE)
        (Path(tmp) / "runs.json").write_text(json.dumps(runs))
        cmd = [snakemake_exe(), "-n", "--cores", "1"]
        times, proc = [], None
        for _ in range(repeats):
            sec, proc = timed(cmd, Path(tmp), env)
            times.append(sec)
        out = {
            "dryrun_bare_runs": len(runs),
            "dryrun_bare_s": statistics.median(times),
            "dryrun_bare_jobs": jobs_in_dryrun(proc.stdout + proc.stderr),
        }
        if proc.returncode != 0:
            out["dryrun_bare_error"] = tail(proc)
    return out


def bench_dag(repeats: int, cores: int) -> dict:
    env = workflow_env()
    smk = snakemake_exe()
    res: dict = {"snakemake": subprocess.run([smk, "--version"], capture_output=True, text=True).stdout.strip()}
    # (a) dry run of the paper-scale DAG in the repository itself
    times = []
    for _ in range(repeats):
        sec, proc = timed([smk, "-n", "--config", "scale=paper"], REPO, env)
        if proc.returncode != 0:
            res["dryrun_paper_error"] = tail(proc)
            break
        times.append(sec)
        res["dryrun_paper_jobs"] = jobs_in_dryrun(proc.stdout + proc.stderr)
    res["dryrun_paper_s"] = statistics.median(times) if times else None
    res["dryrun_paper_runs"] = times
    log(f"[dag] snakemake -n --config scale=paper: {res['dryrun_paper_s']}")
    # (a'') the floor: plain Snakemake with this DAG's shape, timed in the same bench run
    res.update(bare_dryrun(repeats, env))
    if res["dryrun_paper_s"] and res["dryrun_bare_s"]:
        res["dryrun_paper_over_bare"] = res["dryrun_paper_s"] / res["dryrun_bare_s"]
    log(f"[dag] plain Snakemake, same shape ({res['dryrun_bare_jobs']} jobs): {res['dryrun_bare_s']}")

    # (a') the same dry run with every paper configured twice (a copy under a new name): the
    # DAG's size once ten papers are configured
    with tempfile.TemporaryDirectory(prefix="rlrepro-bench-") as tmp:
        ws = Path(tmp) / "repo"
        make_workspace(ws, env)
        papers = doubled_papers(ws)
        for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "doubled"]):
            subprocess.run(cmd, cwd=ws, env=env, check=True)
        cmd = [smk, "-n", "--config", "scale=paper", f"papers=[{','.join(papers)}]"]
        sec, proc = timed(cmd, ws, env)  # first call fills the validated-config cache
        times = [timed(cmd, ws, env)[0] for _ in range(repeats)]
        res["dryrun_paper_doubled_papers"] = len(papers)
        res["dryrun_paper_doubled_s"] = statistics.median(times) if proc.returncode == 0 else None
        res["dryrun_paper_doubled_jobs"] = jobs_in_dryrun(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            res["dryrun_paper_doubled_error"] = tail(proc)
        log(
            f"[dag] dry run, {len(papers)} papers: {res['dryrun_paper_doubled_s']} "
            f"({res['dryrun_paper_doubled_jobs']} jobs)"
        )

    # (b) no-op rerun of a completed smoke workflow, in a temporary git copy
    with tempfile.TemporaryDirectory(prefix="rlrepro-bench-") as tmp:
        ws = Path(tmp) / "repo"
        make_workspace(ws, env)
        run = [smk, "--cores", str(cores), "--config", "scale=smoke"]
        sec, proc = timed(run, ws, env)
        res["smoke_full_run_s"] = sec
        if proc.returncode != 0:
            res["smoke_error"] = tail(proc, 40)
            log(f"[dag] smoke run failed after {sec:.1f}s:\n{res['smoke_error']}")
            # fall back to a dry run of the (failed, partly done) smoke DAG
            times = [timed([smk, "-n", "--config", "scale=smoke"], ws, env)[0] for _ in range(repeats)]
            res["dryrun_smoke_after_failure_s"] = statistics.median(times)
            res["noop_rerun_s"] = None
        else:
            log(f"[dag] smoke run (cold, {cores} cores): {sec:.1f}s")
            times, nothing = [], True
            for _ in range(repeats):
                sec, proc = timed(run, ws, env)
                times.append(sec)
                text = proc.stdout + proc.stderr
                nothing &= proc.returncode == 0 and "Nothing to be done" in text
            res["noop_rerun_s"] = statistics.median(times)
            res["noop_rerun_runs"] = times
            res["noop_nothing_to_be_done"] = nothing
            log(f"[dag] no-op rerun: {res['noop_rerun_s']:.2f}s (nothing to do: {nothing})")
    return res
