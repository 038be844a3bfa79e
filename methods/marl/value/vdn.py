"""VDN (Sunehag et al. 2018): Q_tot = Σ_i Q_i, otherwise EPyMARL's QMIX setup of
methods/marl/value/qmix.py (FuPS + one-hot id, 1-step double-Q targets, same hyper-parameters)."""
from __future__ import annotations

from dataclasses import dataclass

from methods.marl.value import qmix


@dataclass
class Config(qmix.Config):
    mixer: str = "vdn"


train, evaluate = qmix.train, qmix.evaluate
