"""A sparse 1R3 agent network for MAST (methods/marl/value/mast.py): the architecture of
methods/marl/agents.py (obs → FC ReLU → GRUCell → FC ReLU → FC ReLU → FC n_actions) with every
weight matrix, the GRU's two included, a :class:`~methods.common.masked.GroupedMaskedLinear`:

* ``groups = n_agents``: one sparse network per agent (no sharing; MAST's per-agent masks,
  paper Fig. 11/12), evaluated as batched products over the agent axis;
* ``groups = 1``: one sparse network shared by all agents (with the one-hot id in the input).

Masks are set by the learner (ER allocation, magnitude init, topology updates); the network
only applies them. Biases are dense (RigL/RLx2 sparsify weight matrices only). FLOPs follow
agents.dense_1r3_flops: 2 per active multiply-add plus the bias adds, per agent.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from methods.common.masked import GroupedMaskedLinear
from methods.marl.agents import AgentNetwork


class SparseAgent(AgentNetwork):
    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int = 64, groups: int | None = None):
        super().__init__()
        self.input_dim, self.n_agents, self.n_actions, self.hidden_dim = input_dim, n_agents, n_actions, hidden_dim
        g = n_agents if groups is None else groups
        if g not in (1, n_agents):
            raise ValueError(f"groups must be 1 (shared) or n_agents={n_agents}, got {g}")
        self.groups = g
        self.fc1 = GroupedMaskedLinear(g, input_dim, hidden_dim)
        # the GRU cell's x·W_ih and h·W_hh (PyTorch's gate order r, z, n and its U(±1/√hidden) init)
        self.rnn_ih = GroupedMaskedLinear(g, hidden_dim, 3 * hidden_dim)
        self.rnn_hh = GroupedMaskedLinear(g, hidden_dim, 3 * hidden_dim)
        self.fc2 = GroupedMaskedLinear(g, hidden_dim, hidden_dim)
        self.fc3 = GroupedMaskedLinear(g, hidden_dim, hidden_dim)
        self.fc4 = GroupedMaskedLinear(g, hidden_dim, n_actions)

    def layers(self) -> list[GroupedMaskedLinear]:
        return [self.fc1, self.rnn_ih, self.rnn_hh, self.fc2, self.fc3, self.fc4]

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.fc1(inputs))
        xr, xz, xn = self.rnn_ih(x).chunk(3, -1)
        hr, hz, hn = self.rnn_hh(hidden).chunk(3, -1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + r * hn) + z * hidden
        return self.fc4(F.relu(self.fc3(F.relu(self.fc2(h))))), h

    @torch.no_grad()
    def _per_agent(self, per_weight: float) -> Tensor:
        """Σ over layers of (per_weight · active weights + bias terms), per agent (N,)."""
        total = torch.zeros(self.n_agents)
        for layer in self.layers():
            nnz = layer.group_nonzeros().cpu().float()
            total += per_weight * nnz.expand(self.n_agents) + layer.group_out
        return total

    def inference_flops_per_agent(self) -> float:
        return float(self._per_agent(2.0).mean())

    def nonzero_params_per_agent(self) -> float:
        return float(self._per_agent(1.0).mean())

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        """Density of the agent networks' weights, and the spread of the per-agent densities
        (MAST lets topology updates move connections between agents)."""
        nnz = sum(layer.group_nonzeros().cpu().float() for layer in self.layers())
        size = sum(layer.in_features * layer.group_out for layer in self.layers())
        dens = nnz / size
        return {"agent_density": float(dens.mean()), "agent_density_spread": float(dens.max() - dens.min())}
