"""REDQ (Chen et al., ICLR 2021) as an OMNet baseline: SAC with N = 10 critics, in-target
minimisation over a random subset of M = 2, mean-Q actor, UTD G = 20."""

from __future__ import annotations

from dataclasses import dataclass

from methods.control import sac
from methods.control.loop import entry_points


@dataclass
class Config(sac.Config):
    n_critics: int = 10
    target_subset: int = 2
    actor_q: str = "mean"
    utd: int = 20


make_agent, train, evaluate = entry_points(sac.SACAgent)
