"""The masked / sparse linear layer shared by Kaleidoscope, MAST, Neuroplastic Expansion and OMNet.

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
Mask allocation and initialisation: methods/common/mask_init.py; prune / grow and the
optimizer-state reset of changed positions: methods/common/prune_grow.py.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ThresholdShape = Literal["weight", "unit", "layer"]


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

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_masks: int = 1,
        bias: bool = True,
        soft_threshold: bool = False,
        threshold_shape: ThresholdShape = "weight",
        threshold_init: tuple[float, float] = (5.0, 5.0),
    ):
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
            shape = {
                "weight": (n_masks, out_features, in_features),
                "unit": (n_masks, out_features, 1),
                "layer": (n_masks, 1, 1),
            }[threshold_shape]
            self.threshold: nn.Parameter | None = nn.Parameter(torch.empty(shape))
        else:
            self.register_parameter("threshold", None)
        # dense-gradient accumulator (sum over hook calls; only its ranking is used for growth)
        self.track_dense_grad = False
        self.register_buffer("_dense_grad", torch.zeros(0), persistent=False)
        self.reset_parameters()

    # -- init ---------------------------------------------------------------------------------
    @property
    def block_shape(self) -> tuple[int, int]:
        """(out, in) of one owner's weight block (the whole matrix here; one group's when grouped)."""
        return self.out_features, self.in_features

    def reset_parameters(self) -> None:
        """PyTorch's default Linear init (U(±1/sqrt(fan_in)) for W and b); thresholds re-drawn."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)
        if self.threshold is not None:
            self.reset_thresholds_()

    @torch.no_grad()
    def reset_thresholds_(
        self,
        where: Tensor | None = None,
        mask_indices: Sequence[int] | None = None,
        scale: float | None = None,
        bias: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        """Re-draw STR thresholds ``s = -(U*scale + bias)``; ``where`` (bool, threshold's trailing
        shape) limits positions, ``mask_indices`` limits masks (Kaleidoscope's periodic resets)."""
        if self.threshold is None:
            raise ValueError("layer has no soft thresholds")
        sc, bi = self.threshold_init
        sc = sc if scale is None else scale
        bi = bi if bias is None else bias
        ks = range(self.n_masks) if mask_indices is None else mask_indices
        # a generator draws on its own device (a CPU generator cannot fill a CUDA tensor)
        device = self.threshold.device if generator is None else generator.device
        for k in ks:
            new = -(torch.rand(self.threshold.shape[1:], generator=generator, device=device) * sc + bi).to(
                self.threshold
            )
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
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"n_masks={self.n_masks}, bias={self.bias is not None}, "
            f"soft_threshold={self.threshold is not None}"
        )


class GroupedMaskedLinear(MaskedLinear):
    """G independent masked linear layers ``(in -> out)``, one per row of dim -2 of the input
    (one per agent: MAST's per-agent sparse networks), stored as one MaskedLinear of
    ``G·out`` outputs so that prune / grow / ER act on the whole layer: a topology update can
    move connections between agents (the sparsity budget is the layer's, not each agent's).
    Initialised like G separate nn.Linear(in, out). ``x (..., G, in) -> (..., G, out)``;
    with G = 1 it is a plain masked linear over the last dim."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True):
        self.groups, self.group_out = groups, out_features
        super().__init__(in_features, groups * out_features, 1, bias)

    @property
    def block_shape(self) -> tuple[int, int]:
        return self.group_out, self.in_features

    def forward(self, x: Tensor, mask_index: int | Tensor | None = None) -> Tensor:
        w = self._maybe_track(self.effective_weight(0), 0)
        if self.groups == 1:
            return F.linear(x, w, self.bias)
        g, o = self.groups, self.group_out
        lead = x.shape[:-2]
        xg = x.reshape(-1, g, self.in_features).transpose(0, 1)  # (G, B, in)
        bias = self.bias.view(g, 1, o) if self.bias is not None else x.new_zeros(g, 1, o)
        y = torch.baddbmm(bias, xg, w.view(g, o, self.in_features).transpose(1, 2))
        return y.transpose(0, 1).reshape(*lead, g, o)

    @torch.no_grad()
    def group_nonzeros(self) -> Tensor:
        """Active connections of each group (G,)."""
        return self.masks[0].view(self.groups, -1).sum(1)


def masked_layers(module: nn.Module) -> list[MaskedLinear]:
    """All MaskedLinear submodules, in registration order."""
    return [m for m in module.modules() if isinstance(m, MaskedLinear)]


def sparsify_linears_(module: nn.Module) -> nn.Module:
    """Replace every nn.Linear inside ``module`` by a MaskedLinear holding the same parameters
    (all-ones mask: the function is unchanged until masks are set). Returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, MaskedLinear.from_linear(child))
        else:
            sparsify_linears_(child)
    return module


@torch.no_grad()
def sync_masks_(online: nn.Module, target: nn.Module) -> None:
    """Target nets share the online masks (as in NE and MAST): copy masks, zero absent weights."""
    src, dst = masked_layers(online), masked_layers(target)
    if len(src) != len(dst):
        raise ValueError("online and target differ in their MaskedLinear layers")
    for a, b in zip(src, dst):
        b.masks.copy_(a.masks)
        b.enforce_masks_()


class _HeavisideTanhSTE(torch.autograd.Function):
    """Forward 1[z > 0]; backward tanh(upstream gradient) (Kaleidoscope's hard mask, Li et al. 2024)."""

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
