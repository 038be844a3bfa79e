"""MATD3 with FuPS+ID: the shared actor also sees the one-hot agent id (the parameter-sharing
baseline Kaleidoscope sits on in MPE); everything else as methods/marl/actor_critic/matd3.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.actor_critic import matd3


@dataclass
class Config(matd3.Config):
    obs_agent_id: bool = True


train, evaluate = matd3.train, matd3.evaluate
