"""Munchausen DQN (Vieillard et al., 2020) as a GFlowNet sampler (Tiapkin et al., 2024): soft
DQN whose target adds alpha * clip(log pibar(a|s), l0, 0); alpha = 0.15, l0 = -100 on the
hypergrid (-2500 for molecules). The learner itself is methods.gfn.soft_dqn."""

from __future__ import annotations

from dataclasses import dataclass

from methods.gfn import loop, soft_dqn


@dataclass
class Config(soft_dqn.Config):
    munchausen_alpha: float = 0.15
    munchausen_l0: float = -100.0


make_learner, train, evaluate = loop.entry_points(soft_dqn.SoftQLearning)
