"""Networks shared by the continuous-control core and multi-agent MATD3: MLP blocks, the
deterministic TD3 actor, the squashed-Gaussian SAC actor and a list of Q-networks (twin for
TD3/SAC/MATD3, N for REDQ).

Hidden block: Linear -> [Dropout] -> [LayerNorm] -> ReLU (DroQ's order). Each ReLU is its own
module so that forward hooks can record every hidden layer's activations (dormant ratios).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

LAYERNORM = ("none", "last", "all")
LinearFactory = Callable[[int, int], nn.Module]


def mlp(
    sizes: list[int], layernorm: str = "none", dropout: float = 0.0, linear: LinearFactory = nn.Linear
) -> nn.Sequential:
    """sizes = [in, h1, ..., out]; hidden blocks as above, a plain linear output."""
    if layernorm not in LAYERNORM:
        raise ValueError(f"layernorm must be one of {LAYERNORM} (got {layernorm!r})")
    layers: list[nn.Module] = []
    n_hidden = len(sizes) - 2
    for i in range(n_hidden):
        layers.append(linear(sizes[i], sizes[i + 1]))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if layernorm == "all" or (layernorm == "last" and i == n_hidden - 1):
            layers.append(nn.LayerNorm(sizes[i + 1]))
        layers.append(nn.ReLU())
    layers.append(linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def relus(module: nn.Module) -> list[nn.Module]:
    """The ReLU modules of a net, in order (hook them to record hidden activations)."""
    return [m for m in module.modules() if isinstance(m, nn.ReLU)]


def hidden_layers(net: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """(linear_in, relu, linear_out) for every hidden layer of every MLP block in ``net``: the
    ReLU after each Linear (plain or masked; 2-D weight, so LayerNorm is skipped) and the
    Linear it feeds. ReDo resets units through the pair; NE prunes linear_in's rows."""
    out = []
    for seq in (m for m in net.modules() if isinstance(m, nn.Sequential)):
        mods = list(seq)
        linears = [i for i, m in enumerate(mods) if hasattr(m, "weight") and m.weight.dim() == 2]
        for a, b in zip(linears[:-1], linears[1:]):
            relu = next(m for m in mods[a:b] if isinstance(m, nn.ReLU))
            out.append((mods[a], relu, mods[b]))
    return out


class Actor(nn.Module):
    """TD3: obs -> 256 -> 256 -> act, max_action * tanh."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, max_action: float, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.net = mlp([obs_dim, hidden, hidden, act_dim], linear=linear)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.net(obs))


class GaussianActor(nn.Module):
    """SAC: tanh-squashed Gaussian; log std clamped to [-5, 2]."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, max_action: float, linear: LinearFactory = nn.Linear):
        super().__init__()
        self.net = mlp([obs_dim, hidden, hidden, 2 * act_dim], linear=linear)
        self.max_action = max_action

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Action in [-max_action, max_action] and its log-probability ``[B]``."""
        out = self.net(obs)
        eps = None
        if not deterministic:
            shape = (*out.shape[:-1], out.shape[-1] // 2)
            eps = torch.randn(shape, generator=gen, device=out.device, dtype=out.dtype)
        return squashed_gaussian(out, eps, self.max_action)


def squashed_gaussian(
    out: torch.Tensor, eps: torch.Tensor | None, max_action: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAC's head on the network output ``[..., 2 * act]`` (mean, log std): the action
    ``max_action * tanh(mean + std * eps)`` (``eps`` None: the mean) and its log-probability
    ``[...]``. Shared by GaussianActor and the seed-stacked SAC (methods/control/seed_batch.py)."""
    mean, log_std = out.chunk(2, dim=-1)
    log_std = log_std.clamp(GaussianActor.LOG_STD_MIN, GaussianActor.LOG_STD_MAX)
    u = mean if eps is None else mean + log_std.exp() * eps
    a = torch.tanh(u)
    # log N(u; mean, std) - sum log(1 - tanh(u)^2), the latter in a stable form
    log_prob = (-0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
    return max_action * a, log_prob - a.shape[-1] * math.log(max_action)


class Critics(nn.Module):
    """``n`` independent Q-networks; ``forward(obs, act) -> [n, B]``."""

    def __init__(
        self,
        n: int,
        obs_dim: int,
        act_dim: int,
        hidden: int,
        hidden_layers: int = 2,
        layernorm: str = "none",
        dropout: float = 0.0,
        linear: LinearFactory = nn.Linear,
    ):
        super().__init__()
        sizes = [obs_dim + act_dim] + [hidden] * hidden_layers + [1]
        self.members = nn.ModuleList(mlp(sizes, layernorm, dropout, linear) for _ in range(n))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], -1)
        return torch.stack([m(x).squeeze(-1) for m in self.members])

    def first(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Q_1 alone ``[B]`` (TD3's actor loss)."""
        return self.members[0](torch.cat([obs, act], -1)).squeeze(-1)
