"""EGFN without mutation — the paper's −mutation ablation (Ikram et al. 2025: mutation is the
key component): the same star, population, selection, crossover and replay as
methods/gfn/egfn.py, with the Gaussian weight mutation switched off."""

from __future__ import annotations

from dataclasses import dataclass

from methods.gfn import egfn


@dataclass
class Config(egfn.Config):
    mutation: bool = False


make_learner, train, evaluate = egfn.make_learner, egfn.train, egfn.evaluate
