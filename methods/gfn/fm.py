"""Flow matching (Bengio et al., NeurIPS 2021, "Flow Network based Generative Models for
Non-Iterative Diverse Candidate Generation"), as a baseline of EGFN's and BN's HG-A runs.

The network's forward head is read as log edge flows, log F(s -> s') = logits(s)[a]. For every
non-initial node s' visited by the batch,

    L_FM(s') = ( log sum_{(s, a) -> s'} F(s -> s')  -  log outflow(s') )^2,

    outflow(s') = sum_{a' valid at s'} F(s' -> .)   if s' is not terminal,
                = R(s')                             if s' is terminal,

averaged over the nodes of the batch. No log Z and no backward policy; the sampling policy is
the softmax of the edge log-flows (the core's default forward head).

Nodes of a DAG with a stop action (HG-A, ../shared/specs/gfn.md §0.2): a non-terminal state s
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
from pathlib import Path
from typing import Any, ClassVar

import torch

from methods.common.constraints import Bound, at_least
from methods.common.runapi import Run
from methods.gfn import core
from methods.gfn.core import EvaluatedBatch


@dataclass
class Config(core.GFNConfig):
    """FM on HG-A: lr 1e-4 (EGFN Table 2 FM column); no log Z."""

    lr: float = 1e-4
    fm_epsilon: float = 0.0
    leaf_coef: float = 1.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"fm_epsilon": at_least(0), "leaf_coef": at_least(0)}


# --------------------------------------------------------------- shared by FM and BN
@dataclass
class Nodes:
    """The non-initial nodes visited by a batch, one per valid transition t (node s_{t+1})."""

    source: torch.Tensor        # [N, S] s_t, the state the transition leaves
    child: torch.Tensor         # [N, S] s_{t+1}
    by_stop: torch.Tensor       # [N] reached by the stop action (a terminal copy of s_t)
    terminal: torch.Tensor      # [N] s_{t+1} is terminal (by stop or forced)
    log_reward: torch.Tensor    # [N] beta * log R(s_{t+1}) where terminal, else 0
    index: tuple[torch.Tensor, torch.Tensor]  # (b, t) of each node in the batch


def batch_nodes(env: Any, batch: EvaluatedBatch) -> Nodes:
    b, t = batch.valid.nonzero(as_tuple=True)
    source = batch.states[b, t]
    child = batch.states[b, t + 1]
    by_stop = batch.is_stop[b, t]
    terminal = batch.last[b, t]
    log_r = torch.where(terminal, batch.log_reward[b], torch.zeros_like(batch.log_reward[b]))
    return Nodes(source, child, by_stop, terminal, log_r, (b, t))


def parent_outputs(env: Any, net: torch.nn.Module, child: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The network at every parent edge of ``child`` [N, S] reached by a move.

    Returns ``(logits [N, P], log_alloc [N, P], log_f [N, P], valid [N, P])``: the raw forward
    logit of the edge's action at the parent, its masked log-softmax (P_F = allocation), the
    parent's log state flow, and which parent slots exist."""
    parents, actions, valid = env.parents(child)
    N, P = actions.shape
    flat = parents.reshape(N * P, -1)
    logits, _, log_f = net(env.obs(flat))
    log_alloc = core.masked_log_softmax(logits, env.forward_mask(flat))
    a = actions.reshape(N * P, 1).clamp(min=0)
    edge_logit = logits.gather(1, a).view(N, P)
    edge_alloc = log_alloc.gather(1, a).view(N, P)
    return edge_logit, edge_alloc, log_f.view(N, P), valid


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.logsumexp(x.masked_fill(~mask, -math.inf), dim=dim)


def add_epsilon(log_x: torch.Tensor, eps: float) -> torch.Tensor:
    """log(eps + x) from log x (identity for eps = 0)."""
    if eps <= 0:
        return log_x
    return torch.logaddexp(log_x, torch.full_like(log_x, math.log(eps)))


# ------------------------------------------------------------------------------ loss
class FlowMatching:
    uses_log_z = False

    def __init__(self, epsilon: float = 0.0, leaf_coef: float = 1.0):
        self.epsilon = epsilon
        self.leaf_coef = leaf_coef
        self.env: Any = None
        self.net: torch.nn.Module | None = None

    def bind(self, env: Any, net: torch.nn.Module) -> None:
        """The loss evaluates the network at parents, so it keeps the env and the net."""
        self.env, self.net = env, net

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

    def __call__(self, batch: EvaluatedBatch, log_z: torch.Tensor) -> torch.Tensor:
        res, nodes = self.residuals(batch)
        w = torch.where(nodes.terminal, torch.full_like(res, self.leaf_coef), torch.ones_like(res))
        return (w * res.pow(2)).sum() / res.numel()


def train(cfg: Config, run: Run) -> dict[str, float]:
    return core.train(cfg, run, FlowMatching(cfg.fm_epsilon, cfg.leaf_coef))


def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
             assets_dir: Path | None = None) -> dict[str, Any]:
    return core.evaluate(cfg, model, seed, device, assets_dir)
