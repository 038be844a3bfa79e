"""Multi-agent particle environments (MPE, Lowe et al. 2017) from mpe2, behind PettingZoo's
parallel API for the *learned team* only, plus the padded arrays a value-based learner (QMIX,
methods/marl/) needs.

``MPETask(task)`` is the environment itself: ``reset(seed) -> (obs, info)`` and
``step(actions) -> (obs, rewards, terminations, truncations, infos)`` take and give dicts keyed
by the learned agents' names; ``state()`` is mpe2's global state (every agent's observation,
opponents included). Array views for learners: ``obs_array()`` (N, obs_dim) with observations
zero-padded to the longest, ``avail_actions()`` (N, n_actions) 0/1 with actions padded to the
largest, ``step_arrays(actions)`` -> (obs, team reward, terminated, truncated); the team reward
is the sum of the learned agents' rewards (EPyMARL's ``common_reward`` with "sum").

Tasks (``parallel_env(max_cycles=episode_limit, continuous_actions=False)``):

* ``spread``: simple_spread_v3, 3 cooperating agents (obs 18, 5 actions);
* ``tag``: simple_tag_v3, 3 learned predators (obs 16, 5 actions) vs 1 prey;
* ``world``: simple_world_comm_v3, 4 learned adversaries — the leader with 20 actions (5 moves
  x 4 messages), three with 5, obs 34 — vs 2 good agents;
* ``push``: Push 5v2 (envs/mpe_push.py, Kaleidoscope's custom scenario rebuilt on simple_push),
  5 learned adversaries (obs 18, 5 actions) vs 2 good agents heading for their goal landmark.

Opponents (the prey of ``tag``, the good agents of ``world``) follow a scripted, deterministic
heuristic (:func:`flee_or_forage`): flee the nearest adversary when one is within
``flee_radius``; otherwise (world) head for the nearest food, or (tag) drift back towards the
centre; a pull towards the centre near the border avoids mpe2's out-of-bounds penalty. The good
agents of ``push`` head straight for their goal landmark (:func:`seek`).

Deviation from the papers: EPyMARL (tag) and Kaleidoscope (world 4v2) used pretrained MADDPG
prey. Kaleidoscope's prey weights expect 32-dim observations while mpe2's good agents see 28,
so they cannot be loaded; for symmetry both tasks use the scripted prey here. Returns are
therefore not comparable in absolute value with the papers' (a learned prey is harder to catch).

Speed (random actions through ``step_arrays``, 2-core machine shared with other jobs, Dec 2026):
spread ≈ 900-2600 steps/s, tag ≈ 640-1700, world ≈ 170-450 (mpe2's Python observation and
collision loops; the AEC→parallel wrapper adds per-agent overhead). The ranges are the same
measurement at different machine loads.

Exact resumption needs no env state: every episode is reset with a seed the learner draws from
its own (checkpointed) generator, and the dynamics and the scripted opponents are deterministic.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from envs.base import TeamArrays, check_team_steps, package_versions, write_env_assets

# task -> module with parallel_env (mpe2's, or ours)
TASKS: dict[str, str] = {
    "spread": "mpe2.simple_spread_v3",
    "tag": "mpe2.simple_tag_v3",
    "world": "mpe2.simple_world_comm_v3",
    "push": "envs.mpe_push",
}

# mpe2's discrete movement actions: 0 no-op, 1 -x, 2 +x, 3 -y, 4 +y
_MOVES = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])


def direction_to_action(d: np.ndarray) -> int:
    """The movement action closest in angle to direction ``d`` (0, no-op, for d ≈ 0)."""
    if float(np.hypot(d[0], d[1])) < 1e-8:
        return 0
    return int(np.argmax(_MOVES @ d)) + 1


def flee_or_forage(
    pos: np.ndarray, adversaries: list[np.ndarray], food: list[np.ndarray], flee_radius: float, bound: float = 0.9
) -> int:
    """The scripted opponent: flee the nearest adversary when it is closer than
    ``flee_radius`` (away from it), else move to the nearest food (none: towards the centre);
    beyond ``bound`` in a coordinate the direction is pulled back inside (mpe2 penalises good
    agents for leaving the unit square)."""
    dists = [float(np.linalg.norm(pos - a)) for a in adversaries]
    nearest = int(np.argmin(dists))
    if dists[nearest] < flee_radius:
        d = (pos - adversaries[nearest]) / max(dists[nearest], 1e-6)
    elif food:
        target = min(food, key=lambda f: float(np.linalg.norm(pos - f)))
        d = target - pos
    else:
        d = -pos
    outside = np.abs(pos) > bound
    d = np.where(outside, -np.sign(pos), d)  # back inside first, in the offending coordinate
    return direction_to_action(d)


def seek(pos: np.ndarray, goal: np.ndarray) -> int:
    """The scripted good agent of Push: straight for its goal landmark."""
    return direction_to_action(goal - pos)


class MPETask(TeamArrays):
    """One mpe2 scenario; the learned team acts through ``step``, the opponents are scripted."""

    reports_wins = False  # MPE episodes have a return, not a winner
    won = float("nan")

    def __init__(self, task: str = "spread", episode_limit: int = 25, flee_radius: float = 0.5):
        if task not in TASKS:
            raise ValueError(f"mpe: task must be one of {sorted(TASKS)} (got {task!r})")
        if not isinstance(episode_limit, int) or isinstance(episode_limit, bool) or episode_limit < 1:
            raise ValueError(f"mpe: episode_limit must be an int >= 1 (got {episode_limit!r})")
        if not flee_radius > 0:
            raise ValueError(f"mpe: flee_radius must be > 0 (got {flee_radius!r})")
        self.task, self.episode_limit, self.flee_radius = task, episode_limit, float(flee_radius)
        module = importlib.import_module(TASKS[task])
        self._env = module.parallel_env(max_cycles=episode_limit, continuous_actions=False)
        self._raw = self._env.unwrapped
        everyone = list(self._env.possible_agents)
        world_agents = {a.name: a for a in self._raw.world.agents}
        self._bodies = [world_agents[n] for n in everyone]
        # the learned team: everyone in spread, the adversaries (predators) otherwise
        learned = everyone if task == "spread" else [n for n in everyone if world_agents[n].adversary]
        self.possible_agents: list[str] = learned
        self.agents: list[str] = []
        self.opponents: list[str] = [n for n in everyone if n not in learned]
        self.n_agents = len(learned)
        self._obs_dims = [int(self._env.observation_space(n).shape[0]) for n in learned]
        self._act_dims = [int(self._env.action_space(n).n) for n in learned]
        self.obs_dim, self.n_actions = max(self._obs_dims), max(self._act_dims)
        self._avail = np.zeros((self.n_agents, self.n_actions), dtype=np.float32)
        for i, k in enumerate(self._act_dims):
            self._avail[i, :k] = 1.0
        self.state_dim = int(self._raw.state_space.shape[0])
        self._obs: dict[str, np.ndarray] = {}
        self._t = 0

    def kwargs(self) -> dict:
        return {"task": self.task, "episode_limit": self.episode_limit, "flee_radius": self.flee_radius}

    # ---------------------------------------------------------------- parallel API (team only)
    def observation_space(self, agent: str) -> Any:
        return self._env.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        return self._env.action_space(agent)

    def _pad(self, o: np.ndarray) -> np.ndarray:
        out = np.zeros(self.obs_dim, dtype=np.float32)
        out[: o.shape[0]] = o
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._obs, _ = self._env.reset(seed=seed, options=options)
        self.agents, self._t = list(self.possible_agents), 0
        return {n: self._pad(self._obs[n]) for n in self.agents}, {n: {} for n in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("mpe: step() after the episode ended; call reset()")
        full = {}
        for i, n in enumerate(self.possible_agents):
            a = int(actions[n])
            if not 0 <= a < self._act_dims[i]:
                raise ValueError(f"mpe: action {a} of {n} is unavailable (it has {self._act_dims[i]})")
            full[n] = a
        full.update(self.opponent_actions())
        self._obs, rew, term, trunc, _ = self._env.step(full)
        self._t += 1
        team = self.possible_agents
        obs = {n: self._pad(self._obs[n]) for n in team}
        rewards = {n: float(rew[n]) for n in team}
        terms = {n: bool(term[n]) for n in team}
        truncs = {n: bool(trunc[n]) or self._t >= self.episode_limit for n in team}
        if all(terms[n] or truncs[n] for n in team):
            self.agents = []
        return obs, rewards, terms, truncs, {n: {} for n in team}

    def state(self) -> np.ndarray:
        return np.asarray(self._env.state(), dtype=np.float32)

    def close(self) -> None:
        self._env.close()

    # ---------------------------------------------------------------- scripted opponents
    def opponent_actions(self) -> dict[str, int]:
        if not self.opponents:
            return {}
        world = self._raw.world
        if self.task == "push":
            return {
                n: seek(b.state.p_pos, b.goal_a.state.p_pos)
                for n, b in zip(self._env.possible_agents, self._bodies)
                if n in self.opponents
            }
        advs = [b.state.p_pos for b in self._bodies if b.adversary]
        food = [f.state.p_pos for f in getattr(world, "food", [])]
        return {
            n: flee_or_forage(b.state.p_pos, advs, food, self.flee_radius)
            for n, b in zip(self._env.possible_agents, self._bodies)
            if n in self.opponents
        }

    # ---------------------------------------------------------------- arrays for learners
    def obs_array(self) -> np.ndarray:
        """(N, obs_dim) float32, the learned agents' padded observations in agent order."""
        return np.stack([self._pad(self._obs[n]) for n in self.possible_agents])

    # avail_actions (TeamArrays): the padded actions of agents with fewer actions are 0

    def team_outcome(self, rew: dict, term: dict, trunc: dict) -> tuple[float, bool, bool]:
        """The team reward is the sum of the learned agents' rewards; terminated only if every
        learned agent terminated (never in MPE)."""
        terminated = all(term.values())
        return float(sum(rew.values())), terminated, not terminated and all(trunc.values())

    # ---------------------------------------------------------------- pipeline setup stage
    def check_steps(self, n: int = 50, seed: int = 0) -> None:
        check_team_steps(self, f"mpe {self.task}", n, seed)

    def write_assets(self, out_dir: str | Path) -> dict:
        return write_env_assets(out_dir, {**self.describe(), "versions": package_versions("mpe2", "pettingzoo")})

    def describe(self) -> dict:
        return {
            "env": "mpe",
            "kwargs": self.kwargs(),
            "n_agents": self.n_agents,
            "agents": self.possible_agents,
            "opponents": self.opponents,
            "obs_dims": self._obs_dims,
            "act_dims": self._act_dims,
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "state_dim": self.state_dim,
            "episode_limit": self.episode_limit,
        }
