"""Sin-DroQ — DroQ with a single dropout + LayerNorm Q-network, M = 1 (an OMNet baseline;
its size is inferred from the FLOPs the paper reports), at UTD 20."""

from __future__ import annotations

from dataclasses import dataclass

from methods.control import droq
from methods.control.loop import entry_points


@dataclass
class Config(droq.Config):
    n_critics: int = 1


make_agent, train, evaluate = entry_points(droq.sac.SACAgent)
