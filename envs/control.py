"""Continuous-control tasks behind one factory: Gymnasium (MuJoCo v5 and classic control) and
the state-based DeepMind Control suite (Tassa et al. 2018).

``ControlTask(suite, task, ...)`` is a picklable description; ``make(seed)`` builds a
gymnasium-style env (``reset(seed=) -> (obs, info)``, ``step(a) -> (obs, r, terminated,
truncated, info)``) with float32 observations and actions in ``[-max_action, max_action]``.

* ``suite="gym"``: ``gymnasium.make(task)`` (Hopper-v5, HalfCheetah-v5, ..., Pendulum-v1,
  InvertedPendulum-v5 — the cheap CI tasks).
* ``suite="dmc"``: ``dm_control.suite.load(domain, task)`` with ``task="domain-task"`` (e.g.
  ``cheetah-run``); the observation dict is flattened in key order, episodes end by time
  limit (``truncated``) unless the task's discount is 0 at the last step (``terminated``).

* ``suite="cycle"``: NE's cycling/continual benchmark (Liu et al. 2025). ``task`` is a comma-separated
  list of Gymnasium tasks (``"HalfCheetah-v5,Hopper-v5,Walker2d-v5"``), each trained for
  ``cycle_steps`` environment steps in turn, round and round. Documented choices, since the
  paper leaves them open: observations are zero-padded to the largest task's size; actions
  live in ``[-1, 1]^max_act``, the first ``act_dim`` entries are scaled to the current task's
  bounds and the rest are ignored; no task identifier is given to the agent; a switch happens
  after exactly ``cycle_steps`` steps, truncating the episode it falls in (``truncated``); the
  replay buffer is kept across switches (the loop knows nothing of the cycle). Evaluation runs
  on the task being trained at that step (:meth:`ControlTask.make_eval`).

Versions: mujoco 3.3.0 + dm-control 1.0.28 + gymnasium 1.4.0 is the set that works
together (dm_control >= 1.0.50 breaks on mujoco 4; metaworld pins mujoco 3.3.0).

Exact resumption: :func:`rng_state` / :func:`set_rng_state` save and restore the env's random
generator, so a run checkpointed at an episode boundary replays the same next episode.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np

from envs.base import package_versions, write_env_assets

SUITES = ("gym", "dmc", "cycle")


class DMCEnv:
    """A dm_control suite task as a minimal gymnasium-style env (flat float32 observations)."""

    def __init__(self, domain: str, task: str, seed: int | None = None):
        os.environ.setdefault("MUJOCO_GL", "egl")
        from dm_control import suite

        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        spec = self._env.action_spec()
        self.action_low, self.action_high = spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
        self.obs_dim = int(sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values()))

    def _flat(self, time_step: Any) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in time_step.observation.values()])

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)
        return self._flat(self._env.reset()), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        ts = self._env.step(action)
        last = ts.last()
        terminated = bool(last and ts.discount == 0)
        return self._flat(ts), float(ts.reward or 0.0), terminated, bool(last and not terminated), {}

    def close(self) -> None:
        self._env.close()


class ActionRepeat:
    """Repeat each action ``k`` times, summing rewards (stops early at an episode end)."""

    def __init__(self, env: Any, k: int):
        self.env, self.k = env, k

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        return self.env.reset(seed=seed)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        total = 0.0
        for _ in range(self.k):
            obs, r, term, trunc, info = self.env.step(action)
            total += r
            if term or trunc:
                break
        return obs, total, term, trunc, info


class ControlTask:
    """A continuous-control task; ``make(seed)`` builds it."""

    def __init__(
        self,
        suite: str = "gym",
        task: str = "Pendulum-v1",
        max_episode_steps: int | None = None,
        action_repeat: int = 1,
        cycle_steps: int = 0,
    ):
        if suite not in SUITES:
            raise ValueError(f"control: suite must be one of {SUITES} (got {suite!r})")
        if suite == "dmc" and task.count("-") != 1:
            raise ValueError(f"control: dmc task must be 'domain-task' (got {task!r})")
        if action_repeat < 1:
            raise ValueError(f"control: action_repeat must be >= 1 (got {action_repeat})")
        if (suite == "cycle") != (cycle_steps > 0):
            raise ValueError(f"control: cycle_steps must be >= 1 exactly when suite is 'cycle' (got {cycle_steps})")
        self.suite, self.task = suite, task
        self.max_episode_steps, self.action_repeat = max_episode_steps, action_repeat
        self.cycle_steps = cycle_steps
        self.tasks = [t.strip() for t in task.split(",")] if suite == "cycle" else [task]
        probe = self.make(0)
        self.obs_dim = int(probe.obs_dim)
        self.act_dim = int(len(probe.action_low))
        self.action_low, self.action_high = probe.action_low, probe.action_high
        if not np.allclose(-self.action_low, self.action_high):
            raise ValueError(f"control: {task} has asymmetric action bounds; not supported")
        self.max_action = float(self.action_high.max())
        probe.close()

    def kwargs(self) -> dict:
        return {
            "suite": self.suite,
            "task": self.task,
            "max_episode_steps": self.max_episode_steps,
            "action_repeat": self.action_repeat,
            "cycle_steps": self.cycle_steps,
        }

    def make(self, seed: int | None = None) -> Any:
        if self.suite == "cycle":
            return CycleEnv([self._single(t, seed) for t in self.tasks], self.cycle_steps)
        return self._single(self.task, seed)

    def _single(self, task: str, seed: int | None) -> Any:
        if self.suite == "dmc":
            domain, name = task.split("-")
            env: Any = DMCEnv(domain, name, seed)
        else:
            env = GymEnv(task, self.max_episode_steps)
        return ActionRepeat(env, self.action_repeat) if self.action_repeat > 1 else env

    def phase_at(self, step: int) -> int:
        """Index of the task trained at environment step ``step`` (0-based; 0 unless cycling)."""
        return (step // self.cycle_steps) % len(self.tasks) if self.suite == "cycle" else 0

    def make_eval(self, seed: int, step: int) -> Any:
        """An evaluation env for the policy after ``step`` training steps: the task itself, or
        for a cycle the task of the last training step, held fixed (no switching)."""
        if self.suite != "cycle":
            return self.make(seed)
        env = self.make(seed)
        env.freeze(self.phase_at(max(step - 1, 0)))
        return env

    def eval_info(self, step: int) -> dict[str, float]:
        """Extra curve columns at an evaluation after ``step`` steps (the cycle's task index)."""
        return {"task_index": float(self.phase_at(max(step - 1, 0)))} if self.suite == "cycle" else {}

    def check_steps(self, n: int = 50, seed: int = 0) -> None:
        """Random steps: the observation has the declared size and stays finite."""
        env = self.make(seed)
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        for _ in range(n):
            if obs.shape != (self.obs_dim,) or not np.isfinite(obs).all():
                raise RuntimeError(f"control {self.task}: bad observation {obs.shape}")
            obs, r, term, trunc, _ = env.step(rng.uniform(self.action_low, self.action_high).astype(np.float32))
            if not np.isfinite(r):
                raise RuntimeError(f"control {self.task}: non-finite reward")
            if term or trunc:
                obs, _ = env.reset()
        env.close()

    def write_assets(self, out_dir: str | Path) -> dict:
        info = {
            "env": "control",
            "kwargs": self.kwargs(),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "max_action": self.max_action,
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "versions": package_versions("mujoco", "gymnasium", "dm-control"),
        }
        if self.suite == "cycle":
            env = self.make(0)
            info["cycle"] = [
                {
                    "task": t,
                    "obs_dim": int(e.obs_dim),
                    "act_dim": len(e.action_low),
                    "max_action": float(e.action_high.max()),
                }
                for t, e in zip(self.tasks, env.envs)
            ]
            env.close()
        return write_env_assets(out_dir, info)


class GymEnv:
    """gymnasium.make(task) with float32 observations and the bounds as attributes."""

    def __init__(self, task: str, max_episode_steps: int | None = None):
        import gymnasium

        self._env = gymnasium.make(task, max_episode_steps=max_episode_steps)
        space = self._env.action_space
        self.action_low, self.action_high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.obs_dim = int(np.prod(self._env.observation_space.shape))

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self._env.reset(seed=seed)
        return np.asarray(obs, dtype=np.float32).ravel(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, r, term, trunc, info = self._env.step(action)
        return np.asarray(obs, dtype=np.float32).ravel(), float(r), bool(term), bool(trunc), info

    def close(self) -> None:
        self._env.close()


class CycleEnv:
    """Tasks in turn, ``cycle_steps`` steps each, behind one padded interface (see the module
    docstring). ``freeze(k)`` pins it to task ``k`` (evaluation)."""

    def __init__(self, envs: list[Any], cycle_steps: int):
        for e in envs:
            if not np.allclose(-e.action_low, e.action_high):
                raise ValueError("control: cycle tasks need symmetric action bounds")
        self.envs, self.cycle_steps = envs, cycle_steps
        self.obs_dim = max(e.obs_dim for e in envs)
        self.act_dims = [len(e.action_low) for e in envs]
        self.action_high = np.ones(max(self.act_dims), dtype=np.float32)
        self.action_low = -self.action_high
        self.t = 0  # environment steps taken (drives the switches)
        self.frozen: int | None = None
        self.current = 0  # the task of the running episode

    def phase(self) -> int:
        if self.frozen is not None:
            return self.frozen
        return (self.t // self.cycle_steps) % len(self.envs)

    def freeze(self, k: int) -> None:
        self.frozen = k

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        out = np.zeros(self.obs_dim, dtype=np.float32)
        out[: obs.size] = obs
        return out

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:  # seed every task's env once, each with its own stream
            for k, env in enumerate(self.envs):
                env.reset(seed=seed + 1000 * k)
        self.current = self.phase()
        obs, info = self.envs[self.current].reset()
        return self._pad(obs), {**info, "task_index": self.current}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        env, k = self.envs[self.current], self.current
        a = np.asarray(action, dtype=np.float32)[: self.act_dims[k]] * env.action_high
        obs, r, term, trunc, info = env.step(a)
        self.t += 1
        switch = self.frozen is None and self.phase() != k
        return self._pad(obs), r, term, trunc or (switch and not term), {**info, "task_index": k}

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _inner(env: Any) -> Any:
    return env.env if isinstance(env, ActionRepeat) else env


def rng_state(env: Any) -> Any:
    """The env's random-generator state (what the next ``reset()`` draws from); for a cycle,
    also its step counter."""
    env = _inner(env)
    if isinstance(env, CycleEnv):
        return {"t": env.t, "envs": [rng_state(e) for e in env.envs]}
    if isinstance(env, DMCEnv):
        return copy.deepcopy(env._env.task._random.get_state())
    return copy.deepcopy(env._env.unwrapped.np_random.bit_generator.state)


def set_rng_state(env: Any, state: Any) -> None:
    env = _inner(env)
    if isinstance(env, CycleEnv):
        env.t = state["t"]
        for e, s in zip(env.envs, state["envs"]):
            set_rng_state(e, s)
    elif isinstance(env, DMCEnv):
        env._env.task._random.set_state(state)
    else:
        env._env.unwrapped.np_random.bit_generator.state = state
