"""What the TD3 and SAC agents share: optimiser steps with per-method hooks, Polyak targets,
hidden-unit diagnostics (active / dormant ratios, FAU) and state (de)serialisation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from methods.common.dormant import active_unit_ratio, dormant_ratio, fraction_active_units, record_activations
from methods.common.flops import forward_flops
from methods.common.masked import masked_layers
from methods.common.replay import ReplayBuffer
from methods.common.nets import relus


class AgentBase:
    """Subclasses set ``actor``, ``critic``, their targets and optimisers in ``__init__``."""

    actor: nn.Module
    critic: nn.Module
    critic_target: nn.Module
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer

    def __init__(
        self, cfg: Any, obs_dim: int, act_dim: int, max_action: float, device: torch.device, gen: torch.Generator
    ):
        self.cfg, self.obs_dim, self.act_dim, self.max_action = cfg, obs_dim, act_dim, max_action
        self.device, self.gen = device, gen
        self.n_updates = 0

    # -------------------------------------------------------------- hooks for subclasses
    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """Adam at ``cfg.lr``. The fused kernel (CPU and CUDA) is about 3x faster than the
        per-tensor loop on these small nets; same update rule."""
        return torch.optim.Adam(params, lr=self.cfg.lr, fused=True)

    def sample_batch(self, buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
        """The batch of this update (NE's experience review overrides it)."""
        return buffer.sample(self.cfg.batch, self.gen)

    def optimizer_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module) -> None:
        """Backward and step (NE skips the step on topology updates and re-applies masks).
        Gradients are computed for ``net``'s parameters only: the actor loss then skips the
        critic's weight gradients (a third of its backward), which nothing would read."""
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[p for p in net.parameters() if p.requires_grad])
        opt.step()

    def after_update(self, buffer: ReplayBuffer, step: int) -> dict[str, float]:
        """Called after every update (ReDo, Reset, Plasticity Injection, NE's topology)."""
        return {}

    def networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    def evaluation_metrics(self, task: Any, seed: int) -> dict[str, float]:
        """Metrics measured at evaluation beside the return (OMNet/SAC: Q-value bias)."""
        return {}

    # ------------------------------------------------------------------- diagnostics
    @torch.no_grad()
    def diagnostics(self, buffer: ReplayBuffer, tau: float = 0.1) -> dict[str, float]:
        """Hidden-unit statistics on a batch drawn with its own generator (so logging more
        often never changes training): active-unit ratio (tau = 0), tau-dormant ratio, FAU,
        and the density of masked layers."""
        gen = torch.Generator(device=self.gen.device).manual_seed(12345 + self.n_updates)
        b = buffer.sample(min(self.cfg.batch, len(buffer)), gen)
        out: dict[str, float] = {}
        for name, net in self.networks().items():
            with record_activations(relus(net)) as acts:
                if name == "actor":
                    self.actor(b["obs"])
                else:
                    self.critic(b["obs"], b["action"])
            out[f"{name}_active_ratio"] = active_unit_ratio(acts, 0.0)
            out[f"{name}_dormant_ratio"] = dormant_ratio(acts, tau)
            out[f"{name}_fau"] = fraction_active_units(acts)
            out[f"{name}_forward_flops"] = float(forward_flops(net, 1))
            layers = masked_layers(net)
            if layers:
                active = sum(int(layer.active_mask().sum()) for layer in layers)
                total = sum(layer.weight.numel() for layer in layers)
                out[f"{name}_density"] = active / total
        # training FLOPs per environment step, batch B: each critic update = critic fwd+bwd
        # (3 F_c) + target critic fwd (F_c) + actor fwd at s' (F_a); the policy update once per
        # step = actor fwd+bwd (3 F_a) + critic fwd and input-gradient backward for dQ/da (2 F_c:
        # the critic's weight gradients are not computed, see optimizer_step). Masked layers
        # count their active connections per mask.
        f_a, f_c = out["actor_forward_flops"], out["critic_forward_flops"]
        per_update = 4 * f_c + f_a
        out["flops_per_env_step"] = self.cfg.batch * (self.cfg.utd * per_update + 3 * f_a + 2 * f_c)
        return out

    # ------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            k: v.state_dict() for k, v in vars(self).items() if isinstance(v, (nn.Module, torch.optim.Optimizer))
        } | {"n_updates": self.n_updates}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for k, v in vars(self).items():
            if isinstance(v, (nn.Module, torch.optim.Optimizer)):
                v.load_state_dict(d[k])
        self.n_updates = d["n_updates"]

    def model_state(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict()}

    def load_model_state(self, d: dict[str, Any]) -> None:
        self.actor.load_state_dict(d["actor"])
        self.critic.load_state_dict(d["critic"])
