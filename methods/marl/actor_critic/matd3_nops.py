"""MATD3 with no parameter sharing: one actor per agent (HARL's non-shared MATD3), each updated
only on its own turn of the per-agent actor step; the centralised critics as methods/marl/
matd3.py. A parameter-sharing baseline of Kaleidoscope (docs/papers/kaleidoscope.md)."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.actor_critic import matd3


@dataclass
class Config(matd3.Config):
    actor_net: str = "nops"


train, evaluate = matd3.train, matd3.evaluate
