"""k seeds of one control method trained together in one process (issue 26): the loop of
methods/control/loop.py, run in lockstep for k seeds whose updates are one batched call
(``StackedTD3``, methods/control/seed_batch.py).

Each seed keeps everything that makes it a seed: its env, replay buffer, warm-up generator and
torch generator, drawn in the order its single-seed run draws them (act, then the updates), its
curve, budget, untrained and trained models, written to its own run (``group.runs[i]``). Only
the arithmetic is shared. So seed i of a group follows its single-seed run to float rounding
(tests/test_seed_group.py); results differ from the single-seed run's in the last bits, which is
why a grouped run's resolved config names its group size.

Checkpoints: the k seeds are at the same environment step but almost never at an episode
boundary together, so a group checkpoint (every ``checkpoint_every`` steps, or when asked to
stop) records for each seed its env's random state at the start of the current episode and the
actions taken since. Resuming resets each env from that state and replays the actions: MuJoCo
and dm_control are deterministic given their state and the actions, so every env is back where
it was (checked against the saved observation) and the resumed group is bit-identical to an
uninterrupted one on CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import torch

from envs.control import ControlTask, rng_state, set_rng_state
from methods.common.budget import BudgetMeter
from methods.common.replay import ReplayBuffer
from methods.common.runapi import Preempted, Run
from methods.control.loop import Agent, AgentFactory, ControlConfig, evaluate_policy


class RunGroup(Protocol):
    """The k runs of one group job and the group's own checkpoint (pipeline.groups.FileRunGroup;
    tests: methods.common.runapi.MemoryRunGroup)."""

    runs: list[Run]
    device: torch.device

    def should_stop(self) -> bool: ...
    def save_checkpoint(self, state: dict[str, Any], step: int) -> None: ...
    def load_checkpoint(self) -> dict[str, Any] | None: ...


class Stack(Protocol):
    n_updates: int

    def act(self, obs: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor: ...
    def update(self, buffers: list[ReplayBuffer], gens: list[torch.Generator]) -> dict[str, torch.Tensor]: ...
    def write_back(self) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, d: dict[str, Any]) -> None: ...


@dataclass
class Seed:
    """One seed of the group: what its single-seed loop keeps in local variables."""

    run: Run
    agent: Agent
    gen: torch.Generator
    rng: np.random.Generator
    env: Any
    buffer: ReplayBuffer
    budget: BudgetMeter
    obs: np.ndarray
    episode_return: float = 0.0
    train_returns: list[float] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    last_eval: float = float("nan")
    last_diag: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    # the env's random state when the current episode began (None: the first, reset with the seed)
    episode_rng: Any = None
    episode_actions: list[np.ndarray] = field(default_factory=list)
    done: bool = False  # the step just taken ended the episode

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": self.buffer.state_dict(),
            "gen": self.gen.get_state(),
            "rng": self.rng.bit_generator.state,
            "obs": self.obs.copy(),
            "episode_return": self.episode_return,
            "train_returns": list(self.train_returns),
            "last": {k: float(v) for k, v in self.last.items()},
            "last_eval": self.last_eval,
            "last_diag": dict(self.last_diag),
            "history": {k: list(v) for k, v in self.history.items()},
            "episode_rng": self.episode_rng,
            "episode_actions": np.asarray(self.episode_actions, dtype=np.float32),
            "budget": self.budget.state_dict(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.buffer.load_state_dict(d["buffer"])
        self.gen.set_state(d["gen"])
        self.rng.bit_generator.state = d["rng"]
        self.episode_return, self.train_returns, self.last = d["episode_return"], d["train_returns"], d["last"]
        self.last_eval, self.last_diag, self.history = d["last_eval"], d["last_diag"], d["history"]
        self.budget.load_state_dict(d["budget"])
        self.episode_rng, self.episode_actions = d["episode_rng"], list(d["episode_actions"])
        self.obs = self.replay_episode()
        if not np.array_equal(self.obs, d["obs"]):
            raise RuntimeError(
                f"seed {self.run.seed}: replaying the checkpoint's {len(self.episode_actions)} actions did not "
                "bring the env back to the saved observation (a non-deterministic env cannot resume a group)"
            )

    def replay_episode(self) -> np.ndarray:
        """Reset the env as the current episode began and step it through the actions taken since."""
        if self.episode_rng is None:
            obs, _ = self.env.reset(seed=self.run.seed)
        else:
            set_rng_state(self.env, self.episode_rng)
            obs, _ = self.env.reset()
        for action in self.episode_actions:
            obs, *_ = self.env.step(action)
        return obs


def train_group(
    cfg: ControlConfig,
    group: RunGroup,
    make_agent: AgentFactory,
    make_stack: Callable[[list[Agent]], Stack],
) -> list[dict[str, float]]:
    """Train ``len(group.runs)`` seeds of one method and config together; returns each seed's
    final metrics, as ``train_agent`` would."""
    device = group.device
    task = ControlTask(**cfg.env_kwargs)
    seeds: list[Seed] = []
    for run in group.runs:  # each seed's networks drawn as its single-seed run draws them
        torch.manual_seed(run.seed)
        gen = torch.Generator(device=device).manual_seed(run.seed)
        agent = make_agent(cfg, task, device, gen)
        buffer = ReplayBuffer(min(cfg.buffer_size, cfg.iterations), task.obs_dim, task.act_dim, device)
        env = task.make(run.seed)
        obs, _ = env.reset(seed=run.seed)
        seed = Seed(run, agent, gen, np.random.default_rng(run.seed), env, buffer, BudgetMeter("transitions"), obs)
        seeds.append(seed)
    stack = make_stack([s.agent for s in seeds])
    gens, buffers = [s.gen for s in seeds], [s.buffer for s in seeds]
    flops = BudgetMeter("transitions")  # FLOPs of the batched update, shared out per seed at the end
    step, update_time, updates_at_log = 0, 0.0, 0

    ckpt = group.load_checkpoint()
    if ckpt is not None:
        stack.load_state_dict(ckpt["stack"])
        for s, d in zip(seeds, ckpt["seeds"]):
            s.load_state_dict(d)
        torch.set_rng_state(ckpt["torch_rng"])
        flops.load_state_dict(ckpt["flops"])
        step, update_time, updates_at_log = ckpt["step"], ckpt["update_time"], ckpt["updates_at_log"]
    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every

    def model_state(s: Seed, final_return: float, train_stats: dict[str, float]) -> dict[str, Any]:
        return {
            **s.agent.model_state(),
            "config": cfg.to_dict(),
            "final_return": final_return,
            "train_stats": train_stats,
        }

    if ckpt is None:
        for s in seeds:
            s.run.save_untrained_model(model_state(s, float("nan"), {}))

    def checkpoint() -> None:
        state = {
            "stack": stack.state_dict(),
            "seeds": [s.state_dict() for s in seeds],
            "torch_rng": torch.get_rng_state(),
            "flops": flops.state_dict(),
            "step": step,
            "update_time": update_time,
            "updates_at_log": updates_at_log,
        }
        group.save_checkpoint(state, step)

    while step < cfg.iterations:
        if step < cfg.start_steps:
            actions = [s.rng.uniform(task.action_low, task.action_high).astype(np.float32) for s in seeds]
        else:
            obs = torch.as_tensor(np.stack([s.obs for s in seeds]), device=device)
            actions = list(stack.act(obs, gens).cpu().numpy())
        step += 1
        for s, action in zip(seeds, actions):
            next_obs, reward, terminated, truncated, _ = s.env.step(action)
            s.buffer.add(s.obs, action, reward, next_obs, terminated)
            s.obs, s.episode_return = next_obs, s.episode_return + reward
            s.episode_actions.append(action)
            s.done = terminated or truncated
        if step > cfg.start_steps:
            t0 = time.perf_counter()
            for _ in range(cfg.utd):
                with flops.measure_flops():
                    out = stack.update(buffers, gens)
                flops.step(cfg.batch)
                for i, s in enumerate(seeds):
                    s.last.update({k: v[i] for k, v in out.items()})
                    s.budget.step(cfg.batch)
            update_time += time.perf_counter() - t0
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            stack.write_back()
            for s in seeds:
                _evaluate(cfg, task, s, step, device, update_time, updates_at_log)
            update_time, updates_at_log = 0.0, stack.n_updates
        elif cfg.diag_every and step % cfg.diag_every == 0 and len(buffers[0]) >= cfg.batch:
            stack.write_back()
            for s in seeds:
                s.run.log(step, s.agent.diagnostics(s.buffer))
        for s in seeds:
            s.budget.env_steps += 1
            if s.done:
                s.budget.collected += 1
                s.train_returns.append(s.episode_return)
                s.episode_return = 0.0
                s.episode_rng, s.episode_actions = rng_state(s.env), []
                s.obs, _ = s.env.reset()
        stop = group.should_stop()
        if (step >= next_ckpt or stop) and step < cfg.iterations:
            checkpoint()
            next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
            if stop or group.should_stop():
                raise Preempted(f"stopped at env step {step}")
    stack.write_back()
    results = []
    for s in seeds:
        s.env.close()
        averages = {f"{k}_avg": float(np.mean(v)) for k, v in s.history.items() if v}
        s.budget.flops_sampled = flops.flops_sampled / len(seeds)  # one seed's share of each batched step
        s.budget.steps_sampled = flops.steps_sampled
        s.run.record_budget(s.budget.summary())
        s.run.save_model(model_state(s, s.last_eval, {**s.last_diag, **averages}))
        results.append({"return": s.last_eval})
    return results


def _evaluate(
    cfg: ControlConfig,
    task: ControlTask,
    s: Seed,
    step: int,
    device: torch.device,
    update_time: float,
    updates_at_log: int,
) -> None:
    """One seed's evaluation row, as train_agent logs it (its networks were written back)."""
    s.last_eval = float(np.mean(evaluate_policy(s.agent, task, s.run.seed, cfg.eval_episodes, device, step)))
    row = {
        "return": s.last_eval,
        **task.eval_info(step),
        "train_return": float(np.mean(s.train_returns)) if s.train_returns else float("nan"),
        "updates": s.agent.n_updates,
        "time_updates_per_s": ((s.agent.n_updates - updates_at_log) / update_time if update_time > 0 else float("nan")),
        **{k: float(v) for k, v in s.last.items()},
    }
    if len(s.buffer) >= cfg.batch:
        s.last_diag = s.agent.diagnostics(s.buffer)
        row.update(s.last_diag)
    for k in ("return", *s.last_diag):
        s.history.setdefault(k, []).append(float(row[k]))
    s.run.log(step, row)
    s.train_returns = []
