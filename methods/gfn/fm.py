"""Flow matching (Bengio et al., NeurIPS 2021, "Flow Network based Generative Models for
Non-Iterative Diverse Candidate Generation"), as a baseline of EGFN's and BN's HG-A runs.

The network's forward head is read as log edge flows, log F(s -> s') = logits(s)[a]. For every
non-initial node s' visited by the batch,

    L_FM(s') = ( log sum_{(s, a) -> s'} F(s -> s')  -  log outflow(s') )^2,

    outflow(s') = sum_{a' valid at s'} F(s' -> .)   if s' is not terminal,
                = R(s')                             if s' is terminal,

averaged over the nodes of the batch. No log Z and no backward policy; the sampling policy is
the softmax of the edge log-flows (the core's default forward head).

Nodes of a DAG with a stop action (the hypergrid "HG-A" of EGFN, envs/hypergrid.py): a non-terminal state s
and the terminal node x = s reached from it by ``stop`` are two different nodes. The interior
node's outflow includes its stop edge F(s, stop); the terminal node x has the single parent
(s, stop) (EGFN's ``parent_transitions``: a used stop has one parent) and outflow R(x). A state
reached by a move into a forced-terminal state (a coordinate at H-1, or full length in the
sequence MDPs) is terminal: its parents are all of ``env.parents`` (decrements that do not
leave a top coordinate, resp. delete-first / delete-last, parallel edges counted once each)
and its outflow is R(x).

Options:
* ``fm_epsilon`` (default 0): Bengio et al.'s grid code adds a small constant inside the logs,
  log(eps + inflow) vs log(eps + outflow), to keep early training stable. 0 = the exact
  equation above (the core's log-space sums are already stable).
* ``leaf_coef`` (default 1): weight of terminal nodes' squared residuals (Bengio et al.'s
  molecule code weights leaves separately); 1 = the plain mean over all nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from methods.common.constraints import Bound, at_least
from methods.gfn import core, loop
from methods.gfn.core import EvaluatedBatch
from methods.gfn.flow_nodes import Nodes, batch_nodes, parent_outputs
from methods.gfn.policy import masked_logsumexp


@dataclass
class Config(core.GFNConfig):
    """FM on HG-A: lr 1e-4 (EGFN Table 2 FM column); no log Z."""

    lr: float = 1e-4
    fm_epsilon: float = 0.0
    leaf_coef: float = 1.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"fm_epsilon": at_least(0), "leaf_coef": at_least(0)}


def add_epsilon(log_x: torch.Tensor, eps: float) -> torch.Tensor:
    """log(eps + x) from log x (identity for eps = 0)."""
    if eps <= 0:
        return log_x
    return torch.logaddexp(log_x, torch.full_like(log_x, math.log(eps)))


# ------------------------------------------------------------------------------ loss
class FlowMatching(core.TrajectoryLearner):
    uses_log_z = False

    def __init__(self, epsilon: float = 0.0, leaf_coef: float = 1.0):
        self.epsilon = epsilon
        self.leaf_coef = leaf_coef
        self.env: Any = None
        self.net: torch.nn.Module | None = None

    def residuals(self, batch: EvaluatedBatch) -> tuple[torch.Tensor, Nodes]:
        """log inflow - log outflow per visited non-initial node ``[N]``."""
        env, net = self.env, self.net
        nodes = batch_nodes(env, batch)
        N = nodes.child.shape[0]
        # edge log-flows out of the sources (for stop arrivals) and out of the children
        both = torch.cat([nodes.source, nodes.child])
        logits = net(env.obs(both))[0]
        src_logits, child_logits = logits[:N], logits[N:]

        inflow = torch.empty(N, dtype=logits.dtype, device=logits.device)
        stop = nodes.by_stop
        if env.stop_action is not None and bool(stop.any()):
            # a used stop: the only parent is (s_t, stop)
            inflow[stop] = src_logits[stop, env.stop_action]
        move = ~stop
        if bool(move.any()):
            edge_logit, _, _, valid = parent_outputs(env, net, nodes.child[move])
            inflow[move] = masked_logsumexp(edge_logit, valid)

        out_edges = masked_logsumexp(child_logits, env.forward_mask(nodes.child))
        outflow = torch.where(nodes.terminal, nodes.log_reward.to(out_edges.dtype), out_edges)
        res = add_epsilon(inflow, self.epsilon) - add_epsilon(outflow, self.epsilon)
        return res, nodes

    def loss(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        res, nodes = self.residuals(batch)
        w = torch.where(nodes.terminal, torch.full_like(res, self.leaf_coef), torch.ones_like(res))
        return (w * res.pow(2)).sum() / res.numel()


make_learner, train, evaluate = loop.entry_points(lambda cfg: FlowMatching(cfg.fm_epsilon, cfg.leaf_coef))
