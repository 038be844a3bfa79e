"""RPE — Rectified (random) Policy Evaluation (He et al., ICML 2025; arXiv 2406.02213).

Idea: evaluate the *fixed uniform* policy pi_U with the rectified terminal reward
R'(x) = g(x) R(x), where the branching ratio along a path is

    g(tau, s_t) = prod_{i<t} |A(s_i)| / |B(s_{i+1})|      (|A|: out-edges, |B|: in-edges).

Then V^{pi_U}(s) = g(s) F(s), with F the GFlowNet state flow. Dividing the Bellman equation
of pi_U by g(s) gives the fixed point this module learns:

    F(s) = sum_{edges s -> s'} F(s') / |B(s')|,        F(x) = R(x) at terminal nodes,

i.e. flow consistency with a uniform backward policy. Only F_theta is learned — no P_B net,
no log Z, no entropy term — and the sampler it induces is

    P_F(s'|s) = F(s') / (|B(s')| F(s))          (policy(): logits log F(s') - log|B(s')|).

Algorithm: trajectories come from pi_U (the data never depends on the model, the
``behaviour = "uniform"`` hook of the core); for every visited non-terminal state the target
is the full expectation over *all* children, with a stop-gradient (semi-gradient TD).

Implementation choices (unverified details, see config/papers/rpe.yaml ``unverified``):
* ``loss_space = "log"`` (default; reconstructed, the paper does not say which space): residual
  log F_theta(s) - logsumexp_{s'} [log F(s') - log|B(s')|]; g cancels. ``"value"`` is the
  literal raw-scale MSE between g(tau, s) F_theta(s) and sum_a pi_U(a|s) g(tau, s') F(s')
  (g along the sampled trajectory); same zero, but g up to 4^14 makes it numerically
  useless beyond toy sizes.
* ``target_tau``: 0 (default) = the bootstrap target is the online net under stop-gradient;
  > 0 = a Polyak-averaged target network (tau per step), a stability option of ours.
* Terminal nodes take F(x) := R(x) exactly (the terminal residual log F(x) - log R(x) of our reconstruction
  is imposed by construction: in HG-A the terminal copy x of s shares s's observation).

Why path invariance matters (the paper's stated limitation): the identity above needs
g(tau, s) only along the trajectory, but evaluating pi_U with a *Markov* rectified reward
R'(x) = g(x) R(x) needs g(x) to be the same on every path. That holds on trees (AR sequences)
and PA-MDPs (g = |V|^t) and fails on hypergrids; tests/test_rpe.py shows both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from methods.common.target import frozen_copy, polyak_
from methods.common.constraints import Bound, within
from methods.gfn import core, loop
from methods.gfn.core import EvaluatedBatch
from methods.gfn.policy import ExactLogitsPolicy, masked_logsumexp

LOSS_SPACES = ("log", "value")


@dataclass
class Config(core.GFNConfig):
    """RPE (the paper's hypergrid setting): 2-layer MLP of 2048 units; lr 1e-4, 32 trajectories
    per round (not stated in the paper: Shen et al.'s / LS-GFN's defaults); no replay and no
    epsilon (the data come from pi_U)."""

    hidden: int = 2048
    lr: float = 1e-4
    online_batch: int = 32
    replay_batch: int = 0
    loss_space: str = "log"
    target_tau: float = 0.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"target_tau": within(0, 1)}  # 0: no target network

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_space not in LOSS_SPACES:
            raise ValueError(f"rpe: loss_space must be one of {LOSS_SPACES} (got {self.loss_space!r})")


# ------------------------------------------------------------------ DAG structure
@dataclass
class Children:
    """Every out-edge of a batch of non-terminal states ``[N, S]`` (one slot per action)."""

    states: torch.Tensor  # [N, A, S] child s'_a (the terminal copy for stop)
    valid: torch.Tensor  # [N, A] action a is valid at s
    terminal: torch.Tensor  # [N, A] s'_a is a terminal node (stop or forced)
    log_n_parents: torch.Tensor  # [N, A] log |B(s'_a)| (1 for a stop child)
    log_reward: torch.Tensor  # [N, A] beta log R(s'_a) where terminal, else 0


def children(env: Any, states: torch.Tensor, reward_beta: float = 1.0) -> Children:
    N, A = states.shape[0], env.n_actions
    valid = env.forward_mask(states)
    acts = torch.arange(A, device=states.device).expand(N, A)
    # step invalid slots with a valid action (their results are masked out)
    first_valid = valid.float().argmax(1, keepdim=True).expand(N, A)
    safe = torch.where(valid, acts, first_valid).reshape(-1)
    flat = states.repeat_interleave(A, 0)
    nxt, _ = env.step(flat, safe)
    is_stop = (safe == env.stop_action) if env.stop_action is not None else torch.zeros_like(safe, dtype=torch.bool)
    terminal = is_stop | env.is_forced_terminal(nxt)
    n_parents = torch.where(is_stop, torch.ones_like(safe), env.backward_mask(nxt).sum(-1))
    log_r = torch.where(terminal, reward_beta * env.log_reward(nxt), torch.zeros((), device=states.device))
    return Children(
        nxt.view(N, A, -1),
        valid,
        terminal.view(N, A),
        n_parents.clamp(min=1).double().log().to(log_r.dtype).view(N, A),
        log_r.view(N, A),
    )


def child_log_flows(env: Any, net: torch.nn.Module, ch: Children) -> torch.Tensor:
    """log F(s'_a) [N, A]: the reward at terminal children, the flow head elsewhere."""
    N, A, S = ch.states.shape
    log_f = net(env.obs(ch.states.reshape(N * A, S)))[2].view(N, A)
    return torch.where(ch.terminal, ch.log_reward.to(log_f.dtype), log_f)


def trajectory_log_g(env: Any, batch: EvaluatedBatch) -> torch.Tensor:
    """log g(tau, s_t) [B, L+1] along each trajectory: sum_{i<t} log|A(s_i)| - log|B(s_{i+1})|."""
    B, L1, S = batch.states.shape
    s = batch.states[:, :-1].reshape(-1, S)
    log_a = env.forward_mask(s).sum(-1).double().log().view(B, L1 - 1)
    nxt = batch.states[:, 1:].reshape(-1, S)
    n_b = env.backward_mask(nxt).sum(-1).view(B, L1 - 1)
    n_b = torch.where(batch.is_stop, torch.ones_like(n_b), n_b).clamp(min=1)
    step = torch.where(batch.valid, log_a - n_b.double().log(), torch.zeros((), dtype=torch.float64))
    return torch.cat([step.new_zeros(B, 1), step.cumsum(1)], 1)


@torch.no_grad()
def exact_log_flows(env: Any, exact: core.ExactDistribution, reward_beta: float = 1.0) -> torch.Tensor:
    """The fixed point of RPE by backward dynamic programming over an enumerable DAG:
    log F(s) for every enumerated state (F(x) = R(x) at forced-terminal states; the stop
    child of s contributes R(s) with |B| = 1)."""
    states = exact.states
    log_r = (reward_beta * env.log_reward(states)).double()
    log_b = env.backward_mask(states).sum(-1).clamp(min=1).double().log()
    log_f = torch.where(exact.forced, log_r, torch.full_like(log_r, -math.inf))
    for k in reversed(range(len(exact.levels))):
        idx = exact.levels[k]
        n_idx = idx[~exact.forced[idx]]
        if n_idx.numel() == 0:
            continue
        terms = log_f[exact.children[k]] - log_b[exact.children[k]]
        if env.stop_action is not None:
            terms = torch.cat([terms, log_r[n_idx, None]], 1)
        log_f[n_idx] = torch.logsumexp(terms, 1)
    return log_f


# ---------------------------------------------------------------------------- sampler
class ChildFlowPolicy(ExactLogitsPolicy):
    """P_F(s'|s) ∝ F(s') / |B(s')| over the out-edges of s (logits; the caller masks)."""

    def __init__(self, env: Any, net: torch.nn.Module, reward_beta: float = 1.0):
        self.env, self.net, self.reward_beta = env, net, reward_beta

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        ch = children(self.env, states, self.reward_beta)
        return child_log_flows(self.env, self.net, ch) - ch.log_n_parents

    @torch.no_grad()
    def exact_logits(self, exact: core.ExactDistribution, chunk: int = 65536) -> torch.Tensor:
        """Logits of every enumerated state at once: one flow evaluation per state, children
        looked up by index (ExactDistribution uses this instead of stepping A children)."""
        env, states = self.env, exact.states
        log_f = torch.cat([self.net(env.obs(s))[2] for s in states.split(chunk)]).double()
        log_r = (self.reward_beta * env.log_reward(states)).double()
        log_f = torch.where(exact.forced, log_r, log_f)
        log_b = env.backward_mask(states).sum(-1).clamp(min=1).double().log()
        logits = torch.full((len(states), env.n_actions), -math.inf, dtype=torch.float64, device=states.device)
        for k, idx in enumerate(exact.levels):
            n_idx = idx[~exact.forced[idx]]
            if n_idx.numel() == 0:
                continue
            kids = exact.children[k]
            logits[n_idx[:, None], torch.tensor(exact.moves, device=states.device)[None]] = log_f[kids] - log_b[kids]
            if env.stop_action is not None:
                logits[n_idx, env.stop_action] = log_r[n_idx]  # stop child: F = R, |B| = 1
        return logits


# ------------------------------------------------------------------------------- loss
class RectifiedPolicyEvaluation(core.TrajectoryLearner):
    uses_log_z = False
    behaviour = "uniform"

    def __init__(self, loss_space: str = "log", target_tau: float = 0.0, reward_beta: float = 1.0):
        self.loss_space, self.target_tau, self.reward_beta = loss_space, target_tau, reward_beta
        self.env: Any = None
        self.net: torch.nn.Module | None = None
        self.target: torch.nn.Module | None = None

    def bind(self, env: Any, net: torch.nn.Module) -> None:
        self.env, self.net = env, net
        if self.target_tau > 0:
            self.target = frozen_copy(net)

    def policy(self, env: Any, net: torch.nn.Module) -> ChildFlowPolicy:
        return ChildFlowPolicy(env, net, self.reward_beta)

    def residuals(self, batch: EvaluatedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual per visited non-terminal state ``[M]`` and its (b, t) mask ``[B, L]``."""
        env = self.env
        sel = batch.valid  # s_t is the source of a transition
        states = batch.states[:, :-1][sel]
        ch = children(env, states, self.reward_beta)
        with torch.no_grad():
            boot = child_log_flows(env, self.target or self.net, ch)
            target = masked_logsumexp(boot - ch.log_n_parents, ch.valid)
        log_f = batch.log_f[:, :-1][sel]
        if self.loss_space == "log":
            return log_f - target, sel
        log_g = trajectory_log_g(env, batch)[:, :-1][sel]
        return (log_g.exp() * (log_f.double().exp() - target.double().exp())), sel

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        res, _ = self.residuals(batch)
        return res.pow(2).mean().to(batch.log_f.dtype)

    def after_step(self) -> None:
        if self.target is not None:
            polyak_(self.target, self.net, self.target_tau)

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict() if self.target is not None else None}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if self.target is not None and d.get("target") is not None:
            self.target.load_state_dict(d["target"])


def make_loss(cfg: Config) -> RectifiedPolicyEvaluation:
    return RectifiedPolicyEvaluation(cfg.loss_space, cfg.target_tau, cfg.reward_beta)


make_learner, train, evaluate = loop.entry_points(make_loss)
