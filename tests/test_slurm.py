"""The cluster path on a real single-node SLURM (../shared/slurm/start-local-slurm.sh: slurmctld,
slurmd, slurmdbd + MariaDB, munge): a paper's smoke DAG through `--workflow-profile
profiles/slurm`, preemption and TIMEOUT recovered from checkpoints, a failing job reported.

The tests start the cluster themselves and stop it only if they started it. Partition, account
and the GPU request come from the command line, never from editing the profile:

    snakemake --workflow-profile profiles/slurm --config scale=smoke papers=[omnet] \\
        --default-resources slurm_partition=debug slurm_account=root mem_mb=1000 runtime=10 \\
        --set-resources train:slurm_partition=debug train:gpu=0 train:cpus_per_gpu=0 \\
            train_group:slurm_partition=debug train_group:gpu=0 train_group:cpus_per_gpu=0 \\
        --slurm-init-seconds-before-status-checks 2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, git_env, make_workspace

SLURM_DIR = REPO.parent / "shared" / "slurm"
REQUIRED = os.environ.get("RLREPRO_REQUIRE_SLURM") == "1"
AVAILABLE = (SLURM_DIR / "start-local-slurm.sh").is_file() and os.geteuid() == 0
pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not AVAILABLE and not REQUIRED, reason="needs root and ../shared/slurm (a local SLURM cluster)"),
]


def _cluster_running() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def partition():
    """The cluster's partition; started here if it was not running (and then stopped at the end
    of the session, not of this module: snakemake's SLURM plugin runs `scontrol show config` at
    import, which waits ~10 s for an absent controller, so every later snakemake call in the
    session would pay that)."""
    started_here = not _cluster_running()
    proc = subprocess.run(
        ["bash", str(SLURM_DIR / "start-local-slurm.sh")], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    part = proc.stdout.strip().splitlines()[-1]
    yield part
    if started_here:
        subprocess.run(["bash", str(SLURM_DIR / "stop-local-slurm.sh")], capture_output=True, timeout=300)


def slurm_args(part: str) -> list[str]:
    return [
        "--workflow-profile",
        "profiles/slurm",
        "--default-resources",
        f"slurm_partition={part}",
        "slurm_account=root",
        "mem_mb=1000",
        "runtime=10",
        "--set-resources",
        f"train:slurm_partition={part}",
        "train:gpu=0",
        "train:cpus_per_gpu=0",
        "train:mem_mb=1000",
        # OMNet's smoke trains SAC's and SAC-20's two seeds in one group job each
        f"train_group:slurm_partition={part}",
        "train_group:gpu=0",
        "train_group:cpus_per_gpu=0",
        "train_group:mem_mb=1000",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--jobs",
        "4",
    ]


def snakemake(ws: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "snakemake"
    return subprocess.run([str(exe), *args], cwd=ws, capture_output=True, text=True, env=git_env(), **kw)


def sacct_states(job_ids: set[str], timeout: float = 60) -> dict[str, str]:
    """States of ``job_ids`` in SLURM's accounting (it lags squeue by seconds: poll)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "--starttime", "now-1day", "-o", "JobIDRaw,State"],
            capture_output=True,
            text=True,
        ).stdout
        states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        found = {j: states.get(j, "") for j in job_ids}
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def curve_without_wall_clock(path: Path) -> list[list[str]]:
    """curve.csv without the time_* columns (wall-clock rates differ between two machines)."""
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, c in enumerate(rows[0]) if not c.startswith("time_")]
    return [[r[i] for i in keep] for r in rows]


def test_paper_smoke_dag_through_sbatch(partition, tmp_path):
    # the same paper's smoke DAG run locally, meanwhile, is the reference (this module needs no
    # session fixture of the DAG tests, so it can run in a pytest process of its own)
    local_ws = make_workspace(tmp_path / "local")
    local = subprocess.Popen(
        [str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "--config", "scale=smoke", "papers=[omnet]"],
        cwd=local_ws,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ws = make_workspace(tmp_path / "repo")
    proc = snakemake(ws, *slurm_args(partition), "--config", "scale=smoke", "papers=[omnet]")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    local_out, _ = local.communicate(timeout=1200)
    assert local.returncode == 0, local_out[-3000:]
    runs = sorted((ws / "results/smoke/omnet").glob("*/*/seed*"))
    assert len(runs) == 14
    job_ids = set()
    for run in runs:
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["slurm_job_id"], run  # trained inside a SLURM job
        job_ids.add(manifest["slurm_job_id"])
        ref = local_ws / run.relative_to(ws)
        assert curve_without_wall_clock(run / "curve.csv") == curve_without_wall_clock(ref / "curve.csv"), run
    states = sacct_states(job_ids)
    assert set(states.values()) == {"COMPLETED"}, states
    assert (ws / "reports/smoke/index.html").is_file()


def long_run_workspace(tmp_path: Path, name: str, iterations: int, runtime_min: int) -> Path:
    """A workspace whose EGFN hypergrid TB run at smoke is ``iterations`` long, checkpointing
    every 20 iterations, with a SLURM runtime of ``runtime_min`` minutes (x attempt)."""
    ws = make_workspace(tmp_path / name)
    p = ws / "config/papers/egfn.yaml"
    doc = yaml.safe_load(p.read_text())
    smoke = doc["experiments"]["hypergrid"]["scales"]["smoke"]
    smoke.update(iterations=iterations, eval_every=iterations, checkpoint_every=20, runtime_min=runtime_min)
    p.write_text(yaml.safe_dump(doc))
    subprocess.run(["git", "commit", "-qam", "long run"], cwd=ws, env=git_env(), check=True)
    return ws


RUN = "results/smoke/egfn/hypergrid/tb/seed0"


LOCAL_TRAIN = [
    sys.executable,
    "-m",
    "pipeline",
    "--scale",
    "smoke",
    "--papers",
    "egfn",
    "train",
    "--paper",
    "egfn",
    "--experiment",
    "hypergrid",
    "--method",
    "tb",
    "--seed",
    "0",
]


def train_locally(ws: Path) -> float:
    """Run the workspace's long run locally (no server, no SLURM); return its wall time."""
    t0 = time.monotonic()
    proc = subprocess.run(LOCAL_TRAIN, cwd=ws, capture_output=True, text=True, env=git_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return time.monotonic() - t0


def iterations_per_second(tmp_path: Path) -> float:
    """This machine's speed on the job, start-up excluded (two lengths, the difference)."""
    short = train_locally(long_run_workspace(tmp_path, "rate1", 200, 5))
    long = train_locally(long_run_workspace(tmp_path, "rate2", 1000, 5))
    return 800 / max(long - short, 0.5)


def wait_for(predicate, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def running_train_job() -> str | None:
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job_id, comment = line.split("|", 1)
        if "rule_train" in comment or "train" in comment:
            return job_id
    return None


def test_preempted_and_timed_out_jobs_resume_from_checkpoints(partition, tmp_path):
    """SIGTERM (scancel --signal=TERM) mid-run: the retry resumes from its checkpoint and ends with
    the numbers of an uninterrupted run. A runtime too short (TIMEOUT): the retries (runtime x
    attempt) resume from the checkpoints and finish the run."""
    rate = iterations_per_second(tmp_path)
    # The preempted run only needs to be running at its first checkpoint: ~30 s of work.
    n_pre = int(max(400, 30 * rate)) // 20 * 20
    # The timed-out run must outlast its first attempt (1-minute limit, enforced up to ~30 s late)
    # whatever the load does to the speed measured just now: ~150 s of work at that speed (CI runs
    # this module beside the rest of the suite, so the speed varies over time in both directions;
    # measured with three runs sharing two cores, a run went 2.5x slower than this estimate). Four
    # retries (2, 3, 4, 5 minutes, each resuming from the last checkpoint) leave room for a machine
    # several times slower. Its exactness after a resume is the preemption run's check.
    n_tmo = int(max(1200, 150 * rate)) // 20 * 20
    reference = long_run_workspace(tmp_path, "reference", n_pre, 5)
    # the uninterrupted run, locally and meanwhile (its numbers do not depend on the load)
    ref_proc = subprocess.Popen(
        LOCAL_TRAIN, cwd=reference, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    # preemption: SIGTERM to the running training job, once it has checkpointed
    pre = long_run_workspace(tmp_path, "preempt", n_pre, 5)
    job = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "snakemake"),
            f"{RUN}/model.pt",
            *slurm_args(partition),
            "--config",
            "scale=smoke",
            "papers=[egfn]",
        ],
        cwd=pre,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ckpt = pre / "work/ckpt" / RUN.removeprefix("results/") / "latest.pt"
    if not wait_for(ckpt.exists, 300):
        job.kill()
        pytest.fail("no checkpoint before the preemption:\n" + job.communicate()[0][-3000:])
    job_id = wait_for(running_train_job, 60)
    assert job_id, "no running training job to preempt"
    subprocess.run(["scancel", "--signal=TERM", job_id], check=True)

    # timeout: a run with a 1-minute limit, concurrently
    tmo = long_run_workspace(tmp_path, "timeout", n_tmo, 1)
    proc_t = snakemake(
        tmo, f"{RUN}/model.pt", *slurm_args(partition), "--retries", "4", "--config", "scale=smoke", "papers=[egfn]"
    )
    out, _ = job.communicate(timeout=1200)
    assert job.returncode == 0, out[-3000:]
    ref_out, _ = ref_proc.communicate(timeout=1200)
    assert ref_proc.returncode == 0, ref_out[-2000:]
    assert proc_t.returncode == 0, proc_t.stdout[-3000:] + proc_t.stderr[-3000:]

    for ws, why in ((pre, "preempted"), (tmo, "timed out")):
        manifest = json.loads((ws / RUN / "manifest.json").read_text())
        assert manifest["resumed_from"], f"the {why} run did not resume from a checkpoint"
        logs = sorted((ws / "logs/smoke/train/egfn/hypergrid/tb").glob("seed0.attempt*.log"))
        assert len(logs) >= 2, (why, logs)  # each attempt kept its log
    assert (pre / RUN / "curve.csv").read_bytes() == (reference / RUN / "curve.csv").read_bytes()
    last_row = (tmo / RUN / "curve.csv").read_text().splitlines()[-1]
    assert last_row.split(",")[0] == str(n_tmo), last_row  # the timed-out run got to its end
    states = set(sacct_states({json.loads((tmo / RUN / "manifest.json").read_text())["slurm_job_id"]}).values())
    assert states == {"COMPLETED"}
    timed_out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--starttime", "now-1day", "-o", "State"], capture_output=True, text=True
    ).stdout
    assert "TIMEOUT" in timed_out


def test_failing_job_fails_the_workflow_and_leaves_no_output(partition, tmp_path):
    """A job that fails on the cluster (setup of an env whose data files cannot be had) fails the
    workflow, names the rule and its log, and leaves nothing that looks finished."""
    ws = make_workspace(tmp_path / "repo")
    env = git_env()
    env["RLREPRO_DATA_MIRROR"] = str(tmp_path / "empty-mirror")  # no data, and no network
    (tmp_path / "empty-mirror").mkdir()
    exe = Path(sys.executable).parent / "snakemake"
    target = "results/smoke/egfn/tfbind8/tb/seed0/model.pt"
    proc = subprocess.run(
        [str(exe), *slurm_args(partition), "--config", "scale=smoke", "papers=[egfn]", "--retries", "0", target],
        cwd=ws,
        capture_output=True,
        text=True,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule setup_env" in out and "logs/smoke/setup/" in out, out[-3000:]
    assert not list((ws / "results/smoke/_envs").glob("tfbind8-*/info.json"))
    assert not (ws / target).exists()
    assert (
        "FAILED"
        in subprocess.run(
            ["sacct", "-X", "-n", "-P", "--starttime", "now-1day", "-o", "State"], capture_output=True, text=True
        ).stdout
    )
