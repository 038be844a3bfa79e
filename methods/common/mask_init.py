"""Mask allocation and initialisation for :class:`~methods.common.masked.MaskedLinear` layers:
Erdős–Rényi per-layer densities and random / magnitude / Bernoulli masks (RigL, MAST, NE, OMNet).
Masks are float 0/1 tensors; positions are flat indices into ``W.view(-1)``, sorted ascending."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

import torch
from torch import Tensor

from methods.common.seeding import draw_device

if TYPE_CHECKING:  # masked.py re-exports bernoulli_mask, so no runtime import back
    from methods.common.masked import MaskedLinear


def top_k_positions(scores: Tensor, candidates: Tensor, k: int, largest: bool) -> Tensor:
    """Flat indices of the k best-scoring candidates, sorted ascending. Ties: lower index first
    (stable sort over candidates listed in index order), so results are deterministic."""
    idx = candidates.reshape(-1).nonzero().squeeze(1)
    if k <= 0 or idx.numel() == 0:
        return idx[:0]
    order = torch.sort(scores.reshape(-1)[idx], descending=largest, stable=True).indices
    return idx[order[:k]].sort().values


def er_densities(
    shapes: Sequence[Sequence[int]],
    density: float,
    kind: Literal["er", "erk"] = "er",
    dense: Iterable[int] = (),
    numels: Sequence[int] | None = None,
) -> list[float]:
    """Erdős–Rényi per-layer densities for a global (parameter-weighted) target ``density``
    (Mocanu et al. 2018; RigL, Evci et al. 2020; MAST/NE use ER).

    ``density_l = eps * raw_l``, ``raw_l = (n_in+n_out)/(n_in*n_out)`` (ER; shapes are
    ``(out, in, *kernel)``) or ``sum(shape)/prod(shape)`` (ERK), with eps solving
    ``sum_l density_l * numel_l = density * sum_l numel_l``. A layer whose density would exceed 1
    is made dense and eps re-solved over the rest; ``dense`` layers are dense from the start and
    count towards the budget. ``numels`` overrides each layer's parameter count (a layer of G
    independent ``(out, in)`` blocks, e.g. one per agent, has the ER density of one block and
    ``G·out·in`` parameters).
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    numel = list(numels) if numels is not None else [math.prod(s) for s in shapes]
    if kind == "er":
        raw = [(s[0] + s[1]) / (s[0] * s[1]) for s in shapes]
    elif kind == "erk":
        raw = [sum(s) / math.prod(s) for s in shapes]
    else:
        raise ValueError(f"unknown kind {kind!r}")
    is_dense = set(dense)
    budget = density * sum(numel)
    while True:
        rest = [i for i in range(len(shapes)) if i not in is_dense]
        left = budget - sum(numel[i] for i in is_dense)
        if left < -1e-9:
            raise ValueError("the dense layers alone exceed the density budget")
        if not rest:
            break
        eps = left / sum(raw[i] * numel[i] for i in rest)
        # making the largest-raw layer dense frees budget, so eps only grows: no layer leaves the set
        worst = max(rest, key=lambda i: raw[i])
        if eps * raw[worst] > 1.0:
            is_dense.add(worst)
            continue
        break
    return [1.0 if i in is_dense else eps * raw[i] for i in range(len(shapes))]


def random_mask(
    shape: Sequence[int],
    density: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Float 0/1 mask with exactly ``round(density * numel)`` ones at uniformly random places."""
    n = math.prod(shape)
    k = int(round(density * n))
    m = torch.zeros(n, device=device)
    m[torch.randperm(n, generator=generator, device=draw_device(generator))[:k].to(m.device)] = 1.0
    return m.view(*shape)


def magnitude_mask(weight: Tensor, density: float) -> Tensor:
    """Float 0/1 mask keeping the ``round(density*numel)`` largest-|w| entries (RLx2/NE/MAST init;
    ties go to the lower flat index)."""
    n = weight.numel()
    k = int(round(density * n))
    idx = top_k_positions(
        weight.detach().abs().reshape(-1), torch.ones(n, dtype=torch.bool, device=weight.device), k, largest=True
    )
    m = torch.zeros(n, device=weight.device)
    m[idx] = 1.0
    return m.view_as(weight)


def bernoulli_mask(
    shape: Sequence[int],
    keep: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Float 0/1 mask with i.i.d. Bernoulli(keep) entries (OMNet's init, reconstructed from the paper)."""
    return (torch.rand(*shape, generator=generator, device=draw_device(generator)) < keep).float().to(device)


@torch.no_grad()
def init_masks_(
    layers: Sequence[MaskedLinear],
    density: float,
    method: Literal["random", "magnitude", "bernoulli"] = "random",
    allocation: Literal["er", "erk", "uniform"] = "er",
    dense: Iterable[int] = (),
    generator: torch.Generator | None = None,
) -> list[float]:
    """Set every mask of ``layers`` at the allocated per-layer density and zero unused weights.

    Each of a layer's K masks is drawn independently (OMNet's subnetworks). Returns the densities.
    """
    shapes = [tuple(layer.weight.shape) for layer in layers]
    dense = set(dense)
    if allocation == "uniform":
        dens = [1.0 if i in dense else density for i in range(len(layers))]
    else:
        dens = er_densities(shapes, density, allocation, dense)
    for layer, d in zip(layers, dens):
        for k in range(layer.n_masks):
            if method == "random":
                m = random_mask(layer.weight.shape, d, generator)
            elif method == "magnitude":
                m = magnitude_mask(layer.weight, d)
            elif method == "bernoulli":
                m = bernoulli_mask(layer.weight.shape, d, generator)
            else:
                raise ValueError(f"unknown method {method!r}")
            layer.masks[k].copy_(m)
        layer.enforce_masks_()
    return dens
