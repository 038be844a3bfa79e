"""Masked / sparse linear primitives shared by Kaleidoscope, MAST, Neuroplastic Expansion and OMNet.

One layer type, :class:`MaskedLinear`, holds a shared weight ``W`` and ``K`` masks over it:

* binary masks (float 0/1 buffers): static sparse nets, OMNet's fixed subnetworks
  (Tan et al. 2023, arXiv 2310.14009) and dynamic sparse training, where the masks change by
  magnitude prune / gradient grow (RigL, Evci et al. 2020; MAST, Hu et al. 2024; NE, Liu et al. 2025);
* optionally learnable soft-threshold masks (STR, Kusupati et al. 2020, as used per mask by
  Kaleidoscope, Li et al. 2024): ``W_k = sign(W) * relu(|W| - sigmoid(s_k))``.

The effective weight of mask ``k`` is ``soft(W, s_k) * M_k`` (``soft`` is the identity without
STR). Because the forward pass multiplies by ``M_k``, absent connections get exactly zero gradient
through autograd; no weight hook is needed. With ``track_dense_grad`` on, a hook on the
*effective* weight records ``dL/dW_k`` at every position (present or not): the "dense" gradient
RigL/NE grow by, which autograd computes anyway.

Positions are flat indices into ``W.view(-1)`` (LongTensor, sorted ascending).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.common.seeding import draw_device

ThresholdShape = Literal["weight", "unit", "layer"]
GrowInit = Literal["zero", "lecun", "kaiming_uniform", "random"]


# ---------------------------------------------------------------------------------------------
# the layer
# ---------------------------------------------------------------------------------------------

class MaskedLinear(nn.Module):
    """Linear layer with a shared weight and ``n_masks`` masks over it.

    Args:
        n_masks: number of masks K (agents / unit types / ensemble members / subnetworks).
        soft_threshold: add learnable STR thresholds ``s`` (Kaleidoscope); the binary masks
            still multiply on top (all ones by default).
        threshold_shape: one threshold per weight (Kaleidoscope, ``[K,out,in]``), per output unit
            (``[K,out,1]``) or per layer (``[K,1,1]``), the latter two as in STR.
        threshold_init: ``(scale, bias)``: ``s = -(U(0,1)*scale + bias)`` (Kaleidoscope's init;
            ``(5, 5)`` for agent nets, ``(20, 0)`` for its critic ensemble; scale 0 = constant).
    The bias is shared and never masked (Kaleidoscope, OMNet [choice]).
    """

    def __init__(self, in_features: int, out_features: int, n_masks: int = 1, bias: bool = True,
                 soft_threshold: bool = False, threshold_shape: ThresholdShape = "weight",
                 threshold_init: tuple[float, float] = (5.0, 5.0)):
        super().__init__()
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        self.in_features, self.out_features, self.n_masks = in_features, out_features, n_masks
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.register_buffer("masks", torch.ones(n_masks, out_features, in_features))
        self.threshold_shape = threshold_shape
        self.threshold_init = threshold_init
        if soft_threshold:
            shape = {"weight": (n_masks, out_features, in_features),
                     "unit": (n_masks, out_features, 1), "layer": (n_masks, 1, 1)}[threshold_shape]
            self.threshold: nn.Parameter | None = nn.Parameter(torch.empty(shape))
        else:
            self.register_parameter("threshold", None)
        # dense-gradient accumulator (sum over hook calls; only its ranking is used for growth)
        self.track_dense_grad = False
        self.register_buffer("_dense_grad", torch.zeros(0), persistent=False)
        self.reset_parameters()

    # -- init ---------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """PyTorch's default Linear init (U(±1/sqrt(fan_in)) for W and b); thresholds re-drawn."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)
        if self.threshold is not None:
            self.reset_thresholds_()

    @torch.no_grad()
    def reset_thresholds_(self, where: Tensor | None = None, mask_indices: Sequence[int] | None = None,
                          scale: float | None = None, bias: float | None = None,
                          generator: torch.Generator | None = None) -> None:
        """Re-draw STR thresholds ``s = -(U*scale + bias)``; ``where`` (bool, threshold's trailing
        shape) limits positions, ``mask_indices`` limits masks (Kaleidoscope resets, marl.md §1.3)."""
        if self.threshold is None:
            raise ValueError("layer has no soft thresholds")
        sc, bi = self.threshold_init
        sc = sc if scale is None else scale
        bi = bi if bias is None else bias
        ks = range(self.n_masks) if mask_indices is None else mask_indices
        for k in ks:
            new = -(torch.rand(self.threshold.shape[1:], generator=generator,
                               device=self.threshold.device) * sc + bi).to(self.threshold.dtype)
            if where is None:
                self.threshold[k].copy_(new)
            else:
                self.threshold[k][where] = new[where]

    @classmethod
    def from_linear(cls, linear: nn.Linear, n_masks: int = 1, **kwargs) -> "MaskedLinear":
        """A MaskedLinear (all-ones masks) holding a copy of ``linear``'s parameters."""
        layer = cls(linear.in_features, linear.out_features, n_masks, linear.bias is not None, **kwargs)
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer.to(linear.weight.device)

    # -- effective weights --------------------------------------------------------------------
    def effective_weight(self, mask_index: int | None = None) -> Tensor:
        """``soft(W, s_k) * M_k``: ``[out,in]`` for one mask, ``[K,out,in]`` for all."""
        w = self.weight
        if mask_index is None:
            if self.threshold is not None:
                s = torch.sigmoid(self.threshold)
                w = torch.sign(w) * F.relu(w.abs() - s)  # broadcasts to [K,out,in]
            return w * self.masks
        if self.threshold is not None:
            w = torch.sign(w) * F.relu(w.abs() - torch.sigmoid(self.threshold[mask_index]))
        return w * self.masks[mask_index]

    @torch.no_grad()
    def active_mask(self, mask_index: int | None = None) -> Tensor:
        """Bool mask of active connections: binary mask and, with STR, ``|W| > sigmoid(s_k)``."""
        m = self.masks.bool() if mask_index is None else self.masks[mask_index].bool()
        if self.threshold is not None:
            s = torch.sigmoid(self.threshold if mask_index is None else self.threshold[mask_index])
            m = m & (self.weight.abs() > s)
        return m

    def union_mask(self) -> Tensor:
        """Bool ``[out,in]``: connections present in at least one binary mask."""
        return self.masks.bool().any(dim=0)

    @torch.no_grad()
    def density(self, mask_index: int | None = None) -> float:
        """Fraction of active connections of mask ``k`` (or of the union over masks)."""
        m = self.active_mask(mask_index)
        if mask_index is None:
            m = m.any(dim=0)
        return m.float().mean().item()

    # -- dense gradient -----------------------------------------------------------------------
    def _hook(self, mask_index: int | None):
        def accumulate(grad: Tensor) -> None:
            if self._dense_grad.shape != self.masks.shape:
                self._dense_grad = torch.zeros_like(self.masks)
            if mask_index is None:
                self._dense_grad += grad.detach()
            else:
                self._dense_grad[mask_index] += grad.detach()
        return accumulate

    def _maybe_track(self, w: Tensor, mask_index: int | None) -> Tensor:
        if self.track_dense_grad and w.requires_grad:
            w.register_hook(self._hook(mask_index))
        return w

    def take_dense_grad(self) -> Tensor | None:
        """The accumulated ``dL/dW_k`` ``[K,out,in]`` since the last call (then cleared)."""
        if self._dense_grad.shape != self.masks.shape:
            return None
        g, self._dense_grad = self._dense_grad, torch.zeros(0, device=self.masks.device)
        return g

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor, mask_index: int | Tensor | None = None) -> Tensor:
        """``x [..., in]``. ``mask_index``: an int (one mask for the whole batch), a LongTensor of
        shape ``x.shape[:-1]`` (per-row mask, e.g. Kaleidoscope's agent id) or None (K must be 1)."""
        if mask_index is None:
            if self.n_masks != 1:
                raise ValueError("mask_index is required when n_masks > 1 (or use forward_all)")
            mask_index = 0
        if isinstance(mask_index, int):
            w = self._maybe_track(self.effective_weight(mask_index), mask_index)
            return F.linear(x, w, self.bias)
        ids = mask_index.reshape(-1).long()
        flat = x.reshape(-1, self.in_features)
        # all K outputs, then gather each row's own: K× the compute, but one matmul (K is small)
        y = self.forward_all(flat, shared=True)  # [K, N, out]
        y = y[ids, torch.arange(flat.shape[0], device=x.device)]
        return y.reshape(*x.shape[:-1], self.out_features)

    def forward_all(self, x: Tensor, shared: bool = False) -> Tensor:
        """All K masks at once: ``x [K, ..., in]`` → ``[K, ..., out]``, equal to K separate
        ``forward(x[k], k)`` calls. With ``shared``, ``x [..., in]`` is fed to every mask (e.g.
        OMNet's first layer sees the same (s, a) in every subnetwork)."""
        w = self._maybe_track(self.effective_weight(), None)  # [K, out, in]
        K = self.n_masks
        if shared:
            lead = x.shape[:-1]
            xf = x.reshape(1, -1, self.in_features).expand(K, -1, -1)
        else:
            if x.dim() < 2 or x.shape[0] != K:
                raise ValueError(f"forward_all expects [K={K}, ..., in], got {tuple(x.shape)}")
            lead = x.shape[1:-1]
            xf = x.reshape(K, -1, self.in_features)
        if self.bias is not None:
            y = torch.baddbmm(self.bias.view(1, 1, -1), xf, w.transpose(1, 2))
        else:
            y = torch.bmm(xf, w.transpose(1, 2))
        return y.reshape(K, *lead, self.out_features)

    # -- mask maintenance ---------------------------------------------------------------------
    @torch.no_grad()
    def enforce_masks_(self) -> None:
        """``W <- W * union(M)``: zero weights no mask uses (after optimizer / Polyak steps)."""
        self.weight.mul_(self.union_mask().to(self.weight.dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"n_masks={self.n_masks}, bias={self.bias is not None}, "
                f"soft_threshold={self.threshold is not None}")


def masked_layers(module: nn.Module) -> list[MaskedLinear]:
    """All MaskedLinear submodules, in registration order."""
    return [m for m in module.modules() if isinstance(m, MaskedLinear)]


@torch.no_grad()
def sync_masks_(online: nn.Module, target: nn.Module) -> None:
    """Target nets share the online masks (NE §1.3, MAST §2.1): copy masks, zero absent weights."""
    src, dst = masked_layers(online), masked_layers(target)
    if len(src) != len(dst):
        raise ValueError("online and target differ in their MaskedLinear layers")
    for a, b in zip(src, dst):
        b.masks.copy_(a.masks)
        b.enforce_masks_()


class _HeavisideTanhSTE(torch.autograd.Function):
    """Forward 1[z > 0]; backward tanh(upstream gradient) (Kaleidoscope's hard mask, marl.md §1.2)."""

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:  # type: ignore[override]
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return torch.tanh(grad)


def hard_masks(layer: MaskedLinear) -> Tensor:
    """``[K,out,in]`` 0/1 masks ``1[|W| > sigmoid(s_k)]`` whose gradient reaches only ``s``
    (W detached), through a straight-through tanh estimator; times the binary masks."""
    if layer.threshold is None:
        return layer.masks.clone()
    z = layer.weight.detach().abs() - torch.sigmoid(layer.threshold)
    return _HeavisideTanhSTE.apply(z) * layer.masks


# ---------------------------------------------------------------------------------------------
# optimizer state
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# density allocation and mask initialisation
# ---------------------------------------------------------------------------------------------

def er_densities(shapes: Sequence[Sequence[int]], density: float, kind: Literal["er", "erk"] = "er",
                 dense: Iterable[int] = ()) -> list[float]:
    """Erdős–Rényi per-layer densities for a global (parameter-weighted) target ``density``
    (Mocanu et al. 2018; RigL, Evci et al. 2020; MAST/NE use ER).

    ``density_l = eps * raw_l``, ``raw_l = (n_in+n_out)/(n_in*n_out)`` (ER; shapes are
    ``(out, in, *kernel)``) or ``sum(shape)/prod(shape)`` (ERK), with eps solving
    ``sum_l density_l * numel_l = density * sum_l numel_l``. A layer whose density would exceed 1
    is made dense and eps re-solved over the rest; ``dense`` layers are dense from the start and
    count towards the budget.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    numel = [math.prod(s) for s in shapes]
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


def random_mask(shape: Sequence[int], density: float, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
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
    idx = _select(weight.detach().abs().reshape(-1), torch.ones(n, dtype=torch.bool, device=weight.device),
                  k, largest=True)
    m = torch.zeros(n, device=weight.device)
    m[idx] = 1.0
    return m.view_as(weight)


def bernoulli_mask(shape: Sequence[int], keep: float, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> Tensor:
    """Float 0/1 mask with i.i.d. Bernoulli(keep) entries (OMNet's reconstructed init, spec §2.2)."""
    return (torch.rand(*shape, generator=generator, device=draw_device(generator)) < keep).float().to(device)


@torch.no_grad()
def init_masks_(layers: Sequence[MaskedLinear], density: float,
                method: Literal["random", "magnitude", "bernoulli"] = "random",
                allocation: Literal["er", "erk", "uniform"] = "er", dense: Iterable[int] = (),
                generator: torch.Generator | None = None) -> list[float]:
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


# ---------------------------------------------------------------------------------------------
# prune / grow
# ---------------------------------------------------------------------------------------------

def _select(scores: Tensor, candidates: Tensor, k: int, largest: bool) -> Tensor:
    """Flat indices of the k best-scoring candidates, sorted ascending. Ties: lower index first
    (stable sort over candidates listed in index order), so results are deterministic."""
    idx = candidates.reshape(-1).nonzero().squeeze(1)
    if k <= 0 or idx.numel() == 0:
        return idx[:0]
    order = torch.sort(scores.reshape(-1)[idx], descending=largest, stable=True).indices
    return idx[order[:k]].sort().values


def grow_values(layer: MaskedLinear, n: int, init: GrowInit | float = "zero",
                generator: torch.Generator | None = None) -> Tensor:
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
        return ((torch.rand(n, generator=generator, device=draw_device(generator), dtype=w.dtype) * 2 - 1) * b).to(w.device)
    raise ValueError(f"unknown grow init {init!r}")


@torch.no_grad()
def magnitude_prune(layer: MaskedLinear, k: int, mask_index: int = 0) -> Tensor:
    """Remove the ``k`` active connections of mask ``mask_index`` with the smallest ``|W|``.

    Their weights are zeroed where no other mask still uses them (W is shared). Returns positions.
    """
    active = layer.masks[mask_index].bool()
    pos = _select(layer.weight.abs(), active, min(k, int(active.sum())), largest=False)
    layer.masks[mask_index].view(-1)[pos] = 0.0
    unused = ~layer.union_mask().view(-1)[pos]
    layer.weight.view(-1)[pos[unused]] = 0.0
    return pos


@torch.no_grad()
def _activate(layer: MaskedLinear, pos: Tensor, mask_index: int, init: GrowInit | float,
              generator: torch.Generator | None) -> Tensor:
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
def gradient_grow(layer: MaskedLinear, k: int, dense_grad: Tensor, mask_index: int = 0,
                  init: GrowInit | float = "zero", exclude: Tensor | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """Activate the ``k`` absent connections (not in ``exclude``) with the largest ``|dense_grad|``
    (RigL grow; NE's "potential gradient") and set their weights by ``init``. ``dense_grad`` is
    ``[out,in]`` or ``[K,out,in]``. Returns positions."""
    g = dense_grad[mask_index] if dense_grad.dim() == 3 else dense_grad
    cand = _grow_candidates(layer, mask_index, exclude)
    pos = _select(g.abs(), cand, k, largest=True)
    return _activate(layer, pos, mask_index, init, generator)


@torch.no_grad()
def random_grow(layer: MaskedLinear, k: int, mask_index: int = 0, init: GrowInit | float = "zero",
                exclude: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Activate ``k`` uniformly random absent connections (SET, Mocanu et al. 2018). Returns positions."""
    cand = _grow_candidates(layer, mask_index, exclude)
    scores = torch.rand(cand.numel(), generator=generator, device=draw_device(generator)).to(cand.device)
    pos = _select(scores, cand, k, largest=True)
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
def prune_and_grow(layer: MaskedLinear, k: int, dense_grad: Tensor | None = None, mask_index: int = 0,
                   init: GrowInit | float = "zero", grow: Literal["gradient", "random"] = "gradient",
                   allow_regrow: bool = False, optimizer: torch.optim.Optimizer | None = None,
                   generator: torch.Generator | None = None) -> TopologyChange:
    """RigL/MAST drop-and-grow at constant density: prune the k smallest-|W| active connections,
    grow k absent ones (by |dense grad|, or at random for SET). Just-pruned positions cannot be
    regrown unless ``allow_regrow`` (NE spec §1.4 step 5). k is clamped so the count stays equal.
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
    """Cosine-annealed update fraction ``zeta/2 * (1 + cos(pi * t / T_end))`` (RigL; MAST §2.1,
    NE §1.4); 0 after ``t_end``."""
    if step >= t_end:
        return 0.0
    return 0.5 * zeta * (1.0 + math.cos(math.pi * step / t_end))
