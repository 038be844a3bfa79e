"""The run-directory contract: what one run writes and how it resumes.

A run directory (where: pipeline/layout.py) holds config.yaml, manifest.json, curve.csv,
model.pt (train) and eval.json (evaluate), every one written atomically. Checkpoints live in a
checkpoint directory of their own — not declared to Snakemake, so a failed or preempted job
keeps them — and ``train`` resumes from the latest one automatically. A checkpoint
carries its run's config and code hashes and has a sha256 sidecar (``latest.pt.sha256``): one
of other code is discarded, a damaged or unreadable one is moved to ``latest.pt.bad-<time>``,
and either way the run trains from scratch, saying so in its log.
SIGTERM (SLURM preemption) makes the method checkpoint at its next iteration and exit non-zero.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from methods.common.runapi import UNTRAINED_KEY, Preempted, snapshot
from pipeline import REPO_ROOT, layout
from pipeline.config import RunJob, StageJob
from pipeline.atomic import (
    atomic_write,
    atomic_write_checked,
    atomic_write_json,
    atomic_write_text,
    checksum_path,
    read_checked,
)

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again", the checkpoint is in work/ckpt
TRACKED_PACKAGES = ("torch", "numpy", "snakemake", "mlflow", "dvc", "rliable", "gymnasium", "pettingzoo", "mujoco")


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda:0")
    return torch.device("cpu")


def skip_dynamo_import() -> None:
    """Spare an evaluation job the ~1.5 s import of ``torch._dynamo``.

    ``torch.optim.Optimizer``'s ``add_param_group`` / ``zero_grad`` / ``state_dict`` /
    ``load_state_dict`` are wrapped by ``torch._compile._disable_dynamo``, which imports dynamo
    on first call only to mark them "do not trace" for ``torch.compile``. Jobs never compile, so
    the mark is pre-set to the plain function (the wrapper's own cache slot). Training still
    imports dynamo (``Optimizer.step`` does so unconditionally); evaluation builds agents with
    optimisers but never steps them. With a torch whose wrappers look different this does
    nothing."""
    for fn in vars(torch.optim.Optimizer).values():
        inner = getattr(fn, "__wrapped__", None)
        code = getattr(fn, "__code__", None)
        if inner is not None and code is not None and code.co_qualname.startswith("_disable_dynamo"):
            if getattr(inner, "__dynamo_disable", None) is None:
                setattr(inner, "__dynamo_disable", inner)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_state(root: Path = REPO_ROOT) -> tuple[str, bool]:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
            ).stdout.strip()
        )
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class FileRun:
    """File-backed implementation of methods.common.runapi.Run for one RunJob (or StageJob)."""

    def __init__(
        self,
        job: RunJob | StageJob,
        run_dir: Path,
        ckpt_dir: Path,
        device: torch.device,
        assets_dir: Path | None = None,
        code_hash: str = "",
        live_logger: Any = None,
        stage_dirs: dict[str, Path] | None = None,
    ):
        self.job = job
        self.seed = job.seed
        self.device = device
        self.assets_dir = assets_dir
        self.stage_dirs = dict(stage_dirs or {})
        self.out_dir = Path(run_dir)
        self.ckpt_dir = Path(ckpt_dir)
        self.code_hash = code_hash
        self.rows: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        self.untrained: dict[str, Any] | None = None
        self.budget: dict[str, Any] | None = None
        self._stop = False
        self._live = live_logger
        self.manifest_extra: dict[str, Any] = {}  # a seed group's member names its group

    # ---- Run protocol
    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": int(step), **metrics}
        self.rows.append(row)
        if self._live is not None:
            self._live.log_row(step, metrics)

    def should_stop(self) -> bool:
        return self._stop

    def save_checkpoint(self, state: dict[str, Any], step: int) -> None:
        payload = {
            "state": state,
            **self._progress(),
            "step": step,
            "config_hash": self.job.config_hash(),
            "code_hash": self.code_hash,
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        # with a sha256 sidecar: a damaged checkpoint must never resume silently
        atomic_write_checked(self.ckpt_path, buf.getvalue())

    def load_checkpoint(self) -> dict[str, Any] | None:
        path = self.ckpt_path
        if not path.exists():
            return None
        try:
            payload = torch.load(io.BytesIO(read_checked(path)), map_location=self.device, weights_only=False)
            if not isinstance(payload, dict) or not {"state", "rows", "step"} <= payload.keys():
                raise ValueError("not a checkpoint of pipeline.run")
        except MemoryError:
            raise
        except Exception as exc:  # unreadable in any way: the run must not stay blocked on it
            bad = self._set_aside(path)
            print(
                f"[run] checkpoint {path} is damaged ({type(exc).__name__}: {exc}); "
                f"moved to {bad.name}; training from scratch",
                file=sys.stderr,
            )
            return None
        if payload.get("config_hash") != self.job.config_hash():
            print(f"[run] ignoring checkpoint {path}: it belongs to another config", file=sys.stderr)
            return None
        if payload.get("code_hash") != self.code_hash:
            # resuming another code's state would mix two versions of the method in one result
            print(
                f"[run] discarding checkpoint {path}: written by code {payload.get('code_hash')!r}, "
                f"this run's code is {self.code_hash!r}; training from scratch",
                file=sys.stderr,
            )
            self.clear_checkpoints()
            return None
        self._restore_progress(payload)
        self.resumed_from = int(payload["step"])
        print(f"[run] resuming {self.job.key} from step {self.resumed_from}", file=sys.stderr)
        return payload["state"]

    def _progress(self) -> dict[str, Any]:
        """What the checkpoint keeps besides the method's state: the curve so far, the step-0 model."""
        return {"rows": self.rows, "untrained": self.untrained}

    def _restore_progress(self, payload: dict[str, Any]) -> None:
        self.rows = payload["rows"]
        self.untrained = payload.get("untrained")

    @property
    def ckpt_path(self) -> Path:
        return self.ckpt_dir / layout.CHECKPOINT

    @staticmethod
    def _set_aside(path: Path) -> Path:
        """Move a damaged checkpoint (and its sidecar) to ``<name>.bad-<time>``, for a post-mortem."""
        bad = path.with_name(f"{path.name}.bad-{dt.datetime.now():%Y%m%dT%H%M%S.%f}")
        os.replace(path, bad)
        side = checksum_path(path)
        if side.exists():
            os.replace(side, checksum_path(bad))
        return bad

    def record_budget(self, budget: dict[str, Any]) -> None:
        """What the run measured it did (methods/common/budget.py); written to the manifest."""
        self.budget = dict(budget)

    def save_untrained_model(self, state: dict[str, Any]) -> None:
        """Keep the step-0 model (checkpointed with the run); it is saved inside model.pt."""
        self.untrained = snapshot(state)

    def save_model(self, state: dict[str, Any]) -> None:
        if self.untrained is not None:
            state = {**state, UNTRAINED_KEY: self.untrained}
        atomic_write(self.out_dir / layout.MODEL, lambda p: torch.save(state, p))

    # ---- contract
    def install_sigterm_handler(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            print(f"[run] signal {signum}: checkpointing and stopping", file=sys.stderr)
            self._stop = True

        signal.signal(signal.SIGTERM, handler)

    def write_curve(self) -> None:
        if not self.rows:
            raise RuntimeError("no curve rows were logged")
        columns = list(self.rows[0].keys())
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(row.get(k)) for k in columns})
        atomic_write_text(self.out_dir / layout.CURVE, buf.getvalue())

    def write_config(self) -> None:
        atomic_write_text(self.out_dir / layout.CONFIG, yaml.safe_dump(self.job.resolved(), sort_keys=True))

    def write_manifest(self, started: str, wall: float, threads: int) -> None:
        sha, dirty = git_state()
        atomic_write_json(
            self.out_dir / layout.MANIFEST,
            {
                "run": self.job.key,
                "git_sha": sha,
                "git_dirty": dirty,
                "device": str(self.device),
                "cuda": torch.version.cuda if self.device.type == "cuda" else None,
                "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
                "host": socket.gethostname(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "packages": package_versions(),
                "torch_threads": threads,
                "started": started,
                "finished": now_iso(),
                "wall_seconds": round(wall, 3),
                "resumed_from": self.resumed_from,
                "code_hash": self.code_hash,
                "config_hash": self.job.config_hash(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                # forked from the job server (pipeline/jobserver.py) or a process of its own
                "launcher": "jobserver" if os.environ.get("RLREPRO_FORKED") else "process",
                "budget": self.budget,
                **self.manifest_extra,
            },
        )

    def clear_checkpoints(self) -> None:
        # checkpoints first: a sidecar without its checkpoint is harmless, the reverse is not
        for pattern in ("*.pt", "*.pt.sha256"):
            for f in self.ckpt_dir.glob(pattern):
                f.unlink()


def _fmt(v: Any) -> Any:
    # repr-exact floats keep curve.csv byte-identical across identical runs
    if isinstance(v, float):
        return repr(v)
    return v


def execute_train(
    job: RunJob,
    *,
    run_dir: Path,
    ckpt_dir: Path,
    device: str = "auto",
    threads: int = 1,
    assets_dir: Path | None = None,
    code_hash: str = "",
    stage_dirs: dict[str, Path] | None = None,
) -> int:
    """Train one run into ``run_dir`` (resuming from ``ckpt_dir`` if it holds a checkpoint).
    Returns an exit code."""
    import methods
    from pipeline import tracking

    dev = prepare_process(job.seed, device, threads)
    live = None
    if tracking.live_logging_enabled():
        live = tracking.LiveLogger(
            os.environ["MLFLOW_TRACKING_URI"], job.paper, tags=job_tags(job), params=job.resolved()
        )
    run = FileRun(job, run_dir, ckpt_dir, dev, assets_dir, code_hash, live, stage_dirs)
    module = methods.load(job.method)
    return train_and_write(run, lambda: module.train(job.method_config(), run), threads, live)


def prepare_process(seed: int, device: str, threads: int) -> torch.device:
    torch.set_num_threads(threads)
    seed_everything(seed)
    dev = resolve_device(device)
    if dev.type == "cpu":
        # the flag itself; torch.use_deterministic_algorithms also imports torch._inductor
        # (dynamo, sympy: ~2 s per job) only to set the compiler's flag, which we never use
        torch._C._set_deterministic_algorithms(True)
    return dev


def train_and_write(run: FileRun, train: Any, threads: int, live: Any = None) -> int:
    """Run ``train()`` under the run contract: SIGTERM checkpoints and exits with
    PREEMPTED_EXIT_CODE; a finished run writes config, curve and manifest, then drops its checkpoints."""
    run.install_sigterm_handler()
    started, t0 = now_iso(), time.perf_counter()
    try:
        train()
    except Preempted as exc:
        print(f"[run] {run.job.key}: {exc}; checkpoint in {run.ckpt_dir}", file=sys.stderr)
        if live is not None:
            live.close("KILLED")
        return PREEMPTED_EXIT_CODE
    except BaseException:
        if live is not None:
            live.close("FAILED")
        raise
    run.write_config()
    run.write_curve()
    run.write_manifest(started, time.perf_counter() - t0, threads)
    run.clear_checkpoints()
    if live is not None:
        live.close("FINISHED")
    return 0


def execute_stage(
    job: StageJob,
    *,
    out_dir: Path,
    ckpt_dir: Path,
    device: str = "auto",
    threads: int = 1,
    assets_dir: Path | None = None,
    code_hash: str = "",
    stage_dirs: dict[str, Path] | None = None,
) -> int:
    """Train one stage (methods/common/stages.py) into ``out_dir`` under the run contract (its
    ``model.pt`` is what the runs read); resumes from ``ckpt_dir`` like a run. Returns an exit code."""
    import importlib

    module = importlib.import_module(job.module)
    settings = module.Settings(**job.settings)
    dev = prepare_process(job.seed, device, threads)
    run = FileRun(job, out_dir, ckpt_dir, dev, assets_dir, code_hash, None, stage_dirs)
    return train_and_write(run, lambda: module.train(settings, run), threads)


def execute_evaluate(
    job: RunJob, *, model: Path, out: Path, device: str = "auto", assets_dir: Path | None = None
) -> dict[str, Any]:
    """Evaluate the trained ``model`` of ``job``; write the result to ``out`` (eval.json)."""
    import methods

    skip_dynamo_import()
    seed_everything(job.seed)  # evaluation is a pure function of (model, seed)
    dev = resolve_device(device)
    state = torch.load(model, map_location=dev, weights_only=False)
    untrained = state.pop(UNTRAINED_KEY, None)
    module = methods.load(job.method)
    result = module.evaluate(job.method_config(), state, job.seed, device=str(dev), assets_dir=assets_dir)
    if untrained is not None:
        # the same evaluation of the same seed's agent before any update: the claims' guards
        # (pipeline/guards.py) compare against it
        seed_everything(job.seed)
        before = module.evaluate(job.method_config(), untrained, job.seed, device=str(dev), assets_dir=assets_dir)
        result["untrained"] = {"metrics": before.get("metrics", {})}
    atomic_write_json(out, result)
    return result


def job_tags(job: RunJob) -> dict[str, str]:
    sha, _ = git_state()
    return {
        "paper": job.paper,
        "experiment": job.experiment,
        "method": job.method,
        "env": job.env,
        "seed": str(job.seed),
        "scale": job.scale,
        "git_sha": sha,
        # the key `register` uses, so the registered run replaces the live one
        layout.RUN_KEY_TAG: job.key,
    }
