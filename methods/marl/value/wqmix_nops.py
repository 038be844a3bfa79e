"""Dense OW-QMIX with per-agent networks (NoPS, no id), the dense reference of MAST on WQMIX
(methods/marl/value/mast_wqmix.py); everything else as methods/marl/value/wqmix.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.value import wqmix


@dataclass
class Config(wqmix.Config):
    agent_net: str = "nops"
    obs_agent_id: bool = False


train, evaluate = wqmix.train, wqmix.evaluate
