"""MAST on RES (Hu et al. 2024, Table 1's RES rows): the learner of methods/marl/value/mast.py (sparse
agents and mixer, topology evolution, hybrid TD(λ), dual buffer) over the softmax target and
return regulariser of methods/marl/value/res.py. RES's softmax over joint actions takes the place of
the bootstrap operator, so MAST's Soft Mellowmax is not used here [unverified: how the paper
combines the two operators is not known]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from methods.common.constraints import Bound
from methods.marl.value import mast, qmix, res


@dataclass
class Config(mast.Config, res.Config):
    soft_mellowmax: bool = False  # RES's softmax is the bootstrap operator

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {**res.Config.CONSTRAINTS, **mast.Config.CONSTRAINTS}


class MASTRESLearner(mast.MASTLearner, res.RESLearner):
    """MAST's hooks (buffer, λ, gradient step, FLOPs) on RES's loss."""


train, evaluate = qmix.entry_points(mast.make_agent_net, MASTRESLearner)
