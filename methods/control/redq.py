"""REDQ (Chen et al., ICLR 2021) as an OMNet baseline: SAC with N = 10 critics, in-target
minimisation over a random subset of M = 2, mean-Q actor, UTD G = 20."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.common.runapi import Run
from methods.control import sac
from methods.control.loop import evaluate_model, train_agent


@dataclass
class Config(sac.Config):
    n_critics: int = 10
    target_subset: int = 2
    actor_q: str = "mean"
    utd: int = 20


def train(cfg: Config, run: Run) -> dict[str, float]:
    return train_agent(cfg, run, sac.make_agent)


def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
             assets_dir: Path | None = None) -> dict[str, Any]:
    return evaluate_model(cfg, model, seed, device, sac.make_agent)
