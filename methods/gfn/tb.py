"""Trajectory balance (Malkin et al., 2022), as the base learner of EGFN's HG-A runs.

For a complete trajectory tau = (s_0 -> ... -> s_n -> x):
    L_TB(tau) = ( log Z + sum_t log P_F(s_{t+1}|s_t) - log R(x) - sum_t log P_B(s_t|s_{t+1}) )^2
averaged over the batch. The stop transition has P_B = 1. log Z is a learned scalar with its
own learning rate (EGFN: 0.1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.gfn import core
from methods.gfn.core import EvaluatedBatch


@dataclass
class Config(core.GFNConfig):
    """TB on HG-A: lr 1e-3, log Z lr 0.1 (EGFN Table 2)."""


class TrajectoryBalance(core.TrajectoryLearner):
    uses_log_z = True

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        return trajectory_balance_residuals(batch, log_z).pow(2).mean()


def trajectory_balance_residuals(batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
    """Per-trajectory residual log Z + sum log P_F - log R(x) - sum log P_B."""
    return log_z + batch.log_pf.sum(1) - batch.log_reward - batch.log_pb.sum(1)


make_learner, train, evaluate = core.entry_points(lambda cfg: TrajectoryBalance())
