"""MAST's baseline SET (Mocanu et al. 2018): MAST's sparse networks with magnitude drop and random growth, on
QMIX with its double-Q 1-step targets and one replay buffer: no Soft Mellowmax, no hybrid TD(λ),
no dual buffer (Hu et al. 2024, Table 1). Everything else as methods/marl/value/mast.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.value import mast


@dataclass
class Config(mast.Config):
    topology: str = "set"
    soft_mellowmax: bool = False
    hybrid_td: bool = False
    dual_buffer: bool = False


train, evaluate = mast.train, mast.evaluate
