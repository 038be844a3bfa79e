"""MATD3 with a critic ensemble of 5 independent Q-networks instead of twin critics (the target
takes the minimum over all 5, the actor the mean): the unmasked counterpart of Kaleidoscope's
masked critic ensemble (docs/papers/kaleidoscope.md), to separate the ensemble's effect from the masks';
everything else as methods/marl/actor_critic/matd3.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.actor_critic import matd3


@dataclass
class Config(matd3.Config):
    n_critics: int = 5
    actor_critics: str = "mean"


train, evaluate = matd3.train, matd3.evaluate
