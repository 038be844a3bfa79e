"""TD3 with LayerNorm in every critic hidden layer — NE's LayerNorm baseline."""

from __future__ import annotations

from dataclasses import dataclass

from methods.control import td3
from methods.control.loop import entry_points


@dataclass
class Config(td3.Config):
    critic_layernorm: str = "all"


make_agent, train, evaluate = entry_points(td3.TD3Agent)
