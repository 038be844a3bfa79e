"""Replay buffers, one module for every family (all are checkpointed with their run).

* ``ReplayBuffer``: continuous-control transitions (TD3, SAC and the methods built on them).
  Preallocated tensors on the training device; a circular buffer in insertion order. Besides
  uniform sampling it draws from the *oldest* part of the stored data, which NE's experience
  review needs. Checkpoints hold only the filled part.
* ``PrioritizedReplay``: EGFN's prioritised buffer of whole GFlowNet trajectories (top-|D| by
  reward), used by the GFlowNet core whenever ``replay_batch > 0``.
* ``TransitionReplay``: proportional prioritised replay of single GFlowNet transitions, for the
  soft-DQN / Munchausen-DQN baselines.
* ``EpisodeReplay``: whole padded multi-agent episodes for QMIX-style learners (methods/marl/).
* ``FieldReplay`` with ``NStepWriter``: uniform replay of named tensor fields of any shape, fed
  with n-step transitions (the multi-agent actor–critic, methods/marl/actor_critic/matd3.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class _CircularStore:
    """What the circular, preallocated buffers share: ``data`` maps field names to tensors of
    ``capacity`` slots; ``size`` slots are filled and ``next`` is the slot of the next write
    (the oldest entry once full). Checkpoints hold only the filled slots, in storage order."""

    capacity: int
    device: torch.device
    data: dict[str, torch.Tensor]
    size: int
    next: int
    what = "replay"  # named in the capacity-mismatch error

    def __len__(self) -> int:
        return self.size

    def _advance(self) -> None:
        self.next = (self.next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def state_dict(self) -> dict[str, Any]:
        return {
            "data": {k: v[: self.size].cpu().clone() for k, v in self.data.items()},
            "size": self.size,
            "next": self.next,
            "capacity": self.capacity,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d["capacity"] != self.capacity:
            raise ValueError(f"{self.what} capacity {self.capacity} != checkpoint's {d['capacity']}")
        self.size, self.next = d["size"], d["next"]
        for k, v in d["data"].items():
            self.data[k][: self.size] = v.to(self.device)


class ReplayBuffer(_CircularStore):
    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu"):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        shapes = {"obs": (obs_dim,), "action": (act_dim,), "reward": (), "next_obs": (obs_dim,), "terminated": ()}
        self.data = {
            k: torch.zeros((self.capacity, *shapes[k]), dtype=torch.float32, device=self.device) for k in FIELDS
        }
        self.size = 0
        self.next = 0  # slot of the next write; the oldest entry once full

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        i = self.next
        for k, v in zip(FIELDS, (obs, action, reward, next_obs, float(terminated))):
            self.data[k][i] = torch.as_tensor(v, dtype=torch.float32)
        self._advance()

    def _gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.data.items()}

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch,), generator=gen, device=gen.device).to(self.device)
        return self._gather(idx)

    def sample_oldest(self, batch: int, fraction: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Uniformly from the oldest ``fraction`` of the stored transitions (insertion order)."""
        n_old = max(1, int(self.size * fraction))
        start = self.next if self.size == self.capacity else 0  # oldest slot
        offset = torch.randint(0, n_old, (batch,), generator=gen, device=gen.device).to(self.device)
        return self._gather((start + offset) % self.capacity)

    def age_rank(self, idx: torch.Tensor) -> torch.Tensor:
        """0 = oldest stored transition, size-1 = newest (for tests and diagnostics)."""
        start = self.next if self.size == self.capacity else 0
        return (idx - start) % self.capacity


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
        self.next = 0  # slot of the next write once full
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
        return {"data": self.data, "priority": self.priority, "next": self.next, "max_priority": self.max_priority}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.data, self.priority = d["data"], d["priority"]
        self.next, self.max_priority = d["next"], d["max_priority"]


class EpisodeReplay(_CircularStore):
    """Whole episodes for the value-based MARL learner (EPyMARL's episode buffer): a circular
    buffer of ``capacity`` episodes, each padded to ``episode_limit`` steps. Per episode:
    ``obs`` (T+1, N, obs_dim), ``state`` (T+1, state_dim) and ``avail`` (T+1, N, n_actions)
    at every visited step including the one after the last action (the bootstrap target);
    ``actions`` (T, N), ``reward`` (T,), ``terminated`` (T,) and ``filled`` (T,), 1 on the
    steps the episode really took. Checkpoints hold only the filled episodes."""

    what = "episode replay"

    def __init__(
        self,
        capacity: int,
        episode_limit: int,
        n_agents: int,
        obs_dim: int,
        state_dim: int,
        n_actions: int,
        device: torch.device | str = "cpu",
    ):
        self.capacity, self.episode_limit = int(capacity), int(episode_limit)
        self.device = torch.device(device)
        c, t, n = self.capacity, self.episode_limit, n_agents
        z = lambda *shape, dtype=torch.float32: torch.zeros(shape, dtype=dtype, device=self.device)  # noqa: E731
        self.data = {
            "obs": z(c, t + 1, n, obs_dim),
            "state": z(c, t + 1, state_dim),
            "avail": z(c, t + 1, n, n_actions, dtype=torch.bool),
            "actions": z(c, t, n, dtype=torch.long),
            "reward": z(c, t),
            "terminated": z(c, t),
            "filled": z(c, t),
        }
        self.size = 0
        self.next = 0

    def add(self, episode: dict[str, Any]) -> None:
        """Store one episode: a dict of the fields above, each at most the padded length long
        along its first axis (the rest of the slot is zeroed: padding)."""
        i = self.next
        for k, v in self.data.items():
            v[i].zero_()
            src = torch.as_tensor(episode[k], device=self.device).to(v.dtype)
            v[i, : src.shape[0]] = src
        self._advance()

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch`` distinct episodes, uniformly (EPyMARL samples without replacement)."""
        idx = torch.randperm(self.size, generator=gen, device=gen.device)[:batch].to(self.device)
        return {k: v[idx] for k, v in self.data.items()}


class DualEpisodeReplay:
    """MAST's dual replay (Hu et al. 2024): a large off-policy FIFO of ``capacity`` episodes and
    a small on-policy FIFO of the ``on_capacity`` most recent ones; every episode goes to both,
    and a batch is ``round(on_fraction·batch)`` distinct episodes from the recent buffer (as
    many as it holds) followed by the rest from the large one. Shifts the samples toward the
    current policy (paper Fig. 6/7)."""

    def __init__(
        self,
        capacity: int,
        on_capacity: int,
        on_fraction: float,
        episode_limit: int,
        n_agents: int,
        obs_dim: int,
        state_dim: int,
        n_actions: int,
        device: torch.device | str = "cpu",
    ):
        dims = (episode_limit, n_agents, obs_dim, state_dim, n_actions, device)
        self.off = EpisodeReplay(capacity, *dims)
        self.on = EpisodeReplay(on_capacity, *dims)
        self.on_fraction = float(on_fraction)

    def __len__(self) -> int:
        return len(self.off)

    def add(self, episode: dict[str, Any]) -> None:
        self.off.add(episode)
        self.on.add(episode)

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        n_on = min(int(round(self.on_fraction * batch)), len(self.on))
        recent = self.on.sample(n_on, gen)
        rest = self.off.sample(batch - n_on, gen)
        return {k: torch.cat([recent[k], rest[k]]) for k in rest}

    def state_dict(self) -> dict[str, Any]:
        return {"off": self.off.state_dict(), "on": self.on.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.off.load_state_dict(d["off"])
        self.on.load_state_dict(d["on"])


class FieldReplay(_CircularStore):
    """A uniform circular buffer of named float fields, each ``(capacity, *shape)``, on the
    training device. ``shapes`` maps field names to per-transition shapes."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[int, ...]], device: torch.device | str = "cpu"):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.data = {
            k: torch.zeros((self.capacity, *shape), dtype=torch.float32, device=self.device)
            for k, shape in shapes.items()
        }
        self.size = 0
        self.next = 0

    def add(self, transition: dict[str, Any]) -> None:
        i = self.next
        for k, v in self.data.items():
            v[i] = torch.as_tensor(transition[k], dtype=torch.float32)
        self._advance()

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch,), generator=gen, device=gen.device).to(self.device)
        return {k: v[idx] for k, v in self.data.items()}


class NStepWriter:
    """Turns one-step transitions into n-step ones as they arrive (HARL's n-step returns).

    ``push(step)`` takes a dict with the fields of time t (``start_keys``, e.g. obs, state,
    actions), ``reward``, the fields after the step (``end_keys``, e.g. next_obs, next_state),
    ``terminated`` and ``done`` (the episode ended, by termination or truncation). It returns
    the transitions now complete: for the step n back, ``reward`` = Σ_{k<m} γ^k r_{t+k}, the
    end fields of step t+m−1, ``terminated`` of that step and ``discount`` = γ^m, with m = n,
    or fewer when the episode ended first. At an episode's end every pending step is flushed,
    so each step starts exactly one transition and none crosses an episode boundary; the
    target is then ``reward + discount · (1 − terminated) · V(end)``. The pending steps are
    part of the learner's checkpoint state (``state_dict``)."""

    def __init__(self, n: int, gamma: float, start_keys: tuple[str, ...], end_keys: tuple[str, ...]):
        if n < 1:
            raise ValueError(f"n-step: n must be >= 1 (got {n})")
        self.n, self.gamma = int(n), float(gamma)
        self.start_keys, self.end_keys = start_keys, end_keys
        self.pending: list[dict[str, Any]] = []

    def _emit(self) -> dict[str, Any]:
        first, last = self.pending[0], self.pending[-1]
        ret = sum(self.gamma**k * float(p["reward"]) for k, p in enumerate(self.pending))
        out = {k: first[k] for k in self.start_keys}
        out.update({k: last[k] for k in self.end_keys})
        out.update(reward=ret, terminated=float(last["terminated"]), discount=self.gamma ** len(self.pending))
        self.pending.pop(0)
        return out

    def push(self, step: dict[str, Any]) -> list[dict[str, Any]]:
        self.pending.append(step)
        out = []
        if len(self.pending) == self.n:
            out.append(self._emit())
        if step["done"]:
            while self.pending:
                out.append(self._emit())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"pending": [dict(p) for p in self.pending]}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.pending = [dict(p) for p in d["pending"]]
