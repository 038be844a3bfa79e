"""Whole episodes for the value-based MARL learners: the discrete-action team tasks they run on
(envs/mpe.py, envs/smax.py, one arrays API), one ε-greedy episode recorded for the episode
replay, and the greedy test episodes (team returns and, where the env reports battles, wins).
``learner`` is a methods/marl/qmix.py QLearner (its ``agent.init_hidden`` and ``act``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.mpe import MPETask
from envs.smax import SMAXTask

# discrete-action team tasks behind the same arrays API (envs/mpe.py, envs/smax.py)
TASKS: dict[str, type] = {"mpe": MPETask, "smax": SMAXTask}
TeamTask = MPETask | SMAXTask


def make_task(cfg: Any) -> TeamTask:
    """The task of a config's ``env`` and ``env_kwargs``."""
    return TASKS[cfg.env](**cfg.env_kwargs)



def run_episode(learner: Any, env: TeamTask, seed: int, epsilon: float,
                gen: torch.Generator) -> tuple[dict[str, np.ndarray], float]:
    """One episode with ε-greedy actions (ε = 0: greedy); returns its padded-buffer record and
    the team return."""
    obs = env.reset_arrays(seed=seed)
    hidden = learner.agent.init_hidden(1)
    last_actions = np.full(env.n_agents, -1)
    rec: dict[str, list] = {k: [] for k in ("obs", "state", "avail", "actions", "reward", "terminated")}
    total, done = 0.0, False
    while not done:
        avail = env.avail_actions()
        rec["obs"].append(obs)
        rec["state"].append(env.state())
        rec["avail"].append(avail)
        actions, hidden = learner.act(obs, avail, hidden, epsilon, gen, last_actions)
        last_actions = actions
        obs, reward, terminated, truncated = env.step_arrays(actions)
        rec["actions"].append(actions)
        rec["reward"].append(reward)
        rec["terminated"].append(float(terminated))
        total += reward
        done = terminated or truncated
    rec["obs"].append(obs)                   # the state after the last action: the bootstrap
    rec["state"].append(env.state())
    rec["avail"].append(env.avail_actions())
    episode = {k: np.asarray(v) for k, v in rec.items()}
    episode["filled"] = np.ones(len(rec["reward"]), dtype=np.float32)
    return episode, total


def eval_seed(seed: int, k: int) -> int:
    """Seed of test episode k of a run with seed ``seed`` (the same set at every evaluation)."""
    return int(np.random.SeedSequence([seed, 100, k]).generate_state(1)[0])


@torch.no_grad()
def greedy_episodes(learner: Any, env: TeamTask, seed: int, episodes: int) -> tuple[list[float], list[float] | None]:
    """Team returns of ``episodes`` greedy test episodes and, where the env reports battles
    (SMAX's ``won``), 1.0 for each won one (else None)."""
    gen = torch.Generator().manual_seed(seed)          # unused by greedy selection
    returns, wins = [], []
    for k in range(episodes):
        returns.append(run_episode(learner, env, eval_seed(seed, k), 0.0, gen)[1])
        wins.append(float(getattr(env, "won", float("nan"))))
    return returns, (wins if hasattr(env, "won") else None)


def greedy_returns(learner: Any, env: TeamTask, seed: int, episodes: int) -> list[float]:
    return greedy_episodes(learner, env, seed, episodes)[0]
