"""Prune / grow of :class:`~methods.common.masked.MaskedLinear` connections: magnitude prune,
gradient grow (RigL, Evci et al. 2020; NE's "potential gradient"), random grow (SET), RigL's
constant-density drop-and-grow, the cosine update fraction, and the reset of the optimizer
state at changed positions. Positions are flat indices into ``W.view(-1)``, sorted ascending."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from methods.common.mask_init import top_k_positions
from methods.common.masked import MaskedLinear
from methods.common.seeding import draw_device

GrowInit = Literal["zero", "lecun", "kaiming_uniform", "random"]


@torch.no_grad()
def reset_param_state(optimizer: torch.optim.Optimizer, param: Tensor, where: Tensor) -> None:
    """Zero every per-entry state tensor of ``param`` (Adam's exp_avg/exp_avg_sq/max_exp_avg_sq,
    RMSprop's square_avg/grad_avg, momentum buffers) at ``where`` (bool like ``param`` or flat
    indices). A pruned entry must not keep moving on stale momentum; a regrown one starts fresh."""
    state = optimizer.state.get(param)
    if not state:
        return
    for key, v in state.items():
        if key == "step" or not torch.is_tensor(v) or v.shape != param.shape:
            continue
        if where.dtype == torch.bool:
            v[where] = 0
        else:
            v.view(-1)[where] = 0


def reset_optimizer_state(optimizer: torch.optim.Optimizer, layer: nn.Module, positions: Tensor) -> None:
    """Reset the optimizer state of ``layer.weight`` at ``positions`` (flat indices or bool mask)."""
    reset_param_state(optimizer, layer.weight, positions)


def grow_values(
    layer: MaskedLinear, n: int, init: GrowInit | float = "zero", generator: torch.Generator | None = None
) -> Tensor:
    """Initial values for ``n`` grown weights: zero (RigL/NE/MAST default), LeCun normal truncated
    at ±2σ (σ = 1/sqrt(fan_in); NE option), or PyTorch's default U(±1/sqrt(fan_in)) ("random")."""
    w = layer.weight
    fan_in = layer.in_features
    if isinstance(init, (int, float)):
        return torch.full((n,), float(init), dtype=w.dtype, device=w.device)
    if init == "zero":
        return torch.zeros(n, dtype=w.dtype, device=w.device)
    if init == "lecun":
        std = 1.0 / math.sqrt(fan_in)
        v = torch.empty(n, dtype=w.dtype)
        nn.init.trunc_normal_(v, 0.0, std, -2 * std, 2 * std, generator=generator)
        return v.to(w.device)
    if init in ("kaiming_uniform", "random"):
        b = 1.0 / math.sqrt(fan_in)
        u = torch.rand(n, generator=generator, device=draw_device(generator), dtype=w.dtype)
        return ((u * 2 - 1) * b).to(w.device)
    raise ValueError(f"unknown grow init {init!r}")


@torch.no_grad()
def magnitude_prune(layer: MaskedLinear, k: int, mask_index: int = 0) -> Tensor:
    """Remove the ``k`` active connections of mask ``mask_index`` with the smallest ``|W|``.

    Their weights are zeroed where no other mask still uses them (W is shared). Returns positions.
    """
    active = layer.masks[mask_index].bool()
    pos = top_k_positions(layer.weight.abs(), active, min(k, int(active.sum())), largest=False)
    layer.masks[mask_index].view(-1)[pos] = 0.0
    unused = ~layer.union_mask().view(-1)[pos]
    layer.weight.view(-1)[pos[unused]] = 0.0
    return pos


@torch.no_grad()
def _activate(
    layer: MaskedLinear, pos: Tensor, mask_index: int, init: GrowInit | float, generator: torch.Generator | None
) -> Tensor:
    # set the value only where the position was absent from every mask: a connection another
    # mask already uses keeps its shared value
    fresh = ~layer.union_mask().view(-1)[pos]
    layer.masks[mask_index].view(-1)[pos] = 1.0
    vals = grow_values(layer, int(pos.numel()), init, generator)
    layer.weight.view(-1)[pos[fresh]] = vals[fresh]
    return pos


def _grow_candidates(layer: MaskedLinear, mask_index: int, exclude: Tensor | None) -> Tensor:
    cand = ~layer.masks[mask_index].bool().view(-1)
    if exclude is not None and exclude.numel():
        cand = cand.clone()
        if exclude.dtype == torch.bool:
            cand &= ~exclude.view(-1)
        else:
            cand[exclude] = False
    return cand


@torch.no_grad()
def gradient_grow(
    layer: MaskedLinear,
    k: int,
    dense_grad: Tensor,
    mask_index: int = 0,
    init: GrowInit | float = "zero",
    exclude: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Activate the ``k`` absent connections (not in ``exclude``) with the largest ``|dense_grad|``
    (RigL grow; NE's "potential gradient") and set their weights by ``init``. ``dense_grad`` is
    ``[out,in]`` or ``[K,out,in]``. Returns positions."""
    g = dense_grad[mask_index] if dense_grad.dim() == 3 else dense_grad
    cand = _grow_candidates(layer, mask_index, exclude)
    pos = top_k_positions(g.abs(), cand, k, largest=True)
    return _activate(layer, pos, mask_index, init, generator)


@torch.no_grad()
def random_grow(
    layer: MaskedLinear,
    k: int,
    mask_index: int = 0,
    init: GrowInit | float = "zero",
    exclude: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Activate ``k`` uniformly random absent connections (SET, Mocanu et al. 2018). Returns positions."""
    cand = _grow_candidates(layer, mask_index, exclude)
    scores = torch.rand(cand.numel(), generator=generator, device=draw_device(generator)).to(cand.device)
    pos = top_k_positions(scores, cand, k, largest=True)
    return _activate(layer, pos, mask_index, init, generator)


@dataclass
class TopologyChange:
    pruned: Tensor
    grown: Tensor

    @property
    def changed(self) -> Tensor:
        """All positions whose connection changed (for optimizer-state reset)."""
        return torch.unique(torch.cat([self.pruned, self.grown]))


@torch.no_grad()
def prune_and_grow(
    layer: MaskedLinear,
    k: int,
    dense_grad: Tensor | None = None,
    mask_index: int = 0,
    init: GrowInit | float = "zero",
    grow: Literal["gradient", "random"] = "gradient",
    allow_regrow: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> TopologyChange:
    """RigL/MAST drop-and-grow at constant density: prune the k smallest-|W| active connections,
    grow k absent ones (by |dense grad|, or at random for SET). Just-pruned positions cannot be
    regrown unless ``allow_regrow`` (as NE prescribes: a pruned position waits one event). k is clamped so the
    count stays equal.
    With ``optimizer``, the state of every changed position is reset."""
    m = layer.masks[mask_index]
    n_active = int(m.sum())
    k = max(0, min(k, n_active, m.numel() - n_active))
    pruned = magnitude_prune(layer, k, mask_index)
    exclude = None if allow_regrow else pruned
    if grow == "gradient":
        if dense_grad is None:
            raise ValueError("gradient growth needs dense_grad")
        grown = gradient_grow(layer, k, dense_grad, mask_index, init, exclude, generator)
    elif grow == "random":
        grown = random_grow(layer, k, mask_index, init, exclude, generator)
    else:
        raise ValueError(f"unknown grow rule {grow!r}")
    change = TopologyChange(pruned, grown)
    if optimizer is not None:
        reset_optimizer_state(optimizer, layer, change.changed)
    return change


def cosine_fraction(step: int, t_end: int, zeta: float) -> float:
    """Cosine-annealed update fraction ``zeta/2 * (1 + cos(pi * t / T_end))`` (RigL, Evci et al. 2020;
    as MAST and NE use it); 0 after ``t_end``."""
    if step >= t_end:
        return 0.0
    return 0.5 * zeta * (1.0 + math.cos(math.pi * step / t_end))
