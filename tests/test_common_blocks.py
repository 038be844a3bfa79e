"""Hand-computed values of the shared building blocks the control papers' numbers rest on
(dormant scores, FLOPs accounting, OMNet's masked init). Each was a surviving mutant of
tests/mutants.py before it had a test."""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.common import dormant, flops
from methods.common.masked import MaskedLinear
from methods.control.omnet import SubnetworkCritic


def test_dormant_scores_are_normalised_by_the_layer_mean():
    """s_i = mean|h_i| / mean_j mean|h_j| (ReDo, Sokar et al. 2023): here mean|h| = (2, 0, 4),
    layer mean 2, so s = (1, 0, 2); unit 1 is dormant at any tau, unit 0 is not at tau < 1."""
    h = torch.tensor([[2.0, 0.0, 6.0], [2.0, 0.0, 2.0]])
    assert torch.allclose(dormant.dormant_scores(h), torch.tensor([1.0, 0.0, 2.0]))
    assert dormant.dormant_units(h, 0.5).tolist() == [False, True, False]
    assert dormant.dormant_units(h, 1.5).tolist() == [True, True, False]


def test_forward_flops_count_a_multiply_add_as_two():
    """Linear(3, 4) -> Linear(4, 2), 5 samples: 5 * ((2*12 + 4) + (2*8 + 2)) = 230 FLOPs."""
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert flops.forward_flops(net, batch_size=5) == 230
    assert flops.forward_flops(net, batch_size=5, include_bias=False) == 5 * (24 + 16)


def test_forward_flops_of_a_masked_layer_count_each_mask_once():
    """Two masks with 6 and 12 active entries of a 4x3 weight: 2*(6+12) + 2*4 bias = 44."""
    layer = MaskedLinear(3, 4, n_masks=2)
    with torch.no_grad():
        layer.masks[0].zero_()
        layer.masks[0].view(-1)[:6] = 1.0
    assert flops.forward_flops(layer, 1, mask_index="all") == 44
    assert flops.forward_flops(layer, 1, mask_index=0) == 2 * 6 + 4
    assert flops.forward_flops(layer, 1, mask_index="all", dense=True) == 2 * 24 + 8


def test_omnet_rescales_the_masked_layers_init_by_one_over_sqrt_keep():
    def build(rescale: bool) -> SubnetworkCritic:
        torch.manual_seed(0)
        return SubnetworkCritic(
            3, 4, 2, 8, keep=0.25, mask_output=False, rescale_init=rescale, gen=torch.Generator().manual_seed(1)
        )

    plain, scaled = build(False), build(True)
    for j, (a, b) in enumerate(zip(plain.layers, scaled.layers)):
        assert torch.equal(a.masks, b.masks)
        factor = 1.0 if j == len(plain.layers) - 1 else 1.0 / math.sqrt(0.25)  # output unmasked
        assert torch.allclose(b.weight, a.weight * factor)
