"""MAST's "Tiny" baseline: QMIX with dense per-agent networks (NoPS, as MAST's sparse agents)
whose hidden width is cut until an agent has at most ``param_fraction`` of the parameters of a
``hidden_dim`` agent — a small dense network of the sparse network's size (Hu et al. 2024,
Table 1). The mixer keeps its configured size. Everything else as methods/marl/value/qmix.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from methods.common.constraints import Bound, one_of, within
from methods.marl.value import qmix
from methods.marl.agents import NoPSAgent


@dataclass
class Config(qmix.Config):
    agent_net: str = "nops"
    obs_agent_id: bool = False
    param_fraction: float = 0.1  # MAST's density: the same parameter budget

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS,
        "agent_net": one_of("nops"),
        "param_fraction": within(0, 1, lo_open=True),
    }


def tiny_hidden(input_dim: int, n_actions: int, hidden_dim: int, fraction: float) -> int:
    """The largest width h whose dense 1R3 agent has at most ``fraction`` of the parameters of
    one of width ``hidden_dim``; a 1R3 agent of width h has 8h² + (in + A + 9)h + A parameters."""
    lin = input_dim + n_actions + 9
    count = lambda h: 8 * h * h + lin * h + n_actions  # noqa: E731
    budget = fraction * count(hidden_dim)
    h = max(1, int((-lin + math.sqrt(lin * lin + 32 * max(0.0, budget - n_actions))) / 16) + 1)
    while h > 1 and count(h) > budget:
        h -= 1
    return h


def make_agent_net(cfg: Config, input_dim: int, n_agents: int, n_actions: int) -> NoPSAgent:
    hidden = tiny_hidden(input_dim, n_actions, cfg.hidden_dim, cfg.param_fraction)
    return NoPSAgent(input_dim, n_agents, n_actions, hidden)


train, evaluate = qmix.entry_points(make_agent_net)
