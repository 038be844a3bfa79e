"""Munchausen DQN (Vieillard et al., 2020) as a GFlowNet sampler (Tiapkin et al., 2024): soft
DQN whose target adds alpha * clip(log pibar(a|s), l0, 0); alpha = 0.15, l0 = -100 on the
hypergrid (-2500 for molecules). The learner itself is methods.gfn.soft_dqn."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.common.runapi import Run
from methods.gfn import core, soft_dqn


@dataclass
class Config(soft_dqn.Config):
    munchausen_alpha: float = 0.15
    munchausen_l0: float = -100.0


def train(cfg: Config, run: Run) -> dict[str, float]:
    return core.train(cfg, run, soft_dqn.SoftQLearning(cfg))


def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
             assets_dir: Path | None = None) -> dict[str, Any]:
    return core.evaluate(cfg, model, seed, device, assets_dir)
