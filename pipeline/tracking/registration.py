"""`register`: batch-log finished run directories into MLflow, idempotently (one MLflow run
per run directory, found by its run-key tag; replaced when the run's files change)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable

from pipeline import layout
from pipeline.runfiles import RunFiles, as_float
from pipeline.tracking.store import (
    MAX_PARAM_LEN,
    MAX_TAG_LEN,
    open_client,
    ensure_store,
    experiment_id,
    flatten,
    safe_key,
    log_batched,
)

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
    return {safe_key(k): str(v)[:MAX_TAG_LEN] for k, v in tags.items() if v is not None}


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
                out.append(Metric(safe_key(col), v, ts, step))
    for name, value in flatten(rf.eval.get("metrics") or {}).items():
        v = as_float(value)
        if v is not None:
            out.append(Metric(safe_key(f"eval/{name}"), v, end_ms, last_step))
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
        params = [Param(safe_key(k), v[:MAX_PARAM_LEN]) for k, v in flatten(c).items() if k]
        log_batched(client, run_id, metrics=_metrics(rf, start_ms, end_ms), params=params)
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
    client = open_client(uri)
    results_root = Path(results_root)
    runs = list({rf.run_key: rf for rf in (_RunFiles(Path(d), results_root) for d in run_dirs)}.values())
    summary = {"logged": 0, "skipped": 0, "replaced": 0}
    by_paper: dict[str, list[_RunFiles]] = {}
    for rf in runs:
        by_paper.setdefault(rf.paper, []).append(rf)
    for paper, items in sorted(by_paper.items()):
        exp_id = experiment_id(client, paper, uri)
        existing = _existing_runs(client, exp_id)
        for rf in sorted(items, key=lambda r: r.run_key):
            old = existing.pop(rf.run_key, [])
            keep = next(
                (r for r in old if r.data.tags.get(CONTENT_HASH_TAG) == rf.hash and r.info.status == "FINISHED"),
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
