"""QMIX with the ``fups`` agent network (full parameter sharing: one network for all agents;
methods/marl/agents.py) and no
one-hot agent id — one of the parameter-sharing baselines; everything else as methods/marl/value/qmix.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.value import qmix


@dataclass
class Config(qmix.Config):
    agent_net: str = "fups"
    obs_agent_id: bool = False


train, evaluate = qmix.train, qmix.evaluate
