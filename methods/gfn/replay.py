"""EGFN's prioritised replay buffer (PRB) of trajectories, shared by the GFlowNet methods."""
from __future__ import annotations

from typing import Any

import torch

class PrioritizedReplay:
    """EGFN's PRB: keep the top-``size`` trajectories by reward; a replay batch draws half
    uniformly from the top ``top_frac`` of the buffer and half from the rest."""

    def __init__(self, size: int, max_len: int, top_frac: float = 0.1, device: Any = "cpu"):
        self.size = size
        self.top_frac = top_frac
        self.actions = torch.empty((0, max_len), dtype=torch.long, device=device)
        self.log_reward = torch.empty((0,), device=device)

    def __len__(self) -> int:
        return self.log_reward.numel()

    def add(self, actions: torch.Tensor, log_reward: torch.Tensor) -> None:
        acts = torch.cat([self.actions, actions])
        lr = torch.cat([self.log_reward, log_reward.detach().float()])
        # stable descending sort: on ties, trajectories already in the buffer stay
        order = torch.sort(-lr, stable=True).indices[: self.size]
        self.actions, self.log_reward = acts[order], lr[order]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if len(self) == 0 or n <= 0:
            return self.actions[:0]
        n_top_part = max(1, int(len(self) * self.top_frac))  # buffer is sorted best first
        top, rest = self.actions[:n_top_part], self.actions[n_top_part:]
        if len(rest) == 0:
            rest = top
        half = n // 2
        dev = self.actions.device
        i_top = torch.randint(0, len(top), (half,), generator=gen, device=dev)
        i_rest = torch.randint(0, len(rest), (n - half,), generator=gen, device=dev)
        return torch.cat([top[i_top], rest[i_rest]])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"actions": self.actions, "log_reward": self.log_reward}

    def load_state_dict(self, d: dict[str, torch.Tensor]) -> None:
        self.actions, self.log_reward = d["actions"], d["log_reward"]


class TransitionReplay:
    """Proportional prioritised replay of single transitions (Schaul et al.), as the soft-DQN /
    Munchausen-DQN baselines use it: P(i) ∝ p_i^alpha with p_i = |TD error| + eps; new
    transitions enter with the largest priority seen; beta = 0 (no importance weights).
    A circular buffer of ``capacity`` transitions, fields stored as tensors."""

    def __init__(self, capacity: int, alpha: float = 0.5, eps: float = 1e-6):
        self.capacity, self.alpha, self.eps = capacity, alpha, eps
        self.data: dict[str, torch.Tensor] = {}
        self.priority = torch.empty(0)
        self.next = 0      # slot of the next write once full
        self.max_priority = 1.0

    def __len__(self) -> int:
        return self.priority.numel()

    def add(self, fields: dict[str, torch.Tensor]) -> None:
        n = next(iter(fields.values())).shape[0]
        if n == 0:
            return
        new_p = torch.full((n,), self.max_priority, device=next(iter(fields.values())).device)
        if not self.data:
            self.data = {k: v[:0] for k, v in fields.items()}
            self.priority = new_p[:0]
        free = self.capacity - len(self)
        if free > 0:  # still filling: append
            take = min(free, n)
            self.data = {k: torch.cat([self.data[k], v[:take]]) for k, v in fields.items()}
            self.priority = torch.cat([self.priority, new_p[:take]])
            fields, new_p, n = {k: v[take:] for k, v in fields.items()}, new_p[take:], n - take
        if n > 0:  # full: overwrite the oldest slots
            slots = (self.next + torch.arange(n, device=new_p.device)) % self.capacity
            for k, v in fields.items():
                self.data[k][slots] = v
            self.priority[slots] = new_p
            self.next = int((self.next + n) % self.capacity)

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Indices drawn ∝ priority^alpha (with replacement) and their transitions."""
        idx = torch.multinomial(self.priority.pow(self.alpha), n, replacement=True, generator=gen)
        return idx, {k: v[idx] for k, v in self.data.items()}

    def update_priorities(self, idx: torch.Tensor, td_error: torch.Tensor) -> None:
        p = td_error.detach().abs().float() + self.eps
        self.priority[idx] = p
        self.max_priority = max(self.max_priority, float(p.max()))

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data, "priority": self.priority, "next": self.next,
                "max_priority": self.max_priority}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.data, self.priority = d["data"], d["priority"]
        self.next, self.max_priority = d["next"], d["max_priority"]
