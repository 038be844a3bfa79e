"""Weighted QMIX (Rashid, Farquhar, Peng, Whiteson, NeurIPS 2020): OW-QMIX and CW-QMIX, on the
learner of methods/marl/value/qmix.py — one of MAST's base algorithms (docs/papers/mast.md).

Besides QMIX's agents and monotonic mixer (Q_tot), an unrestricted central estimate Q̂*: a
central agent network (fc → GRU → fc, shared, with the one-hot id) whose per-agent utilities
for the taken actions go, with the state, through a feed-forward mixer (3 hidden layers of 256,
ReLU, plus a state value V(s)) — no monotonicity. Per learner step (the official max_q_learner):

    a*_{t+1}   argmax over available actions of the online QMIX agents' Q_i (per agent)
    y_t        r_t + γ (1 − d_t) Q̂*_target(s_{t+1}, a*_{t+1})       (TD(λ) when λ > 0)
    L_central  masked MSE(Q̂*(s_t, a_t), y_t)
    L_qmix     masked mean of w_t (Q_tot(s_t, a_t) − y_t)²,  w_t = 1 where
                 OW: Q_tot < y  (the optimistic weighting)
                 CW: a_t = a*_t for every agent, or y > Q̂*_target(s_t, a*_t)
               and w_t = α (``w``) elsewhere
    L          = qmix_loss_coef · L_qmix + central_loss_coef · L_central, one Adam step over all

Hyper-parameters: the official repository's cw_qmix config (oxwhirl/wqmix): w 0.1, central
mixer 256, central agent GRU 64, central action embedding 1, both loss coefficients 1; the rest
as QMIX here (Adam instead of RMSProp, as for every QMIX variant in this project). The
per-agent bootstrap values go through the learner's ``bootstrap_values`` hook with the central
target's utilities, so MAST's Soft Mellowmax (methods/marl/value/mast.py) replaces the max there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods.common.target import frozen_copy
from methods.common.constraints import Bound, at_least, one_of
from methods.marl.value import qmix
from methods.marl.agents import AgentNetwork


@dataclass
class Config(qmix.Config):
    weighting: str = "ow"  # "ow": OW-QMIX; "cw": CW-QMIX
    w: float = 0.1  # α, the weight of the down-weighted joint actions
    central_loss_coef: float = 1.0
    qmix_loss_coef: float = 1.0
    central_mixing_embed_dim: int = 256
    central_rnn_hidden_dim: int = 64

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS,
        "weighting": one_of("ow", "cw"),
        "w": at_least(0),
        "central_loss_coef": at_least(0),
        "qmix_loss_coef": at_least(0),
        "central_mixing_embed_dim": at_least(1),
        "central_rnn_hidden_dim": at_least(1),
    }


class CentralRNNAgent(AgentNetwork):
    """The central agent network: fc → GRUCell → fc (utilities per action), shared by agents."""

    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int = 64):
        super().__init__()
        self.input_dim, self.n_agents, self.n_actions, self.hidden_dim = input_dim, n_agents, n_actions, hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = inputs.shape
        h = self.rnn(F.relu(self.fc1(inputs.reshape(b * n, -1))), hidden.reshape(b * n, -1))
        return self.fc2(h).view(b, n, -1), h.view(b, n, -1)


class FeedForwardMixer(nn.Module):
    """Q̂*(s, u) = MLP([q_1..q_N, s]) + V(s): 3 hidden ReLU layers and a state value, unconstrained."""

    def __init__(self, n_agents: int, state_dim: int, embed: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_agents + state_dim, embed),
            nn.ReLU(),
            nn.Linear(embed, embed),
            nn.ReLU(),
            nn.Linear(embed, embed),
            nn.ReLU(),
            nn.Linear(embed, 1),
        )
        self.v = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, agent_qs: Tensor, states: Tensor) -> Tensor:
        """agent_qs (..., N), states (..., S) -> Q̂* (...)."""
        return (self.net(torch.cat([agent_qs, states], -1)) + self.v(states)).squeeze(-1)


def weights(
    kind: str, w: float, td: Tensor, targets: Tensor, greedy_taken: Tensor, central_at_greedy: Tensor
) -> Tensor:
    """WQMIX's per-step weights (B, T): 1 on the joint actions the weighting favours, ``w``
    elsewhere. ``td`` = Q_tot − y; ``greedy_taken`` (B, T) bool: every agent took its greedy
    action; ``central_at_greedy``: Q̂*_target at the greedy joint action (CW's comparison)."""
    ones = torch.ones_like(td)
    if kind == "ow":
        return torch.where(td < 0, ones, ones * w)
    return torch.where(greedy_taken | (targets > central_at_greedy), ones, ones * w)


class WQMIXLearner(qmix.QLearner):
    """QMIX's learner with the central Q̂* and the weighted QMIX loss."""

    central_agent: CentralRNNAgent | None = None
    central_mixer: FeedForwardMixer | None = None

    def __init__(self, cfg: Config, env: qmix.TeamTask, make_agent_net: qmix.AgentNetFactory, device: torch.device):
        super().__init__(cfg, env, make_agent_net, device)
        # the central agent always sees the one-hot id: one network for every agent
        self.central_input_dim = self.input_dim + (0 if cfg.obs_agent_id else env.n_agents)
        self.central_agent = CentralRNNAgent(
            self.central_input_dim, env.n_agents, env.n_actions, cfg.central_rnn_hidden_dim
        ).to(device)
        self.central_mixer = FeedForwardMixer(env.n_agents, env.state_dim, cfg.central_mixing_embed_dim).to(device)
        self.target_central_agent = frozen_copy(self.central_agent)
        self.target_central_mixer = frozen_copy(self.central_mixer)
        self.build_optimizer()

    def trainable_modules(self) -> list[nn.Module]:
        # the base constructor builds its optimiser before the central networks exist (None)
        central = [m for m in (self.central_agent, self.central_mixer) if m is not None]
        return super().trainable_modules() + central

    def central_inputs(self, inputs: Tensor) -> Tensor:
        if self.cfg.obs_agent_id:
            return inputs
        return torch.cat([inputs, self.eye.expand(*inputs.shape[:-1], self.n_agents)], -1)

    def td_loss(
        self, b: dict[str, Tensor], rewards: Tensor, inputs: Tensor, q_all: Tensor, q_taken: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        cfg, filled, actions = self.cfg, b["filled"], b["actions"]
        c_inputs = self.central_inputs(inputs)
        central_all = self.unroll(self.central_agent, c_inputs)  # (B, T+1, N, A)
        central_taken = central_all[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            target_central = self.unroll(self.target_central_agent, c_inputs)  # (B, T+1, N, A)
            online = q_all.detach()
            # per-agent utilities of the central target at the online greedy actions (double Q)
            q_next = self.bootstrap_values(online[:, 1:], target_central[:, 1:], b["avail"][:, 1:])
            next_tot = self.target_central_mixer(q_next, b["state"][:, 1:])
            targets = qmix.td_targets(rewards, b["terminated"], filled, next_tot, cfg.gamma, self.current_td_lambda())
        q_tot = self.mixer(q_taken, b["state"][:, :-1])
        td = (q_tot - targets) * filled
        central_td = (self.central_mixer(central_taken, b["state"][:, :-1]) - targets) * filled
        with torch.no_grad():
            greedy = online[:, :-1].masked_fill(~b["avail"][:, :-1], -float("inf")).argmax(-1)  # (B, T, N)
            greedy_taken = (greedy == actions).all(-1)
            central_at_greedy = None
            if cfg.weighting == "cw":
                at_greedy = target_central[:, :-1].gather(-1, greedy.unsqueeze(-1)).squeeze(-1)
                central_at_greedy = self.target_central_mixer(at_greedy, b["state"][:, :-1])
            ws = weights(
                cfg.weighting,
                cfg.w,
                td,
                targets,
                greedy_taken,
                central_at_greedy if central_at_greedy is not None else targets,
            )
        n = filled.sum()
        qmix_loss = (ws * td.pow(2)).sum() / n
        central_loss = central_td.pow(2).sum() / n
        loss = cfg.qmix_loss_coef * qmix_loss + cfg.central_loss_coef * central_loss
        extra = {
            "qmix_loss": float(qmix_loss.detach()),
            "central_loss": float(central_loss.detach()),
            "w_mean": float((ws * filled).sum() / n),
        }
        return loss, targets, td.detach(), extra

    def update_targets(self) -> None:
        super().update_targets()
        self.target_central_agent.load_state_dict(self.central_agent.state_dict())
        self.target_central_mixer.load_state_dict(self.central_mixer.state_dict())

    def unmasked_forward_flops(self) -> float:
        """Per-sample forward FLOPs of Q̂* (central agents for every agent, and the FF mixer)."""
        lin = lambda m: 2 * m.weight.numel() + m.out_features  # noqa: E731
        agent = self.central_agent
        per_agent = (
            lin(agent.fc1)
            + lin(agent.fc2)
            + sum(2 * w.numel() + w.shape[0] for w in (agent.rnn.weight_ih, agent.rnn.weight_hh))
        )
        mixer = sum(lin(m) for m in self.central_mixer.modules() if isinstance(m, nn.Linear))
        return float(self.n_agents * per_agent + mixer)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **{k: getattr(self, k).state_dict() for k in CENTRAL}}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        for k in CENTRAL:
            getattr(self, k).load_state_dict(d[k])


CENTRAL = ("central_agent", "central_mixer", "target_central_agent", "target_central_mixer")

train, evaluate = qmix.entry_points(qmix.scheme_agent_net, WQMIXLearner)
