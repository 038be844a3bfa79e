"""MLflow as a browse/search index over finished run directories.

Files under ``results/`` are the canonical record (pipeline_notes §0.7); this module only mirrors
them into MLflow so runs can be browsed and searched. Two entry points:

* :func:`register` — the sequential ``register`` step: batch-log finished run dirs, idempotently
  (one MLflow run per run dir, found by the ``rlrepro.run_key`` tag; replaced when its files change).
* :class:`LiveLogger` — optional live curves during training, only when ``$MLFLOW_TRACKING_URI``
  names an http(s) server (a single server serialises writes; SQLite under many jobs does not).

``mlflow`` is imported lazily: its import costs seconds and starts telemetry, which must be
switched off *before* the import (``mlflow/__init__.py`` decides at import time).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

from pipeline import layout
from pipeline.runfiles import RunFiles, as_float

ENV_URI = "MLFLOW_TRACKING_URI"
EXPERIMENT_PREFIX = "rl-repro/"
RUN_KEY_TAG = layout.RUN_KEY_TAG
CONTENT_HASH_TAG = "rlrepro.content_hash"
# Files whose bytes define a run's content: a change in any of them re-logs the run.
HASHED_FILES = (layout.CONFIG, layout.CURVE, layout.EVAL)
# Artifacts recorded as tags (paths only; MLflow never copies them).
ARTIFACT_FILES = {
    "model": layout.MODEL,
    "config": layout.CONFIG,
    "manifest": layout.MANIFEST,
    "curve": layout.CURVE,
    "eval": layout.EVAL,
}

# LogBatch limits (mlflow/utils/validation.py, 3.17.2); the byte cap only matters over REST.
_MAX_METRICS = 1000
_MAX_PARAMS_TAGS = 100
_MAX_ENTITIES = 1000
_MAX_BATCH_BYTES = 900_000
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
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
        path = uri[len(prefix):]
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
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:":
            return Path(path)
    return None


def _disable_telemetry() -> None:
    # mlflow 3.17 reads MLFLOW_DISABLE_TELEMETRY (bool) or DO_NOT_TRACK == "true"
    # (mlflow/telemetry/utils.py::is_telemetry_disabled); MLFLOW_ENABLE_TELEMETRY is not read.
    # setdefault: an explicit user choice wins.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _mlflow():
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


def _client(uri: str):
    _mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_store(uri: str) -> None:
    """Create/migrate the tracking store once, before any writer opens it.

    First-time SQLite initialisation runs Alembic migrations and is not safe concurrently
    (pipeline_notes §0.6), so it is serialised with a host-local file lock. Servers need nothing.
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
            _client(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    _initialised.add(uri)


# --------------------------------------------------------------------------------- helpers


def _experiment_id(client, paper: str, uri: str) -> str:
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


def _key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", str(name))[:_MAX_KEY_LEN]


def _flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"hparams.lr": "0.001", ...}`` (lists as JSON)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
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


def _to_ms(stamp: Any) -> int | None:
    if not stamp:
        return None
    try:
        return int(_dt.datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


def content_hash(run_dir: Path) -> str:
    """sha256 over the bytes of config.yaml, curve.csv and eval.json (missing files count)."""
    h = hashlib.sha256()
    for name in HASHED_FILES:
        p = Path(run_dir) / name
        data = p.read_bytes() if p.is_file() else None
        # Length-prefixed framing so moving bytes between files changes the hash.
        h.update(name.encode() + b"\0")
        h.update(b"-\0" if data is None else str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def _chunks(metrics: list, params: list, tags: list) -> Iterator[tuple[list, list, list]]:
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


def _log_batched(client, run_id: str, metrics: list = (), params: list = (), tags: list = ()) -> None:
    for m, p, t in _chunks(list(metrics), list(params), list(tags)):
        client.log_batch(run_id, metrics=m, params=p, tags=t)


# -------------------------------------------------------------------------------- register


class _RunFiles(RunFiles):
    """A run directory as register() sees it: its files, its run key, its content hash."""

    def __init__(self, run_dir: Path, results_root: Path):
        super().__init__(run_dir)
        try:
            self.run_key = self.dir.resolve().relative_to(Path(results_root).resolve()).as_posix()
        except ValueError as e:
            raise ValueError(f"run dir {self.dir} is not under results root {results_root}") from e
        self.hash = content_hash(self.dir)
        if not self.config.get("paper"):
            raise ValueError(f"{self.dir / layout.CONFIG} names no paper")
        self.paper = str(self.config["paper"])


def _tags(rf: _RunFiles, results_root: Path) -> dict[str, str]:
    c, m = rf.config, rf.manifest
    tags: dict[str, Any] = {k: c.get(k) for k in ("paper", "experiment", "method", "env", "seed", "scale")}
    tags.update(
        git_sha=m.get("git_sha"),
        git_dirty=m.get("git_dirty"),
        device=m.get("device"),
        host=m.get("host"),
    )
    tags[RUN_KEY_TAG] = rf.run_key
    tags["rlrepro.results_root"] = str(Path(results_root).resolve())
    for k in ("config_hash", "code_hash", "resumed_from", "python", "wall_seconds"):
        if k in m:
            tags[f"rlrepro.{k}"] = m[k]
    if m.get("packages"):
        tags["rlrepro.packages"] = json.dumps(m["packages"], sort_keys=True)
    if m.get("git_sha"):
        tags["mlflow.source.git.commit"] = m["git_sha"]  # shown by the MLflow UI
    for name, fname in ARTIFACT_FILES.items():
        if rf.has(fname):
            tags[f"artifact.{name}"] = f"{rf.run_key}/{fname}"  # relative to results_root
    return {_key(k): str(v)[:_MAX_TAG_LEN] for k, v in tags.items() if v is not None}


def _metrics(rf: _RunFiles, start_ms: int, end_ms: int) -> list:
    from mlflow.entities import Metric

    out: list = []
    n = len(rf.rows)
    last_step = 0
    metric_cols = [c for c in rf.columns if c and c != "step"]
    for i, row in enumerate(rf.rows):
        s = as_float(row.get("step"))
        step = int(s) if s is not None and math.isfinite(s) else i
        last_step = step
        # Spread timestamps over the run's wall time so MLflow's "relative time" axis is sensible.
        ts = start_ms + ((end_ms - start_ms) * i // (n - 1) if n > 1 else 0)
        for col in metric_cols:
            v = as_float(row.get(col))
            if v is not None:
                out.append(Metric(_key(col), v, ts, step))
    for name, value in _flatten(rf.eval.get("metrics") or {}).items():
        v = as_float(value)
        if v is not None:
            out.append(Metric(_key(f"eval/{name}"), v, end_ms, last_step))
    if "n_episodes" in rf.eval and as_float(rf.eval["n_episodes"]) is not None:
        out.append(Metric("eval/n_episodes", float(rf.eval["n_episodes"]), end_ms, last_step))
    return out


def _log_run(client, exp_id: str, rf: _RunFiles, results_root: Path) -> str:
    from mlflow.entities import Param, RunTag

    now = int(time.time() * 1000)
    start_ms = _to_ms(rf.manifest.get("started")) or now
    end_ms = _to_ms(rf.manifest.get("finished")) or max(start_ms, now)
    end_ms = max(end_ms, start_ms)
    c = rf.config
    name = layout.run_name(c.get("experiment", "?"), c.get("method", "?"), c.get("seed", "?"))
    run = client.create_run(exp_id, start_time=start_ms, tags=_tags(rf, results_root), run_name=name)
    run_id = run.info.run_id
    try:
        params = [Param(_key(k), v[:_MAX_PARAM_LEN]) for k, v in _flatten(c).items() if k]
        _log_batched(client, run_id, metrics=_metrics(rf, start_ms, end_ms), params=params)
        # The content hash goes last: a run interrupted mid-logging has none and is replaced.
        client.log_batch(run_id, tags=[RunTag(CONTENT_HASH_TAG, rf.hash)])
        client.set_terminated(run_id, "FINISHED", end_time=end_ms)
    except BaseException:
        try:
            client.delete_run(run_id)
        except Exception:
            pass
        raise
    return run_id


def _existing_runs(client, exp_id: str) -> dict[str, list]:
    """All active runs of an experiment carrying a run key, grouped by key (one paged query)."""
    by_key: dict[str, list] = {}
    token = None
    while True:
        page = client.search_runs([exp_id], max_results=5000, page_token=token)
        for run in page:
            key = run.data.tags.get(RUN_KEY_TAG)
            if key:
                by_key.setdefault(key, []).append(run)
        token = page.token
        if not token:
            return by_key


def register(run_dirs: Iterable[Path], results_root: Path, uri: str) -> dict:
    """Batch-log finished run dirs into MLflow, one experiment ``rl-repro/<paper>`` per paper.

    Idempotent per run dir (tag ``rlrepro.run_key``): an identical run (same
    ``rlrepro.content_hash``, status FINISHED) is skipped; a stale or half-logged one is deleted
    and logged afresh, so a search by run key always finds exactly one active run.
    Returns ``{"logged": new, "skipped": unchanged, "replaced": re-logged}``.
    """
    ensure_store(uri)
    client = _client(uri)
    results_root = Path(results_root)
    runs = list({rf.run_key: rf for rf in (_RunFiles(Path(d), results_root) for d in run_dirs)}.values())
    summary = {"logged": 0, "skipped": 0, "replaced": 0}
    by_paper: dict[str, list[_RunFiles]] = {}
    for rf in runs:
        by_paper.setdefault(rf.paper, []).append(rf)
    for paper, items in sorted(by_paper.items()):
        exp_id = _experiment_id(client, paper, uri)
        existing = _existing_runs(client, exp_id)
        for rf in sorted(items, key=lambda r: r.run_key):
            old = existing.pop(rf.run_key, [])
            keep = next(
                (
                    r
                    for r in old
                    if r.data.tags.get(CONTENT_HASH_TAG) == rf.hash and r.info.status == "FINISHED"
                ),
                None,
            )
            for r in old:
                if r is not keep:
                    client.delete_run(r.info.run_id)  # soft delete: hidden from search_runs
            if keep is not None:
                summary["skipped"] += 1
                continue
            _log_run(client, exp_id, rf, results_root)
            summary["replaced" if old else "logged"] += 1
    return summary


# ------------------------------------------------------------------------------ live logging


class LiveLogger:
    """Buffered live logging to an MLflow server during training; never raises into training.

    Rows are flushed every ``flush_rows`` rows or ``flush_seconds`` seconds with LogBatch. On the
    first tracking failure it warns once and goes quiet: the run files stay canonical and
    :func:`register` later logs the complete run (replacing this one if it carries the run key).
    """

    def __init__(
        self,
        uri: str,
        paper: str,
        tags: dict,
        params: dict,
        flush_rows: int = 50,
        flush_seconds: float = 30.0,
    ):
        self.uri = uri
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.run_id: str | None = None
        self._buffer: list = []
        self._rows = 0
        self._last_flush = time.monotonic()
        self._failed = False
        self._closed = False
        # Bound the stall a dead server can cause (MLflow retries 7× with backoff by default).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        try:
            from mlflow.entities import Param

            self._client = _client(uri)
            exp_id = _experiment_id(self._client, paper, uri)
            all_tags = {_key(k): str(v)[:_MAX_TAG_LEN] for k, v in tags.items() if v is not None}
            all_tags["rlrepro.live"] = "true"
            run = self._client.create_run(exp_id, tags=all_tags)
            self.run_id = run.info.run_id
            flat = _flatten(params) if params else {}
            _log_batched(
                self._client, self.run_id, params=[Param(_key(k), v[:_MAX_PARAM_LEN]) for k, v in flat.items() if k]
            )
        except Exception as e:
            self._fail(e)

    def _fail(self, exc: BaseException) -> None:
        if not self._failed:
            warnings.warn(f"MLflow live logging disabled after error: {exc!r}", RuntimeWarning, stacklevel=3)
        self._failed = True
        self._buffer.clear()

    def log_row(self, step: int, metrics: dict) -> None:
        """Buffer one curve row; flush when enough rows or time have accumulated."""
        if self._failed or self._closed:
            return
        try:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            for k, v in metrics.items():
                f = as_float(v)
                if f is None and hasattr(v, "item"):  # numpy / torch scalars
                    f = as_float(v.item())
                if f is not None:
                    self._buffer.append(Metric(_key(k), f, ts, int(step)))
            self._rows += 1
            if self._rows >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()
        except Exception as e:
            self._fail(e)

    def flush(self) -> None:
        """Send buffered metrics now."""
        if self._failed or self.run_id is None:
            return
        try:
            if self._buffer:
                _log_batched(self._client, self.run_id, metrics=self._buffer)
            self._buffer = []
            self._rows = 0
            self._last_flush = time.monotonic()
        except Exception as e:
            self._fail(e)

    def close(self, status: str = "FINISHED") -> None:
        """Flush and mark the run terminated (``FINISHED`` / ``FAILED`` / ``KILLED``)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._failed or self.run_id is None:
            return
        try:
            self._client.set_terminated(self.run_id, status)
        except Exception as e:
            self._fail(e)

    def __enter__(self) -> "LiveLogger":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("FAILED" if exc_type is not None else "FINISHED")
