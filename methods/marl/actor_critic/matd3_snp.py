"""MATD3 with the SNP-PS actor (Kim & Sung, AAMAS 2023; methods/marl/actor_critic/actors.py SNPPSActor):
the shared actor with a fixed random subset of hidden units per agent. With the one-hot id in
the input, as the QMIX version (methods/marl/value/qmix_snp.py) [unverified]; everything else as
methods/marl/actor_critic/matd3.py. A parameter-sharing baseline of Kaleidoscope (docs/papers/kaleidoscope.md)."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.actor_critic import matd3


@dataclass
class Config(matd3.Config):
    actor_net: str = "snp_ps"
    obs_agent_id: bool = True


train, evaluate = matd3.train, matd3.evaluate
