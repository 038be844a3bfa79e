"""A seed group's job under the run contract (pipeline/run.py): k seeds of one (experiment,
method) trained in one process by the method's group trainer (methods.GROUP_TRAINERS,
methods/control/group_loop.py), each seed's run files written into ``<group dir>/seed<N>/``;
then each seed's own train job takes them into its ordinary run directory."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline import layout
from pipeline.config import GroupJob, RunJob
from pipeline.run import FileRun, prepare_process, train_and_write


class FileRunGroup(FileRun):
    """A seed group's job (pipeline.config.GroupJob): one :class:`FileRun` per member writing into
    ``<group dir>/seed<N>/``, one checkpoint and one stop flag for all of them. The group's own
    config.yaml and manifest.json (written last: the job's declared output) name its members."""

    def __init__(
        self,
        job: GroupJob,
        group_dir: Path,
        ckpt_dir: Path,
        device: torch.device,
        assets_dir: Path | None = None,
        code_hash: str = "",
        stage_dirs: dict[str, Path] | None = None,
    ):
        super().__init__(job, group_dir, ckpt_dir, device, assets_dir, code_hash, None, stage_dirs)
        self.runs = [
            FileRun(m, group_dir / f"seed{m.seed}", ckpt_dir, device, assets_dir, code_hash, None, stage_dirs)
            for m in job.members
        ]
        for run in self.runs:
            run.manifest_extra = {"seed_group": job.key, "seed_group_seeds": list(job.seeds)}
        self.manifest_extra = {"seeds": list(job.seeds)}

    def _progress(self) -> dict[str, Any]:
        return {"rows": [r.rows for r in self.runs], "untrained": [r.untrained for r in self.runs]}

    def _restore_progress(self, payload: dict[str, Any]) -> None:
        for run, rows, untrained in zip(self.runs, payload["rows"], payload["untrained"]):
            run.rows, run.untrained, run.resumed_from = rows, untrained, int(payload["step"])

    def write_config(self) -> None:
        for run in self.runs:
            run.write_config()
        super().write_config()

    def write_curve(self) -> None:
        for run in self.runs:
            run.write_curve()

    def write_manifest(self, started: str, wall: float, threads: int) -> None:
        for run in self.runs:  # the group's wall time: the seeds trained at once
            run.write_manifest(started, wall, threads)
        super().write_manifest(started, wall, threads)


def execute_group(
    job: GroupJob,
    *,
    group_dir: Path,
    ckpt_dir: Path,
    device: str = "auto",
    threads: int = 1,
    assets_dir: Path | None = None,
    code_hash: str = "",
    stage_dirs: dict[str, Path] | None = None,
) -> int:
    """Train a seed group's k runs in one process (the method module's ``train_group``) into
    ``group_dir/seed<N>/`` under the run contract; resumes from ``ckpt_dir`` like a run."""
    import methods

    dev = prepare_process(job.seed, device, threads)
    group = FileRunGroup(job, group_dir, ckpt_dir, dev, assets_dir, code_hash, stage_dirs)
    trainer = methods.group_trainer(job.method)
    return train_and_write(group, lambda: trainer.train_group(job.method_config(), group), threads)


def adopt_group_member(job: RunJob, member_dir: Path, run_dir: Path) -> int:
    """A grouped seed's train job: take the run files its group job wrote into ``run_dir``
    (hard links where the filesystem has them; each file atomically, the manifest last)."""
    written = yaml.safe_load((member_dir / layout.CONFIG).read_text(encoding="utf-8"))
    if written != job.resolved():
        raise RuntimeError(
            f"{member_dir}: the group trained another config than this run's ({job.key}); rerun its group job"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (layout.MODEL, layout.CURVE, layout.CONFIG, layout.MANIFEST):
        tmp = run_dir / f".{name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(member_dir / name, tmp)
        except OSError:  # a filesystem without hard links
            shutil.copy2(member_dir / name, tmp)
        os.replace(tmp, run_dir / name)
    print(f"[run] {job.key}: trained in its seed group {job.group_key}", file=sys.stderr)
    return 0
