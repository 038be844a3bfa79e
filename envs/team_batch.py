"""B episodes of a discrete-action team task in lockstep: the view pymarl2's parallel runner
gives its learner (``batch_size_run`` envs, one agent forward pass for all of them per step).

The batch arrays API (what methods/marl/value/episodes.py runs), over the single-task arrays API of
envs/mpe.py and envs/smax.py:

* ``reset_arrays(seeds)`` → obs (B, N, d): env b starts the episode of ``seeds[b]``;
* ``state()`` (B, S), ``avail_actions()`` (B, N, A);
* ``step_arrays(actions (B, N))`` → obs (B, N, d), team reward (B,), terminated (B,),
  truncated (B,). An env whose episode has ended is not stepped again: its row keeps the
  arrays of its last step and reward 0 (``active`` says which envs still run);
* ``won`` (B,): 1.0 for an env whose episode ended in a win, where the task reports battles.

Env b's episode is the one the single task plays from ``seeds[b]`` with the same actions, so a
batch of one is the single-task episode runner. ``TeamBatch`` steps B tasks one after the other;
envs/smax.py's ``SMAXBatch`` steps them in one vmapped call.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


class TeamBatch:
    """B copies of a team task, stepped in turn (any env of the single-task arrays API)."""

    def __init__(self, make_task: Callable[[], Any], n_envs: int):
        if n_envs < 1:
            raise ValueError(f"team batch: n_envs must be >= 1 (got {n_envs})")
        self.tasks = [make_task() for _ in range(n_envs)]
        first = self.tasks[0]
        self.n_envs = n_envs
        self.n_agents, self.n_actions = first.n_agents, first.n_actions
        self.obs_dim, self.state_dim = first.obs_dim, first.state_dim
        self.episode_limit = first.episode_limit
        self.reports_wins = bool(first.reports_wins)
        self.active = np.zeros(n_envs, dtype=bool)

    @classmethod
    def of(cls, task: Any) -> "TeamBatch":
        """A batch of one around an existing task."""
        return cls(lambda: task, 1)

    def reset_arrays(self, seeds: Sequence[int]) -> np.ndarray:
        if len(seeds) != self.n_envs:
            raise ValueError(f"team batch: {len(seeds)} seeds for {self.n_envs} envs")
        self._obs = np.stack([t.reset_arrays(seed=int(s)) for t, s in zip(self.tasks, seeds)])
        self._state = np.stack([t.state() for t in self.tasks])
        self._avail = np.stack([t.avail_actions() for t in self.tasks])
        self.active[:] = True
        return self._obs.copy()

    def state(self) -> np.ndarray:
        return self._state.copy()

    def avail_actions(self) -> np.ndarray:
        return self._avail.copy()

    @property
    def won(self) -> np.ndarray:
        return np.array([float(t.won) for t in self.tasks])

    def step_arrays(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        reward = np.zeros(self.n_envs)
        terminated = np.zeros(self.n_envs, dtype=bool)
        truncated = np.zeros(self.n_envs, dtype=bool)
        for b in np.flatnonzero(self.active):
            task = self.tasks[b]
            self._obs[b], reward[b], terminated[b], truncated[b] = task.step_arrays(actions[b])
            self._state[b], self._avail[b] = task.state(), task.avail_actions()
        self.active &= ~(terminated | truncated)
        return self._obs.copy(), reward, terminated, truncated

    def close(self) -> None:
        for t in self.tasks:
            t.close()
