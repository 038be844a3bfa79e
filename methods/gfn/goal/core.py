"""Goal-conditioned GFlowNets (GC-GFN) and their baselines: the shared core of RBS (He, Chang, Xu,
Pan, "Looking Backward: Retrospective Backward Synthesis for Goal-Conditioned GFlowNets", ICLR
2025; code tinnerhrhe/Goal-Conditioned-GFN).

Every policy is conditioned on a goal y; the reward is R(x | y) = 1[x = y]. Pieces:

* ``GoalConfig`` / ``GFNGoalConfig``: the shared settings (defaults = the grid runs of the code).
* ``GoalNet``: a trunk over one-hot(s) ⊕ one-hot(y), a forward head (action logits and log F(s|y))
  and a backward head (P_B logits), the code's ``GFNModel`` / ``GFNConditionalMLP``.
* ``rollout`` (forward, goal-conditioned) and ``backward_synthesis`` (a backward rollout from the
  goal with P_B(·|s, y), reversed into a forward trajectory that ends at y).
* ``db_residuals`` / ``db_loss``: the conditional detailed-balance objective.
* ``GoalLearner``: what a method is (``methods/gfn/goal/*.py``).

The replay buffer with a paired slot is in ``replay.py``; the training loop (curves, resumable
checkpoints) and the final success-rate evaluation in ``loop.py``.

Trajectories are padded forward-action sequences ``[B, L]`` (pad -1) with their goals ``[B, G]``;
states are recomputed from them by the environment (``envs/goal_grid.py``, ``envs/goal_seq.py``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

import envs
from methods.gfn.policy import masked_log_softmax
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, one_of, positive, within
from methods.gfn.goal.replay import ReplayBatch

# log-probability the code gives a masked backward action inside the P_B regulariser (its
# masks subtract 1e9 from the logit instead of setting -inf)
MASKED_LOG_PROB = -1e9


@dataclass
class GoalConfig(MethodConfig):
    """Settings shared by every goal-conditioned method. Defaults: the grid runs of the code
    (grid/main.py with ``--batch_size 256``): 256-unit trunk of two linear layers with a LeakyReLU,
    one hidden layer per head, Adam lr 1e-3, 16 goals per step, 20,000 steps, 256 replayed
    trajectories per step, a 1e6-trajectory buffer; evaluation on min(500, #goals) goals."""

    env: str = "goal_grid"
    env_kwargs: dict = field(default_factory=dict)
    iterations: int = 20_000
    eval_every: int = 500
    checkpoint_every: int = 1000
    # network
    hidden: int = 256
    trunk_layers: int = 2
    head_layers: int = 1
    activation: str = "leaky_relu"
    # optimisation: one gradient step per iteration
    lr: float = 1e-3
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping (grid code)
    online_batch: int = 16  # goals, i.e. forward rollouts, per iteration
    batch_size: int = 256  # replay slots drawn per step (a paired learner's slot is 2 rows)
    # an unpaired learner draws 2 x batch_size slots, so every method trains on as many rows
    # per gradient step as RBS / HER, whose paired replay doubles each batch (the official
    # grid/buffer.py); the official script trains no unpaired baseline (chosen here)
    rows_like_paired: bool = True
    # replay: new entries get priority 1; sampled ones are reset to (0 + eps)^alpha ("age-based")
    replay_capacity: int = 1_000_000
    priority_reset: bool = True
    per_alpha: float = 0.5
    per_eps: float = 1e-6
    # evaluation: goals per final evaluation (split: training goals / held-out goals) and per
    # point of the training curves
    eval_goals: int = 500
    curve_goals: int = 128

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "iterations": at_least(1),
        "eval_every": at_least(1),
        "checkpoint_every": at_least(1),
        "hidden": at_least(1),
        "trunk_layers": at_least(1),
        "head_layers": at_least(0),
        "activation": one_of("leaky_relu", "relu"),
        "lr": positive(),
        "grad_clip": at_least(0),
        "online_batch": at_least(1),
        "batch_size": at_least(1),
        "replay_capacity": at_least(1),
        "per_alpha": within(0, 1),
        "per_eps": positive(),
        "eval_goals": at_least(1),
        "curve_goals": at_least(1),
    }
    CURVE_AXES: ClassVar[tuple[str, ...]] = ("step", "trajectories")
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("online_batch",)


@dataclass
class GFNGoalConfig(GoalConfig):
    """The conditional-DB settings of the code: terminal target log(c·R + 1e-9) with c = 1 on the
    grid (``reward_scale``; the bit tasks' "reward intensification" sets c = 1e7 / 1e25 / 1e40);
    KL(uniform ‖ P_B(·|s, y)) added to the non-terminal residuals with coefficient 1e-11, decayed
    by 0.999 per step (grid code only; the bit code defines but never adds it); trajectories whose
    mean residual is >= 10 dropped from the loss (grid code)."""

    reward_scale: float = 1.0
    pb_kl_coef: float = 1e-11
    pb_kl_decay: float = 0.999
    drop_large_residuals: bool = True
    drop_mean_residual: float = 10.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "reward_scale": positive(),
        "pb_kl_coef": at_least(0),
        "pb_kl_decay": within(0, 1),
        "drop_mean_residual": positive(),
    }


# ------------------------------------------------------------------------------ network
class GoalNet(nn.Module):
    """Trunk Linear(in, h) [-act-Linear(h, h)] x (trunk_layers - 1), no activation after it (as in
    the code); forward head [Linear(h, h)-act] x head_layers - Linear(h, A + 1) (logits, log F);
    backward head [Linear(h, h)-act] x head_layers - Linear(h, A_back)."""

    def __init__(
        self,
        in_dim: int,
        n_actions: int,
        n_backward: int,
        hidden: int,
        trunk_layers: int = 2,
        head_layers: int = 1,
        activation: str = "leaky_relu",
    ):
        super().__init__()
        act = {"leaky_relu": nn.LeakyReLU, "relu": nn.ReLU}[activation]
        trunk: list[nn.Module] = [nn.Linear(in_dim, hidden)]
        for _ in range(trunk_layers - 1):
            trunk += [act(), nn.Linear(hidden, hidden)]
        self.trunk = nn.Sequential(*trunk)

        def head(out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(head_layers):
                layers += [nn.Linear(hidden, hidden), act()]
            return nn.Sequential(*layers, nn.Linear(hidden, out))

        self.forward_head = head(n_actions + 1)
        self.backward_head = head(n_backward)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        f = self.forward_head(h)
        return f[..., :-1], self.backward_head(h), f[..., -1]


def build(cfg: GoalConfig, device: torch.device | str, seed: int) -> tuple[Any, GoalNet]:
    env = envs.make(cfg.env, **cfg.env_kwargs)
    torch.manual_seed(seed)
    net = GoalNet(
        env.obs_dim + env.goal_obs_dim,
        env.n_actions,
        env.n_backward_actions,
        cfg.hidden,
        cfg.trunk_layers,
        cfg.head_layers,
        cfg.activation,
    ).to(device)
    return env, net


def net_inputs(env: Any, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
    return torch.cat([env.obs(states), env.goal_obs(goals)], -1)


# ------------------------------------------------------------------------------ rollouts
# (states, goals, forward mask, generator) -> actions
Chooser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def forward_sampler(env: Any, net: GoalNet) -> Chooser:
    """Sample from P_F(·|s, y) at temperature 1 (the code's training and evaluation sampler)."""

    def choose(states: torch.Tensor, goals: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        logits = net(net_inputs(env, states, goals))[0]
        probs = masked_log_softmax(logits, mask, empty_rows_finite=True).exp()
        return torch.multinomial(probs, 1, generator=gen).squeeze(1)

    return choose


@torch.no_grad()
def rollout(
    env: Any, goals: torch.Tensor, choose: Chooser, gen: torch.Generator, noisy: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Goal-conditioned forward rollouts: padded actions ``[B, max_traj_len]`` and terminal states.
    ``noisy``: the environment's training-time action noise (the grid's sticky actions)."""
    B = goals.shape[0]
    s = env.initial(B, goals.device)
    done = torch.zeros(B, dtype=torch.bool, device=goals.device)
    actions = torch.full((B, env.max_traj_len), -1, dtype=torch.long, device=goals.device)
    for t in range(env.max_traj_len):
        active = ~done
        if not active.any():
            break
        sa = s[active]
        a = choose(sa, goals[active], env.forward_mask(sa), gen)
        if noisy:
            a = env.perturb(sa, a, gen)
        nxt, ended = env.step(sa, a)
        actions[active, t] = a
        s, done = s.clone(), done.clone()
        s[active], done[active] = nxt, ended
    return actions, s


@torch.no_grad()
def backward_synthesis(env: Any, net: GoalNet, goals: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """RBS: from s = y, sample the learned P_B(·|s, y) until s_0, then reverse the path into a
    forward trajectory s_0 -> ... -> y (plus the stop action where the env has one). Returns its
    padded forward actions ``[B, max_traj_len]``; it ends exactly at its goal, so R = 1."""
    B, dev = goals.shape[0], goals.device
    has_stop = env.stop_action is not None
    n_moves = env.max_traj_len - (1 if has_stop else 0)
    s = env.goal_state(goals)
    taken = torch.full((B, n_moves), -1, dtype=torch.long, device=dev)  # forward actions, last first
    count = torch.zeros(B, dtype=torch.long, device=dev)
    for t in range(n_moves):
        active = ~env.is_initial(s)
        if not active.any():
            break
        sa = s[active]
        logits = net(net_inputs(env, sa, goals[active]))[1]
        probs = masked_log_softmax(logits, env.backward_mask(sa), empty_rows_finite=True).exp()
        back = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        parent, fwd = env.backward_step(sa, back)
        taken[active, t] = fwd
        s = s.clone()
        s[active] = parent
        count = count + active.long()
    j = torch.arange(n_moves, device=dev)[None]
    src = (count[:, None] - 1 - j).clamp(min=0)
    forward = torch.where(j < count[:, None], taken.gather(1, src), -1)
    out = torch.full((B, env.max_traj_len), -1, dtype=torch.long, device=dev)
    out[:, :n_moves] = forward
    if has_stop:
        out[torch.arange(B, device=dev), count] = env.stop_action
    return out


def reached(env: Any, terminal: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
    return (env.achieved(terminal) == goals).all(-1)


# ------------------------------------------------------------------------------ objective
def terminal_log_target(reward: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """log(c·R + 1e-9), computed in float64 (c = 1e40 overflows float32)."""
    return torch.log(reward.double() * scale + 1e-9).float()


def pb_kl_to_uniform(pb_logits: torch.Tensor, bmask: torch.Tensor) -> torch.Tensor:
    """KL(uniform ‖ P_B(·|s, y)) per state, uniform over all backward actions and masked ones at
    log-probability -1e9, as the code's KLDivLoss sees them; 0 at states without parents."""
    logp = torch.where(
        bmask, masked_log_softmax(pb_logits, bmask, empty_rows_finite=True), torch.full_like(pb_logits, MASKED_LOG_PROB)
    )
    n = pb_logits.shape[-1]
    kl = ((-math.log(n) - logp) / n).sum(-1)
    return torch.where(bmask.any(-1), kl, torch.zeros_like(kl))


def db_residuals(
    env: Any,
    net: GoalNet,
    actions: torch.Tensor,
    goals: torch.Tensor,
    log_target: torch.Tensor,
    pb_kl_coef: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditional DB residual per transition ``[B, L]`` and its validity mask:
        log F(s|y) + log P_F(s'|s, y) - log F(s'|y) - log P_B(s|s', y),
    with log F(s'|y) := ``log_target`` on the last transition (the stop on the grid: it has no
    P_B term; the forced last token of a sequence keeps it). With ``pb_kl_coef`` > 0 the
    trajectory's mean (over its states) of KL(uniform ‖ P_B) times the coefficient is added to
    every transition but the last, as the grid code does."""
    B, L = actions.shape
    dev = actions.device
    valid = actions >= 0
    is_stop = (actions == env.stop_action) if env.stop_action is not None else torch.zeros_like(valid)
    lengths = valid.sum(1)
    states = env.trajectory_states(actions)  # [B, L+1, S]
    visited = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)  # s_0 and every arrival
    rows = torch.arange(B, device=dev)[:, None].expand(B, L + 1)[visited]
    flat = states[visited]
    pf_logits, pb_logits, log_f_v = net(net_inputs(env, flat, goals[rows]))
    bmask = env.backward_mask(flat)
    log_pf_all = masked_log_softmax(pf_logits, env.forward_mask(flat), empty_rows_finite=True)
    log_pb_all = masked_log_softmax(pb_logits, bmask, empty_rows_finite=True)

    pf_full = log_pf_all.new_zeros((B, L + 1, env.n_actions))
    pf_full[visited] = log_pf_all
    pb_full = log_pb_all.new_zeros((B, L + 1, env.n_backward_actions))
    pb_full[visited] = log_pb_all
    log_f = log_f_v.new_zeros((B, L + 1))
    log_f[visited] = log_f_v

    a = actions.clamp(min=0)
    zero = log_f.new_zeros(())
    log_pf = torch.where(valid, pf_full[:, :-1].gather(-1, a[..., None]).squeeze(-1), zero)
    move = valid & ~is_stop
    back = env.backward_action(states[:, 1:], a).clamp(0, env.n_backward_actions - 1)
    log_pb = torch.where(move, pb_full[:, 1:].gather(-1, back[..., None]).squeeze(-1), zero)
    last = valid & (torch.arange(L, device=dev)[None] == (lengths - 1)[:, None])
    log_f_dst = torch.where(last, log_target[:, None].to(log_f.dtype), log_f[:, 1:])
    res = log_f[:, :-1] + log_pf - log_f_dst - log_pb
    if pb_kl_coef > 0:
        kl = log_f.new_zeros((B, L + 1))
        kl[visited] = pb_kl_to_uniform(pb_logits, bmask)
        kl_traj = kl.sum(1) / (lengths + 1)
        res = res + torch.where(valid & ~last, pb_kl_coef * kl_traj[:, None], zero)
    return res, valid


def db_loss(res: torch.Tensor, valid: torch.Tensor, drop_mean_above: float | None = None) -> torch.Tensor:
    """Mean squared residual over the transitions of the kept trajectories; with
    ``drop_mean_above``, trajectories whose mean (signed) residual is >= it are left out (code)."""
    keep = valid
    if drop_mean_above is not None:
        mean = torch.where(valid, res, torch.zeros_like(res)).sum(1) / valid.sum(1).clamp(min=1)
        keep = valid & (mean < drop_mean_above)[:, None]
    if not keep.any():
        return res.sum() * 0.0
    return res[keep].pow(2).mean()


# ------------------------------------------------------------------------------ learners
class GoalLearner(ABC):
    """What a goal-conditioned method decides: how training rollouts act (``behaviour``), how a
    trained model acts (``policy``), what it stores beside each forward trajectory (``pair``)
    and its loss on a replay batch."""

    # whether every forward trajectory has a paired trajectory in the replay
    paired: ClassVar[bool] = False

    def __init__(self, cfg: GoalConfig):
        self.cfg = cfg
        self.env: Any = None
        self.net: GoalNet | None = None

    def bind(self, env: Any, net: GoalNet) -> None:
        self.env, self.net = env, net

    def behaviour(self, iteration: int) -> Chooser:
        return self.policy()

    def policy(self) -> Chooser:
        return forward_sampler(self.env, self.net)

    def pair(
        self, goals: torch.Tensor, actions: torch.Tensor, terminal: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        return None

    @abstractmethod
    def loss(self, batch: ReplayBatch, iteration: int) -> torch.Tensor: ...

    def after_step(self, iteration: int) -> None:
        """Called after every optimiser step (e.g. a target-network update)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class ConditionalDB(GoalLearner):
    """GC-GFN trained with conditional detailed balance on replayed trajectories (no pairing:
    the GC-GFN baseline; RBS and HER add a paired trajectory)."""

    cfg: GFNGoalConfig

    def loss(self, batch: ReplayBatch, iteration: int) -> torch.Tensor:
        cfg = self.cfg
        target = terminal_log_target(batch.reward, cfg.reward_scale)
        kl_coef = cfg.pb_kl_coef * cfg.pb_kl_decay**iteration
        res, valid = db_residuals(self.env, self.net, batch.actions, batch.goals, target, kl_coef)
        return db_loss(res, valid, cfg.drop_mean_residual if cfg.drop_large_residuals else None)
