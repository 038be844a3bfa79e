"""Kaleidoscope (Li, Pan, Zhang, NeurIPS 2024, arXiv 2410.08540): learnable masks for
heterogeneous multi-agent RL, on QMIX (the MPE setting of the official code).

Algorithm (one learner step of methods/marl/value/qmix.py, whose runner, replay, mixer and targets
are unchanged; the agent network is methods/marl/kaleidoscope_agent.py):

    agent n's Q:  the shared 1R3 network (FuPS+ID) with weights W_k = sign(W) ⊙ ReLU(|W| − σ(S_k)),
                  k = n, in each of fc1..fc4 (one soft-threshold mask per agent; the GRU shared)
    L        = L_TD + β_t · L_div
    L_div    = −Σ_l c_l Σ_{j≠k} ‖M̃_j^l − M̃_k^l‖₁ / (K(K−1)·P),  M̃ = hard mask ⊙ |W|,  c = (1, 2, 4, 8)
    β_t      = |β · mean(L_TD) / mean(L_div)| over the last 100 updates (β = div_coef)
    every R env steps (not within the last R): in fc2..fc4, positions pruned by every mask are
    reset with probability ρ (W re-drawn from the default init, all S_k re-drawn)

The defaults are the official MPE config's (LXXXXR/Kaleidoscope Kalei_MPE): β 0.5, R 200k, ρ 0.1,
thresholds S = −(U·5 + 5). Everything else is QMIX's (methods/marl/value/qmix.py Config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from methods.common.constraints import Bound, one_of
from methods.marl.value import qmix
from methods.marl.kaleidoscope_agent import KaleidoscopeAgent, KaleidoscopeSettings, make_agent


@dataclass
class Config(qmix.Config):
    agent_net: str = "kaleidoscope"  # the masked FuPS+ID network below (one-hot ids on)
    div_coef: float = 0.5  # β: target ratio of the diversity term to the TD loss
    reset_interval: int = 200_000  # R, env steps (0: no resets)
    reset_ratio: float = 0.1  # ρ
    threshold_init: tuple[float, float] = (5.0, 5.0)  # S = −(U·scale + bias)
    layer_weights: tuple[float, ...] = field(default=(1.0, 2.0, 4.0, 8.0))  # c_l of fc1..fc4
    deque_len: int = 100
    mask_owner: str = "agent"  # "agent": K = N; "unit_type": one mask per unit type (SMAX, SC2)

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS,
        "agent_net": one_of("kaleidoscope"),
        "mask_owner": one_of("agent", "unit_type"),
        **KaleidoscopeSettings.CONSTRAINTS,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_owner == "unit_type":
            if self.env not in ("smax", "sc2"):
                raise ValueError(
                    f"mask_owner 'unit_type' needs env 'smax' or 'sc2' (got {self.env!r}): the "
                    "type is read from the unit-type bits that end their observations"
                )
            if self.env == "sc2" and unit_types(self)[1] == 0:
                raise ValueError(
                    f"mask_owner 'unit_type': map {self.env_kwargs.get('map_name')!r} has one unit "
                    "type (no unit-type bits in its observations); use mask_owner 'agent'"
                )
        if not self.obs_agent_id:
            raise ValueError(
                "obs_agent_id must be true: Kaleidoscope sits on FuPS+ID (the one-hot "
                "id stays in the input beside the per-agent masks)"
            )
        self.settings()  # its own checks, with the field names of this config

    def settings(self) -> KaleidoscopeSettings:
        return KaleidoscopeSettings(
            div_coef=self.div_coef,
            reset_interval=self.reset_interval,
            reset_ratio=self.reset_ratio,
            threshold_init=self.threshold_init,
            layer_weights=self.layer_weights,
            deque_len=self.deque_len,
        )


class UnitTypeKaleidoscopeAgent(KaleidoscopeAgent):
    """Kaleidoscope with one mask per unit type (the official SMACv2 setting): each agent's mask
    is its unit type this episode, read from the type one-hot at the end of its SMAX or SMAC/SMACv2
    observation (``types``: the type indices the allies can have, mask k ↔ ``types[k]``). A dead unit's
    observation is all zero; it uses mask 0 (its only action is the no-op). [The official code
    reads the type from the environment's state; the observation carries the same bits.]"""

    def __init__(
        self,
        input_dim: int,
        obs_dim: int,
        n_actions: int,
        n_agents: int,
        hidden_dim: int,
        settings: KaleidoscopeSettings,
        types: tuple[int, ...],
        type_bits: int,
    ):
        super().__init__(input_dim, n_actions, n_agents, hidden_dim, settings, n_masks=len(types))
        lookup = torch.zeros(type_bits, dtype=torch.long)
        lookup[list(types)] = torch.arange(len(types))
        self.register_buffer("type_to_mask", lookup)
        self.type_slice = (obs_dim - type_bits, obs_dim)

    def mask_ids(self, inputs: Tensor) -> Tensor:
        """``inputs [B, N, in]`` → each row's mask ``[B, N]``."""
        onehot = inputs[..., self.type_slice[0] : self.type_slice[1]]
        return torch.where(onehot.sum(-1) > 0, self.type_to_mask[onehot.argmax(-1)], 0)

    def forward(self, inputs: Tensor, hidden: Tensor, mask_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return super().forward(inputs, hidden, self.mask_ids(inputs) if mask_ids is None else mask_ids)


def unit_types(cfg: Config) -> tuple[tuple[int, ...], int]:
    """(the unit types the allies can have, as indices into the observation's type one-hot; the
    one-hot's width). SMAX: its scenario's types out of SMAX's six; SC2: every type of the map
    (SMAC/SMACv2 number only the map's own types)."""
    if cfg.env == "sc2":
        from envs import sc2

        bits = sc2.unit_type_bits(cfg.env_kwargs.get("map_name", "3s5z"), cfg.env_kwargs.get("capability_config"))
        return tuple(range(bits)), bits
    from envs.smax import UNIT_TYPE_BITS, unit_types_of

    return unit_types_of(cfg.env_kwargs.get("scenario", "3m")), UNIT_TYPE_BITS


def make_agent_net(cfg: Config, input_dim: int, n_agents: int, n_actions: int) -> KaleidoscopeAgent:
    """K = n_agents masks, agent n uses mask n (MPE, the official MPE code); with
    ``mask_owner: unit_type`` one mask per unit type of the SMAX scenario or SC2 map."""
    if cfg.mask_owner == "agent":
        return make_agent(cfg.settings(), input_dim, n_actions, n_agents, cfg.hidden_dim)
    types, bits = unit_types(cfg)
    obs_dim = input_dim - (n_actions if cfg.obs_last_action else 0) - n_agents  # obs ⊕ [last action] ⊕ id
    return UnitTypeKaleidoscopeAgent(
        input_dim, obs_dim, n_actions, n_agents, cfg.hidden_dim, cfg.settings(), types, bits
    )


train, evaluate = qmix.entry_points(make_agent_net)
