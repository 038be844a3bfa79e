"""Detailed balance (Bengio et al., 2023), as a base learner of EGFN's HG-A runs.

For every transition s -> s' of a trajectory:
    L_DB = ( log F(s) + log P_F(s'|s) - log F(s') - log P_B(s|s') )^2
where F(s') is replaced by R(s') when s' is terminal: after the stop action (s' = x = s,
P_B = 1) and after a move into a forced-terminal state. Averaged over all transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.gfn import core, loop
from methods.gfn.core import EvaluatedBatch


@dataclass
class Config(core.GFNConfig):
    """DB on HG-A: lr 1e-3 (EGFN Table 2); log Z is not used (F(s_0) plays its role)."""


class DetailedBalance(core.TrajectoryLearner):
    uses_log_z = False

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        res = detailed_balance_residuals(batch)
        return res[batch.valid].pow(2).mean()


def detailed_balance_residuals(batch: EvaluatedBatch) -> torch.Tensor:
    """Residual per transition [B, L] (meaningless where ``batch.valid`` is False)."""
    log_f_src = batch.log_f[:, :-1]
    log_f_dst = batch.log_f[:, 1:]
    # the last transition ends in x: its outflow is the reward, whether by stop or forced
    log_f_dst = torch.where(batch.last, batch.log_reward[:, None], log_f_dst)
    return log_f_src + batch.log_pf - log_f_dst - batch.log_pb


make_learner, train, evaluate = loop.entry_points(lambda cfg: DetailedBalance())
