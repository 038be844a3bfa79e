"""QGFN with the p-of-max mixture (Lau et al., NeurIPS 2024): sample from P_F renormalised over
the actions with max(Q, 0) >= p max(max Q, 0); p = 0.99 (yunglau/QGFN default). Everything
else is methods.gfn.qgfn."""

from __future__ import annotations

from dataclasses import dataclass

from methods.gfn import qgfn


@dataclass
class Config(qgfn.Config):
    mixture: str = "p_of_max"
    p: float = qgfn.DEFAULT_P["p_of_max"]


make_learner, train, evaluate = qgfn.make_learner, qgfn.train, qgfn.evaluate
