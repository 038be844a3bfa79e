"""DroQ (Hiraoka et al., ICLR 2022) as an OMNet baseline: SAC with 2 critics whose hidden
layers have dropout 0.01 followed by LayerNorm, UTD 20 (min over both in the target)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.common.runapi import Run
from methods.control import sac
from methods.control.loop import evaluate_model, train_agent


@dataclass
class Config(sac.Config):
    n_critics: int = 2
    critic_dropout: float = 0.01
    critic_layernorm: str = "all"
    utd: int = 20


def train(cfg: Config, run: Run) -> dict[str, float]:
    return train_agent(cfg, run, sac.make_agent)


def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
             assets_dir: Path | None = None) -> dict[str, Any]:
    return evaluate_model(cfg, model, seed, device, sac.make_agent)
