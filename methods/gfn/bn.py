"""BN — Bifurcated GFlowNets (Li, Liu, Liu, Cai, Pan; arXiv 2406.01901, published as "Flow
Factorization for Efficient Generative Flow Networks", AAAI 2025).

Parameterisation (as the paper describes it): one network, two heads on a shared trunk — a scalar state flow
log F_theta(s) (the core's flow head) and an allocation A_theta(.|s) = masked softmax of the
forward head over the valid outgoing actions of s (stop included). The edge flow is factorised

    F(s -> s') = F_theta(s) * A_theta(s'|s),

so outflow(s) = F_theta(s) because the allocation sums to one, and P_F = A_theta. No backward
policy, no log Z (F_theta(s_0) is the partition function).

Loss (reconstructed from the paper's equations; no official code is public): for every
non-initial node s' visited by the batch

    L_BN(s') = ( logsumexp_{(s, a) -> s'} [ log F_theta(s) + log A_theta(a|s) ] - log F_theta(s') )^2

where the parents are ``env.parents`` (parallel edges counted once each), and terminal nodes
take the reward in place of the state flow:
* x reached by ``stop`` from s (its only parent is (s, stop)):
      ( log F_theta(s) + log A_theta(stop|s) - log R(x) )^2;
* x reached by a move into a forced-terminal state (HG-A top coordinate, full-length sequence):
      ``terminal_form = "reward"`` (default): ( logsumexp_parents[...] - log R(x) )^2;
      ``terminal_form = "flow"``: the flow-matching term keeps log F_theta(x), plus a leaf term
      ( log F_theta(x) - log R(x) )^2.
Terminal-node terms are weighted by ``leaf_coef`` (default 1: the plain mean over nodes, as
in Bengio et al.'s FM; their molecule code uses a separate leaf weight). At zero loss the
edge flows F_theta * A_theta form a flow with terminal flows R, so P_F samples x ∝ R(x).
Sampling: on-policy P_F = A_theta with the baselines' epsilon (0 on HG-A).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from methods.common.constraints import Bound, at_least
from methods.gfn import core, loop
from methods.gfn.core import EvaluatedBatch
from methods.gfn.flow_nodes import batch_nodes, parent_outputs
from methods.gfn.policy import masked_logsumexp

TERMINAL_FORMS = ("reward", "flow")


@dataclass
class Config(core.GFNConfig):
    """BN on HG-A: lr 1e-3 (unknown in the paper; EGFN's DB/TB value on the same env)."""

    terminal_form: str = "reward"
    leaf_coef: float = 1.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"leaf_coef": at_least(0)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.terminal_form not in TERMINAL_FORMS:
            raise ValueError(f"bn: terminal_form must be one of {TERMINAL_FORMS} (got {self.terminal_form!r})")


def allocation(env: Any, net: torch.nn.Module, states: torch.Tensor) -> torch.Tensor:
    """log A_theta(.|s) ``[N, A]``: the masked log-softmax of the forward head (= log P_F)."""
    return core.masked_log_softmax(net(env.obs(states))[0], env.forward_mask(states))


class BifurcatedFlow(core.TrajectoryLearner):
    uses_log_z = False

    def __init__(self, terminal_form: str = "reward", leaf_coef: float = 1.0):
        if terminal_form not in TERMINAL_FORMS:
            raise ValueError(f"bn: unknown terminal_form {terminal_form!r}")
        self.terminal_form = terminal_form
        self.leaf_coef = leaf_coef
        self.env: Any = None
        self.net: torch.nn.Module | None = None

    def bind(self, env: Any, net: torch.nn.Module) -> None:
        """The loss evaluates the network at every parent of a visited state."""
        self.env, self.net = env, net

    def residuals(self, batch: EvaluatedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared-residual terms and whether each is a terminal (leaf) term, both ``[M]``."""
        env, net = self.env, self.net
        nodes = batch_nodes(env, batch)
        b, t = nodes.index
        # log F(s_t) + log A(a_t|s_t) of the edge actually taken: the batch already holds it
        taken = batch.log_f[b, t] + batch.log_pf[b, t]
        log_in = taken.clone()
        move = ~nodes.by_stop
        if bool(move.any()):
            _, log_alloc, log_f_par, valid = parent_outputs(env, net, nodes.child[move])
            log_in[move] = masked_logsumexp(log_f_par + log_alloc, valid)
        log_f_child = batch.log_f[b, t + 1]
        log_r = nodes.log_reward.to(log_in.dtype)
        forced = nodes.terminal & move
        if self.terminal_form == "reward":
            target = torch.where(nodes.terminal, log_r, log_f_child)
            return log_in - target, nodes.terminal
        # "flow": forced-terminal states keep a flow of their own, tied to R by a leaf term
        target = torch.where(nodes.by_stop, log_r, log_f_child)
        leaf = log_f_child[forced] - log_r[forced]
        res = torch.cat([log_in - target, leaf])
        is_leaf = torch.cat([nodes.by_stop, torch.ones(int(forced.sum()), dtype=torch.bool, device=res.device)])
        return res, is_leaf

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        res, is_leaf = self.residuals(batch)
        w = torch.where(is_leaf, torch.full_like(res, self.leaf_coef), torch.ones_like(res))
        return (w * res.pow(2)).sum() / res.numel()


make_learner, train, evaluate = loop.entry_points(lambda cfg: BifurcatedFlow(cfg.terminal_form, cfg.leaf_coef))
