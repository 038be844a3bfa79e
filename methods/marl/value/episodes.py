"""Whole episodes for the value-based MARL learners: the discrete-action team tasks they run on
(envs/mpe.py, envs/smax.py, envs/sc2.py: one arrays API), one ε-greedy episode recorded for the episode
replay, and the greedy test episodes (team returns and, where the env reports battles, wins).
``learner`` is a methods/marl/value/qmix.py QLearner (its ``agent.init_hidden`` and ``act``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.mpe import MPETask
from envs.sc2 import SC2Task
from envs.smax import SMAXBatch, SMAXTask
from envs.team_batch import TeamBatch

# discrete-action team tasks behind the same arrays API (envs/mpe.py, envs/smax.py, envs/sc2.py)
TASKS: dict[str, type] = {"mpe": MPETask, "smax": SMAXTask, "sc2": SC2Task}
TeamTask = MPETask | SMAXTask | SC2Task


def make_task(cfg: Any) -> TeamTask:
    """The task of a config's ``env`` and ``env_kwargs``."""
    return TASKS[cfg.env](**cfg.env_kwargs)


def make_batch(cfg: Any) -> TeamBatch | SMAXBatch:
    """``cfg.batch_size_run`` envs of the config's task in lockstep: SMAX's vmapped batch, else
    copies of the task stepped in turn (a batch of one is the single-task runner)."""
    if cfg.env == "smax" and cfg.batch_size_run > 1:
        return SMAXBatch(**cfg.env_kwargs, n_envs=cfg.batch_size_run)
    return TeamBatch(lambda: make_task(cfg), cfg.batch_size_run)


def as_batch(env: Any) -> TeamBatch | SMAXBatch:
    """A batch as it is; a single task as a batch of one."""
    return env if isinstance(env, (TeamBatch, SMAXBatch)) else TeamBatch.of(env)


FIELDS = ("obs", "state", "avail", "actions", "reward", "terminated")


def run_episodes(
    learner: Any, batch: Any, seeds: list[int], epsilon: float, gen: torch.Generator
) -> list[tuple[dict[str, np.ndarray], float]]:
    """One episode per env of ``batch`` (envs/team_batch.py), started from ``seeds``, with
    ε-greedy actions (ε = 0: greedy) chosen for all envs in one agent pass per step; returns
    each episode's padded-buffer record and team return, in seed order."""
    obs = batch.reset_arrays(seeds)
    b = batch.n_envs
    hidden = learner.agent.init_hidden(b)
    last_actions = np.full((b, batch.n_agents), -1)
    recs: list[dict[str, list]] = [{k: [] for k in FIELDS} for _ in range(b)]
    totals = np.zeros(b)
    live = np.ones(b, dtype=bool)
    avail, state = batch.avail_actions(), batch.state()
    while live.any():
        actions, hidden = learner.act(obs, avail, hidden, epsilon, gen, last_actions)
        last_actions = actions
        nxt, reward, terminated, truncated = batch.step_arrays(actions)
        for i in np.flatnonzero(live):
            rec = recs[i]
            rec["obs"].append(obs[i])
            rec["state"].append(state[i])
            rec["avail"].append(avail[i])
            rec["actions"].append(actions[i])
            rec["reward"].append(float(reward[i]))
            rec["terminated"].append(float(terminated[i]))
            totals[i] += reward[i]
        ended = live & (terminated | truncated)
        # read once a step: the next step's inputs, and an ended episode's bootstrap row
        state, avail = batch.state(), batch.avail_actions()
        for i in np.flatnonzero(ended):
            recs[i]["obs"].append(nxt[i])
            recs[i]["state"].append(state[i])
            recs[i]["avail"].append(avail[i])
        live &= ~ended
        obs = nxt
    out = []
    for rec, total in zip(recs, totals):
        episode = {k: np.asarray(v) for k, v in rec.items()}
        episode["filled"] = np.ones(len(rec["reward"]), dtype=np.float32)
        out.append((episode, float(total)))
    return out


def run_episode(
    learner: Any, env: TeamTask, seed: int, epsilon: float, gen: torch.Generator
) -> tuple[dict[str, np.ndarray], float]:
    """One episode of a single task (a batch of one)."""
    return run_episodes(learner, TeamBatch.of(env), [seed], epsilon, gen)[0]


def eval_seed(seed: int, k: int) -> int:
    """Seed of test episode k of a run with seed ``seed`` (the same set at every evaluation)."""
    return int(np.random.SeedSequence([seed, 100, k]).generate_state(1)[0])


@torch.no_grad()
def greedy_episodes(learner: Any, env: Any, seed: int, episodes: int) -> tuple[list[float], list[float] | None]:
    """Team returns of ``episodes`` greedy test episodes (a task, or a batch playing them B at a
    time; a last partial batch is filled with further test seeds and those episodes dropped,
    so the batch keeps its shape) and, where the env reports battles (SMAX's ``won``), 1.0 for
    each won one (else None)."""
    batch = as_batch(env)
    gen = torch.Generator().manual_seed(seed)  # unused by greedy selection
    returns, wins = [], []
    for start in range(0, episodes, batch.n_envs):
        seeds = [eval_seed(seed, k) for k in range(start, start + batch.n_envs)]
        done = run_episodes(learner, batch, seeds, 0.0, gen)
        keep = min(batch.n_envs, episodes - start)
        returns += [ret for _, ret in done[:keep]]
        if batch.reports_wins:
            wins += [float(w) for w in batch.won[:keep]]
    return returns, (wins if batch.reports_wins else None)


def greedy_returns(learner: Any, env: Any, seed: int, episodes: int) -> list[float]:
    return greedy_episodes(learner, env, seed, episodes)[0]
