"""TD3 + Reset — an NE baseline; the mechanism lives in methods/control/plasticity.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from envs.control import ControlTask
from methods.common.runapi import Run
from methods.control.loop import evaluate_model, train_agent
from methods.control.plasticity import ResetAgent, ResetConfig as Config


def make_agent(cfg: Config, task: ControlTask, device: torch.device, gen: torch.Generator) -> ResetAgent:
    return ResetAgent(cfg, task.obs_dim, task.act_dim, task.max_action, device, gen)


def train(cfg: Config, run: Run) -> dict[str, float]:
    return train_agent(cfg, run, make_agent)


def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
             assets_dir: Path | None = None) -> dict[str, Any]:
    return evaluate_model(cfg, model, seed, device, make_agent)
