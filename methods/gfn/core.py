"""GFlowNet core shared by the GFlowNet papers: the config, trajectory evaluation, the loss
protocol and the training / evaluation loops. The policy network and sampling live in
``policy.py``, the prioritised replay buffer in ``replay.py``, the exact and empirical metrics
in ``metrics.py`` (re-exported here). A loss object (``methods/gfn/tb.py``, ``db.py``, ...)
turns an evaluated batch into a scalar.

Trajectories are stored as padded action sequences ``[B, L]`` (pad = -1); states are
recomputed from them, so on-policy and replayed trajectories share one code path.
Environments follow ``envs.base.DagEnv``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import nn

import envs
from methods.common.budget import BudgetMeter
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, positive, within
from methods.common.runapi import Preempted, Run
from methods.common.seeding import seeded
from methods.common.target import frozen_copy, polyak_
from methods.gfn.metrics import (  # noqa: F401  (re-exported: core is the family's facade)
    ExactDistribution, VisitTracker, exact_target, flat_reward, modes_in_samples, total_variation)
from methods.gfn.policy import (  # noqa: F401
    Policy, PolicyNet, forward_head, masked_log_softmax, sample_trajectories,
    terminal_states, uniform_policy)
from methods.gfn.learner import (  # noqa: F401
    Learner, TrajectoryLearner, TransitionLearner, check_learner)
from methods.common.replay import PrioritizedReplay  # noqa: F401


@dataclass
class GFNConfig(MethodConfig):
    """Defaults: EGFN (Ikram et al., TMLR 2025) Table 2, hypergrid column. Value constraints:
    ``CONSTRAINTS`` (methods/common/constraints.py), checked by ``__post_init__``; a subclass
    with its own ``__post_init__`` calls ``super().__post_init__()`` first."""

    # task (set by the pipeline from the experiment)
    env: str = "hypergrid"
    env_kwargs: dict = field(default_factory=dict)
    iterations: int = 2500
    eval_every: int = 100
    checkpoint_every: int = 250
    # network: 3 linear layers of 256 units, LeakyReLU
    hidden: int = 256
    n_hidden_layers: int = 2
    # optimisation
    lr: float = 1e-3
    log_z_lr: float = 0.1
    # log Z as one learned number ("scalar") or, as recursionpharma/gflownet's graph model has
    # it, an MLP of the conditioning vector ("mlp": 32 -> 2H -> 2H -> 1, LeakyReLU; with a
    # constant temperature the conditioning is all zeros, but every layer's parameters still
    # move log Z, so it travels far faster than a scalar at the same learning rate)
    log_z_param: str = "scalar"
    online_batch: int = 16
    # gradient steps per iteration, each on the online batch + a fresh replay batch
    # (Shen et al.'s sequence tasks, as EGFN runs them: 3)
    train_steps: int = 1
    # prioritised replay buffer: top-|D| by reward, half of a replay batch from the top 10 %
    replay_batch: int = 16
    replay_size: int = 1000
    replay_top_frac: float = 0.1
    # learning-rate halving periods in iterations (0: constant) and gradient-norm clip (0: none)
    lr_half_life: float = 0.0
    log_z_lr_half_life: float = 0.0
    grad_clip: float = 0.0
    # "global": one norm over every optimised tensor; "per_tensor": each tensor of the GFlowNet
    # (policy net and log Z) clipped on its own, a learner's extra networks (QGFN's Q) not at
    # all — recursionpharma/gflownet's clip_grad_type "norm"
    grad_clip_mode: str = "global"
    # training trajectories from an EMA copy of the policy net, moved 1 - sampling_tau of the
    # way after every step (recursionpharma/gflownet's sampling_tau; 0: the current net)
    sampling_tau: float = 0.0
    # exploration and reward
    epsilon: float = 0.0
    reward_beta: float = 1.0
    # metrics
    emp_l1_window: int = 200_000
    eval_samples: int = 2000

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "iterations": at_least(1), "eval_every": at_least(1), "checkpoint_every": at_least(1),
        # n_hidden_layers 0 would be a linear model that silently ignores `hidden`
        "hidden": at_least(1), "n_hidden_layers": at_least(1),
        "lr": positive(), "log_z_lr": positive(), "log_z_param": Bound(choices=("scalar", "mlp")),
        "lr_half_life": at_least(0), "log_z_lr_half_life": at_least(0), "grad_clip": at_least(0),
        "grad_clip_mode": Bound(choices=("global", "per_tensor")),
        "sampling_tau": within(0, 1, hi_open=True),   # 1 would freeze the sampling copy
        "online_batch": at_least(1), "train_steps": at_least(1),
        "replay_batch": at_least(0),            # 0: no replay
        "replay_size": at_least(1), "replay_top_frac": within(0, 1),
        "epsilon": within(0, 1),                # probability of a uniform action
        "reward_beta": positive(),              # R^beta: beta <= 0 flattens or inverts the target
        "emp_l1_window": at_least(1), "eval_samples": at_least(1),
    }
    # curve columns a GFlowNet logs that can serve as a figure's x axis
    CURVE_AXES: ClassVar[tuple[str, ...]] = ("step", "trajectories")
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("online_batch", "train_steps")


# ----------------------------------------------------------------- trajectory evaluation
@dataclass
class EvaluatedBatch:
    """Per-transition quantities of a batch of trajectories (L = max transitions)."""

    log_pf: torch.Tensor        # [B, L] log P_F(a_t | s_t), 0 where invalid
    log_pb: torch.Tensor        # [B, L] log P_B(s_t | s_{t+1}) for moves, 0 for stop/invalid
    log_f: torch.Tensor         # [B, L+1] log F(s_t) from the flow head
    valid: torch.Tensor         # [B, L] transition t exists
    is_stop: torch.Tensor       # [B, L] transition t is the stop action
    last: torch.Tensor          # [B, L] transition t is the last one of its trajectory
    log_reward: torch.Tensor    # [B] beta * log R(x)
    terminal: torch.Tensor      # [B, S] terminal states x
    states: torch.Tensor        # [B, L+1, S] s_0..s_L (frozen after the end)
    visited: torch.Tensor       # [B, L+1] s_t exists (s_0 and every arrival)
    actions: torch.Tensor       # [B, L] the padded forward actions (pad -1)
    obs: torch.Tensor           # [V, obs_dim] encodings of the visited states (row order of states[visited])
    forward_mask: torch.Tensor  # [V, A] their valid forward actions


def evaluate_trajectories(env: Any, net: PolicyNet, actions: torch.Tensor,
                          reward_beta: float = 1.0) -> EvaluatedBatch:
    """One batched forward pass over every visited state of every trajectory."""
    B, L = actions.shape
    valid = actions >= 0
    is_stop = (actions == env.stop_action) if env.stop_action is not None else torch.zeros_like(valid)
    lengths = valid.sum(1)
    states = env.trajectory_states(actions)                        # [B, L+1, S]
    visited = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)  # s_0 and every arrival
    flat = states[visited]
    obs, fmask = env.obs(flat), env.forward_mask(flat)
    pf_logits, pb_logits, log_f_v = net(obs)
    log_pf_all = masked_log_softmax(pf_logits, fmask)
    bmask = env.backward_mask(flat)
    # states without parents (s_0) get an all -inf row; keep them finite, they are never used
    log_pb_all = masked_log_softmax(pb_logits, bmask | ~bmask.any(-1, keepdim=True))

    pf_full = states.new_zeros((B, L + 1, env.n_actions), dtype=log_pf_all.dtype)
    pf_full[visited] = log_pf_all
    pb_full = states.new_zeros((B, L + 1, env.n_backward_actions), dtype=log_pb_all.dtype)
    pb_full[visited] = log_pb_all
    log_f = states.new_zeros((B, L + 1), dtype=log_f_v.dtype)
    log_f[visited] = log_f_v

    a = actions.clamp(min=0)
    zero = log_f.new_zeros(())
    # torch.where, not a product with the mask: masked entries may hold -inf
    log_pf = torch.where(valid, pf_full[:, :-1].gather(-1, a[..., None]).squeeze(-1), zero)
    move = valid & ~is_stop
    back = env.backward_action(states[:, 1:], a).clamp(0, env.n_backward_actions - 1)
    log_pb = torch.where(move, pb_full[:, 1:].gather(-1, back[..., None]).squeeze(-1), zero)
    last = valid & (torch.arange(L, device=actions.device)[None] == (lengths - 1)[:, None])
    terminal = states[torch.arange(B, device=actions.device), lengths]
    log_reward = reward_beta * env.log_reward(terminal)
    return EvaluatedBatch(log_pf, log_pb, log_f, valid, is_stop, last, log_reward, terminal,
                          states, visited, actions, obs, fmask)


def method_policy(learner: Learner, env: Any, net: PolicyNet) -> Policy:
    """The policy a trained model samples with (and whose exact distribution is measured)."""
    return learner.policy(env, net)


# ---------------------------------------------------------------------------- training
class LogZ(nn.Module):
    """log Z of trajectory balance: a learned scalar, or an MLP of the conditioning vector
    (recursionpharma/gflownet ``GraphTransformerGFN.logZ``: ``mlp(num_cond_dim, 2 * num_emb, 1,
    2)``; QGFN's tasks condition on a constant temperature, whose encoding is a zero vector of
    ``COND_DIM``). ``forward()`` returns the 0-dim value."""

    COND_DIM = 32

    def __init__(self, kind: str = "scalar", hidden: int = 256, device: torch.device | str = "cpu"):
        super().__init__()
        self.kind = kind
        if kind == "scalar":
            self.value = nn.Parameter(torch.zeros((), device=device))
        else:
            self.mlp = nn.Sequential(nn.Linear(self.COND_DIM, 2 * hidden), nn.LeakyReLU(),
                                     nn.Linear(2 * hidden, 2 * hidden), nn.LeakyReLU(),
                                     nn.Linear(2 * hidden, 1)).to(device)
            self.register_buffer("cond", torch.zeros(1, self.COND_DIM, device=device))

    def forward(self) -> torch.Tensor:
        return self.value if self.kind == "scalar" else self.mlp(self.cond)[0, 0]


def build(cfg: GFNConfig, device: torch.device, seed: int) -> tuple[Any, PolicyNet, LogZ]:
    env = envs.make(cfg.env, **cfg.env_kwargs)
    torch.manual_seed(seed)
    net = PolicyNet(env.obs_dim, env.n_actions, env.n_backward_actions, cfg.hidden,
                    cfg.n_hidden_layers).to(device)
    log_z = LogZ(cfg.log_z_param, cfg.hidden, device)
    return env, net, log_z


def clip_gradients(cfg: GFNConfig, opt: torch.optim.Optimizer, gfn_params: list[nn.Parameter]) -> None:
    """Clip gradient norms to ``cfg.grad_clip`` (0: no clipping) in ``cfg.grad_clip_mode``."""
    if cfg.grad_clip <= 0:
        return
    if cfg.grad_clip_mode == "per_tensor":
        for p in gfn_params:
            if p.grad is not None:
                torch.nn.utils.clip_grad_norm_([p], cfg.grad_clip)
    else:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)


def set_learning_rates(opt: torch.optim.Optimizer, cfg: GFNConfig, iteration: int, has_log_z: bool) -> None:
    """lr * 2^(-t / half_life) per parameter group (recursionpharma/gflownet's schedule; a
    half-life of 0 keeps the rate constant). Stateless, so a resumed run gets the same rates."""
    rates = [(cfg.lr, cfg.lr_half_life)] + ([(cfg.log_z_lr, cfg.log_z_lr_half_life)] if has_log_z else [])
    for group, (base, half_life) in zip(opt.param_groups, rates):
        group["lr"] = base * 2.0 ** (-iteration / half_life) if half_life > 0 else base


class Explorer(Protocol):
    """Extra trajectory sources feeding the replay buffer (e.g. EGFN's population).

    ``step`` runs once per training iteration, before the learner samples; the trajectories
    it returns go into the replay buffer only (training-time metrics count the learner's own
    samples). Its state is checkpointed with the learner's."""

    def step(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, d: dict[str, Any]) -> None: ...


ExplorerFactory = Callable[[Any, "GFNConfig", torch.device], Explorer]


def train_learner(cfg: GFNConfig, run: Run, learner: Learner,
          explorer_factory: ExplorerFactory | None = None) -> dict[str, float]:
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
    if (cfg.sampling_tau > 0 and learner.behaviour == "policy" and not learner.owns_sampler
            and not isinstance(learner, TransitionLearner)):
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
            log_z_value = float(log_z()) if learner.uses_log_z else float(
                net(env.obs(env.initial(1, device)))[2])
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
        run.save_checkpoint({
            "net": net.state_dict(), "log_z": log_z.state_dict(), "opt": opt.state_dict(),
            "gen": gen.get_state(), "replay": replay.state_dict(),
            "tracker": tracker.state_dict(), "iteration": iteration, "n_traj": n_traj,
            "loss": last_loss, "explorer": explorer.state_dict() if explorer is not None else None,
            "loss_state": learner.state_dict(), "budget": budget.state_dict(),
            "sampler": sampler.state_dict() if sampler is not None else None,
        }, iteration)

    def model_state(m: dict[str, float]) -> dict[str, Any]:
        return {
            "net": net.state_dict(), "log_z": log_z().detach().cpu(), "config": cfg.to_dict(),
            "learner": learner.model_state(),
            "train_stats": {"emp_l1": m["emp_l1"], "modes_found": m["modes_found"],
                            "high_reward_samples": m.get("high_reward_samples", float("nan")),
                            "trajectories": n_traj},
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


def evaluate_model(cfg: GFNConfig, model: dict[str, Any], seed: int,
                   device: torch.device | str, assets_dir: Any, learner: Learner) -> dict[str, Any]:
    """Final metrics of a trained model, sampled with ``learner``'s policy: exact TV, mean
    reward of ``eval_samples`` fresh samples (per-sample rewards returned), and the
    training-time empirical L1 / modes. A pure function of (model, seed): the global
    generators are seeded for the call."""
    with seeded(seed):
        return _evaluate(cfg, model, seed, device, assets_dir, learner)


@torch.no_grad()
def _evaluate(cfg: GFNConfig, model: dict[str, Any], seed: int, device: torch.device | str,
              assets_dir: Any, learner: Learner) -> dict[str, Any]:
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
        expected_target = float((r_all**2).sum() / r_all.sum())      # E_{p*}[R] = sum R^2 / sum R
        rel = (float(rewards.mean()) - expected_target) / expected_target
        metrics.update(
            exact_tv=total_variation(term, target),
            # RPE's accuracy (He et al. 2025, reconstructed: the paper defines it only in words):
            # exact E_{p_theta}[R] / E_{p*}[R], capped at 1
            accuracy=min(float((term * r_all).sum()) / expected_target, 1.0),
            # Shen et al.'s relative mean error, from the evaluation samples
            rel_mean_error=rel, abs_rel_mean_error=abs(rel))
    unique = torch.unique(terminal, dim=0)
    order = torch.sort((cfg.reward_beta * env.log_reward(unique)).exp(), descending=True)
    top, top_states = order.values[:100], unique[order.indices[:100]]
    d = env.pairwise_distance(top_states) if len(top_states) > 1 else None
    if d is not None:
        n = len(top_states)
        metrics["top100_diversity"] = float(d.sum() / (n * (n - 1)))   # mean over pairs i != j
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
    return {"metrics": metrics, "per_episode": {"reward": [float(r) for r in r_list]},
            "n_episodes": int(len(r_list))}


LearnerFactory = Callable[[Any], Learner]


def entry_points(make_learner: LearnerFactory, explorer_factory: ExplorerFactory | None = None
                 ) -> tuple[LearnerFactory, Callable[..., dict[str, float]], Callable[..., dict[str, Any]]]:
    """The ``make_learner``, ``train`` and ``evaluate`` a GFlowNet method module exposes (the
    method registry's contract), the last two built from ``make_learner(cfg)``: evaluation
    always samples with the method's own policy."""

    def train(cfg: GFNConfig, run: Run) -> dict[str, float]:
        return train_learner(cfg, run, make_learner(cfg), explorer_factory)

    def evaluate(cfg: GFNConfig, model: dict[str, Any], seed: int, device: str = "cpu",
                 assets_dir: Any = None) -> dict[str, Any]:
        return evaluate_model(cfg, model, seed, device, assets_dir, make_learner(cfg))

    return make_learner, train, evaluate
