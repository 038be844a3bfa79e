"""QGFN with the p-quantile mixture (Lau et al., NeurIPS 2024): sample from P_F renormalised
over the actions whose Q is at or above the p-quantile of Q(s, .); p = 0.8 (yunglau/QGFN
example). Everything else is methods.gfn.qgfn."""

from __future__ import annotations

from dataclasses import dataclass

from methods.gfn import qgfn


@dataclass
class Config(qgfn.Config):
    mixture: str = "p_quantile"
    p: float = qgfn.DEFAULT_P["p_quantile"]


make_learner, train, evaluate = qgfn.make_learner, qgfn.train, qgfn.evaluate
