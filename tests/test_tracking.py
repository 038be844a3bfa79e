"""pipeline.tracking: idempotent batch registration of run dirs into a SQLite MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import tracking
from pipeline.tracking import store as mlflow_store
from pipeline.atomic import atomic_write_json, atomic_write_text

N_ROWS = 12
METRICS = ("exact_tv", "emp_l1", "modes_found", "loss", "log_z")


def write_run(results: Path, method: str, seed: int, scale: str = "small", shift: float = 0.0) -> Path:
    """A synthetic run dir following the run-dir contract."""
    d = results / scale / "egfn" / "hypergrid" / method / f"seed{seed}"
    cfg = {
        "paper": "egfn",
        "experiment": "hypergrid",
        "method": method,
        "seed": seed,
        "scale": scale,
        "env": "hypergrid",
        "env_kwargs": {"ndim": 2, "height": 8},
        "iterations": 1200,
        "eval_every": 100,
        "checkpoint_every": 500,
        "hparams": {"lr": 1e-3, "hidden": [64, 64], "batch_size": 16},
    }
    atomic_write_text(d / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    atomic_write_json(
        d / "manifest.json",
        {
            "git_sha": "abc123",
            "git_dirty": False,
            "device": "cpu",
            "host": "testhost",
            "python": "3.11.9",
            "packages": {"torch": "2.13.0"},
            "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:10:00+00:00",
            "resumed_from": None,
            "code_hash": "c0de",
            "config_hash": "cf9",
            "wall_seconds": 600.0,
        },
    )
    lines = ["step,trajectories," + ",".join(METRICS)]
    for i in range(N_ROWS):
        step = (i + 1) * 100
        vals = [1.0 / (i + 1) + seed + shift, 0.5 / (i + 1), i, 2.0 - 0.1 * i, 0.1 * i]
        lines.append(f"{step},{step * 16}," + ",".join(repr(float(v)) for v in vals))
    atomic_write_text(d / "curve.csv", "\n".join(lines) + "\n")
    atomic_write_json(
        d / "eval.json",
        {
            "metrics": {"exact_tv": 0.1 + seed, "modes_found": 4.0},
            "per_episode": {"reward": [1.0, 2.0]},
            "n_episodes": 2,
        },
    )
    (d / "model.pt").write_bytes(b"\0")
    return d


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store per module: first-time init (Alembic migrations) takes seconds."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root.resolve() / 'mlflow.db'}"  # not resolve_uri: ignore a user's env
    tracking.ensure_store(uri)
    return uri, root


def runs_for(client, **tags):
    exp = client.get_experiment_by_name("rl-repro/egfn")
    flt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return client.search_runs([exp.experiment_id], filter_string=flt)


def test_resolve_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.resolve_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:5000")
    assert tracking.resolve_uri("sqlite:///mlflow.db", tmp_path) == "http://localhost:5000"
    assert tracking.live_logging_enabled()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")
    assert not tracking.live_logging_enabled()
    assert tracking.resolve_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/other.db"


def test_register_idempotent_and_replaces(store, tmp_path):
    uri, _ = store
    from mlflow.tracking import MlflowClient

    results = tmp_path / "results"
    dirs = [write_run(results, m, s) for m in ("tb", "db") for s in (0, 1)]
    assert tracking.register(dirs, results, uri) == {"logged": 4, "skipped": 0, "replaced": 0}

    client = MlflowClient(tracking_uri=uri)
    tb = runs_for(client, method="tb")
    assert sorted(r.data.tags["seed"] for r in tb) == ["0", "1"]
    for d in dirs:
        key = d.relative_to(results).as_posix()
        (run,) = runs_for(client, **{"rlrepro.run_key": key})
        t, p = run.data.tags, run.data.params
        assert t["paper"] == "egfn" and t["experiment"] == "hypergrid" and t["env"] == "hypergrid"
        assert t["scale"] == "small" and t["git_sha"] == "abc123" and t["device"] == "cpu"
        assert t["artifact.model"] == f"{key}/model.pt"
        assert t[tracking.CONTENT_HASH_TAG] == tracking.content_hash(d)
        assert p["hparams.lr"] == "0.001" and p["env_kwargs.ndim"] == "2" and p["hparams.hidden"] == "[64, 64]"
        assert run.info.status == "FINISHED"
        assert run.info.start_time == 1767225600000 and run.info.end_time == 1767225600000 + 600_000
        for m in ("trajectories",) + METRICS:
            hist = client.get_metric_history(run.info.run_id, m)
            assert len(hist) == N_ROWS
            assert [h.step for h in sorted(hist, key=lambda h: h.step)] == [100 * (i + 1) for i in range(N_ROWS)]
        assert run.data.metrics["eval/exact_tv"] == pytest.approx(0.1 + int(t["seed"]))

    # Registering again changes nothing.
    assert tracking.register(dirs, results, uri) == {"logged": 0, "skipped": 4, "replaced": 0}
    assert len(runs_for(client, method="tb")) == 2

    # A changed curve replaces exactly that run; a new run dir is logged.
    old = runs_for(client, **{"rlrepro.run_key": "small/egfn/hypergrid/tb/seed0"})[0]
    write_run(results, "tb", 0, shift=5.0)
    dirs.append(write_run(results, "subtb", 0))
    assert tracking.register(dirs, results, uri) == {"logged": 1, "skipped": 3, "replaced": 1}
    (new,) = runs_for(client, **{"rlrepro.run_key": "small/egfn/hypergrid/tb/seed0"})
    assert new.info.run_id != old.info.run_id
    hist = client.get_metric_history(new.info.run_id, "exact_tv")
    assert len(hist) == N_ROWS and min(h.value for h in hist) > 5.0
    assert len(runs_for(client, method="tb")) == 2


def test_half_logged_run_is_replaced(store, tmp_path):
    """A run left without a content hash (crash mid-register) is not mistaken for a good one."""
    uri, _ = store
    from mlflow.tracking import MlflowClient

    results = tmp_path / "results"
    d = write_run(results, "fm", 3)
    key = d.relative_to(results).as_posix()
    client = MlflowClient(tracking_uri=uri)
    exp = mlflow_store.experiment_id(client, "egfn", uri)
    client.create_run(exp, tags={tracking.RUN_KEY_TAG: key, "method": "fm"})
    assert tracking.register([d], results, uri) == {"logged": 0, "skipped": 0, "replaced": 1}
    (run,) = runs_for(client, **{"rlrepro.run_key": key})
    assert run.data.tags.get(tracking.CONTENT_HASH_TAG) == tracking.content_hash(d)


def test_batches_respect_limits():
    from mlflow.entities import Metric, Param

    metrics = [Metric("m", 1.0, 0, i) for i in range(2500)]
    params = [Param(f"p{i}", "x") for i in range(250)]
    chunks = list(mlflow_store.chunks(metrics, params, []))
    assert sum(len(m) for m, _, _ in chunks) == 2500 and sum(len(p) for _, p, _ in chunks) == 250
    for m, p, t in chunks:
        assert len(m) <= 1000 and len(p) <= 100 and len(m) + len(p) + len(t) <= 1000


def test_live_logger_never_raises(monkeypatch):
    # Nothing listens on port 9: every call fails, but training must not see an exception.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.warns(RuntimeWarning, match="live logging disabled"):
        log = tracking.LiveLogger("http://127.0.0.1:9", "egfn", {"method": "tb"}, {"hparams": {"lr": 1e-3}})
    for i in range(120):
        log.log_row(i, {"loss": 1.0 / (i + 1)})
    log.close("FAILED")


def test_live_logger_logs_in_batches(store):
    """Against a SQLite store (same client code path as a server)."""
    uri, _ = store
    from mlflow.tracking import MlflowClient

    log = tracking.LiveLogger(uri, "live", {"method": "tb", "seed": 0}, {"hparams": {"lr": 0.01}}, flush_rows=7)
    for i in range(20):
        log.log_row(i * 10, {"loss": float(i), "log_z": 0.5})
    client = MlflowClient(tracking_uri=uri)
    assert len(client.get_metric_history(log.run_id, "loss")) == 14  # two flushes so far
    log.close()
    run = client.get_run(log.run_id)
    assert run.info.status == "FINISHED" and run.data.params["hparams.lr"] == "0.01"
    assert len(client.get_metric_history(log.run_id, "loss")) == 20
