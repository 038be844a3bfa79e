"""OMNet — "One is More: Diverse Perspectives within a Single Network for Efficient DRL" (Tan,
Pan, Huang; arXiv 2310.14009); reconstructed from the paper: no official code is public.

One SAC critic network holds N subnetworks defined by fixed random binary masks over shared
weights (N = 5, keep 0.5; i.i.d. Bernoulli per weight entry, biases unmasked). All N are
evaluated in one batched pass (``MaskedLinear.forward_all``) and trained jointly at a high
update-to-data ratio; the target is REDQ's in-target minimisation over a fresh random subset
of 2 subnetworks (``target_subset``; 0 = min over all N), the actor maximises the mean over the
N subnetworks. The actor is a plain SAC actor (the main MuJoCo results); the masked-policy
variant of the maze experiment is not implemented.

Our reconstruction's open choices are options (docs/papers/omnet.md): ``mask_output`` (mask the output layer too,
default yes: "every layer") and ``rescale_init`` (scale each masked layer's init by
1/sqrt(keep) so activations keep their size, default yes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from methods.common.constraints import Bound, within
from methods.common.mask_init import bernoulli_mask
from methods.common.masked import MaskedLinear
from methods.control import sac
from methods.control.loop import entry_points


@dataclass
class Config(sac.Config):
    """OMNet (the paper's REDQ/DroQ protocol): N = 5 subnetworks at keep 0.5, subset-min target
    over 2, mean-Q actor, UTD 20."""

    n_critics: int = 5
    keep: float = 0.5
    target_subset: int = 2
    actor_q: str = "mean"
    utd: int = 20
    mask_output: bool = True
    rescale_init: bool = True

    # keep probability of a weight entry in each subnetwork's mask
    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"keep": within(0, 1, lo_open=True)}


class SubnetworkCritic(nn.Module):
    """Q-network with K fixed masks: ``forward(obs, act) -> [K, B]`` in one batched pass."""

    def __init__(
        self,
        n: int,
        obs_dim: int,
        act_dim: int,
        hidden: int,
        keep: float,
        mask_output: bool,
        rescale_init: bool,
        gen: torch.Generator,
    ):
        super().__init__()
        sizes = [obs_dim + act_dim, hidden, hidden, 1]
        self.layers = nn.ModuleList(MaskedLinear(i, o, n_masks=n) for i, o in zip(sizes[:-1], sizes[1:]))
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(len(self.layers) - 1))
        with torch.no_grad():
            for j, layer in enumerate(self.layers):
                if j == len(self.layers) - 1 and not mask_output:
                    continue
                for k in range(n):
                    layer.masks[k].copy_(bernoulli_mask(layer.weight.shape, keep, gen))
                if rescale_init:
                    layer.weight.mul_(1.0 / math.sqrt(keep))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        h = self.layers[0].forward_all(torch.cat([obs, act], -1), shared=True)
        for layer, relu in zip(self.layers[1:], self.relus):
            h = layer.forward_all(relu(h))
        return h.squeeze(-1)


class OMNetAgent(sac.SACAgent):
    def build_critic(self) -> nn.Module:
        c = self.cfg
        # masks from their own generator: the same seed gives the same subnetworks on any device
        gen = torch.Generator().manual_seed(
            int(torch.randint(0, 2**31, (1,), generator=self.gen, device=self.gen.device))
        )
        return SubnetworkCritic(
            c.n_critics, self.obs_dim, self.act_dim, c.hidden, c.keep, c.mask_output, c.rescale_init, gen
        )


make_agent, train, evaluate = entry_points(OMNetAgent)
