"""The training loop shared by every continuous-control method (TD3, SAC and those built on
them): environment interaction, random warm-up, ``utd`` updates per step, evaluation on a
separately seeded env, logging, checkpoints and the saved model.

An *agent* (methods/control/td3.py, sac.py and subclasses) supplies ``act``, ``update``,
``diagnostics``, ``state_dict``/``load_state_dict`` and ``model_state``; the loop knows nothing
of the algorithm. Checkpoints are taken at episode boundaries (the first one after each
``checkpoint_every`` steps, or when the run is asked to stop), with every random state, so a
resumed run is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Protocol

import numpy as np
import torch

from envs.control import ControlTask, rng_state, set_rng_state
from methods.common.budget import BudgetMeter
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, positive, within
from methods.common.replay import ReplayBuffer
from methods.common.runapi import Preempted, Run
from methods.common.seeding import restore_rng_states, rng_states, seeded


@dataclass
class ControlConfig(MethodConfig):
    """Task fields (set by the pipeline) and the hyper-parameters TD3 and SAC share.
    ``iterations`` counts environment steps. Value constraints: ``CONSTRAINTS``
    (methods/common/constraints.py), checked by ``__post_init__``."""

    env: str = "control"
    env_kwargs: dict = field(default_factory=lambda: {"suite": "gym", "task": "Hopper-v5"})
    iterations: int = 1_000_000
    eval_every: int = 5000
    checkpoint_every: int = 50_000
    lr: float = 3e-4
    batch: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    hidden: int = 256
    buffer_size: int = 1_000_000
    start_steps: int = 25_000
    utd: int = 1  # gradient updates per environment step
    eval_episodes: int = 10
    diag_every: int = 0  # log dormant/active ratios every n steps (0: at evaluations)

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "iterations": at_least(1),
        "eval_every": at_least(1),
        "checkpoint_every": at_least(1),
        "lr": positive(),
        "batch": at_least(1),
        "gamma": within(0, 1),  # discount factor
        "tau": within(0, 1, lo_open=True),  # Polyak weight; 0 would freeze the targets
        "hidden": at_least(1),
        "buffer_size": at_least(1),
        "start_steps": at_least(0),  # 0: no random warm-up
        "utd": at_least(1),
        "eval_episodes": at_least(1),
        "diag_every": at_least(0),  # 0: diagnostics at evaluations only
    }
    # the control loop logs its curve against environment steps only
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("utd", "start_steps")

    def measure_iterations(self) -> tuple[int, int]:
        # after a 1000-step warm-up (the paper's 5k-25k would dominate a short run); about 2000
        # updates apart whatever the update-to-data ratio
        return 1200, 1200 + max(100, 2000 // self.utd)

    def planned_work(self) -> dict[str, int]:
        return {"env_steps": self.iterations, "updates": self.utd * max(0, self.iterations - self.start_steps)}

    def measurement_config(self, iterations: int) -> ControlConfig:
        return replace(
            super().measurement_config(iterations),
            start_steps=min(self.start_steps, 1000),
            eval_episodes=1,
            buffer_size=min(self.buffer_size, iterations),
        )

    def __post_init__(self) -> None:
        if self.env != "control":
            raise ValueError(f"control methods need env 'control' (got {self.env!r})")
        super().__post_init__()


class Agent(Protocol):
    n_updates: int

    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor: ...
    def update(self, buffer: ReplayBuffer, step: int) -> dict[str, float]: ...
    def diagnostics(self, buffer: ReplayBuffer) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, d: dict[str, Any]) -> None: ...
    def model_state(self) -> dict[str, Any]: ...
    def load_model_state(self, d: dict[str, Any]) -> None: ...
    def evaluation_metrics(self, task: ControlTask, seed: int) -> dict[str, float]: ...


AgentFactory = Callable[[Any, ControlTask, torch.device, torch.Generator], Agent]


@torch.no_grad()
def evaluate_policy(
    agent: Any, task: ControlTask, seed: int, episodes: int, device: torch.device, step: int = 0
) -> list[float]:
    """Undiscounted returns of the deterministic policy on an env seeded with seed + 100 (for a
    task cycle: the task trained at ``step``)."""
    env = task.make_eval(seed + 100, step)
    returns = []
    obs, _ = env.reset(seed=seed + 100)
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            a = agent.act(torch.as_tensor(obs, device=device), explore=False)
            obs, r, term, trunc, _ = env.step(a.cpu().numpy())
            total += r
            done = term or trunc
        returns.append(total)
        obs, _ = env.reset()
    env.close()
    return returns


def train_agent(cfg: ControlConfig, run: Run, make_agent: AgentFactory) -> dict[str, float]:
    device = run.device
    task = ControlTask(**cfg.env_kwargs)
    torch.manual_seed(run.seed)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    agent = make_agent(cfg, task, device, gen)
    buffer = ReplayBuffer(min(cfg.buffer_size, cfg.iterations), task.obs_dim, task.act_dim, device)
    rng = np.random.default_rng(run.seed)  # warm-up actions
    env = task.make(run.seed)
    obs, _ = env.reset(seed=run.seed)
    step, episode_return, train_returns, last, last_eval = 0, 0.0, [], {}, float("nan")
    last_diag: dict[str, float] = {}
    # every evaluation's return and diagnostics, for the over-training averages ("kept over
    # training" claims, area under the return curve)
    history: dict[str, list[float]] = {}
    update_time, updates_at_log = 0.0, 0
    budget = BudgetMeter(unit="transitions")

    ckpt = run.load_checkpoint()
    if ckpt is not None:
        agent.load_state_dict(ckpt["agent"])
        buffer.load_state_dict(ckpt["buffer"])
        restore_rng_states(ckpt, gen, rng)
        set_rng_state(env, ckpt["env_rng"])
        obs, _ = env.reset()
        step, train_returns, last = ckpt["step"], ckpt["train_returns"], ckpt["last"]
        update_time, updates_at_log = ckpt["update_time"], ckpt["updates_at_log"]
        history, last_diag = ckpt.get("history", {}), ckpt.get("last_diag", {})
        budget.load_state_dict(ckpt["budget"])
    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every

    def model_state(final_return: float, train_stats: dict[str, float]) -> dict[str, Any]:
        return {
            **agent.model_state(),
            "config": cfg.to_dict(),
            "final_return": final_return,
            "train_stats": train_stats,
        }

    if ckpt is None:
        run.save_untrained_model(model_state(float("nan"), {}))

    def checkpoint(env_rng: Any) -> None:
        run.save_checkpoint(
            {
                "agent": agent.state_dict(),
                "buffer": buffer.state_dict(),
                **rng_states(gen, rng),
                "env_rng": env_rng,
                "step": step,
                "train_returns": list(train_returns),
                "last": {k: float(v) for k, v in last.items()},
                "update_time": update_time,
                "updates_at_log": updates_at_log,
                "history": history,
                "last_diag": last_diag,
                "budget": budget.state_dict(),
            },
            step,
        )

    while step < cfg.iterations:
        if step < cfg.start_steps:
            action = rng.uniform(task.action_low, task.action_high).astype(np.float32)
        else:
            action = agent.act(torch.as_tensor(obs, device=device), explore=True).cpu().numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        obs, episode_return, step = next_obs, episode_return + reward, step + 1
        if step > cfg.start_steps:
            t0 = time.perf_counter()
            for _ in range(cfg.utd):
                with budget.measure_flops():
                    last.update(agent.update(buffer, step))
                budget.step(cfg.batch)
            update_time += time.perf_counter() - t0
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            last_eval = float(np.mean(evaluate_policy(agent, task, run.seed, cfg.eval_episodes, device, step)))
            row = {
                "return": last_eval,
                **task.eval_info(step),
                "train_return": float(np.mean(train_returns)) if train_returns else float("nan"),
                "updates": agent.n_updates,
                "time_updates_per_s": (
                    (agent.n_updates - updates_at_log) / update_time if update_time > 0 else float("nan")
                ),
                **{k: float(v) for k, v in last.items()},
            }
            if len(buffer) >= cfg.batch:
                last_diag = agent.diagnostics(buffer)
                row.update(last_diag)
            for k in ("return", *last_diag):
                history.setdefault(k, []).append(float(row[k]))
            run.log(step, row)
            train_returns, update_time, updates_at_log = [], 0.0, agent.n_updates
        elif cfg.diag_every and step % cfg.diag_every == 0 and len(buffer) >= cfg.batch:
            run.log(step, agent.diagnostics(buffer))
        budget.env_steps += 1
        if terminated or truncated:
            budget.collected += 1
            train_returns.append(episode_return)
            episode_return = 0.0
            env_rng = rng_state(env)
            stop = run.should_stop()
            if (step >= next_ckpt or stop) and step < cfg.iterations:
                checkpoint(env_rng)
                next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
                if stop or run.should_stop():
                    raise Preempted(f"stopped at env step {step}")
            obs, _ = env.reset()
    env.close()
    # the end-of-training diagnostics (active ratios, density, FLOPs) and their averages over
    # all evaluations (``<name>_avg``; ``return_avg`` is the area under the return curve per
    # evaluation) become final metrics
    averages = {f"{k}_avg": float(np.mean(v)) for k, v in history.items() if v}
    run.record_budget(budget.summary())
    run.save_model(model_state(last_eval, {**last_diag, **averages}))
    return {"return": last_eval}


def evaluate_model(
    cfg: ControlConfig, model: dict[str, Any], seed: int, device: str | torch.device, make_agent: AgentFactory
) -> dict[str, Any]:
    """Final metrics of a saved model: the deterministic policy's mean return over
    ``eval_episodes`` episodes (env seeded seed + 100), and the agent's own extra metrics
    (``agent.evaluation_metrics``, e.g. SAC's normalised Q-bias). A pure function of (model,
    seed): the global generators are seeded for the call (dropout in the Q-bias draws from them)."""
    with seeded(seed):
        return _evaluate_model(cfg, model, seed, device, make_agent)


def _evaluate_model(
    cfg: ControlConfig, model: dict[str, Any], seed: int, device: str | torch.device, make_agent: AgentFactory
) -> dict[str, Any]:
    device = torch.device(device)
    task = ControlTask(**cfg.env_kwargs)
    gen = torch.Generator(device=device).manual_seed(seed)
    agent = make_agent(cfg, task, device, gen)
    agent.load_model_state(model)
    returns = evaluate_policy(agent, task, seed, cfg.eval_episodes, device, cfg.iterations)
    metrics = {
        "return_mean": float(np.mean(returns)),
        "return_final": float(model.get("final_return", float("nan"))),
        **{k: float(v) for k, v in (model.get("train_stats") or {}).items()},
    }
    metrics.update(agent.evaluation_metrics(task, seed))
    return {"metrics": metrics, "per_episode": {"return": [float(r) for r in returns]}, "n_episodes": len(returns)}


def entry_points(
    agent_cls: Callable[..., Agent],
) -> tuple[AgentFactory, Callable[..., dict[str, float]], Callable[..., dict[str, Any]]]:
    """The ``make_agent``, ``train`` and ``evaluate`` a control method module exposes (the
    method registry's contract), for an agent class built as ``agent_cls(cfg, obs_dim,
    act_dim, max_action, device, gen)``."""

    def make_agent(cfg: ControlConfig, task: ControlTask, device: torch.device, gen: torch.Generator) -> Agent:
        return agent_cls(cfg, task.obs_dim, task.act_dim, task.max_action, device, gen)

    def train(cfg: ControlConfig, run: Run) -> dict[str, float]:
        return train_agent(cfg, run, make_agent)

    def evaluate(
        cfg: ControlConfig, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
    ) -> dict[str, Any]:
        return evaluate_model(cfg, model, seed, device, make_agent)

    return make_agent, train, evaluate
