"""Kaleidoscope (Li, Pan, Zhang, NeurIPS 2024) on MATD3: the multi-agent MuJoCo setting of the
official code (LXXXXR/Kaleidoscope Kalei_MaMuJoCo), on the learner of methods/marl/actor_critic/matd3.py.

    actor:   the shared 3-layer MLP with K = n_agents STR soft-threshold masks (agent i uses
             mask i): W_i = sign(W) ⊙ ReLU(|W| − σ(S_i)), thresholds S = −(U·5 + 5)
    critic:  the critic ensemble — one shared [state ⊕ joint action → 256 → 256 → 1] MLP
             (Linear → LayerNorm → ReLU) with K = n_critics (5) masks, one Q-head per mask,
             thresholds S = −(U·20 + 0), so each head starts as a different random sub-network;
             y = R + γ^m (1 − term) min_k Q̄_k(s', a'),  L_Q = Σ_k MSE(Q_k, y) + β_t^Q L_div(critic)
    actor:   L_π,i = −mean_k Q_k(s, a_{−i} ⊕ π_i(o_i)) + β_t^π L_div(actor), one step per agent
    L_div:   −Σ_l c_l Σ_{j≠k} ‖M̃_j − M̃_k‖₁ / (K(K−1)P), c = (1, 2, 4), weighted masks
             (methods/marl/kaleidoscope_agent.py :func:`diversity_loss`)
    β_t:     |β · mean(L_base) / mean(L_div)| over the last 100·N actor / 100·policy_freq critic
             updates (β = 0.1 for both)
    resets:  actor — every R = 1M env steps (not within the last R), a Bernoulli(0.5) share of
             the positions all masks pruned, in all 3 layers; critic — every 800k env steps, all
             thresholds of one member, members in turn 0, 1, …, K−1, 0, …

Target copies carry their own thresholds, Polyak-averaged with the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from envs.mamujoco import MaMuJoCoTask
from methods.common.constraints import Bound, at_least, one_of, within
from methods.common.flops import forward_flops
from methods.common.masked import MaskedLinear
from methods.marl.actor_critic import matd3
from methods.marl.kaleidoscope_agent import AdaptiveDiversityCoef, diversity_loss, reset_pruned_

LAYER_WEIGHTS = (1.0, 2.0, 4.0)


@dataclass
class Config(matd3.Config):
    n_critics: int = 5  # the critic ensemble (one mask per head)
    critic_layernorm: bool = True  # Kalei_MLP's norm_flag, on in every tuned config
    actor_critics: str = "mean"  # KaleiTwinContinuousQCritic.get_values: the members' mean
    div_coef: float = 0.1  # β of the actor (Kalei.div_coef)
    critic_div_coef: float = 0.1  # β of the critic
    reset_interval: int = 1_000_000  # R of the actor reset, env steps (0: off)
    reset_ratio: float = 0.5  # ρ
    critic_reset_interval: int = 800_000  # one member's thresholds, in turn (0: off)
    actor_threshold_init: tuple[float, float] = (5.0, 5.0)  # S = −(U·scale + bias)
    critic_threshold_init: tuple[float, float] = (20.0, 0.0)
    deque_len: int = 100

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **matd3.Config.CONSTRAINTS,
        "div_coef": at_least(0),
        "critic_div_coef": at_least(0),
        "reset_interval": at_least(0),
        "reset_ratio": within(0, 1),
        "critic_reset_interval": at_least(0),
        "deque_len": at_least(1),
        "actor_net": one_of("fups"),
    }  # the masks sit on the FuPS actor

    def __post_init__(self) -> None:
        self.actor_threshold_init = tuple(float(v) for v in self.actor_threshold_init)  # type: ignore[assignment]
        self.critic_threshold_init = tuple(float(v) for v in self.critic_threshold_init)  # type: ignore[assignment]
        super().__post_init__()
        for name in ("actor_threshold_init", "critic_threshold_init"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"{name}: must be (scale, bias) (got {getattr(self, name)!r})")


class MaskedActor(nn.Module):
    """The shared actor with one soft-threshold mask per agent on all 3 layers."""

    def __init__(
        self,
        input_dim: int,
        act_dim: int,
        hidden: int,
        max_action: float,
        n_agents: int,
        threshold_init: tuple[float, float],
    ):
        super().__init__()
        sizes = [input_dim, hidden, hidden, act_dim]
        self.layers = nn.ModuleList(
            MaskedLinear(i, o, n_agents, soft_threshold=True, threshold_init=threshold_init)
            for i, o in zip(sizes[:-1], sizes[1:])
        )
        self.max_action, self.n_agents = max_action, n_agents

    def forward(self, inputs: Tensor) -> Tensor:
        """``inputs [B, N, in]`` → ``[B, N, act]``; agent n through mask n, in one batched pass."""
        x = inputs.transpose(0, 1)  # [N, B, in]: agent-major for forward_all
        for k, layer in enumerate(self.layers):
            x = layer.forward_all(x)
            if k < len(self.layers) - 1:
                x = F.relu(x)
        return self.max_action * torch.tanh(x).transpose(0, 1)

    def forward_agent(self, inputs: Tensor, agent: int) -> Tensor:
        x = inputs
        for k, layer in enumerate(self.layers):
            x = layer(x, agent)
            if k < len(self.layers) - 1:
                x = F.relu(x)
        return self.max_action * torch.tanh(x)


class MaskedCriticEnsemble(nn.Module):
    """One critic MLP with K masks = K Q-heads; ``forward(state, joint_action) → [K, B]``."""

    def __init__(
        self, input_dim: int, hidden: int, n_heads: int, threshold_init: tuple[float, float], layernorm: bool = True
    ):
        super().__init__()
        sizes = [input_dim, hidden, hidden, 1]
        self.layers = nn.ModuleList(
            MaskedLinear(i, o, n_heads, soft_threshold=True, threshold_init=threshold_init)
            for i, o in zip(sizes[:-1], sizes[1:])
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) if layernorm else nn.Identity() for _ in range(2))

    def forward(self, state: Tensor, joint_action: Tensor) -> Tensor:
        x = self.layers[0].forward_all(torch.cat([state, joint_action], -1), shared=True)  # [K, B, H]
        x = F.relu(self.norms[0](x))
        x = F.relu(self.norms[1](self.layers[1].forward_all(x)))
        return self.layers[2].forward_all(x).squeeze(-1)


class KaleidoscopeMATD3Learner(matd3.MATD3Learner):
    cfg: Config

    def __init__(self, cfg: Config, task: MaMuJoCoTask, device: torch.device, gen: torch.Generator):
        super().__init__(cfg, task, device, gen)
        self.actor_coef = AdaptiveDiversityCoef(cfg.div_coef, cfg.deque_len * task.n_agents)
        self.critic_coef = AdaptiveDiversityCoef(cfg.critic_div_coef, cfg.deque_len * cfg.policy_freq)
        self.last_reset_t = 0
        self.last_critic_reset_t = 0
        self.next_critic_member = 0

    def build_actor(self) -> nn.Module:
        c = self.cfg
        return MaskedActor(
            self.input_dim, self.act_dim, c.hidden, self.max_action, self.n_agents, c.actor_threshold_init
        )

    def build_critic(self) -> nn.Module:
        c = self.cfg
        return MaskedCriticEnsemble(
            self.state_dim + self.n_agents * self.act_dim,
            c.hidden,
            c.n_critics,
            c.critic_threshold_init,
            c.critic_layernorm,
        )

    # -- the diversity terms ------------------------------------------------------------------
    def actor_aux_loss(self, base: Tensor) -> Tensor:
        div = diversity_loss(list(self.actor.layers), LAYER_WEIGHTS)
        return self.actor_coef.update(float(base.detach()), float(div.detach())) * div

    def critic_aux_loss(self, base: Tensor) -> Tensor:
        div = diversity_loss(list(self.critic.layers), LAYER_WEIGHTS)
        return self.critic_coef.update(float(base.detach()), float(div.detach())) * div

    # -- resets -------------------------------------------------------------------------------
    def on_env_steps(self, t_env: int) -> dict[str, float]:
        """The official conditions, strict on both sides: more than R steps since the last
        reset and more than R before ``iterations``."""
        c, out = self.cfg, {}
        if (
            c.reset_interval > 0
            and t_env - self.last_reset_t > c.reset_interval
            and c.iterations - t_env > c.reset_interval
        ):
            out["actor_reset_positions"] = float(reset_pruned_(list(self.actor.layers), c.reset_ratio, self.gen))
            self.last_reset_t = t_env
        if (
            c.critic_reset_interval > 0
            and t_env - self.last_critic_reset_t > c.critic_reset_interval
            and c.iterations - t_env > c.critic_reset_interval
        ):
            self.reset_critic_member_(self.next_critic_member)
            out["critic_reset_member"] = float(self.next_critic_member)
            self.next_critic_member = (self.next_critic_member + 1) % c.n_critics
            self.last_critic_reset_t = t_env
        return out

    @torch.no_grad()
    def reset_critic_member_(self, member: int) -> None:
        """All thresholds of one ensemble member re-drawn from the critic range; weights kept."""
        for layer in self.critic.layers:
            layer.reset_thresholds_(mask_indices=[member], generator=self.gen)

    # -- counts -------------------------------------------------------------------------------
    def inference_flops_per_agent(self) -> float:
        """Mean over agents of one forward pass through that agent's sub-network."""
        return sum(forward_flops(self.actor, 1, mask_index=i) for i in range(self.n_agents)) / self.n_agents

    def dense_inference_flops_per_agent(self) -> float:
        return float(forward_flops(self.actor, 1, mask_index=0, dense=True))

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        out = super().diagnostics()
        for name, net in (("actor", self.actor), ("critic", self.critic)):
            active = sum(int(layer.active_mask().sum()) for layer in net.layers)
            total = sum(layer.weight.numel() * layer.n_masks for layer in net.layers)
            out[f"{name}_sparsity"] = 1.0 - active / total
        out["actor_div_coef"] = self.actor_coef.value()
        out["critic_div_coef"] = self.critic_coef.value()
        return out

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "actor_coef": self.actor_coef.state_dict(),
            "critic_coef": self.critic_coef.state_dict(),
            "resets": [self.last_reset_t, self.last_critic_reset_t, self.next_critic_member],
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        self.actor_coef.load_state_dict(d["actor_coef"])
        self.critic_coef.load_state_dict(d["critic_coef"])
        self.last_reset_t, self.last_critic_reset_t, self.next_critic_member = d["resets"]


train, evaluate = matd3.entry_points(KaleidoscopeMATD3Learner)
