"""The QMIX family's runner: plays episodes into the episode replay, steps the learner, evaluates
greedily every ``eval_every`` env steps and checkpoints at episode boundaries (exact resume,
see ``learner.py``). :func:`entry_points` turns an agent-network factory and a learner class into
the ``train`` / ``evaluate`` a method module exposes."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from methods.common.budget import BudgetMeter
from methods.common.runapi import Preempted, Run
from methods.common.seeding import restore_rng_states, rng_states, seeded
from methods.marl.agents import AgentNetwork, dense_1r3_flops
from methods.marl.value.episodes import greedy_episodes, make_batch, run_episodes
from methods.marl.value.learner import AgentNetFactory, Config, QLearner, epsilon_at, scheme_agent_net


def _hook_metrics(agent: AgentNetwork) -> dict[str, float]:
    return {k: float(v) for k, v in agent.diagnostics().items()}


def train_qmix(
    cfg: Config, run: Run, make_agent_net: AgentNetFactory = scheme_agent_net, learner_cls: type[QLearner] = QLearner
) -> dict[str, float]:
    device = run.device
    torch.manual_seed(run.seed)
    env, test_env = make_batch(cfg), make_batch(cfg)
    learner = learner_cls(cfg, env, make_agent_net, device)
    buffer = learner.make_buffer()
    gen = torch.Generator(device=device).manual_seed(run.seed)  # exploration and sampling
    rng = np.random.default_rng(run.seed)  # training episodes' seeds
    t_env, episodes, last_eval, last = 0, 0, float("nan"), {}
    train_returns: list[float] = []
    history: dict[str, list[float]] = {}
    timers = {"update": 0.0, "env": 0.0, "updates_at_log": 0, "steps_at_log": 0}

    budget = BudgetMeter(unit="episodes")
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        budget.load_state_dict(ckpt["budget"])
        learner.load_state_dict(ckpt["learner"])
        buffer.load_state_dict(ckpt["buffer"])
        restore_rng_states(ckpt, gen, rng)
        t_env, episodes, last = ckpt["t_env"], ckpt["episodes"], ckpt["last"]
        train_returns, history, timers = ckpt["train_returns"], ckpt["history"], ckpt["timers"]
    next_eval = (t_env // cfg.eval_every + 1) * cfg.eval_every
    next_ckpt = (t_env // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    averaged = ("test_return", "test_win_rate", *_hook_metrics(learner.agent), *learner.diagnostics())

    def model_state(final_return: float, averages: dict[str, float]) -> dict[str, Any]:
        return {
            "agent": learner.agent.state_dict(),
            "mixer": learner.mixer.state_dict(),
            "config": cfg.to_dict(),
            "final_return": final_return,
            "train_stats": {**averages, **learner.final_metrics()},
        }

    if ckpt is None:
        # before any update: the diagnostics' "averages" are their step-0 values
        at_start = {**_hook_metrics(learner.agent), **learner.diagnostics()}
        run.save_untrained_model(model_state(float("nan"), {f"{k}_avg": float(v) for k, v in at_start.items()}))
    while t_env < cfg.iterations:
        t0 = time.perf_counter()
        seeds = [int(rng.integers(2**31)) for _ in range(cfg.batch_size_run)]
        epsilon = epsilon_at(cfg, t_env)
        for episode, ret in run_episodes(learner, env, seeds, epsilon, gen):
            buffer.add(episode)
            t_env += len(episode["reward"])
            budget.env_steps += len(episode["reward"])
            budget.collected += 1
            episodes += 1
            train_returns.append(ret)
        timers["env"] += time.perf_counter() - t0
        if len(buffer) >= cfg.batch_size:
            t0 = time.perf_counter()
            learner.t_env = t_env
            batch = buffer.sample(cfg.batch_size, gen)
            with budget.measure_flops():
                last = learner.train(batch)
            budget.step(int(batch["reward"].shape[0]))
            timers["update"] += time.perf_counter() - t0
        learner.agent.on_env_steps(t_env, cfg.iterations, gen)
        if t_env >= next_eval or t_env >= cfg.iterations:
            returns, wins = greedy_episodes(learner, test_env, run.seed, cfg.eval_episodes)
            last_eval = float(np.mean(returns))
            win_rate = {} if wins is None else {"test_win_rate": float(np.mean(wins))}
            updates = learner.n_updates - timers["updates_at_log"]
            row = {
                "test_return": last_eval,
                "test_return_std": float(np.std(returns)),
                **win_rate,
                "train_return": float(np.mean(train_returns)),
                "epsilon": epsilon_at(cfg, t_env),
                "episodes": float(episodes),
                "updates": float(learner.n_updates),
                "time_updates_per_s": updates / timers["update"] if timers["update"] > 0 else float("nan"),
                "time_env_steps_per_s": (t_env - timers["steps_at_log"]) / timers["env"],
                **last,
                **_hook_metrics(learner.agent),
                **learner.diagnostics(),
            }
            for k, v in row.items():
                if not k.startswith("time_"):
                    history.setdefault(k, []).append(float(v))
            run.log(t_env, row)
            train_returns = []
            timers = {"update": 0.0, "env": 0.0, "updates_at_log": learner.n_updates, "steps_at_log": t_env}
            next_eval = (t_env // cfg.eval_every + 1) * cfg.eval_every
        stop = run.should_stop()
        if (t_env >= next_ckpt or stop) and t_env < cfg.iterations:
            run.save_checkpoint(
                {
                    "learner": learner.state_dict(),
                    "buffer": buffer.state_dict(),
                    **rng_states(gen, rng),
                    "t_env": t_env,
                    "episodes": episodes,
                    "last": dict(last),
                    "train_returns": list(train_returns),
                    "history": history,
                    "timers": dict(timers),
                    "budget": budget.state_dict(),
                },
                t_env,
            )
            next_ckpt = (t_env // cfg.checkpoint_every + 1) * cfg.checkpoint_every
            if stop or run.should_stop():
                raise Preempted(f"stopped at env step {t_env}")
    # over-training averages of the test return (area under the curve per evaluation) and of
    # the agent network's diagnostics become final metrics
    averages = {f"{k}_avg": float(np.mean(history[k])) for k in averaged if history.get(k)}
    budget.target_updates = learner.n_updates // cfg.target_update_interval  # hard copies (QLearner.train)
    run.record_budget(budget.summary())
    run.save_model(model_state(last_eval, averages))
    return {"test_return": last_eval}


def evaluate_qmix(
    cfg: Config,
    model: dict[str, Any],
    seed: int,
    device: str | torch.device = "cpu",
    make_agent_net: AgentNetFactory = scheme_agent_net,
    learner_cls: type[QLearner] = QLearner,
) -> dict[str, Any]:
    """Final metrics of a saved model: the mean greedy team return over ``eval_episodes``
    test episodes (seeds as during training), the agent network's inference FLOPs per agent
    relative to a dense FuPS 1R3 agent of the same sizes, and its nonzero parameters per agent."""
    with seeded(seed):
        env = make_batch(cfg)
        learner = learner_cls(cfg, env, make_agent_net, torch.device(device))
        learner.agent.load_state_dict(model["agent"])
        learner.mixer.load_state_dict(model["mixer"])
        returns, wins = greedy_episodes(learner, env, seed, cfg.eval_episodes)
        agent = learner.agent
        dense = dense_1r3_flops(learner.input_dim, cfg.hidden_dim, agent.n_actions)  # the configured width
        metrics = {
            "test_return_mean": float(np.mean(returns)),
            "test_return_final": float(model.get("final_return", float("nan"))),
            "inference_flops_per_agent": float(agent.inference_flops_per_agent()),
            "flops_ratio": float(agent.inference_flops_per_agent()) / dense,
            "nonzero_params_per_agent": float(agent.nonzero_params_per_agent()),
            **{k: float(v) for k, v in (model.get("train_stats") or {}).items()},
            **_hook_metrics(agent),
        }
    per_episode = {"test_return": [float(r) for r in returns]}
    if wins is not None:
        metrics["test_win_rate_mean"] = float(np.mean(wins))
        per_episode["test_win"] = wins
    return {"metrics": metrics, "per_episode": per_episode, "n_episodes": len(returns)}


def entry_points(
    make_agent_net: AgentNetFactory = scheme_agent_net, learner_cls: type[QLearner] = QLearner
) -> tuple[Callable[..., dict[str, float]], Callable[..., dict[str, Any]]]:
    """The ``train`` and ``evaluate`` of a method module whose agent network comes from
    ``make_agent_net(cfg, input_dim, n_agents, n_actions)`` and whose learner is ``learner_cls``
    (a QLearner subclass overriding its hooks); everything else is this learner."""

    def train(cfg: Config, run: Run) -> dict[str, float]:
        return train_qmix(cfg, run, make_agent_net, learner_cls)

    def evaluate(
        cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
    ) -> dict[str, Any]:
        return evaluate_qmix(cfg, model, seed, device, make_agent_net, learner_cls)

    return train, evaluate
