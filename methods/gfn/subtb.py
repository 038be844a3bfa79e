"""Sub-trajectory balance, SubTB(lambda) (Madan et al., ICML 2023, "Learning GFlowNets from
partial episodes for improved convergence and stability"), a baseline of BN.

For a complete trajectory s_0 -> ... -> s_n (s_n = x terminal) and every pair 0 <= i < j <= n:

    r(i, j) = log F(s_i) + sum_{t=i}^{j-1} log P_F(s_{t+1}|s_t) - log F(s_j) - sum_{t=i}^{j-1} log P_B(s_t|s_{t+1})

with F(s_n) := R(x) (after the stop action, or a move into a forced-terminal state; the stop
transition has P_B = 1). The loss of a trajectory is the lambda-weighted mean

    L(tau) = sum_{i<j} lambda^(j-i) r(i, j)^2 / sum_{i<j} lambda^(j-i),

averaged over the batch. The (0, n) term is the TB residual with log Z = log F(s_0); the
length-one terms are the DB residuals; lambda -> 0 weights DB's terms only, lambda -> inf TB's.
Vectorised with prefix sums: with C_k = sum_{t<k} (log P_F - log P_B)_t and u_k = log F(s_k) - C_k,
r(i, j) = u_i - u_j.

``lamda`` defaults to 0.9: the geometric weighting default of torchgfn's SubTB (its
``lamda = 0.9``); Madan et al. tune lambda per task, and BN does not state its value
(reconstructed, listed as unverified in config/papers/bn.yaml). ``use_log_z``: take log F(s_0) from a
separate learned scalar log Z (with ``log_z_lr``) instead of the flow head (default: flow head,
as in this project's DB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from methods.common.constraints import Bound, positive
from methods.gfn import core, loop
from methods.gfn.core import EvaluatedBatch


@dataclass
class Config(core.GFNConfig):
    """SubTB on HG-A: lr 1e-3 as DB/TB in EGFN Table 2 (BN's value is unknown)."""

    lamda: float = 0.9
    use_log_z: bool = False

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"lamda": positive()}  # geometric weight lamda^len


def subtb_residuals(batch: EvaluatedBatch, log_z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All sub-trajectory residuals r(i, j) ``[B, L+1, L+1]`` and the mask of pairs
    0 <= i < j <= n_b that exist."""
    B, L = batch.valid.shape
    lengths = batch.valid.sum(1)  # n_b
    k = torch.arange(L + 1, device=lengths.device)
    # log F(s_k), with R(x) at k = n and optionally log Z at k = 0
    log_f = torch.where(k[None] == lengths[:, None], batch.log_reward[:, None].to(batch.log_f.dtype), batch.log_f)
    if log_z is not None:
        log_f = torch.cat([log_z.expand(B, 1).to(log_f.dtype), log_f[:, 1:]], 1)
    step = torch.where(batch.valid, batch.log_pf - batch.log_pb, torch.zeros_like(batch.log_pf))
    cum = torch.cat([step.new_zeros(B, 1), step.cumsum(1)], 1)  # C_k, [B, L+1]
    u = log_f - cum
    res = u[:, :, None] - u[:, None, :]  # r(i, j) = u_i - u_j
    i, j = k[:, None], k[None, :]
    mask = (i < j)[None] & (j[None] <= lengths[:, None, None])
    return res, mask


def subtb_weights(mask: torch.Tensor, lamda: float) -> torch.Tensor:
    """lambda^(j-i) on existing pairs, normalised to sum to one per trajectory."""
    n = mask.shape[-1]
    k = torch.arange(n, device=mask.device, dtype=torch.float64)
    # computed in log space then normalised, so tiny/huge lambda stay finite
    logw = (k[None, :] - k[:, None]) * torch.log(torch.tensor(lamda, dtype=torch.float64))
    logw = logw[None].expand_as(mask).masked_fill(~mask, -float("inf"))
    w = torch.softmax(logw.flatten(1), 1).view_as(mask)
    return torch.nan_to_num(w, nan=0.0)


class SubTrajectoryBalance(core.TrajectoryLearner):
    def __init__(self, lamda: float = 0.9, use_log_z: bool = False):
        self.lamda = lamda
        self.uses_log_z = use_log_z

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        res, mask = subtb_residuals(batch, log_z if self.uses_log_z else None)
        w = subtb_weights(mask, self.lamda).to(res.dtype)
        per_traj = (w * res.masked_fill(~mask, 0.0).pow(2)).flatten(1).sum(1)
        return per_traj.mean()


make_learner, train, evaluate = loop.entry_points(lambda cfg: SubTrajectoryBalance(cfg.lamda, cfg.use_log_z))
