"""SAC-20 — SAC at update-to-data ratio 20 (an OMNet baseline, Tan et al. 2023): the same two critics
and target as SAC, twenty critic updates per environment step."""

from __future__ import annotations

from dataclasses import dataclass

from methods.control import sac
from methods.control.loop import entry_points


@dataclass
class Config(sac.Config):
    utd: int = 20


make_agent, train, evaluate = entry_points(sac.SACAgent)
