"""Deterministic actors of the multi-agent actor–critic (methods/marl/actor_critic/matd3.py) under the
parameter-sharing schemes Kaleidoscope compares against on multi-agent MuJoCo (see
docs/papers/kaleidoscope.md, Baselines), all on the HARL actor MLP (input → hidden → hidden → act, ReLU,
``max_action · tanh``).

The interface every actor follows (the learner's actor step is one Adam step per agent):

* ``forward(inputs (B, N, in)) -> (B, N, act)``: every agent's action, row n by agent n;
* ``forward_agent(inputs (B, in), agent) -> (B, act)``: one agent's action, touching only the
  parameters that agent uses — so its actor step leaves another agent's own parameters with no
  gradient, and Adam leaves them where they are (one optimiser then behaves like HARL's
  optimiser per agent);
* ``inference_flops_per_agent()`` and ``nonzero_params_per_agent()``: one agent's forward pass
  (FLOP conventions of methods/common/flops.py) and the parameters it uses.

Schemes (``ACTOR_SCHEMES``, the config's ``actor_net``):
* ``fups``: one network for all agents (with ``obs_agent_id``: FuPS+ID);
* ``nops``: one network per agent;
* ``multih``: a shared trunk (both hidden layers), one output layer per agent;
* ``snp_ps``: the shared network with a fixed random subset of the hidden units per agent
  (SNP-PS, Kim & Sung 2023: structured pruning drawn once at initialisation; keep ratio
  ``snp_keep`` [unverified, as for QMIX in methods/marl/agents.py]);
* SePS (``SePSActor``): one network per cluster of agents (Christianos et al. 2021); the clusters
  come from a pre-training on random actions, so methods/marl/actor_critic/matd3_seps.py builds it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods.common.flops import forward_flops
from methods.common.nets import mlp


def linear_flops(n_in: float, n_out: float) -> float:
    """Forward FLOPs of one dense linear layer: a multiply-add per connection, a bias add per unit."""
    return 2 * n_in * n_out + n_out


def dense_actor_flops(input_dim: int, hidden: int, act_dim: int) -> float:
    """One dense actor MLP's forward FLOPs: the reference every scheme is counted against."""
    return linear_flops(input_dim, hidden) + linear_flops(hidden, hidden) + linear_flops(hidden, act_dim)


class Actor(nn.Module):
    """Base class: ``forward`` stacks ``forward_agent`` over the agents; subclasses that share
    the whole network override it with one batched pass."""

    n_agents: int
    max_action: float

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.stack([self.forward_agent(inputs[..., i, :], i) for i in range(self.n_agents)], -2)

    def inference_flops_per_agent(self) -> float:
        return float(forward_flops(self, 1))

    def nonzero_params_per_agent(self) -> float:
        return float(sum(p.numel() for p in self.parameters()))


class SharedActor(Actor):
    """FuPS: one MLP for every agent (no LayerNorm in the actor, as HARL)."""

    def __init__(self, input_dim: int, act_dim: int, hidden: int, max_action: float, n_agents: int = 1):
        super().__init__()
        self.net = mlp([input_dim, hidden, hidden, act_dim])
        self.max_action, self.n_agents = max_action, n_agents

    def forward(self, inputs: Tensor) -> Tensor:
        """``inputs [B, N, in]`` → ``[B, N, act]``."""
        return self.max_action * torch.tanh(self.net(inputs))

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:
        return self.max_action * torch.tanh(self.net(inputs))


class NoPSActor(Actor):
    """No sharing: N separate MLPs (HARL's non-shared MATD3). A Python loop over N ≤ 6 agents;
    separate modules rather than grouped weights so that agent i's step gives the other agents'
    parameters no gradient at all (a zero gradient would still move them through Adam's momentum)."""

    def __init__(self, input_dim: int, act_dim: int, hidden: int, max_action: float, n_agents: int):
        super().__init__()
        self.nets = nn.ModuleList(mlp([input_dim, hidden, hidden, act_dim]) for _ in range(n_agents))
        self.max_action, self.n_agents = max_action, n_agents

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:
        return self.max_action * torch.tanh(self.nets[agent](inputs))

    def inference_flops_per_agent(self) -> float:
        return float(forward_flops(self.nets[0], 1))

    def nonzero_params_per_agent(self) -> float:
        return float(sum(p.numel() for p in self.nets[0].parameters()))


class MultiHeadActor(Actor):
    """A shared trunk (input → hidden → hidden, ReLU) and one output layer per agent."""

    def __init__(self, input_dim: int, act_dim: int, hidden: int, max_action: float, n_agents: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, act_dim) for _ in range(n_agents))
        self.max_action, self.n_agents = max_action, n_agents

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:
        return self.max_action * torch.tanh(self.heads[agent](self.trunk(inputs)))

    def forward(self, inputs: Tensor) -> Tensor:
        z = self.trunk(inputs)  # the trunk once for all agents
        return self.max_action * torch.tanh(torch.stack([h(z[..., i, :]) for i, h in enumerate(self.heads)], -2))

    def inference_flops_per_agent(self) -> float:
        return float(forward_flops(self.trunk, 1) + forward_flops(self.heads[0], 1))

    def nonzero_params_per_agent(self) -> float:
        trunk = sum(p.numel() for p in self.trunk.parameters())
        return float(trunk + sum(p.numel() for p in self.heads[0].parameters()))


class SNPPSActor(Actor):
    """SNP-PS: the shared MLP; agent n keeps its own fixed random ``keep`` share of the units of
    each hidden layer (a unit mask per agent and layer, drawn once from the run's seeded global
    generator; no extra parameters)."""

    def __init__(self, input_dim: int, act_dim: int, hidden: int, max_action: float, n_agents: int, keep: float = 0.5):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc2, self.fc3 = nn.Linear(hidden, hidden), nn.Linear(hidden, act_dim)
        self.max_action, self.n_agents = max_action, n_agents
        k = max(1, int(round(keep * hidden)))
        masks = torch.zeros(2, n_agents, hidden)
        for layer in range(2):
            for n in range(n_agents):
                masks[layer, n, torch.randperm(hidden)[:k]] = 1.0
        self.register_buffer("unit_masks", masks)

    def _masked(self, inputs: Tensor, m1: Tensor, m2: Tensor) -> Tensor:
        z = F.relu(self.fc2(F.relu(self.fc1(inputs)) * m1)) * m2
        return self.max_action * torch.tanh(self.fc3(z))

    def forward(self, inputs: Tensor) -> Tensor:
        return self._masked(inputs, self.unit_masks[0], self.unit_masks[1])  # (N, hidden) broadcast over B

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:
        return self._masked(inputs, self.unit_masks[0, agent], self.unit_masks[1, agent])

    def inference_flops_per_agent(self) -> float:
        """A pruned unit drops its row in its layer and its column in the next one."""
        k1, k2 = (float(m.sum(-1).mean()) for m in self.unit_masks)
        return linear_flops(self.fc1.in_features, k1) + linear_flops(k1, k2) + linear_flops(k2, self.fc3.out_features)


class SePSActor(Actor):
    """SePS: one MLP per cluster of agents (clusters from methods/marl/seps_clusters.py, a buffer
    saved with the actor); agent n acts with its cluster's network, so an agent's actor step
    moves only its own cluster's parameters."""

    def __init__(
        self,
        input_dim: int,
        act_dim: int,
        hidden: int,
        max_action: float,
        n_agents: int,
        clusters: Tensor,
        n_clusters: int,
    ):
        super().__init__()
        # n_clusters is fixed by the config (k-means may leave a cluster empty)
        self.nets = nn.ModuleList(mlp([input_dim, hidden, hidden, act_dim]) for _ in range(n_clusters))
        self.register_buffer("clusters", clusters.clone().long())
        self.max_action, self.n_agents = max_action, n_agents

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:
        return self.max_action * torch.tanh(self.nets[int(self.clusters[agent])](inputs))

    def inference_flops_per_agent(self) -> float:
        return float(forward_flops(self.nets[0], 1))

    def nonzero_params_per_agent(self) -> float:
        return float(sum(p.numel() for p in self.nets[0].parameters()))


ACTOR_SCHEMES: dict[str, type[Actor]] = {
    "fups": SharedActor,
    "nops": NoPSActor,
    "multih": MultiHeadActor,
    "snp_ps": SNPPSActor,
}  # SePSActor needs its clusters first: methods/marl/actor_critic/matd3_seps.py builds it
