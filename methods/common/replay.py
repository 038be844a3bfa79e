"""Replay buffer of continuous-control transitions (TD3, SAC and the methods built on them).

Preallocated tensors on the training device; a circular buffer in insertion order. Besides
uniform sampling it draws from the *oldest* part of the stored data, which NE's experience
review needs. Checkpoints hold only the filled part.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu"):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        shapes = {"obs": (obs_dim,), "action": (act_dim,), "reward": (), "next_obs": (obs_dim,),
                  "terminated": ()}
        self.data = {k: torch.zeros((self.capacity, *shapes[k]), dtype=torch.float32, device=self.device)
                     for k in FIELDS}
        self.size = 0
        self.next = 0        # slot of the next write; the oldest entry once full

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        i = self.next
        for k, v in zip(FIELDS, (obs, action, reward, next_obs, float(terminated))):
            self.data[k][i] = torch.as_tensor(v, dtype=torch.float32)
        self.next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.data.items()}

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch,), generator=gen, device=gen.device).to(self.device)
        return self._gather(idx)

    def sample_oldest(self, batch: int, fraction: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Uniformly from the oldest ``fraction`` of the stored transitions (insertion order)."""
        n_old = max(1, int(self.size * fraction))
        start = self.next if self.size == self.capacity else 0     # oldest slot
        offset = torch.randint(0, n_old, (batch,), generator=gen, device=gen.device).to(self.device)
        return self._gather((start + offset) % self.capacity)

    def age_rank(self, idx: torch.Tensor) -> torch.Tensor:
        """0 = oldest stored transition, size-1 = newest (for tests and diagnostics)."""
        start = self.next if self.size == self.capacity else 0
        return (idx - start) % self.capacity

    def state_dict(self) -> dict[str, Any]:
        # the filled slots only, in storage order, plus the write position
        return {"data": {k: v[: self.size].cpu().clone() for k, v in self.data.items()},
                "size": self.size, "next": self.next, "capacity": self.capacity}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d["capacity"] != self.capacity:
            raise ValueError(f"replay capacity {self.capacity} != checkpoint's {d['capacity']}")
        self.size, self.next = d["size"], d["next"]
        for k, v in d["data"].items():
            self.data[k][: self.size] = v.to(self.device)
