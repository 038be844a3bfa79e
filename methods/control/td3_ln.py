"""TD3 with LayerNorm in every critic hidden layer — NE's LayerNorm baseline."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.common.runapi import Run
from methods.control import td3
from methods.control.loop import evaluate_model, train_agent


@dataclass
class Config(td3.Config):
    critic_layernorm: str = "all"


def train(cfg: Config, run: Run) -> dict[str, float]:
    return train_agent(cfg, run, td3.make_agent)


def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
             assets_dir: Path | None = None) -> dict[str, Any]:
    return evaluate_model(cfg, model, seed, device, td3.make_agent)
