"""What a training function may ask of the run it is part of.

The pipeline hands a file-backed implementation (pipeline.run.FileRun); notebooks and tests
use :class:`MemoryRun`. Curve rows logged before a checkpoint are restored with it, so a
method only saves and restores its own state.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Protocol

import torch


class Preempted(RuntimeError):
    """Raised by a method after it checkpointed because the run was asked to stop."""


class Run(Protocol):
    seed: int
    device: torch.device
    assets_dir: Path | None
    # output directories of the stages this run reads (methods/common/stages.py), by stage name
    stage_dirs: dict[str, Path]

    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def should_stop(self) -> bool: ...
    def save_checkpoint(self, state: dict[str, Any], step: int) -> None: ...
    def load_checkpoint(self) -> dict[str, Any] | None: ...
    def save_model(self, state: dict[str, Any]) -> None: ...
    def save_untrained_model(self, state: dict[str, Any]) -> None: ...
    def record_budget(self, budget: dict[str, Any]) -> None: ...


# The key under which the untrained (step-0) model travels inside the saved model: evaluation
# scores it beside the trained one, so a claim can be checked against an untrained agent.
UNTRAINED_KEY = "untrained_model"


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a model state (state dicts hold the live parameter tensors, which
    training updates in place)."""
    return copy.deepcopy(state)


class MemoryRun:
    """In-memory run: curve rows in ``rows``, last checkpoint and model kept in memory."""

    def __init__(
        self,
        seed: int = 0,
        device: str | torch.device = "cpu",
        assets_dir: Path | None = None,
        stop_after_checkpoints: int | None = None,
        stage_dirs: dict[str, Path] | None = None,
    ):
        self.seed = seed
        self.device = torch.device(device)
        self.assets_dir = assets_dir
        self.stage_dirs = dict(stage_dirs or {})
        self.rows: list[dict[str, float]] = []
        self.checkpoint: dict[str, Any] | None = None
        self.model: dict[str, Any] | None = None
        self.untrained: dict[str, Any] | None = None
        self.budget: dict[str, Any] | None = None
        self._stop_after = stop_after_checkpoints
        self._n_ckpt = 0
        # step of the checkpoint the last train() call resumed from (None: started afresh)
        self.resumed_from: int | None = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append({"step": step, **metrics})

    def should_stop(self) -> bool:
        return self._stop_after is not None and self._n_ckpt >= self._stop_after

    def save_checkpoint(self, state: dict[str, Any], step: int) -> None:
        self.checkpoint = copy.deepcopy({"state": state, "rows": self.rows, "step": step, "untrained": self.untrained})
        self._n_ckpt += 1

    def load_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint is None:
            return None
        self.resumed_from = self.checkpoint["step"]
        self.rows = copy.deepcopy(self.checkpoint["rows"])
        self.untrained = copy.deepcopy(self.checkpoint["untrained"])
        return copy.deepcopy(self.checkpoint["state"])

    def save_untrained_model(self, state: dict[str, Any]) -> None:
        self.untrained = snapshot(state)

    def record_budget(self, budget: dict[str, Any]) -> None:
        self.budget = dict(budget)

    def save_model(self, state: dict[str, Any]) -> None:
        self.model = state if self.untrained is None else {**state, UNTRAINED_KEY: self.untrained}


class MemoryRunGroup:
    """In-memory group of runs trained together (methods/control/group_loop.py): one
    :class:`MemoryRun` per seed, and one checkpoint for the group holding each run's rows."""

    def __init__(self, seeds: list[int], device: str | torch.device = "cpu", stop_after_checkpoints: int | None = None):
        self.runs = [MemoryRun(seed, device) for seed in seeds]
        self.device = torch.device(device)
        self.checkpoint: dict[str, Any] | None = None
        self.resumed_from: int | None = None
        self._stop_after = stop_after_checkpoints
        self._n_ckpt = 0

    def should_stop(self) -> bool:
        return self._stop_after is not None and self._n_ckpt >= self._stop_after

    def save_checkpoint(self, state: dict[str, Any], step: int) -> None:
        runs = [{"rows": r.rows, "untrained": r.untrained} for r in self.runs]
        self.checkpoint = copy.deepcopy({"state": state, "runs": runs, "step": step})
        self._n_ckpt += 1

    def load_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint is None:
            return None
        self.resumed_from = self.checkpoint["step"]
        for run, saved in zip(self.runs, copy.deepcopy(self.checkpoint["runs"])):
            run.rows, run.untrained, run.resumed_from = saved["rows"], saved["untrained"], self.resumed_from
        return copy.deepcopy(self.checkpoint["state"])
