"""Policy network and trajectory sampling of the GFlowNet core.

A policy maps states [N, S] to forward logits [N, A]; by default it is the network's forward
head, a method may define another (RPE-style flows over children) or sample with the uniform
policy. Trajectories are padded forward-action sequences [B, L] (pad -1).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn


# ----------------------------------------------------------------------------- network
class PolicyNet(nn.Module):
    """MLP with heads: forward logits (A), backward logits (A_B), log state flow (1)."""

    def __init__(self, obs_dim: int, n_actions: int, n_backward: int, hidden: int, n_hidden_layers: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for _ in range(n_hidden_layers):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_actions + n_backward + 1))
        self.body = nn.Sequential(*layers)
        self.n_actions, self.n_backward = n_actions, n_backward

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.body(obs)
        a, b = self.n_actions, self.n_backward
        return out[..., :a], out[..., a : a + b], out[..., a + b]


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor, empty_rows_finite: bool = False) -> torch.Tensor:
    """log-softmax over the entries where ``mask`` holds. A row with none allowed is NaN, or, with
    ``empty_rows_finite``, the plain log-softmax of its logits (for callers that compute every row
    and discard those, so that no NaN reaches a gradient: the goal-conditioned core)."""
    if empty_rows_finite:
        mask = mask | ~mask.any(-1, keepdim=True)
    return torch.log_softmax(logits.masked_fill(~mask, -math.inf), dim=-1)


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log sum exp over the entries where ``mask`` holds (-inf where none does)."""
    return torch.logsumexp(x.masked_fill(~mask, -math.inf), dim=dim)


# ---------------------------------------------------------------------------- sampling
# A policy maps states [N, S] to forward logits [N, A] (masked by the caller). By default it is
# the network's forward head; a method may define another (RPE: children's flows) or sample
# its training data with the uniform policy.
Policy = Callable[[torch.Tensor], torch.Tensor]


class ExactLogitsPolicy:
    """A policy that also computes the logits of every enumerated state at once (RPE's child
    flows), which the exact terminal distribution uses instead of one call per state."""

    def __call__(self, states: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def exact_logits(self, exact: Any, chunk: int = 65536) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def forward_head(env: Any, net: PolicyNet) -> Policy:
    return lambda states: net(env.obs(states))[0]


def uniform_policy(env: Any) -> Policy:
    return lambda states: torch.zeros(states.shape[0], env.n_actions, device=states.device)


def as_policy(env: Any, policy: PolicyNet | Policy) -> Policy:
    return forward_head(env, policy) if isinstance(policy, nn.Module) else policy


@torch.no_grad()
def sample_trajectories(
    env: Any, policy: PolicyNet | Policy, n: int, gen: torch.Generator, epsilon: float = 0.0
) -> torch.Tensor:
    """Roll out ``n`` trajectories with a policy (a net's P_F by default; ε-uniform mixing);
    returns actions [n, L], pad -1."""
    logits_of = as_policy(env, policy)
    device = gen.device
    L = env.max_traj_len
    actions = torch.full((n, L), -1, dtype=torch.long, device=device)
    states = env.initial(n, device)
    alive = torch.ones(n, dtype=torch.bool, device=device)
    for t in range(L):
        idx = alive.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        s = states[idx]
        logits = logits_of(s)
        mask = env.forward_mask(s)
        probs = torch.softmax(logits.masked_fill(~mask, -math.inf), dim=-1)
        if epsilon > 0:
            uniform = mask.float() / mask.sum(-1, keepdim=True)
            probs = (1 - epsilon) * probs + epsilon * uniform
        a = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        actions[idx, t] = a
        nxt, done = env.step(s, a)
        states[idx] = nxt
        alive[idx] = ~done
    return actions


def terminal_states(env: Any, actions: torch.Tensor) -> torch.Tensor:
    """Terminal state x of every padded action sequence [B, S]."""
    states = env.trajectory_states(actions)
    lengths = (actions >= 0).sum(1)
    return states[torch.arange(actions.shape[0], device=actions.device), lengths]
