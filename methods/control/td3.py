"""TD3 (Fujimoto et al., 2018), the base learner of Neuroplastic Expansion and its baselines
(Fujimoto et al. 2018; hyper-parameters of the NE authors' TD3 script).

Per update, on a batch (s, a, r, s', d):
    a' = clip(pi_targ(s') + clip(N(0, sigma * max_a), -c * max_a, c * max_a), -max_a, max_a)
    y  = r + gamma * (1 - d) * min_i Q_targ_i(s', a')                 (clipped double Q)
    L_critic = sum_i mean_B (Q_i(s, a) - y)^2
and every ``policy_delay``-th update: L_actor = -mean_B Q_1(s, pi(s)), then Polyak targets.
Exploration: pi(s) + N(0, expl_noise * max_a), clipped; 25,000 uniform warm-up steps.
Critic: NE's MuJoCo variant has three hidden layers with LayerNorm on the third
(``critic_hidden_layers = 3, critic_layernorm = "last"``); the plain TD3 critic is 2 x 256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from methods.common.constraints import Bound, at_least, one_of
from methods.common.replay import ReplayBuffer
from methods.common.target import frozen_copy, polyak_
from methods.control.agent import AgentBase
from methods.control.loop import ControlConfig, entry_points
from methods.common.nets import LAYERNORM, Actor, Critics

OptimizerStep = Callable[[torch.optim.Optimizer, torch.Tensor, nn.Module], None]


@dataclass
class Config(ControlConfig):
    """TD3 on MuJoCo: lr 3e-4, batch 256, gamma 0.99, tau 0.005, policy noise 0.2 (clip 0.5),
    delay 2, exploration 0.1, 25k warm-up, replay 1e6 (Fujimoto et al.'s defaults)."""

    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2
    expl_noise: float = 0.1
    critic_hidden_layers: int = 2
    critic_layernorm: str = "none"

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        # noise scales are fractions of max_action; 0 switches the noise off
        "policy_noise": at_least(0),
        "noise_clip": at_least(0),
        "expl_noise": at_least(0),
        "policy_delay": at_least(1),
        "critic_hidden_layers": at_least(1),
        "critic_layernorm": one_of(*LAYERNORM),  # else the job fails when it builds the critic
    }


class TD3Agent(AgentBase):
    def __init__(
        self, cfg: Config, obs_dim: int, act_dim: int, max_action: float, device: torch.device, gen: torch.Generator
    ):
        super().__init__(cfg, obs_dim, act_dim, max_action, device, gen)
        self.actor = self.build_actor().to(device)
        self.critic = self.build_critic().to(device)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_opt = self.make_optimizer(self.actor.parameters())
        self.critic_opt = self.make_optimizer(self.critic.parameters())

    # networks (overridden by sparse / LayerNorm variants)
    def build_actor(self) -> nn.Module:
        return Actor(self.obs_dim, self.act_dim, self.cfg.hidden, self.max_action)

    def build_critic(self) -> nn.Module:
        c = self.cfg
        return Critics(2, self.obs_dim, self.act_dim, c.hidden, c.critic_hidden_layers, c.critic_layernorm)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        a = self.actor(obs[None])[0]
        if explore:
            noise = torch.randn(a.shape, generator=self.gen, device=a.device) * (self.cfg.expl_noise * self.max_action)
            a = (a + noise).clamp(-self.max_action, self.max_action)
        return a

    @torch.no_grad()
    def td_target(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        c, m = self.cfg, self.max_action
        a_next = self.actor_target(b["next_obs"])
        noise = (torch.randn(a_next.shape, generator=self.gen, device=a_next.device) * (c.policy_noise * m)).clamp(
            -c.noise_clip * m, c.noise_clip * m
        )
        a_next = (a_next + noise).clamp(-m, m)
        q_next = self.critic_target(b["next_obs"], a_next).min(0).values
        return b["reward"] + c.gamma * (1.0 - b["terminated"]) * q_next

    def update(self, buffer: ReplayBuffer, step: int) -> dict[str, Any]:
        return self.update_on(self.sample_batch(buffer), buffer, step, self.optimizer_step)

    def update_on(
        self, b: dict[str, torch.Tensor], buffer: ReplayBuffer, step: int, optimizer_step: OptimizerStep
    ) -> dict[str, Any]:
        """One update on batch ``b``; ``optimizer_step(opt, loss, net)`` applies each loss (NE
        passes its own, which knows whether this update is a topology event)."""
        y = self.td_target(b)
        q = self.critic(b["obs"], b["action"])
        critic_loss = (q - y).pow(2).mean(1).sum()
        optimizer_step(self.critic_opt, critic_loss, self.critic)
        self.n_updates += 1
        out: dict[str, Any] = {"critic_loss": critic_loss.detach()}
        if self.n_updates % self.cfg.policy_delay == 0:
            actor_loss = -self.critic.first(b["obs"], self.actor(b["obs"])).mean()
            optimizer_step(self.actor_opt, actor_loss, self.actor)
            polyak_(self.critic_target, self.critic, self.cfg.tau)
            polyak_(self.actor_target, self.actor, self.cfg.tau)
            out["actor_loss"] = actor_loss.detach()
        out.update(self.after_update(buffer, step))
        return out


make_agent, train, evaluate = entry_points(TD3Agent)
