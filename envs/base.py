"""The interface the GFlowNet core expects of a discrete, batched DAG environment.

States are integer tensors ``[B, S]``; trajectories are padded forward-action sequences
``[B, L]`` (pad -1). An environment may end episodes by a stop action, by forced termination
(e.g. a fixed sequence length), or both. Enumerable environments (``enumerable = True``) index
every state so that the core can compute a policy's exact terminal distribution by dynamic
programming over ``level`` (the number of steps from s0).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class DagEnv(Protocol):
    n_actions: int  # forward actions, the stop action included if there is one
    n_backward_actions: int  # backward actions (parent choices)
    stop_action: int | None  # None: episodes end by forced termination only
    obs_dim: int
    max_traj_len: int  # most forward actions in one episode
    n_modes: int  # size of the env's mode set (0 if it has none)
    enumerable: bool

    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor: ...
    def obs(self, states: torch.Tensor) -> torch.Tensor: ...
    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def is_forced_terminal(self, states: torch.Tensor) -> torch.Tensor: ...
    def forward_mask(self, states: torch.Tensor) -> torch.Tensor: ...
    def backward_mask(self, states: torch.Tensor) -> torch.Tensor: ...
    def backward_action(self, next_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Index of the backward action that undoes forward ``actions`` arriving in ``next_states``."""

    def parents(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Parents of ``states`` [B, S] by backward action: parent states ``[B, P, S]``, the
        forward action leading from each parent to the state ``[B, P]``, and validity ``[B, P]``
        (parallel edges from one parent appear once per edge)."""

    def trajectory_states(self, actions: torch.Tensor) -> torch.Tensor:
        """States s_0..s_L ``[B, L+1, S]`` visited by padded action sequences (frozen after the end)."""

    def log_reward(self, states: torch.Tensor) -> torch.Tensor: ...
    def mode_index(self, states: torch.Tensor) -> torch.Tensor:
        """Index in [0, n_modes) of the mode a terminal state belongs to, or -1."""

    def action_blocks(self) -> list[tuple[int, int]]:
        """The forward actions grouped by type, ``[(start, end), ...]`` (recursionpharma's
        action-type rows: QGFN's p-quantile is taken within each)."""

    def modes_hit(self, states: torch.Tensor) -> torch.Tensor:
        """``[B, n_modes]``: which modes each terminal state finds (several where mode regions
        overlap, as bit sequences' edit-distance balls do; ``one_hot_modes`` of mode_index else)."""

    # enumerable environments only
    n_states: int

    def all_states(self, device: torch.device | str = "cpu") -> torch.Tensor: ...
    def index(self, states: torch.Tensor) -> torch.Tensor: ...
    def level(self, states: torch.Tensor) -> torch.Tensor: ...
    def terminal_mask(self, states: torch.Tensor) -> torch.Tensor: ...
    def target_distribution(self, cache_dir: object = None) -> np.ndarray: ...


class DagEnvFeatures:
    """The optional features of a GFlowNet environment, declared here with what their absence
    means, so that the core and the metrics call them without probing. Every GFlowNet env
    derives from this class and overrides what it has."""

    beta: float = 1.0  # the reward exponent: R(x) = flat reward ** beta
    # the flat reward is exp(log R / beta) (True), or the env computes it itself (sEH's proxy / 8)
    flat_reward_is_tempered_log_reward = True
    mode_flat_threshold: float | None = None  # "high reward" on the flat scale (sEH: 0.9)
    mode_similarity: float | None = None  # two high-reward samples are one mode above it

    def log_reward(self, states: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def flat_reward(self, states: torch.Tensor) -> torch.Tensor:
        """The task's reward before the GFlowNet's exponent, float64."""
        return (self.log_reward(states).double() / float(self.beta)).exp()

    def is_valid(self, states: torch.Tensor) -> torch.Tensor:
        """Whether each terminal state is a valid object (sEH: a molecule RDKit sanitises)."""
        return torch.ones(states.shape[0], dtype=torch.bool, device=states.device)

    def pairwise_distance(self, states: torch.Tensor) -> np.ndarray | None:
        """``[n, n]`` distances between terminal states (diversity); None: no distance."""
        return None

    def similarity(self, states_a: torch.Tensor, states_b: torch.Tensor) -> np.ndarray | None:
        """Similarities ``[len(a), len(b)]`` (sEH: Tanimoto) for mode counting; None: none."""
        return None


def replay_states(env: DagEnv, actions: torch.Tensor) -> torch.Tensor:
    """Generic ``trajectory_states``: step the environment along the action sequences."""
    B, L = actions.shape
    s = env.initial(B, actions.device)
    out = [s]
    for t in range(L):
        a = actions[:, t]
        valid = a >= 0
        if valid.any():
            nxt, _ = env.step(s[valid], a[valid])
            s = s.clone()
            s[valid] = nxt
        out.append(s)
    return torch.stack(out, 1)


class TeamArrays:
    """The learners' arrays API over a PettingZoo parallel team env (``reset``/``step`` with dicts
    keyed by agent) that keeps its last available-actions array ``_avail`` (N, A): a subclass says
    how its observations stack (``obs_array``) and how the agents' rewards and ends make the
    team's (``team_outcome``)."""

    possible_agents: list[str]
    _avail: np.ndarray
    reports_wins = False  # whether an episode ends won or lost (``won``)
    won: float | bool = float("nan")

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:  # pragma: no cover
        raise NotImplementedError

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:  # pragma: no cover
        raise NotImplementedError

    def obs_array(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def team_outcome(self, rew: dict, term: dict, trunc: dict) -> tuple[float, bool, bool]:  # pragma: no cover
        """(team reward, terminated, truncated) from the per-agent dicts of one step."""
        raise NotImplementedError

    def avail_actions(self) -> np.ndarray:
        """(N, n_actions) 0/1: the available actions."""
        return self._avail.copy()

    def reset_arrays(self, seed: int | None = None) -> np.ndarray:
        self.reset(seed=seed)
        return self.obs_array()

    def step_arrays(self, actions: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """Step with an (N,) int array; returns (obs (N, obs_dim), team reward, terminated, truncated)."""
        _, rew, term, trunc, _ = self.step({a: int(x) for a, x in zip(self.possible_agents, actions)})
        return (self.obs_array(), *self.team_outcome(rew, term, trunc))


class SharedRewardArrays(TeamArrays):
    """A team env whose agents share one team reward and which keeps its last observations as an
    (N, d) array ``_obs`` (envs/smax.py, envs/sc2.py; dead units: no-op only)."""

    _obs: np.ndarray
    reports_wins = True  # a StarCraft-style episode ends won or lost (``won``)
    won = False

    def obs_array(self) -> np.ndarray:
        return self._obs.copy()

    def team_outcome(self, rew: dict, term: dict, trunc: dict) -> tuple[float, bool, bool]:
        first = self.possible_agents[0]
        return rew[first], term[first], trunc[first]


def check_team_steps(task: object, label: str, n: int = 50, seed: int = 0) -> None:
    """The setup stage's check of a discrete-action team env (envs/mpe.py, envs/smax.py): random
    available actions for ``n`` steps; padded observations and the state keep their declared
    sizes and stay finite, rewards are finite. ``task`` has the learners' arrays API."""
    t: Any = task
    rng = np.random.default_rng(seed)
    obs = t.reset_arrays(seed=seed)
    for _ in range(n):
        if obs.shape != (t.n_agents, t.obs_dim) or not np.isfinite(obs).all():
            raise RuntimeError(f"{label}: bad observation {obs.shape}")
        if t.state().shape != (t.state_dim,):
            raise RuntimeError(f"{label}: bad state {t.state().shape}")
        acts = np.array([rng.choice(np.flatnonzero(row)) for row in t.avail_actions()])
        obs, r, term, trunc = t.step_arrays(acts)
        if not np.isfinite(r):
            raise RuntimeError(f"{label}: non-finite reward")
        if term or trunc:
            obs = t.reset_arrays(seed=int(rng.integers(2**31)))


def package_versions(*dists: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (None where one is missing), recorded
    in an environment's assets so a run states the simulator it ran on."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def write_env_assets(out_dir: object, info: dict, target: np.ndarray | None = None) -> dict:
    """Write an environment's cached assets atomically: ``info.json`` and, for enumerable
    environments, the exact target distribution ``target.npz`` (array ``p``)."""
    import json
    from pathlib import Path

    out = Path(out_dir)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    if target is not None:
        tmp = out / "target.tmp.npz"
        np.savez(tmp, p=target)
        tmp.replace(out / "target.npz")
    tmp_info = out / "info.json.tmp"
    tmp_info.write_text(json.dumps(info, indent=2, sort_keys=True))
    tmp_info.replace(out / "info.json")
    return info


def one_hot_modes(mode_index: torch.Tensor, n_modes: int) -> torch.Tensor:
    """``[B, n_modes]`` booleans from per-state mode indices (-1: none): one mode per state."""
    out = torch.zeros(*mode_index.shape, n_modes, dtype=torch.bool, device=mode_index.device)
    hit = mode_index >= 0
    out[hit, mode_index[hit]] = True
    return out


def mode_lookup(modes: list[int] | np.ndarray, n_values: int) -> torch.Tensor:
    """Table from a terminal state's integer value to its index in ``modes`` (-1 if none)."""
    lut = torch.full((n_values,), -1, dtype=torch.long)
    lut[torch.as_tensor(np.asarray(modes), dtype=torch.long)] = torch.arange(len(modes))
    return lut
