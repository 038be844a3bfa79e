"""MATD3 with a multi-head actor: a shared trunk and one output layer per agent
(methods/marl/actor_critic/actors.py MultiHeadActor); everything else as methods/marl/actor_critic/matd3.py. A
parameter-sharing baseline of Kaleidoscope (docs/papers/kaleidoscope.md)."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.actor_critic import matd3


@dataclass
class Config(matd3.Config):
    actor_net: str = "multih"


train, evaluate = matd3.train, matd3.evaluate
