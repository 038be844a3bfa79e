"""Plasticity tools: τ-dormant neurons, ReDo resets, active-unit statistics, Plasticity Injection.

* Dormancy score (ReDo, Sokar et al. 2023, "The Dormant Neuron Phenomenon in Deep RL"):
  ``s_i = E_x|h_i(x)| / ((1/H) sum_j E_x|h_j(x)|)``; unit i is τ-dormant if ``s_i <= τ``.
  NE (Liu et al. 2025) prunes units with ``s_i = 0`` (τ = 0) and plots the
  "activated-neuron ratio" = 1 − dormant ratio.
* FAU (NE's code): the share of (sample, hidden unit) pairs with output > 0.
* Plasticity Injection (Nikishin et al. 2023): ``h(x) = f_θ(x) + f_θ'(x) − f_θ'_frozen(x)``.

Activations are recorded with forward hooks; features are the last dimension, every other
dimension is pooled as samples.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from methods.common.masked import MaskedLinear
from methods.common.prune_grow import reset_param_state
from methods.common.seeding import draw_device

Activations = Mapping[str, Tensor] | Sequence[Tensor] | Tensor


# ---------------------------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------------------------


class ActivationRecord(dict):
    """name → activations ``[N, H]`` (all forwards inside the context, concatenated)."""


@contextmanager
def record_activations(
    modules: Mapping[str, nn.Module] | Sequence[nn.Module], transform: Callable[[Tensor], Tensor] | None = None
) -> Iterator[ActivationRecord]:
    """Capture the outputs of ``modules`` during the ``with`` block (detached).

    Hook the activation modules (e.g. ``nn.ReLU``) to get post-activation values, or hook the
    Linear layers with ``transform=torch.relu`` when the net applies ``F.relu`` functionally.
    Names default to ``"0", "1", …`` for a sequence. The record is filled when the block exits.
    """
    named = dict(modules) if isinstance(modules, Mapping) else {str(i): m for i, m in enumerate(modules)}
    chunks: dict[str, list[Tensor]] = {name: [] for name in named}

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs, output) -> None:
            out = output[0] if isinstance(output, tuple) else output
            out = out.detach()
            if transform is not None:
                out = transform(out)
            chunks[name].append(out.reshape(-1, out.shape[-1]))

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in named.items()]
    record = ActivationRecord()
    try:
        yield record
    finally:
        for h in handles:
            h.remove()
        for name, parts in chunks.items():
            if parts:
                record[name] = torch.cat(parts, dim=0)


def _layers(acts: Activations) -> list[Tensor]:
    if torch.is_tensor(acts):
        return [acts]
    if isinstance(acts, Mapping):
        return list(acts.values())
    return list(acts)


# ---------------------------------------------------------------------------------------------
# scores and ratios
# ---------------------------------------------------------------------------------------------


def dormant_scores(h: Tensor) -> Tensor:
    """ReDo score per unit ``[H]`` from activations ``[..., H]``. A layer whose units are all
    silent scores 0 everywhere (all dormant) instead of dividing by zero."""
    mean_abs = h.detach().abs().reshape(-1, h.shape[-1]).mean(dim=0)
    denom = mean_abs.mean()
    if denom <= 0:
        return torch.zeros_like(mean_abs)
    return mean_abs / denom


def dormant_units(h: Tensor, tau: float) -> Tensor:
    """Bool ``[H]``: τ-dormant units (``s_i <= τ``; τ = 0 means exactly silent)."""
    return dormant_scores(h) <= tau


def dormant_ratio(acts: Activations, tau: float) -> float:
    """Share of τ-dormant units over all given layers (units pooled across layers)."""
    layers = _layers(acts)
    n_dormant = sum(int(dormant_units(h, tau).sum()) for h in layers)
    n_units = sum(h.shape[-1] for h in layers)
    return n_dormant / max(n_units, 1)


def active_unit_ratio(acts: Activations, tau: float = 0.0) -> float:
    """Units with ``s_i > τ``: 1 − dormant ratio (NE's "activated-neuron ratio")."""
    return 1.0 - dormant_ratio(acts, tau)


def fraction_active_units(acts: Activations) -> float:
    """FAU as in NE's code: share of (sample, unit) pairs with output > 0, pooled
    over all given (post-ReLU) layers. Differs from the active-unit ratio, which is per unit."""
    layers = _layers(acts)
    pos = sum(int((h > 0).sum()) for h in layers)
    total = sum(h.numel() for h in layers)
    return pos / max(total, 1)


class TrainingActivity:
    """Hidden-unit statistics of a net's *training* forwards, by forward hooks on its activation
    modules that record only with gradients on (evaluation and no-grad diagnostics leave them
    alone, so logging never feeds back into training). Per update (``start`` ... ``finish``):
    ``fau``, the FAU pooled over every forward of the update (NE's code averages the per-layer
    shares), and ``dormant_ratio``, the share of tau = 0 dormant units on the first forward
    through each module (e.g. the TD loss's batch)."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.fau = 1.0
        self.dormant_ratio: float | None = None
        self._fau_parts: list[Tensor] = []
        self._units_active: dict[int, Tensor] = {}
        for m in modules:
            m.register_forward_hook(self._record)

    def _record(self, module: nn.Module, _inputs, out: Tensor) -> None:
        if torch.is_grad_enabled():
            active = out.detach() > 0
            self._fau_parts.append(active.float().mean())
            if id(module) not in self._units_active:
                self._units_active[id(module)] = active.reshape(-1, active.shape[-1]).any(0)

    def start(self) -> None:
        self._fau_parts, self._units_active = [], {}

    def finish(self) -> None:
        if self._fau_parts:
            self.fau = float(torch.stack(self._fau_parts).mean())
        if self._units_active:
            units = list(self._units_active.values())
            self.dormant_ratio = 1.0 - sum(int(u.sum()) for u in units) / sum(u.numel() for u in units)

    def state_dict(self) -> dict[str, float | None]:
        return {"fau": self.fau, "dormant_ratio": self.dormant_ratio}

    def load_state_dict(self, d: dict[str, float | None]) -> None:
        self.fau, self.dormant_ratio = d["fau"], d["dormant_ratio"]


# ---------------------------------------------------------------------------------------------
# ReDo
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def redo_reset(
    linear_in: nn.Module,
    linear_out: nn.Module | None,
    dormant: Tensor,
    optimizer: torch.optim.Optimizer | None = None,
    init: str = "kaiming_uniform",
    bias: str = "zero",
    generator: torch.Generator | None = None,
) -> int:
    """ReDo (Sokar et al. 2023, Alg. 1): for each dormant unit i, re-initialise its incoming weights
    (row i of ``linear_in.weight``), zero its outgoing weights (column i of ``linear_out.weight``)
    and reset the optimizer state of exactly those entries. Everything else is left untouched.

    ``init``: "kaiming_uniform" (PyTorch's default U(±1/sqrt(fan_in))) or "lecun" (normal,
    σ = 1/sqrt(fan_in), truncated at ±2σ). ``bias``: the incoming bias of a dormant unit is set to
    "zero" [choice: a dead ReLU unit's negative bias would keep it dead], re-drawn ("init") or
    kept ("keep"). Works for Linear and MaskedLinear (absent connections stay zero).
    Returns the number of units reset.
    """
    idx = dormant.nonzero().squeeze(1) if dormant.dtype == torch.bool else dormant.long()
    n = int(idx.numel())
    if n == 0:
        return 0
    w = linear_in.weight
    fan_in = math.prod(w.shape[1:])
    bound = 1.0 / math.sqrt(fan_in)
    shape = (n, *w.shape[1:])
    if init == "kaiming_uniform":
        new = (torch.rand(shape, generator=generator, device=draw_device(generator), dtype=w.dtype) * 2 - 1) * bound
    elif init == "lecun":
        new = torch.empty(shape, dtype=w.dtype)
        nn.init.trunc_normal_(new, 0.0, bound, -2 * bound, 2 * bound, generator=generator)
    else:
        raise ValueError(f"unknown init {init!r}")
    new = new.to(w.device)
    if isinstance(linear_in, MaskedLinear):
        new = new * linear_in.union_mask()[idx].to(w.dtype)
    w[idx] = new
    rows = torch.zeros(w.shape[0], dtype=torch.bool, device=w.device)
    rows[idx] = True
    b = getattr(linear_in, "bias", None)
    if b is not None and bias != "keep":
        if bias == "zero":
            b[idx] = 0.0
        elif bias == "init":
            u = torch.rand(n, generator=generator, device=draw_device(generator), dtype=b.dtype)
            b[idx] = ((u * 2 - 1) * bound).to(b.device)
        else:
            raise ValueError(f"unknown bias rule {bias!r}")
    if linear_out is not None:
        linear_out.weight[:, idx] = 0.0
    if optimizer is not None:
        reset_param_state(optimizer, w, rows.view(-1, *([1] * (w.dim() - 1))).expand_as(w))
        if b is not None and bias != "keep":
            reset_param_state(optimizer, b, rows)
        if linear_out is not None:
            wo = linear_out.weight
            cols = torch.zeros(wo.shape[1], dtype=torch.bool, device=wo.device)
            cols[idx] = True
            reset_param_state(optimizer, wo, cols.view(1, -1, *([1] * (wo.dim() - 2))).expand_as(wo))
    return n


# ---------------------------------------------------------------------------------------------
# Plasticity Injection
# ---------------------------------------------------------------------------------------------


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class PlasticityInjection(nn.Module):
    """``old(x) + (new(x) − new_frozen(x))`` with ``old`` and ``new_frozen`` frozen (Nikishin et
    al. 2023). The bracket is computed first, so at injection it is exactly 0 and the output is
    bitwise the old head's. Gradients still flow to the input through all three branches."""

    def __init__(self, old: nn.Module, new: nn.Module):
        super().__init__()
        self.old = _freeze(old)
        self.new = new
        self.new_frozen = _freeze(copy.deepcopy(new))

    def forward(self, *args, **kwargs) -> Tensor:
        return self.old(*args, **kwargs) + (self.new(*args, **kwargs) - self.new_frozen(*args, **kwargs))


def inject(head: nn.Module, reinit: Callable[[nn.Module], None] | None = None) -> PlasticityInjection:
    """Wrap ``head`` for Plasticity Injection: freeze it, add a freshly initialised trainable copy
    (``reinit``, default: every submodule's ``reset_parameters``) and its frozen twin.
    The optimizer must then be given ``result.new.parameters()`` (the old ones are frozen)."""
    new = copy.deepcopy(head)
    for p in new.parameters():
        p.requires_grad_(True)
    if reinit is not None:
        reinit(new)
    else:
        for m in new.modules():
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
                if isinstance(m, MaskedLinear):
                    m.enforce_masks_()  # keep the sparse topology of the old head
    return PlasticityInjection(head, new)
