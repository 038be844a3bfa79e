"""Target networks, as every bootstrapping learner here keeps them (TD3/SAC critics and actor,
soft DQN, RPE's optional flow target): a frozen copy, moved towards the online net by Polyak
averaging, target <- (1 - tau) * target + tau * online, after each optimiser step."""

from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` that no optimiser step will touch (no gradients)."""
    return copy.deepcopy(net).requires_grad_(False)


@torch.no_grad()
def polyak_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """In place: every target parameter moves a fraction ``tau`` of the way to the online one."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
