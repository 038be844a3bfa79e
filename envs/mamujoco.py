"""Multi-agent MuJoCo (MaMuJoCo; Peng et al. 2021) from gymnasium-robotics ``mamujoco_v1``,
behind PettingZoo's parallel API, plus the padded arrays an actor–critic learner (MATD3,
methods/marl/actor_critic/matd3.py) needs.

``MaMuJoCoTask(scenario, agent_conf)`` is the environment itself: ``reset(seed)``, ``step(dict)``
and ``state()`` pass through to gymnasium-robotics' parallel env (one robot whose joints are
split among agents; every agent gets the same team reward). Array views for learners:
``reset_arrays(seed)`` → obs (N, obs_dim) zero-padded to the longest observation,
``step_arrays(actions (N, act_dim))`` → (obs, team reward, terminated, truncated), with each
agent's action cut to its own size; ``state()`` is the single-agent observation (global state).

Tasks the Kaleidoscope paper used (docs/papers/kaleidoscope.md): HalfCheetah 2x3, Hopper 3x1,
Walker2d 2x3, Ant 4x2, ManySegmentSwimmer 10x2 — all with ``agent_obsk = 0`` (each agent
observes its own joints only) and an episode limit of 1000.

Custom factorisations (``CUSTOM_FACTORISATIONS``) that gymnasium-robotics does not ship are
built here from its own joint graph: Walker2d 6x1, one agent per joint (the Kaleidoscope
paper's custom task), in the env's actuator order (right thigh, leg, foot, then left), with
the robot graph's edges and global nodes unchanged, so ``agent_obsk`` means what it means for
the built-in factorisations.

Deviation from the paper: the underlying single-agent envs are gymnasium's **v5** (mujoco 3),
not the v2 of mujoco-py, so absolute returns are not comparable.

Exact resumption needs no env state: the learner resets every episode with a seed it draws
from its own (checkpointed) generator, and MuJoCo's dynamics are deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.base import package_versions, write_env_assets

SCENARIOS = (
    "HalfCheetah",
    "Hopper",
    "Walker2d",
    "Ant",
    "Swimmer",
    "Humanoid",
    "Reacher",
    "ManySegmentSwimmer",
    "ManySegmentAnt",
)


def one_agent_per_joint(scenario: str) -> dict[str, Any]:
    """The factorisation giving each actuated joint of ``scenario`` its own agent, from
    gymnasium-robotics' single-agent joint graph (partition, edges and globals)."""
    from gymnasium_robotics.envs.multiagent_mujoco.obsk import get_parts_and_edges

    parts, edges, globals_ = get_parts_and_edges(scenario, None)
    joints = sorted((node for part in parts for node in part), key=lambda node: node.act_ids)
    return {"partition": [(node,) for node in joints], "edges": edges, "globals": globals_}


# (scenario, agent_conf) -> builder of a factorisation gymnasium-robotics does not ship
CUSTOM_FACTORISATIONS = {("Walker2d", "6x1"): lambda: one_agent_per_joint("Walker2d")}


class MaMuJoCoTask:
    """One MaMuJoCo factorisation; every agent is learned (fully cooperative)."""

    def __init__(
        self, scenario: str = "HalfCheetah", agent_conf: str = "2x3", agent_obsk: int = 0, episode_limit: int = 1000
    ):
        if scenario not in SCENARIOS:
            raise ValueError(f"mamujoco: scenario must be one of {list(SCENARIOS)} (got {scenario!r})")
        if not isinstance(agent_obsk, int) or isinstance(agent_obsk, bool) or agent_obsk < 0:
            raise ValueError(f"mamujoco: agent_obsk must be an int >= 0 (got {agent_obsk!r})")
        if not isinstance(episode_limit, int) or isinstance(episode_limit, bool) or episode_limit < 1:
            raise ValueError(f"mamujoco: episode_limit must be an int >= 1 (got {episode_limit!r})")
        from gymnasium_robotics import mamujoco_v1

        self.scenario, self.agent_conf = scenario, str(agent_conf)
        self.agent_obsk, self.episode_limit = agent_obsk, episode_limit
        try:
            custom = CUSTOM_FACTORISATIONS.get((scenario, self.agent_conf))
            self._env = mamujoco_v1.parallel_env(
                scenario,
                self.agent_conf,
                agent_obsk=agent_obsk,
                agent_factorization=custom() if custom else None,
                max_episode_steps=episode_limit,
            )
        except Exception as e:  # gymnasium-robotics raises plain Exceptions for unknown partitions
            raise ValueError(f"mamujoco: no factorisation {self.agent_conf!r} of {scenario} ({e})") from e
        self.possible_agents: list[str] = list(self._env.possible_agents)
        self.agents: list[str] = []
        self.n_agents = len(self.possible_agents)
        self._obs_dims = [int(self._env.observation_space(a).shape[0]) for a in self.possible_agents]
        self._act_dims = [int(self._env.action_space(a).shape[0]) for a in self.possible_agents]
        self.obs_dim, self.act_dim = max(self._obs_dims), max(self._act_dims)
        highs = [np.abs(self._env.action_space(a).high).max() for a in self.possible_agents]
        lows = [np.abs(self._env.action_space(a).low).max() for a in self.possible_agents]
        if not np.allclose(highs + lows, highs[0]):
            raise ValueError(f"mamujoco {scenario} {agent_conf}: actions must share one symmetric bound")
        self.max_action = float(highs[0])
        self.state_dim = self._state_dim()
        self._obs: dict[str, np.ndarray] = {}

    def _state_dim(self) -> int:
        self._env.reset(seed=0)  # state() reads the simulator, which exists after a reset
        return int(np.asarray(self._env.state()).shape[0])

    def kwargs(self) -> dict:
        return {
            "scenario": self.scenario,
            "agent_conf": self.agent_conf,
            "agent_obsk": self.agent_obsk,
            "episode_limit": self.episode_limit,
        }

    # ---------------------------------------------------------------- parallel API
    def observation_space(self, agent: str) -> Any:
        return self._env.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        return self._env.action_space(agent)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._obs, info = self._env.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        return dict(self._obs), info

    def step(self, actions: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("mamujoco: step() after the episode ended; call reset()")
        self._obs, rew, term, trunc, info = self._env.step(actions)
        if any(term.values()) or any(trunc.values()):
            self.agents = []
        return dict(self._obs), rew, term, trunc, info

    def state(self) -> np.ndarray:
        return np.asarray(self._env.state(), dtype=np.float32)

    def close(self) -> None:
        self._env.close()

    # ---------------------------------------------------------------- arrays for learners
    def obs_array(self) -> np.ndarray:
        """(N, obs_dim) float32, observations zero-padded to the longest, in agent order."""
        out = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)
        for i, a in enumerate(self.possible_agents):
            out[i, : self._obs_dims[i]] = self._obs[a]
        return out

    def reset_arrays(self, seed: int | None = None) -> np.ndarray:
        self.reset(seed=seed)
        return self.obs_array()

    def step_arrays(self, actions: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """Step with an (N, act_dim) array (each row cut to its agent's action size); returns
        (obs, team reward, terminated, truncated). Every agent receives the same reward."""
        acts = {
            a: np.asarray(actions[i, : self._act_dims[i]], dtype=np.float32) for i, a in enumerate(self.possible_agents)
        }
        _, rew, term, trunc, _ = self.step(acts)
        first = self.possible_agents[0]
        terminated = bool(term[first])
        return self.obs_array(), float(rew[first]), terminated, not terminated and bool(trunc[first])

    def action_mask(self) -> np.ndarray:
        """(N, act_dim) 0/1: the padded action entries of agents with fewer actuators are 0."""
        mask = np.zeros((self.n_agents, self.act_dim), dtype=np.float32)
        for i, k in enumerate(self._act_dims):
            mask[i, :k] = 1.0
        return mask

    # ---------------------------------------------------------------- pipeline setup stage
    def check_steps(self, n: int = 50, seed: int = 0) -> None:
        """Random actions for ``n`` steps: observations and the state have the declared sizes
        and stay finite, rewards are finite."""
        rng = np.random.default_rng(seed)
        obs = self.reset_arrays(seed=seed)
        for _ in range(n):
            if obs.shape != (self.n_agents, self.obs_dim) or not np.isfinite(obs).all():
                raise RuntimeError(f"mamujoco {self.scenario}: bad observation {obs.shape}")
            if self.state().shape != (self.state_dim,):
                raise RuntimeError(f"mamujoco {self.scenario}: bad state {self.state().shape}")
            acts = rng.uniform(-self.max_action, self.max_action, (self.n_agents, self.act_dim))
            obs, r, term, trunc = self.step_arrays(acts.astype(np.float32))
            if not np.isfinite(r):
                raise RuntimeError(f"mamujoco {self.scenario}: non-finite reward")
            if term or trunc:
                obs = self.reset_arrays()

    def write_assets(self, out_dir: str | Path) -> dict:
        versions = package_versions("gymnasium-robotics", "gymnasium", "mujoco")
        return write_env_assets(out_dir, {**self.describe(), "versions": versions})

    def describe(self) -> dict:
        return {
            "env": "mamujoco",
            "kwargs": self.kwargs(),
            "n_agents": self.n_agents,
            "agents": self.possible_agents,
            "obs_dims": self._obs_dims,
            "act_dims": self._act_dims,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "state_dim": self.state_dim,
            "max_action": self.max_action,
            "episode_limit": self.episode_limit,
            "physics": "gymnasium MuJoCo v5 (the paper: v2, mujoco-py)",
        }
