"""Building blocks of the value-based MARL learners (methods/marl/value/qmix.py and its variants):
ε-greedy selection over available actions, the per-agent bootstrap values (double Q), TD(λ)
targets over padded episodes, EPyMARL's running reward statistics, and the QMIX / VDN mixers.
Each is a function or module of tensors, tested by hand in tests/test_marl.py."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def select_actions(q: Tensor, avail: Tensor, epsilon: float, gen: torch.Generator) -> Tensor:
    """ε-greedy over available actions: q, avail (..., N, A) -> (..., N) long. With probability
    ε an agent takes a uniformly random *available* action, else the best available one."""
    masked = q.masked_fill(~avail, -float("inf"))
    greedy = masked.argmax(-1)
    if epsilon <= 0:
        return greedy
    flat = avail.reshape(-1, avail.shape[-1])  # (N, A) for one env: the draws of one env
    explore = torch.rand(flat.shape[0], generator=gen, device=gen.device).to(q.device) < epsilon
    random = torch.multinomial(flat.float(), 1, generator=gen).squeeze(-1)
    return torch.where(explore, random, greedy.reshape(-1)).reshape(greedy.shape)


def td_targets(rewards: Tensor, terminated: Tensor, filled: Tensor, next_q: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(λ) targets (B, T): y_t = r_t + γ(1-d_t)[(1-λ) next_q_t + λ y_{t+1}], where next_q_t is
    the target Q_tot at s_{t+1}; past the episode's last filled step y_{t+1} is replaced by
    next_q_t (the last step bootstraps fully). λ = 0 is the 1-step target."""
    if lam == 0:
        return rewards + gamma * (1 - terminated) * next_q
    ys = torch.zeros_like(rewards)
    later = next_q[:, -1]  # the horizon: bootstrap fully
    for t in range(rewards.shape[1] - 1, -1, -1):
        ys[:, t] = rewards[:, t] + gamma * (1 - terminated[:, t]) * ((1 - lam) * next_q[:, t] + lam * later)
        if t > 0:
            # what step t-1 blends in: y_t if step t was taken, else Q̄_tot(s_t) itself
            later = torch.where(filled[:, t] > 0, ys[:, t], next_q[:, t - 1])
    return ys


def next_agent_values(online_next: Tensor | None, target_next: Tensor, avail_next: Tensor) -> Tensor:
    """Per-agent bootstrap values (..., N) from Q values (..., N, A) at the next steps: double Q
    (``online_next`` given) takes the target network's value of the online network's best
    available action; otherwise the target network's best available value."""
    if online_next is None:
        return target_next.masked_fill(~avail_next, -float("inf")).max(-1).values
    best = online_next.masked_fill(~avail_next, -float("inf")).argmax(-1, keepdim=True)
    return target_next.gather(-1, best).squeeze(-1)


class RunningMeanStd:
    """Running mean and variance over every reward seen (Chan et al.'s parallel update, as in
    EPyMARL's reward standardisation)."""

    def __init__(self, epsilon: float = 1e-4):
        self.mean, self.var, self.count = 0.0, 1.0, epsilon

    def update(self, x: Tensor) -> None:
        n = x.numel()
        if n == 0:
            return
        b_mean, b_var = float(x.mean()), float(x.var(unbiased=False))
        delta, total = b_mean - self.mean, self.count + n
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    def normalise(self, x: Tensor) -> Tensor:
        return (x - self.mean) / max(self.var, 1e-8) ** 0.5

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.mean, self.var, self.count = d["mean"], d["var"], d["count"]


class QMixer(nn.Module):
    """Monotonic mixer: Q_tot = w_final(s)ᵀ ELU(W1(s)ᵀ q + b1(s)) + V(s), with W1, w_final ≥ 0
    (absolute values of 2-layer hypernetworks), b1 linear in s, V a 2-layer net."""

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hypernet_embed: int = 64):
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed * n_agents)
        )
        self.hyper_w_final = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.v = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, agent_qs: Tensor, states: Tensor) -> Tensor:
        """agent_qs (..., N), states (..., S) -> Q_tot (...)."""
        lead = agent_qs.shape[:-1]
        q = agent_qs.reshape(-1, 1, self.n_agents)
        s = states.reshape(-1, states.shape[-1])
        w1 = self.hyper_w1(s).abs().view(-1, self.n_agents, self.embed)
        hidden = F.elu(torch.bmm(q, w1) + self.hyper_b1(s).unsqueeze(1))
        w_final = self.hyper_w_final(s).abs().view(-1, self.embed, 1)
        return (torch.bmm(hidden, w_final).squeeze(-1) + self.v(s)).view(lead)


class VDNMixer(nn.Module):
    def forward(self, agent_qs: Tensor, states: Tensor) -> Tensor:
        return agent_qs.sum(-1)
