"""QMIX with the SNP-PS agent network (Kim & Sung, AAMAS 2023; methods/marl/agents.py
SNPPSAgent): one shared network, each agent restricted to its own fixed random subset of the
hidden units — a parameter-sharing baseline of Kaleidoscope. Shared network with the one-hot id,
as FuPS+ID [unverified]; everything else as methods/marl/value/qmix.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from methods.common.constraints import Bound, one_of, within
from methods.marl.value import qmix
from methods.marl.agents import SNPPSAgent


@dataclass
class Config(qmix.Config):
    agent_net: str = "snp_ps"
    obs_agent_id: bool = True
    snp_keep: float = 0.5  # fraction of hidden units each agent keeps [unverified]

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS,
        "agent_net": one_of("snp_ps"),
        "snp_keep": within(0, 1, lo_open=True),
    }


def make_agent_net(cfg: Config, input_dim: int, n_agents: int, n_actions: int) -> SNPPSAgent:
    return SNPPSAgent(input_dim, n_agents, n_actions, cfg.hidden_dim, cfg.snp_keep)


train, evaluate = qmix.entry_points(make_agent_net)
