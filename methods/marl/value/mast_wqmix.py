"""MAST on WQMIX (Hu et al. 2024, Table 1's WQMIX rows): the learner of methods/marl/value/mast.py
(sparse agents and mixer, topology evolution, Soft Mellowmax, hybrid TD(λ), dual buffer) over
the weighted QMIX loss and central Q̂* of methods/marl/value/wqmix.py. The Soft Mellowmax is taken of
the central target's utilities (where WQMIX bootstraps). Q̂* stays dense: whether MAST
sparsifies it is not known [unverified]; its FLOPs are counted, dense, on both sides of the
training-FLOPs ratio, and it is not part of the model size (execution uses the agents only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from methods.common.constraints import Bound
from methods.marl.value import mast, qmix, wqmix


@dataclass
class Config(mast.Config, wqmix.Config):
    CONSTRAINTS: ClassVar[dict[str, Bound]] = {**wqmix.Config.CONSTRAINTS, **mast.Config.CONSTRAINTS}


class MASTWQMIXLearner(mast.MASTLearner, wqmix.WQMIXLearner):
    """MAST's hooks (buffer, bootstrap values, λ, gradient step, FLOPs) on WQMIX's loss."""


train, evaluate = qmix.entry_points(mast.make_agent_net, MASTWQMIXLearner)
