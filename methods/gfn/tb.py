"""Trajectory balance (Malkin et al., 2022), as the base learner of EGFN's HG-A runs.

For a complete trajectory tau = (s_0 -> ... -> s_n -> x):
    L_TB(tau) = ( log Z + sum_t log P_F(s_{t+1}|s_t) - log R(x) - sum_t log P_B(s_t|s_{t+1}) )^2
averaged over the batch. The stop transition has P_B = 1. log Z is a learned scalar with its
own learning rate (EGFN: 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.gfn import core, loop
from methods.gfn.core import EvaluatedBatch


@dataclass
class Config(core.GFNConfig):
    """TB on HG-A: lr 1e-3, log Z lr 0.1 (EGFN Table 2). ``uniform_pb``: a fixed uniform P_B
    instead of the learned backward head (QGFN's TB, recursionpharma/gflownet's default)."""

    uniform_pb: bool = False


class TrajectoryBalance(core.TrajectoryLearner):
    uses_log_z = True

    def __init__(self, uniform_pb: bool = False):
        self.uniform_pb = uniform_pb

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        log_pb = uniform_log_pb(self.env, batch) if self.uniform_pb else None
        return trajectory_balance_residuals(batch, log_z, log_pb).pow(2).mean()


def uniform_log_pb(env: object, batch: EvaluatedBatch) -> torch.Tensor:
    """log P_B of every transition under the uniform backward policy, ``[B, L]``: minus the log
    of the number of parent edges of s_{t+1} for a move, 0 for the stop action and padding."""
    nxt = batch.states[:, 1:]
    n_parents = env.backward_mask(nxt.reshape(-1, nxt.shape[-1])).sum(-1).clamp(min=1).view(nxt.shape[:2])
    move = batch.valid & ~batch.is_stop
    return torch.where(move, -n_parents.to(batch.log_pf.dtype).log(), torch.zeros_like(batch.log_pf))


def trajectory_balance_residuals(
    batch: EvaluatedBatch, log_z: torch.Tensor, log_pb: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-trajectory residual log Z + sum log P_F - log R(x) - sum log P_B (the batch's learned
    P_B unless another ``log_pb [B, L]`` is given)."""
    log_pb = batch.log_pb if log_pb is None else log_pb
    return log_z + batch.log_pf.sum(1) - batch.log_reward - log_pb.sum(1)


make_learner, train, evaluate = loop.entry_points(lambda cfg: TrajectoryBalance(cfg.uniform_pb))
