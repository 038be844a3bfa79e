"""SinSAC — SAC with a single Q-network (an OMNet baseline; inferred from the paper's description): the target
and the actor use that one critic, no clipped double Q."""

from __future__ import annotations

from dataclasses import dataclass

from methods.control import sac
from methods.control.loop import entry_points


@dataclass
class Config(sac.Config):
    n_critics: int = 1


make_agent, train, evaluate = entry_points(sac.SACAgent)
