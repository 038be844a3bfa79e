"""Crash safety (issue 10, "Crash anywhere, run nothing wrong"): checkpoints bound to their code
and checksummed, evaluation a pure function of (model, seed), file modes that follow the umask,
one training log per attempt, and kills or races that never leave a wrong result behind."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, make_workspace, snakemake
from pipeline import atomic as pio
from pipeline.layout import Layout


# ------------------------------------------------------------------------------------ umask
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = [
            pio.atomic_write_text(tmp_path / "a.txt", "x"),
            pio.atomic_write_bytes(tmp_path / "b.bin", b"x"),
            pio.atomic_write_json(tmp_path / "sub" / "c.json", {"a": 1}),
        ]
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


# ----------------------------------------------------------------- checkpoints: code + checksum
def tiny_job(seed: int = 0):
    from pipeline.config import RunJob

    return RunJob(
        scale="smoke",
        paper="egfn",
        experiment="hypergrid",
        method="db",
        seed=seed,
        env="hypergrid",
        env_kwargs={"ndim": 2, "height": 6},
        iterations=40,
        eval_every=10,
        checkpoint_every=10,
        runtime_min=1,
        hparams={"hidden": 16},
    )


def train(base: Path, code_hash: str = "c0de", stop_at_checkpoint: bool = False) -> int:
    """execute_train in-process; with ``stop_at_checkpoint``, preempted once a checkpoint exists.
    Restores the process state execute_train sets (SIGTERM handler, threads, determinism)."""
    from pipeline.run import FileRun, execute_train

    saved = (signal.getsignal(signal.SIGTERM), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    should_stop = FileRun.should_stop
    if stop_at_checkpoint:
        FileRun.should_stop = lambda self: (self.ckpt_dir / "latest.pt").exists()
    try:
        return execute_train(
            tiny_job(), run_dir=run_dir(base), ckpt_dir=ckpt(base).parent, device="cpu", code_hash=code_hash
        )
    finally:
        FileRun.should_stop = should_stop
        signal.signal(signal.SIGTERM, saved[0])
        torch.set_num_threads(saved[1])
        torch._C._set_deterministic_algorithms(saved[2])


def run_dir(base: Path) -> Path:
    return Layout(results=base / "results").run_dir(tiny_job().key)


def ckpt(base: Path) -> Path:
    return Layout(work=base / "work").checkpoint_dir(tiny_job().key) / "latest.pt"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted tiny run."""
    base = tmp_path_factory.mktemp("ref")
    assert train(base) == 0
    return base


def same_outputs(base: Path, ref: Path) -> None:
    assert (run_dir(base) / "curve.csv").read_bytes() == (run_dir(ref) / "curve.csv").read_bytes()
    a = torch.load(run_dir(base) / "model.pt", weights_only=False)
    b = torch.load(run_dir(ref) / "model.pt", weights_only=False)
    assert a.keys() == b.keys() and all(torch.equal(a["net"][k], b["net"][k]) for k in b["net"])
    assert json.loads((run_dir(base) / "manifest.json").read_text())["resumed_from"] is None
    assert not ckpt(base).exists()


def test_preempted_run_resumes_and_matches(tmp_path, reference, capsys):
    """The checksummed checkpoint still resumes (the normal path is unchanged)."""
    assert train(tmp_path, stop_at_checkpoint=True) == 75
    assert ckpt(tmp_path).exists()
    assert train(tmp_path) == 0
    assert "resuming" in capsys.readouterr().err
    assert (run_dir(tmp_path) / "curve.csv").read_bytes() == (run_dir(reference) / "curve.csv").read_bytes()
    assert not list(ckpt(tmp_path).parent.iterdir())  # checkpoint and sidecar cleared


def test_checkpoint_of_other_code_is_discarded(tmp_path, reference, capsys):
    assert train(tmp_path, code_hash="01dc0de", stop_at_checkpoint=True) == 75
    capsys.readouterr()
    assert train(tmp_path, code_hash="c0de") == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "discarding checkpoint" in x)
    assert str(ckpt(tmp_path)) in line and "01dc0de" in line and "c0de" in line
    assert "resuming" not in err
    same_outputs(tmp_path, reference)


def flip_two_weight_bits(path: Path) -> None:
    """Flip two bits inside the bytes of the policy net's first weight matrix."""
    data = bytearray(path.read_bytes())
    state = torch.load(path, weights_only=False)["state"]
    weight = next(v for k, v in state["net"].items() if k.endswith("weight"))
    at = bytes(data).find(weight.numpy().tobytes())
    assert at > 0
    data[at + 5] ^= 0x01
    data[at + 42] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p: p.write_bytes(b"\x80\x03not a checkpoint at all" * 10),
    "empty": lambda p: p.write_bytes(b""),
    "bit-flipped": flip_two_weight_bits,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_set_aside_and_run_restarts(tmp_path, reference, capsys, damage):
    assert train(tmp_path, stop_at_checkpoint=True) == 75
    DAMAGE[damage](ckpt(tmp_path))
    capsys.readouterr()
    assert train(tmp_path) == 0
    err = capsys.readouterr().err
    assert any(str(ckpt(tmp_path)) in x and "damaged" in x for x in err.splitlines()), err
    assert "resuming" not in err
    same_outputs(tmp_path, reference)
    bad = [p.name for p in ckpt(tmp_path).parent.glob("latest.pt.bad-*") if p.suffix != ".sha256"]
    assert len(bad) == 1 and bad[0] in err  # kept for a post-mortem


def test_checksum_survives_a_kill_between_its_writes(tmp_path, monkeypatch):
    """A kill between the checkpoint's and its sidecar's writes never makes a good one look bad."""
    path = tmp_path / "latest.pt"
    pio.atomic_write_checked(path, b"old")

    def killed(*args, **kwargs):
        raise SystemExit("killed")

    with monkeypatch.context() as m:  # killed after the sidecar's first write
        m.setattr(pio, "atomic_write_bytes", killed)
        with pytest.raises(SystemExit):
            pio.atomic_write_checked(path, b"new")
    assert pio.read_checked(path) == b"old"
    real, calls = pio.atomic_write_text, []

    def second_call_killed(p, t):
        calls.append(p)
        return killed() if len(calls) == 2 else real(p, t)

    with monkeypatch.context() as m:  # killed after the data's write
        m.setattr(pio, "atomic_write_text", second_call_killed)
        with pytest.raises(SystemExit):
            pio.atomic_write_checked(path, b"new")
    assert pio.read_checked(path) == b"new"
    path.write_bytes(b"nex")
    with pytest.raises(pio.ChecksumError):
        pio.read_checked(path)


# ------------------------------------------------------------------------- evaluation
PENDULUM = {"suite": "gym", "task": "Pendulum-v1"}


@pytest.fixture
def one_thread():
    """Tiny nets: one torch thread is faster, and steady on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["omnet", "droq"])
def test_evaluation_is_a_pure_function_of_model_and_seed(tmp_path, method, one_thread):
    """Q-bias with DroQ's dropout active: the same model and seed give the same metrics, whatever
    the global generators did before, through the module (notebooks) and the pipeline."""
    import methods
    from methods.common.runapi import MemoryRun
    from pipeline.config import RunJob
    from pipeline.run import execute_evaluate

    mod = methods.load(method)
    hp = dict(start_steps=100, hidden=16, batch=16, utd=1, eval_episodes=1, q_bias_episodes=1)
    cfg = mod.Config(env_kwargs=PENDULUM, iterations=150, eval_every=150, checkpoint_every=150, **hp)
    run = MemoryRun(seed=1)
    mod.train(cfg, run)

    first = mod.evaluate(cfg, run.model, 1)
    torch.rand(3), np.random.rand(3), random.random()  # unrelated use in between
    after = torch.get_rng_state()
    assert mod.evaluate(cfg, run.model, 1) == first
    assert torch.equal(torch.get_rng_state(), after)  # the caller's stream untouched

    job = RunJob(
        scale="smoke",
        paper="omnet",
        experiment="pendulum",
        method=method,
        seed=1,
        env="control",
        env_kwargs=PENDULUM,
        iterations=150,
        eval_every=150,
        checkpoint_every=150,
        runtime_min=1,
        hparams=hp,
    )
    (tmp_path / job.key).mkdir(parents=True)
    torch.save(run.model, tmp_path / job.key / "model.pt")
    outs = []
    for noise in (1, 7):
        torch.rand(noise)
        execute_evaluate(job, model=tmp_path / job.key / "model.pt", out=tmp_path / job.key / "eval.json", device="cpu")
        outs.append((tmp_path / job.key / "eval.json").read_bytes())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["metrics"]["q_bias_mean"] == first["metrics"]["q_bias_mean"]


# --------------------------------------------------------------------------- workspace
@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workflow copy with a 40-iteration smoke hypergrid that checkpoints every 10."""
    ws = make_workspace(tmp_path_factory.mktemp("ws") / "repo")
    p = ws / "config/papers/egfn.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["experiments"]["hypergrid"]["scales"]["smoke"].update(iterations=40, eval_every=20, checkpoint_every=10)
    p.write_text(yaml.safe_dump(doc))
    return ws


def test_every_training_attempt_keeps_its_log(workspace):
    """A train job that fails, then succeeds on the rerun: both attempts' logs are kept (Snakemake
    deletes the declared log before each attempt), and the declared log is the latest."""
    ws = workspace
    key = "smoke/egfn/hypergrid/db/seed0"
    blocker = ws / "work/ckpt" / key  # a file where the checkpoint folder goes: fails
    blocker.parent.mkdir(parents=True)
    blocker.write_text("")
    target = (f"results/{key}/model.pt", "--config", "scale=smoke")
    failed = snakemake(ws, "--cores", "1", *target, check=False)
    assert failed.returncode != 0 and "Error in rule train" in failed.stdout + failed.stderr
    blocker.unlink()
    snakemake(ws, "--cores", "1", *target)
    logs = ws / "logs/smoke/train/egfn/hypergrid/db"
    first, second = logs / "seed0.attempt1.log", logs / "seed0.attempt2.log"
    assert "Error" in first.read_text() and str(blocker) in first.read_text()
    assert second.exists() and "Error" not in second.read_text()
    assert os.path.samefile(logs / "seed0.log", second)
    assert sorted(p.name for p in logs.iterdir()) == ["seed0.attempt1.log", "seed0.attempt2.log", "seed0.log"]


# ----------------------------------------------------------------------- kills and races
# `python -m pipeline ...` with atomic_write patched so that the n-th write is SIGKILLed
# half-way through (its temporary file half-written): the deterministic form of a kill at the
# worst moment.
KILLED_AT_WRITE = """
import os, signal, sys
from pipeline import atomic, cli
real, calls = atomic.atomic_write, []
def half_then_killed(write):
    def wrapped(tmp):
        write(tmp)
        os.truncate(tmp, tmp.stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return wrapped
def atomic_write(path, write):
    calls.append(path)
    return real(path, half_then_killed(write) if len(calls) == int(sys.argv[1]) else write)
atomic.atomic_write = atomic_write
sys.exit(cli.main(sys.argv[2:]))
"""


def pipeline_cli(base: Path, *args: str, kill_at_write: int = 0) -> int:
    """``python -m pipeline`` on smoke EGFN with results and reports under ``base``; in-process
    (fast: torch is imported already) unless a write is to be killed."""
    from pipeline import cli

    argv = [
        "--scale",
        "smoke",
        "--papers",
        "egfn",
        "--set",
        f"results_dir={base / 'res'}",
        "--set",
        f"reports_dir={base / 'rep'}",
        *args,
    ]
    if not kill_at_write:
        return cli.main(argv)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_WRITE, str(kill_at_write), *argv], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    return proc.returncode


def write_synthetic_runs(base: Path) -> None:
    """curve.csv and eval.json for every smoke run of the EGFN paper."""
    from pipeline.config import load_from_files

    rng = np.random.default_rng(0)
    wf = load_from_files(REPO / "config/config.yaml", {"scale": "smoke", "papers": ["egfn"]})
    for job in wf.jobs("egfn"):
        d = base / "res" / job.key
        d.mkdir(parents=True)
        tv = 0.5 + rng.uniform(0, 0.3, 3)
        rows = ["step,trajectories,exact_tv,emp_l1,modes_found,loss"] + [
            f"{s},{s * 4},{v!r},{v / 2!r},{i},{rng.random()!r}" for i, (s, v) in enumerate(zip((0, 20, 40), tv))
        ]
        (d / "curve.csv").write_text("\n".join(rows) + "\n")
        metrics = {
            "exact_tv": float(tv[-1]),
            "emp_l1": float(tv[-1] / 2),
            "modes_found": 2,
            "mean_reward": float(rng.random()),
            "abs_rel_mean_error": float(rng.random()),
            "top100_reward": float(rng.random()),
            "top100_diversity": float(rng.random()),
            "accuracy": float(rng.random()),
        }
        (d / "eval.json").write_text(json.dumps({"metrics": metrics, "per_episode": {}, "n_episodes": 1}))


def outputs(paths: list[Path]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


def test_kill_mid_write_during_aggregate_and_report_reruns_identically(tmp_path):
    write_synthetic_runs(tmp_path)
    agg = [tmp_path / "res/smoke/egfn/summary.csv", tmp_path / "res/smoke/egfn/stats.json"]
    html = tmp_path / "rep/smoke/index.html"
    for stage in (
        ["aggregate", "--paper", "egfn"],
        ["figures", "--paper", "egfn"],
        ["claims", "--paper", "egfn"],
        ["report"],
    ):
        assert pipeline_cli(tmp_path, *stage) == 0
    ref = outputs(agg + [html])

    for p in agg:
        p.unlink()
    # killed half-way through stats.json, summary.csv written: nothing half-written in place
    pipeline_cli(tmp_path, "aggregate", "--paper", "egfn", kill_at_write=2)
    assert [p.exists() for p in agg] == [True, False]
    assert pipeline_cli(tmp_path, "aggregate", "--paper", "egfn") == 0
    assert outputs(agg) == {k: ref[k] for k in ("summary.csv", "stats.json")}

    html.write_text("<html>an old report</html>")
    pipeline_cli(tmp_path, "report", kill_at_write=1)
    assert html.read_text() == "<html>an old report</html>"  # the old file, whole
    assert pipeline_cli(tmp_path, "report") == 0
    assert html.read_bytes() == ref["index.html"]


SLOW_WRITER = """
import sys, time
from pipeline.atomic import atomic_write
def slow(tmp):
    with open(tmp, "w") as fh:
        fh.write("half of it"); fh.flush()
        time.sleep(60)
        fh.write(" and the rest")
atomic_write(sys.argv[1], slow)
"""


def test_sigkill_mid_write_leaves_no_file_at_the_final_path(tmp_path):
    target = tmp_path / "out" / "stats.json"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], cwd=REPO)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not any(p.stat().st_size for p in target.parent.glob(".stats.json.*")):
            time.sleep(0.02)
        assert any(target.parent.glob(".stats.json.*.tmp")), "the writer never started"
    finally:
        proc.kill()
        proc.wait()
    assert not target.exists()


def test_concurrent_register_on_a_fresh_store(tmp_path):
    """16 `register` calls (processes) racing on one fresh SQLite store: 16 runs, no error."""
    import multiprocessing as mp

    from pipeline import tracking
    from test_tracking import write_run

    tracking.store.import_mlflow()
    # imported once here rather than in each child: the race is the same, the test 10 s faster
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = tmp_path / "results"
    dirs = [write_run(results, "tb", seed) for seed in range(16)]
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_register_one, args=(d, results, uri, queue)) for d in dirs]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert [o for o in outcomes if o != "ok"] == []
    client = tracking.store.open_client(uri)
    exp = client.get_experiment_by_name("rl-repro/egfn")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["rlrepro.run_key"] for r in runs) == sorted(str(d.relative_to(results)) for d in dirs)


def _register_one(run_dir: Path, results: Path, uri: str, queue) -> None:
    from pipeline import tracking

    try:
        summary = tracking.register([run_dir], results, uri)
        queue.put("ok" if summary == {"logged": 1, "skipped": 0, "replaced": 0} else repr(summary))
    except BaseException as exc:  # reported, not raised: the parent counts errors
        queue.put(f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------ code hash
def test_code_hash_covers_the_run_contract(tmp_path):
    from pipeline.codehash import method_code_hash

    for d in ("methods", "envs", "pipeline"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    before = {m: method_code_hash(m, "hypergrid", tmp_path) for m in ("db", "tb")}
    for f in ("pipeline/run.py", "methods/common/runapi.py"):
        (tmp_path / f).write_text((tmp_path / f).read_text() + "\n# an edit\n")
        after = {m: method_code_hash(m, "hypergrid", tmp_path) for m in ("db", "tb")}
        assert all(after[m] != before[m] for m in after), f
        before = after
    (tmp_path / "methods/gfn/tb.py").write_text((tmp_path / "methods/gfn/tb.py").read_text() + "\n# x\n")
    assert method_code_hash("db", "hypergrid", tmp_path) == before["db"]  # per-method reruns kept
    assert method_code_hash("tb", "hypergrid", tmp_path) != before["tb"]


# ------------------------------------------------------------ evaluation uses train's config
def test_evaluation_takes_the_job_train_resolved(tmp_path):
    """evaluate builds its job from the run's config.yaml (written by train), and stops, naming the
    file and the fields, when that file describes another config than the workflow's job."""
    from pipeline.cli import trained_job
    from pipeline.config import ConfigError

    job = tiny_job()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(job.resolved(), sort_keys=True))
    got = trained_job(job, cfg)
    assert got == job and got.method_config() == job.method_config()
    # float hyper-parameters and nested kwargs survive the YAML round trip hash-exactly
    job_lr = replace(job, hparams={"hidden": 16, "lr": 1.0e-3, "sweep": [0.0, 0.9]})
    cfg.write_text(yaml.safe_dump(job_lr.resolved(), sort_keys=True))
    assert trained_job(job_lr, cfg).config_hash() == job_lr.config_hash()
    # a model trained under another config is not evaluated as this job's
    stale = replace(job, iterations=80, hparams={"hidden": 32})
    cfg.write_text(yaml.safe_dump(stale.resolved(), sort_keys=True))
    with pytest.raises(ConfigError, match=r"config\.yaml.*fields hparams, iterations"):
        trained_job(job, cfg)
    cfg.write_text("scale: smoke\n")
    with pytest.raises(ConfigError, match="not a run's resolved config"):
        trained_job(job, cfg)
    # no config.yaml (a model trained outside the DAG): the workflow's job
    assert trained_job(job, tmp_path / "absent.yaml") is job
