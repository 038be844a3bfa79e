"""The GFlowNet family's training and evaluation loops: what every GFlowNet method's
``train`` / ``evaluate`` runs (through :func:`entry_points`), built from ``core``'s parts. A
method brings its loss (a :class:`~methods.gfn.learner.Learner`) and, optionally, an
:class:`Explorer` feeding extra trajectories into replay (EGFN's population)."""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch

from methods.common.budget import BudgetMeter
from methods.common.runapi import Preempted, Run
from methods.common.seeding import seeded
from methods.common.target import frozen_copy, polyak_
from methods.common.replay import PrioritizedReplay
from methods.gfn.core import GFNConfig, build, clip_gradients, evaluate_trajectories, method_policy, set_learning_rates
from methods.gfn.learner import Learner, TransitionLearner, check_learner
from methods.gfn.metrics import (
    ExactDistribution,
    VisitTracker,
    exact_target,
    flat_reward,
    modes_in_samples,
    total_variation,
)
from methods.gfn.policy import sample_trajectories, terminal_states, uniform_policy


class Explorer(Protocol):
    """Extra trajectory sources feeding the replay buffer (e.g. EGFN's population).

    ``step`` runs once per training iteration, before the learner samples; the trajectories
    it returns go into the replay buffer only (training-time metrics count the learner's own
    samples). Its state is checkpointed with the learner's."""

    def step(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, d: dict[str, Any]) -> None: ...


ExplorerFactory = Callable[[Any, GFNConfig, torch.device], Explorer]


def train_learner(
    cfg: GFNConfig, run: Run, learner: Learner, explorer_factory: ExplorerFactory | None = None
) -> dict[str, float]:
    """Train a GFlowNet with ``learner``; log metrics every ``eval_every`` iterations
    (and at iteration 0), checkpoint every ``checkpoint_every``, save the model at the end.
    Returns the last logged metrics."""
    check_learner(learner)
    device = run.device
    env, net, log_z = build(cfg, device, run.seed)
    explorer = explorer_factory(env, cfg, device) if explorer_factory is not None else None
    learner.bind(env, net)
    groups = [{"params": [*net.parameters(), *learner.extra_parameters()], "lr": cfg.lr}]
    if learner.uses_log_z:
        groups.append({"params": list(log_z.parameters()), "lr": cfg.log_z_lr})
    opt = torch.optim.Adam(groups)
    policy = method_policy(learner, env, net)
    behaviour = uniform_policy(env) if learner.behaviour == "uniform" else policy
    # an EMA sampling copy (sampling_tau): training data from the lagged net; its samples are
    # still the method's own (modes and L1 are counted on them, as QGFN's code counts them)
    sampler = None
    if (
        cfg.sampling_tau > 0
        and learner.behaviour == "policy"
        and not learner.owns_sampler
        and not isinstance(learner, TransitionLearner)
    ):
        sampler = frozen_copy(net)
        behaviour = method_policy(learner, env, sampler)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    replay = PrioritizedReplay(cfg.replay_size, env.max_traj_len, cfg.replay_top_frac, device)
    tracker = VisitTracker(env, cfg.emp_l1_window, device)
    exact = target = terminal_set = None
    if env.enumerable:
        exact = ExactDistribution(env, device)
        target = exact_target(env, cfg.reward_beta, exact.states, run.assets_dir)
        terminal_set = env.terminal_mask(exact.states)

    start, n_traj, last_loss = 0, 0, float("nan")
    off_policy = isinstance(learner, TransitionLearner)
    budget = BudgetMeter(unit="transitions" if off_policy else "trajectories")
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        net.load_state_dict(ckpt["net"])
        log_z.load_state_dict(ckpt["log_z"])
        opt.load_state_dict(ckpt["opt"])
        gen.set_state(ckpt["gen"])
        replay.load_state_dict(ckpt["replay"])
        tracker.load_state_dict(ckpt["tracker"])
        if explorer is not None:
            explorer.load_state_dict(ckpt["explorer"])
        learner.load_state_dict(ckpt["loss_state"])
        if sampler is not None:
            sampler.load_state_dict(ckpt["sampler"])
        start, n_traj, last_loss = ckpt["iteration"], ckpt["n_traj"], ckpt["loss"]
        budget.load_state_dict(ckpt["budget"])

    def metrics() -> dict[str, float]:
        nan = float("nan")
        with torch.no_grad():
            log_z_value = float(log_z()) if learner.uses_log_z else float(net(env.obs(env.initial(1, device)))[2])
        return {
            "trajectories": n_traj,
            "exact_tv": total_variation(exact.terminal_probs(policy), target) if exact else nan,
            "emp_l1": tracker.empirical_l1(target, terminal_set) if exact else nan,
            "modes_found": int(tracker.modes.sum()),
            **({"high_reward_samples": tracker.n_high_reward} if tracker.counts_high_reward else {}),
            "loss": last_loss,
            "log_z": log_z_value,
        }

    def checkpoint(iteration: int) -> None:
        run.save_checkpoint(
            {
                "net": net.state_dict(),
                "log_z": log_z.state_dict(),
                "opt": opt.state_dict(),
                "gen": gen.get_state(),
                "replay": replay.state_dict(),
                "tracker": tracker.state_dict(),
                "iteration": iteration,
                "n_traj": n_traj,
                "loss": last_loss,
                "explorer": explorer.state_dict() if explorer is not None else None,
                "loss_state": learner.state_dict(),
                "budget": budget.state_dict(),
                "sampler": sampler.state_dict() if sampler is not None else None,
            },
            iteration,
        )

    def model_state(m: dict[str, float]) -> dict[str, Any]:
        return {
            "net": net.state_dict(),
            "log_z": log_z().detach().cpu(),
            "config": cfg.to_dict(),
            "learner": learner.model_state(),
            "train_stats": {
                "emp_l1": m["emp_l1"],
                "modes_found": m["modes_found"],
                "high_reward_samples": m.get("high_reward_samples", float("nan")),
                "trajectories": n_traj,
            },
        }

    if start == 0:
        first = metrics()
        run.log(0, first)
        run.save_untrained_model(model_state(first))
    for it in range(start, cfg.iterations):
        if run.should_stop():
            checkpoint(it)
            raise Preempted(f"stopped at iteration {it}")
        if explorer is not None:
            extra = explorer.step(gen)
            if extra is not None:
                budget.collected += int(extra[0].shape[0])
            if extra is not None and cfg.replay_batch > 0:
                replay.add(*extra)
        set_learning_rates(opt, cfg, it, learner.uses_log_z)
        online = sample_trajectories(env, behaviour, cfg.online_batch, gen, cfg.epsilon)
        with torch.no_grad():
            terminal = terminal_states(env, online)
            online_lr = cfg.reward_beta * env.log_reward(terminal)
        if behaviour is policy or sampler is not None:
            tracker.add(terminal)
        else:
            # the data come from another policy (RPE's pi_U): modes and the empirical L1
            # describe the learned sampler, so draw a monitoring batch from it
            tracker.add(terminal_states(env, sample_trajectories(env, policy, cfg.online_batch, gen)))
        n_traj += online.shape[0]
        budget.collected += int(online.shape[0])
        if cfg.replay_batch > 0:
            replay.add(online, online_lr)
        if off_policy:
            learner.observe(online)
        for _ in range(cfg.train_steps):
            with budget.measure_flops():
                if off_policy:
                    loss = learner.sample_loss(gen)
                    rows = learner.batch_transitions()
                else:
                    batch_actions = online
                    if cfg.replay_batch > 0:
                        batch_actions = torch.cat([online, replay.sample(cfg.replay_batch, gen)])
                    batch = evaluate_trajectories(env, net, batch_actions, cfg.reward_beta)
                    loss = learner.loss(batch, log_z())
                    rows = batch_actions.shape[0]
                opt.zero_grad()
                loss.backward()
                clip_gradients(cfg, opt, [*net.parameters(), *log_z.parameters()])
                opt.step()
            budget.step(rows)
            learner.after_step()
            if sampler is not None:
                polyak_(sampler, net, 1.0 - cfg.sampling_tau)
        last_loss = float(loss.detach())
        done = it + 1
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            run.log(done, metrics())
        if done % cfg.checkpoint_every == 0 and done < cfg.iterations:
            checkpoint(done)
    final = metrics()
    run.record_budget(budget.summary())
    run.save_model(model_state(final))
    return final


def evaluate_model(
    cfg: GFNConfig, model: dict[str, Any], seed: int, device: torch.device | str, assets_dir: Any, learner: Learner
) -> dict[str, Any]:
    """Final metrics of a trained model, sampled with ``learner``'s policy: exact TV, mean
    reward of ``eval_samples`` fresh samples (per-sample rewards returned), and the
    training-time empirical L1 / modes. A pure function of (model, seed): the global
    generators are seeded for the call."""
    with seeded(seed):
        return _evaluate(cfg, model, seed, device, assets_dir, learner)


@torch.no_grad()
def _evaluate(
    cfg: GFNConfig, model: dict[str, Any], seed: int, device: torch.device | str, assets_dir: Any, learner: Learner
) -> dict[str, Any]:
    device = torch.device(device)
    env, net, _ = build(cfg, device, seed)
    net.load_state_dict(model["net"])
    check_learner(learner).bind(env, net)
    learner.load_model_state(model.get("learner") or {})
    policy = method_policy(learner, env, net)
    nan = float("nan")
    gen = torch.Generator(device=device).manual_seed(10_000 + seed)  # disjoint from training
    actions = sample_trajectories(env, policy, cfg.eval_samples, gen, epsilon=0.0)
    terminal = terminal_states(env, actions)
    rewards = (cfg.reward_beta * env.log_reward(terminal)).exp().double()
    metrics = {"exact_tv": nan, "accuracy": nan, "rel_mean_error": nan, "abs_rel_mean_error": nan}
    if env.enumerable:
        exact = ExactDistribution(env, device)
        target = exact_target(env, cfg.reward_beta, exact.states, assets_dir)
        term = exact.terminal_probs(policy)
        r_all = (cfg.reward_beta * env.log_reward(exact.states).double()).exp()
        r_all = torch.where(env.terminal_mask(exact.states), r_all, torch.zeros_like(r_all))
        expected_target = float((r_all**2).sum() / r_all.sum())  # E_{p*}[R] = sum R^2 / sum R
        rel = (float(rewards.mean()) - expected_target) / expected_target
        metrics.update(
            exact_tv=total_variation(term, target),
            # RPE's accuracy (He et al. 2025, reconstructed: the paper defines it only in words):
            # exact E_{p_theta}[R] / E_{p*}[R], capped at 1
            accuracy=min(float((term * r_all).sum()) / expected_target, 1.0),
            # Shen et al.'s relative mean error, from the evaluation samples
            rel_mean_error=rel,
            abs_rel_mean_error=abs(rel),
        )
    unique = torch.unique(terminal, dim=0)
    order = torch.sort((cfg.reward_beta * env.log_reward(unique)).exp(), descending=True)
    top, top_states = order.values[:100], unique[order.indices[:100]]
    d = env.pairwise_distance(top_states) if len(top_states) > 1 else None
    if d is not None:
        n = len(top_states)
        metrics["top100_diversity"] = float(d.sum() / (n * (n - 1)))  # mean over pairs i != j
    else:
        metrics["top100_diversity"] = nan
    flat = flat_reward(env, terminal)
    flat_top = torch.sort((flat_reward(env, unique)), descending=True).values[:100]
    stats = model.get("train_stats", {})
    metrics.update(
        mean_flat_reward=float(flat.mean()),
        top100_flat_reward=float(flat_top.mean()),
        sample_modes=modes_in_samples(env, terminal, flat),
        emp_l1=float(stats.get("emp_l1", nan)),
        modes_found=int(stats.get("modes_found", 0)),
        high_reward_samples=float(stats.get("high_reward_samples", nan)),
        mean_reward=float(rewards.mean()),
        top100_reward=float(top.double().mean()),
    )
    r_list = rewards.cpu().numpy()
    return {"metrics": metrics, "per_episode": {"reward": [float(r) for r in r_list]}, "n_episodes": int(len(r_list))}


LearnerFactory = Callable[[Any], Learner]


def entry_points(
    make_learner: LearnerFactory, explorer_factory: ExplorerFactory | None = None
) -> tuple[LearnerFactory, Callable[..., dict[str, float]], Callable[..., dict[str, Any]]]:
    """The ``make_learner``, ``train`` and ``evaluate`` a GFlowNet method module exposes (the
    method registry's contract), the last two built from ``make_learner(cfg)``: evaluation
    always samples with the method's own policy."""

    def train(cfg: GFNConfig, run: Run) -> dict[str, float]:
        return train_learner(cfg, run, make_learner(cfg), explorer_factory)

    def evaluate(
        cfg: GFNConfig, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
    ) -> dict[str, Any]:
        return evaluate_model(cfg, model, seed, device, assets_dir, make_learner(cfg))

    return make_learner, train, evaluate
