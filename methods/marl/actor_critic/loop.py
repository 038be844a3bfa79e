"""The MATD3 family's runner: n-step transitions into the replay, ``updates_per_train`` learner
updates every ``train_interval`` env steps, greedy evaluation every ``eval_every`` env steps and
exact-resume checkpoints. :func:`entry_points` turns a learner class into the ``train`` /
``evaluate`` a method module exposes."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from envs.mamujoco import MaMuJoCoTask
from methods.common.budget import BudgetMeter
from methods.common.replay import FieldReplay, NStepWriter
from methods.common.runapi import Preempted, Run
from methods.common.seeding import restore_rng_states, rng_states, seeded


from methods.marl.actor_critic.learner import Config, LearnerFactory, MATD3Learner


START_KEYS, END_KEYS = ("obs", "state", "actions"), ("next_obs", "next_state")


def eval_seed(seed: int, k: int) -> int:
    """Evaluation episodes' seeds: disjoint from training's (drawn from the learner's stream)."""
    return 1_000_003 * (seed + 100) + k


@torch.no_grad()
def greedy_returns(learner: MATD3Learner, task: MaMuJoCoTask, seed: int, episodes: int) -> list[float]:
    """Undiscounted team returns of the deterministic shared policy."""
    returns = []
    for k in range(episodes):
        obs, total, done = task.reset_arrays(seed=eval_seed(seed, k)), 0.0, False
        while not done:
            obs, r, term, trunc = task.step_arrays(learner.act(obs, explore=False))
            total += r
            done = term or trunc
        returns.append(total)
    return returns


def train_matd3(cfg: Config, run: Run, learner_cls: LearnerFactory = MATD3Learner) -> dict[str, float]:
    device = run.device
    task = MaMuJoCoTask(**cfg.env_kwargs)
    eval_task = MaMuJoCoTask(**cfg.env_kwargs)
    torch.manual_seed(run.seed)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    learner = learner_cls(cfg, task, device, gen)
    n, d, a = task.n_agents, task.obs_dim, task.act_dim
    buffer = FieldReplay(
        min(cfg.buffer_size, cfg.iterations),
        {
            "obs": (n, d),
            "state": (task.state_dim,),
            "actions": (n, a),
            "reward": (),
            "next_obs": (n, d),
            "next_state": (task.state_dim,),
            "terminated": (),
            "discount": (),
        },
        device,
    )
    writer = NStepWriter(cfg.n_step, cfg.gamma, START_KEYS, END_KEYS)
    rng = np.random.default_rng(run.seed)  # warm-up actions and episode seeds
    step, episode_return, train_returns, last = 0, 0.0, [], {}
    history: dict[str, list[float]] = {}
    update_time, updates_at_log, last_eval = 0.0, 0, float("nan")

    budget = BudgetMeter(unit="transitions")
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        budget.load_state_dict(ckpt["budget"])
        learner.load_state_dict(ckpt["learner"])
        buffer.load_state_dict(ckpt["buffer"])
        writer.load_state_dict(ckpt["writer"])
        restore_rng_states(ckpt, gen, rng)
        step, train_returns, last = ckpt["step"], ckpt["train_returns"], ckpt["last"]
        update_time, updates_at_log, history = ckpt["update_time"], ckpt["updates_at_log"], ckpt["history"]
    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    obs = task.reset_arrays(seed=int(rng.integers(2**31)))
    state = task.state()

    def model_state(final_return: float, averages: dict[str, float]) -> dict[str, Any]:
        return {
            "actor": learner.actor.state_dict(),
            "critic": learner.critic.state_dict(),
            "config": cfg.to_dict(),
            "final_return": final_return,
            "train_stats": {**learner.diagnostics(), **averages},
        }

    if ckpt is None:
        run.save_untrained_model(model_state(float("nan"), {}))
    while step < cfg.iterations:
        if step < cfg.start_steps:
            actions = rng.uniform(-task.max_action, task.max_action, (n, a)).astype(np.float32) * task.action_mask()
        else:
            actions = learner.act(obs, explore=True)
        next_obs, reward, terminated, truncated = task.step_arrays(actions)
        next_state = task.state()
        done = terminated or truncated
        for tr in writer.push(
            {
                "obs": obs,
                "state": state,
                "actions": actions,
                "reward": reward,
                "next_obs": next_obs,
                "next_state": next_state,
                "terminated": terminated,
                "done": done,
            }
        ):
            buffer.add(tr)
        obs, state, episode_return, step = next_obs, next_state, episode_return + reward, step + 1
        budget.env_steps += 1
        budget.collected += int(done)
        learner.t_env = step
        last.update(learner.on_env_steps(step))
        if step > cfg.start_steps and step % cfg.train_interval == 0 and len(buffer) >= cfg.batch:
            t0 = time.perf_counter()
            for _ in range(cfg.updates_per_train):
                with budget.measure_flops():
                    last.update(learner.update(buffer.sample(cfg.batch, gen)))
                budget.step(cfg.batch)
            update_time += time.perf_counter() - t0
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            last_eval = float(np.mean(greedy_returns(learner, eval_task, run.seed, cfg.eval_episodes)))
            diag = learner.diagnostics()
            row = {
                "test_return": last_eval,
                "updates": learner.n_updates,
                "train_return": float(np.mean(train_returns)) if train_returns else float("nan"),
                "time_updates_per_s": (
                    (learner.n_updates - updates_at_log) / update_time if update_time > 0 else float("nan")
                ),
                **{k: float(v) for k, v in last.items()},
                **diag,
            }
            for k in ("test_return", *diag):
                history.setdefault(k, []).append(float(row[k]))
            run.log(step, row)
            train_returns, update_time, updates_at_log = [], 0.0, learner.n_updates
        if done:
            train_returns.append(episode_return)
            episode_return = 0.0
            stop = run.should_stop()
            if (step >= next_ckpt or stop) and step < cfg.iterations:
                run.save_checkpoint(
                    {
                        "learner": learner.state_dict(),
                        "buffer": buffer.state_dict(),
                        "writer": writer.state_dict(),
                        **rng_states(gen, rng),
                        "step": step,
                        "train_returns": list(train_returns),
                        "last": {k: float(v) for k, v in last.items()},
                        "update_time": update_time,
                        "updates_at_log": updates_at_log,
                        "history": history,
                        "budget": budget.state_dict(),
                    },
                    step,
                )
                next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
                if stop or run.should_stop():
                    raise Preempted(f"stopped at env step {step}")
            obs = task.reset_arrays(seed=int(rng.integers(2**31)))
            state = task.state()
    task.close()
    eval_task.close()
    averages = {f"{k}_avg": float(np.mean(v)) for k, v in history.items() if v}
    run.record_budget(budget.summary())
    run.save_model(model_state(last_eval, averages))
    return {"test_return": last_eval}


def evaluate_matd3(
    cfg: Config,
    model: dict[str, Any],
    seed: int,
    device: str | torch.device = "cpu",
    learner_cls: LearnerFactory = MATD3Learner,
) -> dict[str, Any]:
    """Final metrics of a saved model: the deterministic policy's mean team return over
    ``eval_episodes`` episodes (seeds of :func:`eval_seed`), the return at the end of training,
    its average over training's evaluations (``test_return_avg``) and the FLOPs ratio."""
    with seeded(seed):
        device = torch.device(device)
        task = MaMuJoCoTask(**cfg.env_kwargs)
        learner = learner_cls(cfg, task, device, torch.Generator(device=device).manual_seed(seed))
        learner.actor.load_state_dict(model["actor"])
        learner.critic.load_state_dict(model["critic"])
        returns = greedy_returns(learner, task, seed, cfg.eval_episodes)
        task.close()
    metrics = {
        "test_return_mean": float(np.mean(returns)),
        "test_return_final": float(model.get("final_return", float("nan"))),
        **{k: float(v) for k, v in (model.get("train_stats") or {}).items()},
    }
    return {"metrics": metrics, "per_episode": {"test_return": [float(r) for r in returns]}, "n_episodes": len(returns)}


def entry_points(
    learner_cls: LearnerFactory = MATD3Learner,
) -> tuple[Callable[..., dict[str, float]], Callable[..., dict[str, Any]]]:
    """The ``train`` and ``evaluate`` a MATD3-based method module exposes."""

    def train(cfg: Config, run: Run) -> dict[str, float]:
        return train_matd3(cfg, run, learner_cls)

    def evaluate(
        cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
    ) -> dict[str, Any]:
        return evaluate_matd3(cfg, model, seed, device, learner_cls)

    return train, evaluate
