"""Parameter and FLOP counts of MLPs built from nn.Linear / MaskedLinear, counting active connections.

Conventions (RigL, Evci et al. 2020; used by MAST, Hu et al. 2024, and for OMNet's compute plots):
* a multiply-add is 2 FLOPs; a linear layer costs ``2*active + out`` per sample (the ``out``
  term is the bias add, dropped with ``include_bias=False``); activations, LayerNorm and the
  loss are not counted (they are O(units), not O(connections));
* a training update ≈ 3× the forward FLOPs of the same batch: the backward pass costs 2× the
  forward (gradient w.r.t. the inputs and w.r.t. the weights, each one multiply-add per active
  connection);
* a plain nn.Linear is dense (all ``in*out`` connections active); a MaskedLinear counts the
  active connections of its masks (binary mask and, with STR, ``|W| > sigmoid(s)``).

``mask_index`` for a MaskedLinear: an int (one subnetwork), "union" (connections any mask uses:
what is stored) or "all" (every mask evaluated, as ``forward_all`` does: K subnetworks' FLOPs).
Defaults: parameters "union", FLOPs "all". Only Linear/MaskedLinear modules are visited.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from methods.common.masked import MaskedLinear

MaskSel = int | Literal["union", "all"]


def _linear_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, MaskedLinear))]


def active_connections(layer: nn.Module, mask_index: MaskSel = "union", dense: bool = False) -> int:
    """Active weight entries of one layer (``dense``: all of them, for the dense reference)."""
    full = layer.weight.numel()
    if dense or isinstance(layer, nn.Linear):
        return full if mask_index != "all" or isinstance(layer, nn.Linear) else full * layer.n_masks
    if mask_index == "union":
        return int(layer.active_mask().any(dim=0).sum())
    if mask_index == "all":
        return int(layer.active_mask().sum())
    return int(layer.active_mask(int(mask_index)).sum())


def nonzero_params(
    model: nn.Module, mask_index: MaskSel = "union", include_bias: bool = True, dense: bool = False
) -> int:
    """Active weights (+ biases) of all Linear/MaskedLinear layers of ``model``."""
    total = 0
    for layer in _linear_layers(model):
        total += active_connections(layer, mask_index, dense)
        if include_bias and layer.bias is not None:
            total += layer.bias.numel()
    return total


def forward_flops(
    model: nn.Module, batch_size: int = 1, mask_index: MaskSel = "all", include_bias: bool = True, dense: bool = False
) -> int:
    """FLOPs of one forward pass of ``batch_size`` samples through every linear layer once
    (with "all", each MaskedLinear once per mask). ``dense``: as if every connection were active."""
    per_sample = 0
    for layer in _linear_layers(model):
        reps = layer.n_masks if isinstance(layer, MaskedLinear) and mask_index == "all" else 1
        per_sample += 2 * active_connections(layer, mask_index, dense)
        if include_bias and layer.bias is not None:
            per_sample += reps * layer.bias.numel()
    return per_sample * batch_size


def train_flops(
    model: nn.Module,
    batch_size: int,
    mask_index: MaskSel = "all",
    include_bias: bool = True,
    backward_factor: float = 2.0,
) -> float:
    """FLOPs of one training update: forward × (1 + backward_factor) (≈ 3× forward)."""
    return (1.0 + backward_factor) * forward_flops(model, batch_size, mask_index, include_bias)


def rigl_train_flops(
    model: nn.Module, batch_size: int, delta: int, mask_index: MaskSel = "all", include_bias: bool = True
) -> float:
    """Per-update training FLOPs of dynamic sparse training with a dense gradient every ``delta``
    updates (RigL §3): ``(3 f_S Δ + 2 f_S + f_D) / (Δ + 1)``, f_S / f_D the sparse / dense forward
    FLOPs. MAST (Hu et al. 2024) adds this amortised dense-gradient cost."""
    f_s = forward_flops(model, batch_size, mask_index, include_bias)
    f_d = forward_flops(model, batch_size, mask_index, include_bias, dense=True)
    return (3 * f_s * delta + 2 * f_s + f_d) / (delta + 1)
