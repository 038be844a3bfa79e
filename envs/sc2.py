"""StarCraft II itself, for clusters that have it: SMAC (``smac``'s StarCraft2Env) and SMACv2
(``smacv2``'s StarCraftCapabilityEnvWrapper) behind the same PettingZoo parallel API and arrays
API as envs/smax.py, so a QMIX-family experiment switches from the SMAX stand-in to the real game
by its ``env`` and ``env_kwargs`` alone:

    env: sc2
    env_kwargs: {map_name: 3s5z}                                    # SMAC
    env_kwargs: {map_name: 10gen_protoss, capability_config: {...}}  # SMACv2 (its YAML's block)

Needs the ``smac`` or ``smacv2`` package and StarCraft II under ``$SC2PATH`` (neither can be
installed offline here: config validation says so before any job starts, and the smoke/small
scales use SMAX). Differences from SMAX that a user must know:

* SC2 cannot restart an episode from a seed: the game is seeded once, when the task launches,
  from the first ``reset``'s seed (a function of the run's seed), and later seeds are ignored.
  Runs are therefore not bit-reproducible and a resumed run does not replay the same episodes.
* The episode limit is the map's (SMAC/SMACv2's own); a shorter ``episode_limit`` is enforced
  by the adapter (truncation), a longer one cannot extend the map's.
* ``terminated`` excludes SMAC's time limit (its ``info["episode_limit"]``), as pymarl does for
  bootstrapping; ``won`` is SMAC's ``battle_won``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from envs.base import SharedRewardArrays, check_team_steps, package_versions, write_env_assets


def _package(capability_config: dict | None) -> str:
    return "smacv2" if capability_config is not None else "smac"


def unit_type_bits(map_name: str, capability_config: dict | None = None) -> int:
    """How many unit-type bits end each agent's observation on this map: the map registry's
    ``unit_type_bits`` (SMAC and SMACv2 alike; 0 on a one-type map), read without launching the
    game. SMAC and SMACv2 end an agent's own features, and so its observation, with the one-hot
    of its unit type (all zero once the unit is dead), as SMAX does."""
    maps = importlib.import_module(f"{_package(capability_config)}.env.starcraft2.maps")
    return int(maps.get_map_params(map_name)["unit_type_bits"])


class SC2Task(SharedRewardArrays):
    """One SMAC / SMACv2 map against the built-in StarCraft II AI; every ally is learned."""

    @staticmethod
    def validate_kwargs(
        map_name: str = "3s5z",
        capability_config: dict | None = None,
        episode_limit: int | None = None,
        difficulty: str = "7",
    ) -> None:
        """Argument checks and whether StarCraft II can run here, without launching it."""
        if not isinstance(map_name, str) or not map_name:
            raise ValueError(f"sc2: map_name must be a SMAC/SMACv2 map name (got {map_name!r})")
        if capability_config is not None and not isinstance(capability_config, dict):
            raise ValueError("sc2: capability_config must be a mapping (SMACv2's capability_config block)")
        if episode_limit is not None and (
            not isinstance(episode_limit, int) or isinstance(episode_limit, bool) or episode_limit < 1
        ):
            raise ValueError(f"sc2: episode_limit must be an int >= 1 or null (got {episode_limit!r})")
        if str(difficulty) not in {str(d) for d in range(1, 10)} | {"A"}:
            raise ValueError(f"sc2: difficulty must be 1-9 or A (got {difficulty!r})")
        package = _package(capability_config)
        if importlib.util.find_spec(package) is None:
            raise ValueError(
                f"sc2: the {package!r} package is not installed (StarCraft II runs only where "
                "it and the game are; use env 'smax', the stand-in, elsewhere)"
            )
        sc2 = os.environ.get("SC2PATH")
        if not sc2 or not Path(sc2).is_dir():
            raise ValueError(f"sc2: StarCraft II not found: SC2PATH is {sc2!r} (set it to the game's directory)")

    def __init__(
        self,
        map_name: str = "3s5z",
        capability_config: dict | None = None,
        episode_limit: int | None = None,
        difficulty: str = "7",
        env_factory: Any = None,
    ):
        """``env_factory(seed) -> a SMAC-API env`` replaces launching the game (tests)."""
        if env_factory is None:
            self.validate_kwargs(map_name, capability_config, episode_limit, difficulty)
        self.map_name, self.capability_config = map_name, capability_config
        self.difficulty, self._limit = str(difficulty), episode_limit
        self._factory = env_factory or self._make
        self._env: Any = None
        # the sizes come from an unseeded env object (SMAC launches the game only at reset);
        # the env that plays is made, seeded, at the first reset
        probe = self._factory(None)
        self._info = probe.get_env_info()
        probe.close()
        self.n_agents, self.n_actions = int(self._info["n_agents"]), int(self._info["n_actions"])
        self.obs_dim, self.state_dim = int(self._info["obs_shape"]), int(self._info["state_shape"])
        map_limit = int(self._info["episode_limit"])
        self.episode_limit = min(int(episode_limit), map_limit) if episode_limit else map_limit
        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agents: list[str] = []
        self.won = False
        self._t = 0

    def _make(self, seed: int | None) -> Any:
        # SMAC takes its episode limit from the map; a shorter ``episode_limit`` is enforced here
        kw: dict[str, Any] = {"map_name": self.map_name, "difficulty": self.difficulty, "seed": seed}
        if self.capability_config is not None:
            from smacv2.env.starcraft2.wrapper import StarCraftCapabilityEnvWrapper

            return StarCraftCapabilityEnvWrapper(capability_config=self.capability_config, **kw)
        from smac.env import StarCraft2Env

        return StarCraft2Env(**kw)

    def _open(self, seed: int | None) -> None:
        if self._env is None:
            self._env = self._factory(seed)

    def kwargs(self) -> dict:
        return {
            "map_name": self.map_name,
            "capability_config": self.capability_config,
            "episode_limit": self._limit,
            "difficulty": self.difficulty,
        }

    def _read(self) -> None:
        self._obs = np.asarray(self._env.get_obs(), dtype=np.float32).reshape(self.n_agents, self.obs_dim)
        self._state = np.asarray(self._env.get_state(), dtype=np.float32).reshape(self.state_dim)
        self._avail = np.asarray(self._env.get_avail_actions(), dtype=np.float32).reshape(self.n_agents, self.n_actions)

    # ---------------------------------------------------------------- parallel API
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._open(seed)  # the game is seeded once, at its launch
        self._env.reset()
        self._read()
        self.agents, self._t, self.won = list(self.possible_agents), 0, False
        return {a: self._obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("sc2: step() after the episode ended; call reset()")
        acts = np.array([int(actions[a]) for a in self.possible_agents])
        if ((acts < 0) | (acts >= self.n_actions)).any() or not self._avail[np.arange(self.n_agents), acts].all():
            raise ValueError(f"sc2: unavailable action in {acts.tolist()}")
        reward, ended, info = self._env.step(acts.tolist())
        self._t += 1
        self._read()
        timed_out = bool(info.get("episode_limit", False)) or (not ended and self._t >= self.episode_limit)
        terminated = bool(ended) and not timed_out
        truncated = timed_out
        if terminated or truncated:
            self.agents, self.won = [], bool(info.get("battle_won", False))
        team = self.possible_agents
        return (
            {a: self._obs[i] for i, a in enumerate(team)},
            {a: float(reward) for a in team},
            {a: terminated for a in team},
            {a: truncated for a in team},
            {a: dict(info) for a in team},
        )

    def state(self) -> np.ndarray:
        return self._state.copy()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    # ---------------------------------------------------------------- pipeline setup stage
    def check_steps(self, n: int = 50, seed: int = 0) -> None:
        check_team_steps(self, f"sc2 {self.map_name}", n, seed)

    def write_assets(self, out_dir: str | Path) -> dict:
        return write_env_assets(out_dir, {**self.describe(), "versions": package_versions("smac", "smacv2", "pysc2")})

    def describe(self) -> dict:
        return {
            "env": "sc2",
            "kwargs": self.kwargs(),
            "n_agents": self.n_agents,
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "state_dim": self.state_dim,
            "episode_limit": self.episode_limit,
            "opponent": f"StarCraft II built-in AI, difficulty {self.difficulty}",
            "package": _package(self.capability_config),
        }
