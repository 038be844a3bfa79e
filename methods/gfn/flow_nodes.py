"""The nodes a batch of trajectories visits and the network at their parent edges: what the
flow-matching family (FM, and BN's bifurcated flows) evaluates beyond the trajectories.

A non-terminal state s and the terminal node x = s reached from it by ``stop`` are two nodes;
x's single parent is (s, stop). A state reached by a move into a forced-terminal state is
terminal, with all of ``env.parents`` as its parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.gfn.core import EvaluatedBatch
from methods.gfn.policy import masked_log_softmax


@dataclass
class Nodes:
    """The non-initial nodes visited by a batch, one per valid transition t (node s_{t+1})."""

    source: torch.Tensor  # [N, S] s_t, the state the transition leaves
    child: torch.Tensor  # [N, S] s_{t+1}
    by_stop: torch.Tensor  # [N] reached by the stop action (a terminal copy of s_t)
    terminal: torch.Tensor  # [N] s_{t+1} is terminal (by stop or forced)
    log_reward: torch.Tensor  # [N] beta * log R(s_{t+1}) where terminal, else 0
    index: tuple[torch.Tensor, torch.Tensor]  # (b, t) of each node in the batch


def batch_nodes(env: Any, batch: EvaluatedBatch) -> Nodes:
    b, t = batch.valid.nonzero(as_tuple=True)
    source = batch.states[b, t]
    child = batch.states[b, t + 1]
    by_stop = batch.is_stop[b, t]
    terminal = batch.last[b, t]
    log_r = torch.where(terminal, batch.log_reward[b], torch.zeros_like(batch.log_reward[b]))
    return Nodes(source, child, by_stop, terminal, log_r, (b, t))


def parent_outputs(
    env: Any, net: torch.nn.Module, child: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The network at every parent edge of ``child`` [N, S] reached by a move.

    Returns ``(logits [N, P], log_alloc [N, P], log_f [N, P], valid [N, P])``: the raw forward
    logit of the edge's action at the parent, its masked log-softmax (P_F = allocation), the
    parent's log state flow, and which parent slots exist."""
    parents, actions, valid = env.parents(child)
    N, P = actions.shape
    flat = parents.reshape(N * P, -1)
    logits, _, log_f = net(env.obs(flat))
    log_alloc = masked_log_softmax(logits, env.forward_mask(flat))
    a = actions.reshape(N * P, 1).clamp(min=0)
    edge_logit = logits.gather(1, a).view(N, P)
    edge_alloc = log_alloc.gather(1, a).view(N, P)
    return edge_logit, edge_alloc, log_f.view(N, P), valid
