"""The goal-conditioned replay of methods/gfn/goal (the official code's prioritised buffer):
forward trajectories with their goals and rewards, each with an optional paired trajectory in
the same slot (RBS's synthetic one, HER's relabelled one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ReplayBatch:
    actions: torch.Tensor  # [N, L] padded forward actions
    goals: torch.Tensor  # [N, G]
    reward: torch.Tensor  # [N] R(x | y) in {0, 1}
    index: torch.Tensor  # [n] sampled buffer slots (the first n rows; paired rows follow)


class GoalReplay:
    """The code's ``PrioritizedReplayBuffer``: a ring of ``capacity`` forward trajectories, each
    with an optional paired trajectory in the same slot (RBS: the synthetic one of the same goal;
    HER: the relabelled one). Sampling is the SumTree's stratified proportional draw of ``n``
    slots (all of them, stratified, while fewer are stored); a batch holds the n forward
    trajectories followed by their n paired ones. New slots get priority 1; with
    ``reset_sampled`` a sampled slot's priority becomes (0 + eps)^alpha (~1e-3), so fresh data
    dominate ("age-based" prioritisation; importance weights are computed but unused in the code,
    so none are applied). Storage grows by doubling up to the capacity."""

    FIELDS = ("actions", "goals", "reward", "p_actions", "p_goals", "p_reward")

    def __init__(
        self,
        capacity: int,
        traj_len: int,
        goal_len: int,
        paired: bool,
        alpha: float = 0.5,
        eps: float = 1e-6,
        reset_sampled: bool = True,
        device: torch.device | str = "cpu",
    ):
        self.capacity, self.paired = int(capacity), paired
        self.traj_len, self.goal_len = traj_len, goal_len
        self.reset_value = (0.0 + eps) ** alpha
        self.reset_sampled = reset_sampled
        self.device = torch.device(device)
        self.size = self.ptr = 0
        self.data: dict[str, torch.Tensor] = self._empty(0)

    def _empty(self, n: int) -> dict[str, torch.Tensor]:
        shapes = {
            "actions": ((n, self.traj_len), torch.int16),
            "goals": ((n, self.goal_len), torch.int16),
            "reward": ((n,), torch.float32),
            "priority": ((n,), torch.float64),
        }
        if self.paired:
            shapes.update(p_actions=shapes["actions"], p_goals=shapes["goals"], p_reward=shapes["reward"])
        return {k: torch.zeros(s, dtype=d, device=self.device) for k, (s, d) in shapes.items()}

    def __len__(self) -> int:
        return self.size

    def _reserve(self, n: int) -> None:
        have = self.data["priority"].shape[0]
        if n <= have:
            return
        grown = self._empty(min(self.capacity, max(n, 2 * have, 256)))
        for k, v in self.data.items():
            grown[k][:have] = v
        self.data = grown

    def add(
        self,
        actions: torch.Tensor,
        goals: torch.Tensor,
        reward: torch.Tensor,
        paired: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        if (paired is not None) != self.paired:
            raise ValueError("a paired replay needs a paired trajectory for every forward one, and only it")
        n = actions.shape[0]
        self._reserve(min(self.capacity, self.size + n))
        slots = (self.ptr + torch.arange(n, device=self.device)) % self.capacity
        values = {"actions": actions, "goals": goals, "reward": reward}
        if paired is not None:
            values.update(p_actions=paired[0], p_goals=paired[1], p_reward=paired[2])
        for k, v in values.items():
            self.data[k][slots] = v.to(self.device, self.data[k].dtype)
        self.data["priority"][slots] = 1.0
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def sample(self, n: int, gen: torch.Generator) -> ReplayBatch:
        k = min(n, self.size)
        cum = torch.cumsum(self.data["priority"][: self.size], 0)
        u = torch.rand(k, dtype=torch.float64, generator=gen, device=gen.device).to(self.device)
        targets = (torch.arange(k, dtype=torch.float64, device=self.device) + u) * (cum[-1] / k)
        idx = torch.searchsorted(cum, targets).clamp(max=self.size - 1)
        if self.reset_sampled:
            self.data["priority"][idx] = self.reset_value
        d = self.data
        acts, goals, rew = d["actions"][idx], d["goals"][idx], d["reward"][idx]
        if self.paired:
            acts = torch.cat([acts, d["p_actions"][idx]])
            goals = torch.cat([goals, d["p_goals"][idx]])
            rew = torch.cat([rew, d["p_reward"][idx]])
        return ReplayBatch(acts.long(), goals.long(), rew, idx)

    def state_dict(self) -> dict[str, Any]:
        return {"data": {k: v[: self.size].clone() for k, v in self.data.items()}, "size": self.size, "ptr": self.ptr}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.size, self.ptr = d["size"], d["ptr"]
        self.data = self._empty(0)
        self._reserve(self.size)
        for k, v in d["data"].items():
            self.data[k][: self.size] = v.to(self.device)
