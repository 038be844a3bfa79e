"""Per-time-step agent Q networks for the value-based MARL learner (methods/marl/value/qmix.py) and
the parameter-sharing schemes, as agent networks over the EPyMARL "1R3" architecture
(obs → FC64 ReLU → GRUCell64 → FC64 ReLU → FC64 ReLU → FC n_actions; Kaleidoscope MPE configs,
LXXXXR/Kaleidoscope Kalei_MPE).

The interface every agent network follows (fixed; Kaleidoscope's masked network plugs in here):

* ``init_hidden(B) -> (B, N, hidden_dim)`` zeros;
* ``forward(inputs (B, N, input_dim), hidden (B, N, hidden_dim)) -> (q (B, N, n_actions),
  new hidden)``; row n of dim 1 is agent n (its identity, for per-agent parameters);
* hooks declared on :class:`AgentNetwork` with no-op defaults, which a scheme overrides:
  ``auxiliary_loss(td_loss)`` (added to the TD loss; None: nothing), ``on_env_steps(t_env,
  t_max, generator)`` (after each collected episode),
  ``diagnostics()`` (logged with each evaluation), ``inference_flops_per_agent()`` and
  ``nonzero_params_per_agent()`` (final metrics; FLOP conventions of methods/common/flops.py,
  with the GRU cell counted as its two matrix products plus biases).

The learner appends the one-hot agent id to the observation when the config's
``obs_agent_id`` is set (the ``fups_id`` scheme; the network just sees a wider input).

Schemes (``SCHEMES``):
* ``fups``: full parameter sharing, one network for all agents;
* ``fups_id``: the same network, input ⊕ one-hot id (EPyMARL's default);
* ``nops``: no sharing, N independent networks evaluated together as batched (grouped)
  matrix products, no Python loop over agents;
* ``multih``: shared trunk, one output layer (head) per agent.

* ``snp_ps``: one shared network whose hidden units are pruned per agent by a fixed random
  structured mask drawn at initialisation (SNP-PS, Kim & Sung 2023; methods/marl/value/qmix_snp.py);
* ``seps``: one network per cluster of agents, the clusters found before training from an
  encoder of the agents' transitions (SePS, Christianos et al. 2021; methods/marl/value/seps.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class AgentNetwork(nn.Module):
    """Base class of the agent Q networks (see the module docstring for the contract)."""

    n_agents: int
    n_actions: int
    hidden_dim: int
    input_dim: int

    def init_hidden(self, batch_size: int) -> Tensor:
        p = next(self.parameters())
        return p.new_zeros(batch_size, self.n_agents, self.hidden_dim)

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def diagnostics(self) -> dict[str, float]:
        return {}

    def auxiliary_loss(self, td_loss: Tensor) -> Tensor | None:
        """A loss added to the TD loss (Kaleidoscope's diversity term); None: none."""
        return None

    def on_env_steps(self, t_env: int, t_max: int, generator: torch.Generator | None = None) -> bool:
        """Called after each collected batch of episodes (Kaleidoscope's resets); True if it
        changed the network."""
        return False

    def inference_flops_per_agent(self) -> float:
        """A dense 1R3 agent's forward FLOPs (every scheme here evaluates one full agent)."""
        return float(dense_1r3_flops(self.input_dim, self.hidden_dim, self.n_actions))

    def nonzero_params_per_agent(self) -> float:
        """Parameters one agent's forward uses (a shared network counts in full for each)."""
        return float(sum(p.numel() for p in self.parameters()))


def dense_1r3_flops(input_dim: int, hidden: int, n_actions: int) -> int:
    """Forward FLOPs of one dense 1R3 agent step: 2·in·out + out per linear layer, and the GRU
    cell's two products (x·W_ih, h·W_hh, 3 gates each) with their biases."""

    def lin(i: int, o: int) -> int:
        return 2 * i * o + o

    return (
        lin(input_dim, hidden)
        + 2 * lin(hidden, 3 * hidden)  # fc1; GRU x·W_ih and h·W_hh
        + 2 * lin(hidden, hidden)
        + lin(hidden, n_actions)
    )  # fc2, fc3; fc4


class FuPSAgent(AgentNetwork):
    """One 1R3 network shared by all agents (``fups`` / ``fups_id``)."""

    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int = 64):
        super().__init__()
        self.input_dim, self.n_agents, self.n_actions, self.hidden_dim = input_dim, n_agents, n_actions, hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, n_actions)

    def trunk(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = inputs.shape
        x = F.relu(self.fc1(inputs.reshape(b * n, -1)))
        h = self.rnn(x, hidden.reshape(b * n, -1))
        z = F.relu(self.fc3(F.relu(self.fc2(h))))
        return z.view(b, n, -1), h.view(b, n, -1)

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        z, h = self.trunk(inputs, hidden)
        return self.fc4(z), h


class GroupedLinear(nn.Module):
    """N independent linear layers applied to the N rows of dim 1 in one batched product:
    (B, N, in) -> (B, N, out). Initialised like nn.Linear, each group independently."""

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """``index`` (N,): row n uses group ``index[n]`` (SePS: agents of a cluster share one)."""
        w, bias = (self.weight, self.bias) if index is None else (self.weight[index], self.bias[index])
        # one batched matmul over the agent axis (einsum's backward was ~15x slower here on CPU)
        return torch.baddbmm(bias.unsqueeze(1), x.transpose(0, 1), w).transpose(0, 1)


class GroupedGRUCell(nn.Module):
    """N independent GRU cells (PyTorch's gate equations and init), batched over agents."""

    def __init__(self, groups: int, input_size: int, hidden_size: int):
        super().__init__()
        self.ih = GroupedLinear(groups, input_size, 3 * hidden_size)
        self.hh = GroupedLinear(groups, hidden_size, 3 * hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)  # nn.GRUCell initialises all with 1/sqrt(hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, h: Tensor, index: Tensor | None = None) -> Tensor:
        xr, xz, xn = self.ih(x, index).chunk(3, -1)
        hr, hz, hn = self.hh(h, index).chunk(3, -1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class NoPSAgent(AgentNetwork):
    """No parameter sharing: N separate 1R3 networks, evaluated as grouped products. With
    ``groups`` < N (SePS), G networks and ``self.index`` (N,) saying which one each agent uses."""

    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int = 64, groups: int | None = None):
        super().__init__()
        self.input_dim, self.n_agents, self.n_actions, self.hidden_dim = input_dim, n_agents, n_actions, hidden_dim
        g = self.groups = n_agents if groups is None else groups
        self.index: Tensor | None = None
        self.fc1 = GroupedLinear(g, input_dim, hidden_dim)
        self.rnn = GroupedGRUCell(g, hidden_dim, hidden_dim)
        self.fc2 = GroupedLinear(g, hidden_dim, hidden_dim)
        self.fc3 = GroupedLinear(g, hidden_dim, hidden_dim)
        self.fc4 = GroupedLinear(g, hidden_dim, n_actions)

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        c = self.index
        h = self.rnn(F.relu(self.fc1(inputs, c)), hidden, c)
        return self.fc4(F.relu(self.fc3(F.relu(self.fc2(h, c)), c)), c), h

    def nonzero_params_per_agent(self) -> float:
        """One network's parameters (each agent evaluates one of the G)."""
        return float(sum(p.numel() for p in self.parameters())) / self.groups


class MultiHeadAgent(FuPSAgent):
    """Shared trunk (fc1, GRU, fc2, fc3), one output layer per agent."""

    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int = 64):
        super().__init__(input_dim, n_agents, n_actions, hidden_dim)
        del self.fc4
        self.heads = GroupedLinear(n_agents, hidden_dim, n_actions)

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        z, h = self.trunk(inputs, hidden)
        return self.heads(z), h

    def nonzero_params_per_agent(self) -> float:
        trunk = sum(p.numel() for name, p in self.named_parameters() if not name.startswith("heads."))
        return float(trunk + sum(p[0].numel() for p in self.heads.parameters()))


class SNPPSAgent(FuPSAgent):
    """SNP-PS (Kim & Sung, AAMAS 2023): the shared 1R3 network, with agent n seeing only its own
    fixed random subset of the hidden units of fc1, fc2 and fc3 (structured pruning: a unit
    mask per agent, ``keep`` of the units, drawn once at initialisation; no extra parameters).
    The GRU's state stays whole (its input is masked through fc1). [The unit keep ratio and the
    masked layers are read from the abstract's "structured pruning"; unverified.]"""

    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int = 64, keep: float = 0.5):
        super().__init__(input_dim, n_agents, n_actions, hidden_dim)
        k = max(1, int(round(keep * hidden_dim)))
        masks = torch.zeros(3, n_agents, hidden_dim)
        for layer in range(3):
            for n in range(n_agents):
                masks[layer, n, torch.randperm(hidden_dim)[:k]] = 1.0  # the global generator: seeded by the run
        self.register_buffer("unit_masks", masks)

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = inputs.shape
        m1, m2, m3 = self.unit_masks  # (N, hidden) each, broadcast over the batch
        x = F.relu(self.fc1(inputs)) * m1
        h = self.rnn(x.reshape(b * n, -1), hidden.reshape(b * n, -1)).view(b, n, -1)
        z = F.relu(self.fc3(F.relu(self.fc2(h)) * m2)) * m3
        return self.fc4(z), h

    def inference_flops_per_agent(self) -> float:
        """Pruned units drop their rows in fc1/fc2/fc3 and their columns in the next layer
        (the GRU's x·W_ih sees only fc1's kept units; h·W_hh stays whole)."""
        k1, k2, k3 = (float(m.sum(-1).mean()) for m in self.unit_masks)
        d, h, a = self.input_dim, self.hidden_dim, self.n_actions
        lin = lambda i, o: 2 * i * o + o  # noqa: E731
        return lin(d, k1) + lin(k1, 3 * h) + lin(h, 3 * h) + lin(h, k2) + lin(k2, k3) + lin(k3, a)


# scheme -> network class; whether the learner appends the one-hot id is the config's obs_agent_id
SCHEMES: dict[str, type[AgentNetwork]] = {
    "fups": FuPSAgent,
    "fups_id": FuPSAgent,
    "nops": NoPSAgent,
    "multih": MultiHeadAgent,
}
