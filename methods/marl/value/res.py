"""RES — Regularized Softmax deep multi-agent Q-learning (Pan, Rashid, Peng, Huang, Whiteson,
NeurIPS 2021) on the learner of methods/marl/value/qmix.py: MAST's third base algorithm
(docs/papers/mast.md). Two changes to QMIX's loss (the official ling-pan/RES q_learner):

    softmax target   around the online greedy joint action a*_{t+1} (double Q), the N·A joint
                     actions that change one agent's action: u^{i,a} = a* with agent i playing a.
                     w^{i,a} = softmax_{(i,a)}(β · Q_tot(s', u^{i,a}))     (online agents + mixer)
                     V(s')   = Σ_{i,a} w^{i,a} · Q̄_tot(s', u^{i,a})         (target agents + mixer)
                     y_t     = r_t + γ (1 − d_t) V(s_{t+1})   (TD(λ) when λ > 0)
                     over the available actions only (the official code's −9999999 fill gives
                     unavailable ones a zero weight; here they are masked out exactly)
    regulariser      L = MSE(Q_tot, y) + λ_RES · MSE(Q_tot(s_t, a_t), G_t), with G_t the
                     discounted return of the rest of the episode (Monte-Carlo, no bootstrap),
                     from the same (standardised, when configured) rewards as the targets

Hyper-parameters: the official res_qmix config: β 0.05, λ_RES 0.05, double Q; the rest as QMIX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from methods.common.constraints import Bound, at_least
from methods.marl.value import qmix


@dataclass
class Config(qmix.Config):
    res_beta: float = 0.05  # β of the softmax over joint actions
    res_lambda: float = 0.05  # weight of the return regulariser

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS,
        "res_beta": at_least(0),
        "res_lambda": at_least(0),
    }


def discounted_returns(rewards: Tensor, filled: Tensor, gamma: float) -> Tensor:
    """G_t = Σ_{k ≥ t} γ^{k−t} r_k over each episode's filled steps (B, T); 0 on padding."""
    out = torch.zeros_like(rewards)
    later = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        later = (rewards[:, t] + gamma * later) * filled[:, t]
        out[:, t] = later
    return out


def one_change_joint_actions(q: Tensor, greedy: Tensor) -> Tensor:
    """Per-agent utilities of the N·A joint actions that differ from ``greedy`` in one agent's
    action: q (..., N, A), greedy (..., N) → (..., N, A, N), entry [i, a, j] = agent j's
    utility when agent i plays a and the others their greedy action."""
    n = q.shape[-2]
    at_greedy = q.gather(-1, greedy.unsqueeze(-1)).squeeze(-1)  # (..., N)
    base = at_greedy[..., None, None, :].expand(*q.shape, n)  # (..., N, A, N)
    own = torch.eye(n, dtype=torch.bool, device=q.device)[:, None, :]  # (N, 1, N): j == i
    return torch.where(own, q.unsqueeze(-1).expand(*q.shape, n), base)


def softmax_value(
    mixer, target_mixer, online: Tensor, target: Tensor, avail: Tensor, states: Tensor, beta: float
) -> Tensor:
    """RES's V(s'): online (..., N, A) detached online Qs, target (..., N, A) target Qs, avail
    (..., N, A), states (..., S) → (...). Steps with no available action (padding) get 0."""
    n, a = online.shape[-2:]
    greedy = online.masked_fill(~avail, -float("inf")).argmax(-1)  # (..., N)
    s = states[..., None, None, :].expand(*online.shape[:-2], n, a, states.shape[-1])
    online_tot = mixer(one_change_joint_actions(online, greedy), s)  # (..., N, A)
    target_tot = target_mixer(one_change_joint_actions(target, greedy), s)
    any_avail = avail.flatten(-2).any(-1, keepdim=True)
    logits = torch.where(avail, beta * online_tot, torch.tensor(-float("inf"), device=online.device)).flatten(-2)
    weights = torch.softmax(torch.where(any_avail, logits, torch.zeros_like(logits)), -1)
    value = (weights * target_tot.flatten(-2)).sum(-1)
    return torch.where(any_avail.squeeze(-1), value, torch.zeros_like(value))


class RESLearner(qmix.QLearner):
    """QMIX's learner with RES's softmax target and return regulariser."""

    def td_loss(
        self, b: dict[str, Tensor], rewards: Tensor, inputs: Tensor, q_all: Tensor, q_taken: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        cfg, filled = self.cfg, b["filled"]
        with torch.no_grad():
            target_all = self.unroll(self.target_agent, inputs)[:, 1:]
            next_value = softmax_value(
                self.mixer,
                self.target_mixer,
                q_all.detach()[:, 1:],
                target_all,
                b["avail"][:, 1:],
                b["state"][:, 1:],
                cfg.res_beta,
            )
            targets = qmix.td_targets(rewards, b["terminated"], filled, next_value, cfg.gamma, self.current_td_lambda())
            returns = discounted_returns(rewards, filled, cfg.gamma)
        q_tot = self.mixer(q_taken, b["state"][:, :-1])
        td = (q_tot - targets) * filled
        n = filled.sum()
        td_loss = td.pow(2).sum() / n
        reg = ((q_tot - returns) * filled).pow(2).sum() / n
        return (
            td_loss + cfg.res_lambda * reg,
            targets,
            td.detach(),
            {"td_loss": float(td_loss.detach()), "return_reg": float(reg.detach())},
        )


train, evaluate = qmix.entry_points(qmix.scheme_agent_net, RESLearner)
