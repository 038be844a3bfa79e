"""MAST's baseline RLx2 (Tan et al., ICLR 2023; single-agent dynamic sparse training) carried to
QMIX: RigL topology evolution with RLx2's delayed multi-step target (1-step before T0, TD(λ)
after), double-Q bootstrap, one replay buffer. RLx2's dynamic buffer capacity is not
implemented (recorded in config/papers/mast.yaml). Everything else as methods/marl/value/mast.py."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.value import mast


@dataclass
class Config(mast.Config):
    topology: str = "rigl"
    soft_mellowmax: bool = False
    hybrid_td: bool = True
    dual_buffer: bool = False


train, evaluate = mast.train, mast.evaluate
