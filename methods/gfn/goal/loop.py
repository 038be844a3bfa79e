"""The training loop and evaluation of the goal-conditioned GFlowNets (methods/gfn/goal): one
loop for every learner of methods/gfn/goal/core.py (RBS, GC-GFN, HER, GC-DQN), which each method
module turns into its ``train`` / ``evaluate`` with :func:`entry_points`."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from methods.common.budget import BudgetMeter
from methods.common.runapi import Preempted, Run
from methods.common.seeding import seeded
from methods.gfn.goal.core import Chooser, GoalConfig, GoalLearner, build, reached, rollout
from methods.gfn.goal.replay import GoalReplay


@torch.no_grad()
def success_rate(env: Any, policy: Chooser, goals: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-goal success (bool ``[n]``) of noise-free rollouts of ``policy`` conditioned on ``goals``."""
    _, terminal = rollout(env, goals, policy, gen, noisy=False)
    return reached(env, terminal, goals)


def _has_heldout(env: Any) -> bool:
    return env.heldout_fraction > 0


def train_learner(cfg: GoalConfig, run: Run, learner: GoalLearner) -> dict[str, float]:
    """Per iteration: ``online_batch`` training goals, forward rollouts (with the env's training
    noise), the learner's paired trajectories, both into the replay, then one gradient step on a
    replayed batch. Every ``eval_every`` iterations (and at 0) log the success rate (%) of
    ``curve_goals`` fresh training goals and held-out goals, and the success rate of the
    training rollouts since the last row (the code's logged metric); checkpoint every
    ``checkpoint_every``. Curve evaluations draw from their own generator, so they do not change
    the training draws."""
    device = run.device
    env, net = build(cfg, device, run.seed)
    learner.bind(env, net)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    eval_gen = torch.Generator(device=device).manual_seed(run.seed + 1_000_003)
    replay = GoalReplay(
        cfg.replay_capacity,
        env.max_traj_len,
        env.goal_len,
        learner.paired,
        cfg.per_alpha,
        cfg.per_eps,
        cfg.priority_reset,
        device,
    )
    nan = float("nan")
    st: dict[str, Any] = {
        "iteration": 0,
        "n_traj": 0,
        "loss": nan,
        "win_succ": 0,
        "win_n": 0,
        "history": [],
        "budget": BudgetMeter().state_dict(),
    }
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        gen.set_state(ckpt["gen"])
        eval_gen.set_state(ckpt["eval_gen"])
        replay.load_state_dict(ckpt["replay"])
        learner.load_state_dict(ckpt["learner"])
        st = ckpt["progress"]
    budget = BudgetMeter()
    budget.load_state_dict(st["budget"])

    def log(step: int) -> dict[str, float]:
        policy = learner.policy()
        sr = success_rate(env, policy, env.sample_goals(cfg.curve_goals, eval_gen), eval_gen)
        hsr = (
            success_rate(env, policy, env.sample_goals(cfg.curve_goals, eval_gen, heldout=True), eval_gen)
            if _has_heldout(env)
            else None
        )
        row = {
            "trajectories": st["n_traj"],
            "success_rate": 100.0 * float(sr.float().mean()),
            "heldout_success_rate": nan if hsr is None else 100.0 * float(hsr.float().mean()),
            "train_success_rate": 100.0 * st["win_succ"] / st["win_n"] if st["win_n"] else nan,
            "loss": st["loss"],
        }
        run.log(step, row)
        st["history"].append(row["success_rate"])
        st["win_succ"] = st["win_n"] = 0
        return row

    def checkpoint(iteration: int) -> None:
        st["iteration"] = iteration
        st["budget"] = budget.state_dict()
        run.save_checkpoint(
            {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "gen": gen.get_state(),
                "eval_gen": eval_gen.get_state(),
                "replay": replay.state_dict(),
                "learner": learner.state_dict(),
                "progress": dict(st, history=list(st["history"])),
            },
            iteration,
        )

    def model_state(row: dict[str, float]) -> dict[str, Any]:
        history = st["history"]
        return {
            "net": net.state_dict(),
            "config": cfg.to_dict(),
            "learner": learner.state_dict(),
            "train_stats": {
                "success_auc": sum(history) / len(history),
                "trajectories": st["n_traj"],
                "train_success_rate": row.get("train_success_rate", nan),
            },
        }

    row: dict[str, float] = {}
    if st["iteration"] == 0:
        row = log(0)
        run.save_untrained_model(model_state(row))
    for it in range(st["iteration"], cfg.iterations):
        if run.should_stop():
            checkpoint(it)
            raise Preempted(f"stopped at iteration {it}")
        goals = env.sample_goals(cfg.online_batch, gen)
        actions, terminal = rollout(env, goals, learner.behaviour(it), gen, noisy=True)
        success = reached(env, terminal, goals)
        paired = learner.pair(goals, actions, terminal, gen)
        replay.add(actions, goals, success.float(), paired)
        budget.collected += int(goals.shape[0])  # synthetic / relabelled trajectories take no env steps
        st["n_traj"] += goals.shape[0]
        st["win_succ"] += int(success.sum())
        st["win_n"] += goals.shape[0]
        batch = replay.sample(cfg.batch_size * (1 if learner.paired or not cfg.rows_like_paired else 2), gen)
        with budget.measure_flops():
            loss = learner.loss(batch, it)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
        budget.step(batch.actions.shape[0])
        learner.after_step(it)
        st["loss"] = float(loss.detach())
        done = it + 1
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            row = log(done)
        if done % cfg.checkpoint_every == 0 and done < cfg.iterations:
            checkpoint(done)
    history = st["history"]
    run.record_budget(budget.summary())
    run.save_model(model_state(row))
    return dict(row, success_auc=sum(history) / len(history))


def evaluate_model(
    cfg: GoalConfig, model: dict[str, Any], seed: int, device: torch.device | str, learner: GoalLearner
) -> dict[str, Any]:
    """Final metrics of a trained model, a pure function of (model, seed): success rate (%) of the
    method's evaluation policy on min(``eval_goals``, #training goals) goals drawn uniformly (with
    replacement, as the grid code's ``evaluate``) from the training goals, and on as many held-out
    goals; the training curve's area (mean success rate over its points) and the last training
    success rate. ``per_episode``: per-goal success (0/1) on the training goals."""
    with seeded(seed):
        device = torch.device(device)
        env, net = build(cfg, device, seed)
        net.load_state_dict(model["net"])
        learner.bind(env, net)
        learner.load_state_dict(model.get("learner", {}))
        gen = torch.Generator(device=device).manual_seed(10_000 + seed)  # disjoint from training
        policy = learner.policy()
        n = int(min(cfg.eval_goals, env.n_goals))
        succ = success_rate(env, policy, env.sample_goals(n, gen), gen)
        nan = float("nan")
        held = nan
        if _has_heldout(env):
            held = 100.0 * float(success_rate(env, policy, env.sample_goals(n, gen, heldout=True), gen).float().mean())
        stats = model.get("train_stats", {})
        metrics = {
            "success_rate": 100.0 * float(succ.float().mean()),
            "heldout_success_rate": held,
            "success_auc": float(stats.get("success_auc", nan)),
            "train_success_rate": float(stats.get("train_success_rate", nan)),
        }
        per_goal = [float(v) for v in succ.float().cpu().tolist()]
        return {"metrics": metrics, "per_episode": {"success": per_goal}, "n_episodes": len(per_goal)}


LearnerFactory = Callable[[Any], GoalLearner]


def entry_points(
    make_learner: LearnerFactory,
) -> tuple[LearnerFactory, Callable[..., dict[str, float]], Callable[..., dict[str, Any]]]:
    """``make_learner``, ``train`` and ``evaluate`` of a goal-conditioned method module."""

    def train(cfg: GoalConfig, run: Run) -> dict[str, float]:
        return train_learner(cfg, run, make_learner(cfg))

    def evaluate(
        cfg: GoalConfig, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
    ) -> dict[str, Any]:
        return evaluate_model(cfg, model, seed, device, make_learner(cfg))

    return make_learner, train, evaluate
