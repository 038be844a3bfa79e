"""GFlowNet core shared by the GFlowNet papers: the config, trajectory evaluation and the
model's parts (network, log Z, optimiser schedule). The training / evaluation loops live in
``loop.py``, the policy network and sampling in ``policy.py``, the exact and empirical metrics
in ``metrics.py`` (re-exported here), the prioritised replay buffer in
``methods/common/replay.py``. A loss object (``methods/gfn/tb.py``, ``db.py``, ...)
turns an evaluated batch into a scalar.

Trajectories are stored as padded action sequences ``[B, L]`` (pad = -1); states are
recomputed from them, so on-policy and replayed trajectories share one code path.
Environments follow ``envs.base.DagEnv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

import envs
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, positive, within
from methods.gfn.metrics import (  # noqa: F401  (re-exported: core is the family's facade)
    ExactDistribution,
    VisitTracker,
    exact_target,
    flat_reward,
    modes_in_samples,
    total_variation,
)
from methods.gfn.policy import (  # noqa: F401
    Policy,
    PolicyNet,
    forward_head,
    masked_log_softmax,
    sample_trajectories,
    terminal_states,
    uniform_policy,
)
from methods.gfn.learner import (  # noqa: F401
    Learner,
    TrajectoryLearner,
    TransitionLearner,
    check_learner,
)
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
        "iterations": at_least(1),
        "eval_every": at_least(1),
        "checkpoint_every": at_least(1),
        # n_hidden_layers 0 would be a linear model that silently ignores `hidden`
        "hidden": at_least(1),
        "n_hidden_layers": at_least(1),
        "lr": positive(),
        "log_z_lr": positive(),
        "log_z_param": Bound(choices=("scalar", "mlp")),
        "lr_half_life": at_least(0),
        "log_z_lr_half_life": at_least(0),
        "grad_clip": at_least(0),
        "grad_clip_mode": Bound(choices=("global", "per_tensor")),
        "sampling_tau": within(0, 1, hi_open=True),  # 1 would freeze the sampling copy
        "online_batch": at_least(1),
        "train_steps": at_least(1),
        "replay_batch": at_least(0),  # 0: no replay
        "replay_size": at_least(1),
        "replay_top_frac": within(0, 1),
        "epsilon": within(0, 1),  # probability of a uniform action
        "reward_beta": positive(),  # R^beta: beta <= 0 flattens or inverts the target
        "emp_l1_window": at_least(1),
        "eval_samples": at_least(1),
    }
    # curve columns a GFlowNet logs that can serve as a figure's x axis
    CURVE_AXES: ClassVar[tuple[str, ...]] = ("step", "trajectories")
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("online_batch", "train_steps")

    def planned_work(self) -> dict[str, int]:
        return {
            "iterations": self.iterations,
            "updates": self.iterations * self.train_steps,
            "trajectories": self.iterations * self.online_batch,
        }


# ----------------------------------------------------------------- trajectory evaluation
@dataclass
class EvaluatedBatch:
    """Per-transition quantities of a batch of trajectories (L = max transitions)."""

    log_pf: torch.Tensor  # [B, L] log P_F(a_t | s_t), 0 where invalid
    log_pb: torch.Tensor  # [B, L] log P_B(s_t | s_{t+1}) for moves, 0 for stop/invalid
    log_f: torch.Tensor  # [B, L+1] log F(s_t) from the flow head
    valid: torch.Tensor  # [B, L] transition t exists
    is_stop: torch.Tensor  # [B, L] transition t is the stop action
    last: torch.Tensor  # [B, L] transition t is the last one of its trajectory
    log_reward: torch.Tensor  # [B] beta * log R(x)
    terminal: torch.Tensor  # [B, S] terminal states x
    states: torch.Tensor  # [B, L+1, S] s_0..s_L (frozen after the end)
    visited: torch.Tensor  # [B, L+1] s_t exists (s_0 and every arrival)
    actions: torch.Tensor  # [B, L] the padded forward actions (pad -1)
    obs: torch.Tensor  # [V, obs_dim] encodings of the visited states (row order of states[visited])
    forward_mask: torch.Tensor  # [V, A] their valid forward actions


def evaluate_trajectories(env: Any, net: PolicyNet, actions: torch.Tensor, reward_beta: float = 1.0) -> EvaluatedBatch:
    """One batched forward pass over every visited state of every trajectory."""
    B, L = actions.shape
    valid = actions >= 0
    is_stop = (actions == env.stop_action) if env.stop_action is not None else torch.zeros_like(valid)
    lengths = valid.sum(1)
    states = env.trajectory_states(actions)  # [B, L+1, S]
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
    return EvaluatedBatch(
        log_pf, log_pb, log_f, valid, is_stop, last, log_reward, terminal, states, visited, actions, obs, fmask
    )


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
            self.mlp = nn.Sequential(
                nn.Linear(self.COND_DIM, 2 * hidden),
                nn.LeakyReLU(),
                nn.Linear(2 * hidden, 2 * hidden),
                nn.LeakyReLU(),
                nn.Linear(2 * hidden, 1),
            ).to(device)
            self.register_buffer("cond", torch.zeros(1, self.COND_DIM, device=device))

    def forward(self) -> torch.Tensor:
        return self.value if self.kind == "scalar" else self.mlp(self.cond)[0, 0]


def build(cfg: GFNConfig, device: torch.device, seed: int) -> tuple[Any, PolicyNet, LogZ]:
    env = envs.make(cfg.env, **cfg.env_kwargs)
    torch.manual_seed(seed)
    net = PolicyNet(env.obs_dim, env.n_actions, env.n_backward_actions, cfg.hidden, cfg.n_hidden_layers).to(device)
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
