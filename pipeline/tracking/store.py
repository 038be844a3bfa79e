"""The MLflow store: tracking URIs, the client (imported with telemetry off), the one-time
store initialisation, experiments, and LogBatch requests within MLflow's limits.

``mlflow`` is imported lazily: its import costs seconds and starts telemetry, which must be
switched off *before* the import (``mlflow/__init__.py`` decides at import time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

ENV_URI = "MLFLOW_TRACKING_URI"
EXPERIMENT_PREFIX = "rl-repro/"

# LogBatch limits (mlflow/utils/validation.py, 3.17.2); the byte cap only matters over REST.
_MAX_METRICS = 1000
_MAX_PARAMS_TAGS = 100
_MAX_ENTITIES = 1000
_MAX_BATCH_BYTES = 900_000
MAX_PARAM_LEN = 6000
MAX_TAG_LEN = 8000
_MAX_KEY_LEN = 250
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")

_initialised: set[str] = set()


# --------------------------------------------------------------------------------------- URIs


def resolve_uri(configured: str, repo_root: Path) -> str:
    """The tracking URI to use: ``$MLFLOW_TRACKING_URI`` if set, else ``configured``.

    A relative SQLite path (``sqlite:///mlflow.db``) is made absolute against ``repo_root`` so the
    store does not depend on the CWD of whichever job opens it.
    """
    uri = os.environ.get(ENV_URI) or configured
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = uri[len(prefix) :]
        if path and path != ":memory:" and not path.startswith("/"):
            path = os.path.expanduser(path)
            if not os.path.isabs(path):
                path = str((Path(repo_root) / path).resolve())
            # sqlite:/// + "/abs/path" = the SQLAlchemy spelling of an absolute path
            uri = prefix + path
    return uri


def live_logging_enabled() -> bool:
    """True when ``$MLFLOW_TRACKING_URI`` names an http(s) tracking server."""
    return os.environ.get(ENV_URI, "").lower().startswith(("http://", "https://"))


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:":
            return Path(path)
    return None


def _disable_telemetry() -> None:
    # mlflow 3.17 reads MLFLOW_DISABLE_TELEMETRY (bool) or DO_NOT_TRACK == "true"
    # (mlflow/telemetry/utils.py::is_telemetry_disabled); MLFLOW_ENABLE_TELEMETRY is not read.
    # setdefault: an explicit user choice wins.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def import_mlflow():
    """Import mlflow with telemetry off (the telemetry client is created at import time)."""
    _disable_telemetry()
    import sys

    already = "mlflow" in sys.modules
    import mlflow

    if already:
        # Imported earlier, before our env var: re-evaluate so the client is dropped.
        try:
            from mlflow.telemetry import set_telemetry_client

            set_telemetry_client()
        except Exception:  # telemetry internals are not API; never fail over them
            pass
    return mlflow


def open_client(uri: str):
    import_mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_store(uri: str) -> None:
    """Create/migrate the tracking store once, before any writer opens it.

    First-time SQLite initialisation runs Alembic migrations and is not safe concurrently
    (SQLite under concurrent jobs), so it is serialised with a host-local file lock. Servers need nothing.
    """
    _disable_telemetry()
    if uri in _initialised:
        return
    db = _sqlite_path(uri)
    if db is None:
        _initialised.add(uri)
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = Path(tempfile.gettempdir()) / (
        "rlrepro-mlflow-" + hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:16] + ".lock"
    )
    import fcntl

    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            # Building the store runs the migrations (SqlAlchemyStore.__init__); a cheap
            # query makes sure the client actually constructs it.
            open_client(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    _initialised.add(uri)


# ---------------------------------------------------------------------------- experiments


def experiment_id(client, paper: str, uri: str) -> str:
    """Get or create the experiment ``rl-repro/<paper>`` (restoring it if soft-deleted)."""
    name = EXPERIMENT_PREFIX + paper
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    location = None
    db = _sqlite_path(uri)
    if db is not None:
        # Otherwise MLflow records ./mlruns relative to whatever the CWD happened to be.
        location = (db.parent / "mlartifacts" / paper).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Lost a creation race with another process: it exists now.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def safe_key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", str(name))[:_MAX_KEY_LEN]


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"hparams.lr": "0.001", ...}`` (lists as JSON)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        if not obj and prefix:
            out[prefix[:-1]] = "{}"
        return out
    key = prefix[:-1]
    if isinstance(obj, (list, tuple)):
        value = json.dumps(obj, default=str)
    else:
        value = str(obj)
    out[key] = value
    return out


def chunks(metrics: list, params: list, tags: list) -> Iterator[tuple[list, list, list]]:
    """Split entities into LogBatch requests that respect MLflow's per-request limits."""
    m: list = []
    p: list = []
    t: list = []
    size = 0

    def est(e) -> int:
        return len(str(e.key)) + len(str(e.value)) + 64

    for kind, entity in [("p", x) for x in params] + [("t", x) for x in tags] + [("m", x) for x in metrics]:
        n = len(m) + len(p) + len(t)
        full = (
            n >= _MAX_ENTITIES
            or size + est(entity) > _MAX_BATCH_BYTES
            or (kind == "m" and len(m) >= _MAX_METRICS)
            or (kind == "p" and len(p) >= _MAX_PARAMS_TAGS)
            or (kind == "t" and len(t) >= _MAX_PARAMS_TAGS)
        )
        if full and n:
            yield m, p, t
            m, p, t, size = [], [], [], 0
        {"m": m, "p": p, "t": t}[kind].append(entity)
        size += est(entity)
    if m or p or t:
        yield m, p, t


def log_batched(client, run_id: str, metrics: list = (), params: list = (), tags: list = ()) -> None:
    for m, p, t in chunks(list(metrics), list(params), list(tags)):
        client.log_batch(run_id, metrics=m, params=p, tags=t)
