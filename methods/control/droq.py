"""DroQ (Hiraoka et al., ICLR 2022) as an OMNet baseline: SAC with 2 critics whose hidden
layers have dropout 0.01 followed by LayerNorm, UTD 20 (min over both in the target)."""

from __future__ import annotations

from dataclasses import dataclass

from methods.control import sac
from methods.control.loop import entry_points


@dataclass
class Config(sac.Config):
    n_critics: int = 2
    critic_dropout: float = 0.01
    critic_layernorm: str = "all"
    utd: int = 20


make_agent, train, evaluate = entry_points(sac.SACAgent)
