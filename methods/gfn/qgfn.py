"""QGFN: controllable greediness with action values (Lau, Lu, Pan, Precup, Bengio; NeurIPS 2024;
official code yunglau/QGFN, a fork of recursionpharma/gflownet).

Two networks of the same architecture learn from the same trajectories, with one optimiser
step on the sum of their losses per iteration:

* a GFlowNet P_F trained with trajectory balance and a uniform P_B; an EMA copy of it
  (theta_s <- tau_s theta_s + (1 - tau_s) theta, tau_s = 0.9) is the sampling model;
* an action-value network Q(s, .) trained with n-step double DQN, gamma = 1, on the task's
  flat reward (sEH: proxy / 8; no exponent):
      y_t = Qbar(s_{t+n}, argmax_a Q(s_{t+n}, a))     if t + n < T
      y_t = R(x)                                      otherwise
  Huber loss; Qbar <- tau_q Qbar + (1 - tau_q) Q after every step (tau_q = 0.95).

Trajectories are sampled from a mixture of the two at each state, set by p:

* p-greedy:   pi(a|s) = (1 - p) P_F(a|s) + p 1[a = argmax Q(s, .)]
* p-quantile: P_F renormalised over the actions whose Q is at or above the p-quantile of Q(s, .)
* p-of-max:   P_F renormalised over the actions with max(Q(s,a), 0) >= p max(max_a Q(s,a), 0)
              (every valid action while p max Q <= 1e-3)

During training p ramps up as p_t = p (1 - cos(pi min(t, T) / T)) / 2 with T = 1,500 steps.
At evaluation p is a free knob: ``evaluate`` measures the model at ``eval_p`` (default: the
trained p) and, from the same trained networks, at every p of ``eval_p_sweep`` — the paper's
"controllable greediness" without retraining (metrics ``<name>_p<100 p>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from methods.common.constraints import Bound, at_least, within
from methods.common.target import frozen_copy, polyak_
from methods.gfn import core, loop
from methods.gfn.metrics import flat_reward
from methods.gfn.policy import Policy, PolicyNet, masked_log_softmax
from methods.gfn.tb import trajectory_balance_residuals, uniform_log_pb

MIXTURES = ("p_greedy", "p_quantile", "p_of_max")
# QGFN's example values per mixture (yunglau/QGFN README / configs): p-greedy 0.4,
# p-quantile 0.8, p-of-max 0.99 (the paper's per-task values are not public)
DEFAULT_P = {"p_greedy": 0.4, "p_quantile": 0.8, "p_of_max": 0.99}
# metrics re-measured at every p of the sweep
SWEEP_METRICS = ("mean_flat_reward", "top100_flat_reward", "top100_diversity", "sample_modes")


@dataclass
class Config(core.GFNConfig):
    """yunglau/QGFN defaults (sEH fragment task): batch 64 trajectories, lr 1e-4 halving every
    20k steps, log Z lr 1e-3 halving every 50k, grad-norm clip 10, no replay, no epsilon;
    n-step 25, dqn_tau 0.95, sampling_tau 0.9, p ramped over 1,500 steps."""

    lr: float = 1e-4
    log_z_lr: float = 1e-3
    lr_half_life: float = 20_000
    log_z_lr_half_life: float = 50_000
    grad_clip: float = 10.0
    online_batch: int = 64
    replay_batch: int = 0
    mixture: str = "p_greedy"
    p: float = 0.4
    p_ramp_steps: int = 1500
    eval_p: float | None = None  # None: the trained p
    eval_p_sweep: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9])
    dqn_n_step: int = 25
    dqn_tau: float = 0.95
    sampling_tau: float = 0.9
    q_loss_weight: float = 1.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "p": within(0, 1),
        "p_ramp_steps": at_least(0),
        "dqn_n_step": at_least(1),
        "dqn_tau": within(0, 1, hi_open=True),  # 1 would freeze the lagged Q
        "sampling_tau": within(0, 1, hi_open=True),  # 1 would freeze the sampling model
        "q_loss_weight": at_least(0),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mixture not in MIXTURES:
            raise ValueError(f"mixture must be one of {', '.join(MIXTURES)} (got {self.mixture!r})")
        for q in [self.eval_p, *self.eval_p_sweep]:
            if q is not None and not 0.0 <= float(q) <= 1.0:
                raise ValueError(f"eval_p / eval_p_sweep values must lie in [0, 1] (got {q!r})")


def ramped_p(p: float, step: int, ramp_steps: int) -> float:
    """QGFN's training-time schedule: p (1 - cos(pi min(t, T) / T)) / 2, from 0 to p."""
    if ramp_steps <= 0:
        return p
    return p * (1.0 - math.cos(math.pi * min(step, ramp_steps) / ramp_steps)) / 2.0


def mixture_log_probs(
    kind: str,
    p: float,
    pf_logits: torch.Tensor,
    q: torch.Tensor,
    mask: torch.Tensor,
    blocks: list[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """log pi(.|s) of the QGFN mixture ``kind`` at greediness ``p`` (-inf off the support).
    ``blocks``: the env's action types; p-quantile keeps, within each type, the actions at or
    above that type's p-quantile (yunglau/QGFN: one torch.quantile per logit row; None: one
    block of all actions)."""
    if kind == "p_greedy":
        pf = masked_log_softmax(pf_logits, mask).exp()
        best = q.masked_fill(~mask, -math.inf).argmax(-1)
        greedy = F.one_hot(best, q.shape[-1]).to(pf.dtype)
        return ((1.0 - p) * pf + p * greedy).log()
    if kind == "p_quantile":
        keep = torch.zeros_like(mask)
        for a, b in blocks or [(0, q.shape[-1])]:
            qb, mb = q[..., a:b], mask[..., a:b]
            threshold = torch.nanquantile(qb.masked_fill(~mb, math.nan), p, dim=-1, keepdim=True)
            keep[..., a:b] = mb & (qb >= threshold)
    elif kind == "p_of_max":
        q_max = q.masked_fill(~mask, -math.inf).max(-1, keepdim=True).values.clamp(min=0)
        keep = mask & ((q.clamp(min=0) >= p * q_max) | (p * q_max <= 1e-3))
    else:
        raise ValueError(f"unknown QGFN mixture {kind!r}")
    return masked_log_softmax(pf_logits, keep)


def n_step_targets(
    q_online_next: torch.Tensor,
    q_lagged_next: torch.Tensor,
    mask_next: torch.Tensor,
    lengths: torch.Tensor,
    reward: torch.Tensor,
    n: int,
) -> torch.Tensor:
    """Double-DQN n-step targets with gamma = 1 and reward only at the end, ``[B, L]``.

    ``q_*_next[b, k]`` are Q-values at state s_k (k = 0..L) of trajectory b; transition t
    (s_t, a_t) bootstraps from s_{t+n} while t + n < T_b, else takes the terminal reward."""
    B, L1, _ = q_online_next.shape
    L = L1 - 1
    t = torch.arange(L, device=lengths.device)
    boot_at = (t[None] + n).clamp(max=L)  # [1, L]
    best = q_online_next.masked_fill(~mask_next, -math.inf).argmax(-1)  # [B, L+1]
    v = q_lagged_next.gather(-1, best[..., None]).squeeze(-1)  # [B, L+1]
    v_boot = v.gather(1, boot_at.expand(B, L))
    bootstrap = (t[None] + n) < lengths[:, None]
    return torch.where(bootstrap, v_boot, reward[:, None].to(v.dtype).expand(B, L))


class QGFNLearner(core.TrajectoryLearner):
    uses_log_z = True
    owns_sampler = True

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.step = 0
        self.training = True
        self.q_net: PolicyNet | None = None
        self.q_lagged: PolicyNet | None = None
        self.sampler: PolicyNet | None = None

    # ---------------------------------------------------------------- networks
    def bind(self, env: Any, net: PolicyNet) -> None:
        self.env, self.net = env, net
        device = next(net.parameters()).device
        # same architecture as the GFlowNet; only its forward head is read (as Q(s, .))
        self.q_net = PolicyNet(
            env.obs_dim, env.n_actions, env.n_backward_actions, self.cfg.hidden, self.cfg.n_hidden_layers
        ).to(device)
        self.q_lagged = frozen_copy(self.q_net)
        self.sampler = frozen_copy(net)

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.q_net.parameters())

    def q_values(self, net: PolicyNet, states: torch.Tensor) -> torch.Tensor:
        return net(self.env.obs(states))[0]

    # ---------------------------------------------------------------- sampling
    def current_p(self) -> float:
        if self.training:
            return ramped_p(self.cfg.p, self.step, self.cfg.p_ramp_steps)
        return self.cfg.p if self.cfg.eval_p is None else float(self.cfg.eval_p)

    def policy(self, env: Any, net: PolicyNet) -> Policy:
        def mixture(states: torch.Tensor) -> torch.Tensor:
            mask = env.forward_mask(states)
            obs = env.obs(states)
            return mixture_log_probs(
                self.cfg.mixture, self.current_p(), self.sampler(obs)[0], self.q_net(obs)[0], mask, env.action_blocks()
            )

        return mixture

    # ---------------------------------------------------------------- losses
    def loss(self, batch: core.EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        tb = trajectory_balance_residuals(batch, log_z, uniform_log_pb(self.env, batch)).pow(2).mean()
        return tb + self.cfg.q_loss_weight * self.q_loss(batch)

    def q_loss(self, batch: core.EvaluatedBatch) -> torch.Tensor:
        env, visited = self.env, batch.visited
        B, L1 = visited.shape
        q_on = batch.log_pf.new_zeros((B, L1, env.n_actions))
        q_on[visited] = self.q_net(batch.obs)[0]
        with torch.no_grad():
            # the lagged net is read only where a target bootstraps: states s_k with k >= n
            q_lag = torch.zeros_like(q_on)
            k = torch.arange(L1, device=visited.device).expand(B, L1)
            boot = (k >= self.cfg.dqn_n_step)[visited]
            lagged = torch.zeros_like(q_on[visited])
            if boot.any():
                lagged[boot] = self.q_lagged(batch.obs[boot])[0]
            q_lag[visited] = lagged
            mask = torch.ones(B, L1, env.n_actions, dtype=torch.bool, device=q_on.device)
            mask[visited] = batch.forward_mask  # padding rows stay all-valid: never used
            reward = self.q_reward(batch).to(q_on.dtype)
            y = n_step_targets(q_on.detach(), q_lag, mask, batch.valid.sum(1), reward, self.cfg.dqn_n_step)
        actions = batch.actions.clamp(min=0)
        q_sa = q_on[:, :-1].gather(-1, actions[..., None]).squeeze(-1)
        return F.huber_loss(q_sa[batch.valid], y[batch.valid])

    def q_reward(self, batch: core.EvaluatedBatch) -> torch.Tensor:
        """The Q network's terminal reward: the flat reward (no exponent); -10 for an invalid
        molecule where the env tells (QGFN's code)."""
        env = self.env
        if env.flat_reward_is_tempered_log_reward:  # from the log-reward computed for the batch
            reward = (batch.log_reward.double() / (self.cfg.reward_beta * float(env.beta))).exp()
        else:
            reward = flat_reward(env, batch.terminal).to(batch.log_reward.device)
        valid = torch.as_tensor(env.is_valid(batch.terminal), device=reward.device)
        reward = torch.where(valid, reward, torch.full_like(reward, -10.0))
        return reward

    def after_step(self) -> None:
        polyak_(self.sampler, self.net, 1.0 - self.cfg.sampling_tau)
        polyak_(self.q_lagged, self.q_net, 1.0 - self.cfg.dqn_tau)
        self.step += 1

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "q_net": self.q_net.state_dict(),
            "q_lagged": self.q_lagged.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.q_net.load_state_dict(d["q_net"])
        self.q_lagged.load_state_dict(d["q_lagged"])
        self.sampler.load_state_dict(d["sampler"])
        self.step = int(d["step"])

    def model_state(self) -> dict[str, Any]:
        return {"q_net": self.q_net.state_dict(), "sampler": self.sampler.state_dict()}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.training = False
        if state:
            self.q_net.load_state_dict(state["q_net"])
            self.sampler.load_state_dict(state["sampler"])


def make_learner(cfg: Config) -> QGFNLearner:
    return QGFNLearner(cfg)


_, train, _evaluate_at = loop.entry_points(make_learner)


def evaluate(
    cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
) -> dict[str, Any]:
    """The core's evaluation at ``eval_p``, plus the sweep metrics at every p of ``eval_p_sweep``
    (same trained networks, same evaluation seed)."""
    result = _evaluate_at(cfg, model, seed, device, assets_dir)
    metrics = result["metrics"]
    for p in cfg.eval_p_sweep:
        at_p = replace(cfg, eval_p=float(p))
        m = _evaluate_at(at_p, model, seed, device, assets_dir)["metrics"]
        for name in SWEEP_METRICS:
            metrics[f"{name}_p{round(100 * float(p)):02d}"] = m[name]
    sweep = sorted(float(p) for p in cfg.eval_p_sweep)
    if len(sweep) > 1:
        # the effect of turning the knob on one trained model (paired per seed): value at the
        # largest swept p minus value at the smallest
        lo, hi = (f"_p{round(100 * p):02d}" for p in (sweep[0], sweep[-1]))
        for name in SWEEP_METRICS:
            metrics[f"{name}_gain"] = metrics[name + hi] - metrics[name + lo]
    return result
