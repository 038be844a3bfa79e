"""Shared by the resume tests: a run preempted after some checkpoints, then resumed, with
checks that the preemption and the resume really happened (a test must fail if either is
switched off, not pass because the second call simply trained from scratch)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from methods.common.runapi import MemoryRun, Preempted


def preempted_then_resumed(
    train: Callable[[Any, MemoryRun], Any], cfg: Any, seed: int, checkpoints: int = 1
) -> tuple[MemoryRun, Any]:
    """Train until ``checkpoints`` checkpoints are saved and the run is told to stop, then
    train again on the same run. Returns the run and the second call's result."""
    run = MemoryRun(seed=seed, stop_after_checkpoints=checkpoints)
    with pytest.raises(Preempted):
        train(cfg, run)
    assert run.checkpoint is not None, "preempted without a checkpoint"
    stopped_at = run.checkpoint["step"]
    assert 0 < stopped_at < cfg.iterations, f"stopped at {stopped_at} of {cfg.iterations}"
    assert run.model is None, "a preempted run saved its final model"
    run._stop_after = None
    final = train(cfg, run)
    assert run.resumed_from == stopped_at, "the second call did not resume from the checkpoint"
    return run, final
