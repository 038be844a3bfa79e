"""The job server (pipeline/jobserver.py): a job forked from it behaves exactly like a job that
started its own interpreter — same files, same exit codes, signals reach it — and a job that
finds no server runs itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import make_workspace
from pipeline import jobserver

RUN = "results/smoke/egfn/hypergrid/tb/seed0"
TRAIN = [
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
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A workspace and a job server serving its code."""
    ws = make_workspace(tmp_path_factory.mktemp("served") / "repo")
    started = jobserver.start(os.getpid(), ws / "logs/jobserver.log", cwd=ws)
    assert started is not None, "the job server did not come up"
    sock, pid = started
    yield ws, sock
    jobserver.stop(pid)


def pipeline_cmd(ws: Path, args: list[str], sock: str | None, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in (jobserver.ENV, "RLREPRO_FORKED")}
    if sock:
        env[jobserver.ENV] = sock
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_forked_job_writes_the_same_files(served, tmp_path):
    forked, sock = served
    direct = make_workspace(tmp_path / "direct")
    for ws, s in ((direct, None), (forked, sock)):
        proc = pipeline_cmd(ws, TRAIN, s)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert (direct / RUN / "curve.csv").read_bytes() == (forked / RUN / "curve.csv").read_bytes()
    launchers = [json.loads((ws / RUN / "manifest.json").read_text())["launcher"] for ws in (direct, forked)]
    assert launchers == ["process", "jobserver"]


def test_another_checkout_runs_itself(served, tmp_path):
    """A job of another checkout must not run the server's code: the server refuses it."""
    _, sock = served
    other = make_workspace(tmp_path / "other")
    proc = pipeline_cmd(other, TRAIN, sock)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads((other / RUN / "manifest.json").read_text())["launcher"] == "process"


def test_exit_code_and_output_come_back(served):
    ws, sock = served
    proc = pipeline_cmd(ws, ["--papers", "nope", "plan"], sock)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "unknown paper 'nope'" in err
    proc = pipeline_cmd(ws, ["--papers", "egfn", "plan"], sock)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "egfn (small)" in out


def test_sigterm_reaches_the_forked_job(served):
    """Preemption through the server: the job checkpoints and exits 75, as when run directly."""
    ws, sock = served
    cfg_path = ws / "config/papers/egfn.yaml"
    doc = yaml.safe_load(cfg_path.read_text())
    smoke = doc["experiments"]["hypergrid"]["scales"]["smoke"]
    smoke.update(iterations=100_000, eval_every=50_000, checkpoint_every=10)
    cfg_path.write_text(yaml.safe_dump(doc))
    args = [a if a != "0" else "1" for a in TRAIN]  # seed 1: a run of its own
    proc = pipeline_cmd(ws, args, sock)
    ckpt = ws / "work/ckpt" / RUN.removeprefix("results/").replace("seed0", "seed1") / "latest.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), "no checkpoint was written"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err


def test_without_a_server_the_job_runs_itself(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = pipeline_cmd(ws, ["--papers", "egfn", "plan"], str(tmp_path / "no-such.sock"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "egfn (small)" in out


def test_a_server_started_without_waiting_serves_the_first_job(tmp_path):
    """The workflow starts the server without waiting (a no-op rerun must not pay its imports):
    a job that arrives before it listens waits for it and is still forked."""
    ws = make_workspace(tmp_path / "ws")
    t0 = time.monotonic()
    started = jobserver.start(os.getpid(), ws / "logs/jobserver.log", cwd=ws, wait=False)
    assert started is not None and time.monotonic() - t0 < 1.0
    sock, pid = started
    try:
        assert not Path(sock).with_name("ready").exists()  # still importing
        proc = pipeline_cmd(ws, TRAIN, sock)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert json.loads((ws / RUN / "manifest.json").read_text())["launcher"] == "jobserver"
    finally:
        jobserver.stop(pid)


def test_a_dead_server_is_not_waited_for(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    sock, pid = jobserver.start(os.getpid(), ws / "logs/jobserver.log", cwd=ws, wait=False)
    jobserver.stop(pid)
    t0 = time.monotonic()
    proc = pipeline_cmd(ws, ["--papers", "egfn", "plan"], sock)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "egfn (small)" in out
    assert time.monotonic() - t0 < 60


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:  # the server's per-job threads come and go while we read
            out |= {int(c) for c in (task / "children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def test_sigkill_of_the_job_ends_its_training(tmp_path):
    """A job killed with SIGKILL (Snakemake recording it as failed) must take its forked
    training with it: an orphan would write the run's outputs after the failure was recorded,
    and the next snakemake would take them as complete."""
    ws = make_workspace(tmp_path / "ws")
    cfg_path = ws / "config/papers/egfn.yaml"
    doc = yaml.safe_load(cfg_path.read_text())
    smoke = doc["experiments"]["hypergrid"]["scales"]["smoke"]
    smoke.update(iterations=100_000, eval_every=50_000, checkpoint_every=10)
    cfg_path.write_text(yaml.safe_dump(doc))
    sock, server = jobserver.start(os.getpid(), ws / "logs/jobserver.log", cwd=ws)
    try:
        proc = pipeline_cmd(ws, TRAIN, sock)
        ckpt = ws / "work/ckpt" / RUN.removeprefix("results/") / "latest.pt"
        deadline = time.monotonic() + 120
        while not ckpt.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ckpt.exists(), "no checkpoint was written"
        training = _children(server)
        assert len(training) == 1, "the training child is not the server's child"
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _children(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _children(server), "the forked training outlived its job"
        assert not Path(f"/proc/{training.pop()}").exists()
        stamp = ckpt.stat().st_mtime_ns
        time.sleep(2.0)
        assert ckpt.stat().st_mtime_ns == stamp, "a checkpoint was written after the job ended"
        for name in ("curve.csv", "manifest.json", "model.pt", "config.yaml"):
            assert not (ws / RUN / name).exists()
    finally:
        jobserver.stop(server)
