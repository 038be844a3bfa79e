"""Small builders shared by the continuous-control test modules (test_control, test_ne)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.control import ControlTask
from methods.common.replay import ReplayBuffer

PENDULUM = {"suite": "gym", "task": "Pendulum-v1"}


def tiny(mod: Any, **kw: Any) -> Any:
    """A method's Config for a few hundred Pendulum steps with 16-unit nets."""
    base = dict(
        env_kwargs=PENDULUM,
        iterations=400,
        eval_every=200,
        checkpoint_every=200,
        start_steps=100,
        hidden=16,
        batch=16,
        eval_episodes=1,
    )
    base.update(kw)
    return mod.Config(**base)


def agent_of(mod: Any, cfg: Any, seed: int = 0) -> tuple[Any, ControlTask]:
    task = ControlTask(**cfg.env_kwargs)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return mod.make_agent(cfg, task, torch.device("cpu"), gen), task


def filled_buffer(task: ControlTask, n: int = 300, seed: int = 0) -> ReplayBuffer:
    """``n`` random transitions whose reward is their insertion index."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(n, task.obs_dim, task.act_dim)
    for i in range(n):
        buf.add(
            rng.normal(size=task.obs_dim),
            rng.uniform(-1, 1, task.act_dim),
            float(i),
            rng.normal(size=task.obs_dim),
            i % 50 == 0,
        )
    return buf
