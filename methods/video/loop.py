"""The optimisation loop VPDD's three training jobs share (tokenizer, video pre-training, action
fine-tuning): a fixed number of steps, a curve row every ``log_every`` steps, a checkpoint every
``checkpoint_every`` steps and on SIGTERM, and an exact resume (models, optimiser, EMA weights,
timestep sampler and every random stream)."""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from methods.common.runapi import Preempted, Run
from methods.common.seeding import restore_rng_states, rng_states


class EMAWeights:
    """An exponential moving average of a module's parameters and buffers (the official trainer's
    EMA: decay 0.995, updated every ``every`` steps from step ``start``; a copy before that)."""

    def __init__(self, module: nn.Module, decay: float, start: int, every: int):
        self.decay, self.start, self.every = decay, start, every
        self.shadow = copy.deepcopy(module.state_dict())

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        if step % self.every:
            return
        current = module.state_dict()
        for name, value in current.items():
            if step < self.start or not value.is_floating_point():
                self.shadow[name].copy_(value)
            else:
                self.shadow[name].mul_(self.decay).add_(value, alpha=1 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow = copy.deepcopy(state)


def run_steps(
    run: Run,
    *,
    steps: int,
    log_every: int,
    checkpoint_every: int,
    step_fn: Callable[[int], dict[str, float]],
    stateful: dict[str, Any],
    gen: torch.Generator,
    rng: np.random.Generator,
) -> None:
    """Call ``step_fn(step)`` for step = 1..steps (from the checkpoint's step when resuming). The
    mean of each metric since the last row goes into the curve at every ``log_every``-th step and
    at the last. ``stateful``: the caller's objects (``state_dict`` / ``load_state_dict``: modules,
    optimisers, EMA weights, the timestep sampler, the budget meter) carried through a checkpoint."""
    step = 0
    sums: dict[str, float] = {}
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        for name, obj in stateful.items():
            obj.load_state_dict(ckpt["owner"][name])
        restore_rng_states(ckpt, gen, rng)
        step, sums = ckpt["step"], ckpt["sums"]
    count = step % log_every

    def checkpoint() -> None:
        owner = {name: obj.state_dict() for name, obj in stateful.items()}
        run.save_checkpoint({"owner": owner, **rng_states(gen, rng), "step": step, "sums": sums}, step)

    while step < steps:
        step += 1
        for name, value in step_fn(step).items():
            sums[name] = sums.get(name, 0.0) + float(value)
        count += 1
        if step % log_every == 0 or step == steps:
            run.log(step, {name: total / count for name, total in sums.items()})
            sums, count = {}, 0
        if step < steps and (step % checkpoint_every == 0 or run.should_stop()):
            checkpoint()
            if run.should_stop():
                raise Preempted(f"stopped at step {step}")
