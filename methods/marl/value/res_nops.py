"""Dense RES-QMIX with per-agent networks (NoPS, no id), the dense reference of MAST on RES
(methods/marl/value/mast_res.py); everything else as methods/marl/value/res.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.value import res


@dataclass
class Config(res.Config):
    agent_net: str = "nops"
    obs_agent_id: bool = False


train, evaluate = res.train, res.evaluate
