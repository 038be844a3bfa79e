"""SAC with automatic temperature (Haarnoja et al., 2018), generalised to an ensemble of N
critics with in-target minimisation over a random subset (REDQ, Chen et al., 2021) and a
high update-to-data ratio — the base of OMNet and of its baselines SAC, SAC-20, REDQ, DroQ
(as the OMNet paper, Tan et al. 2023, runs it).

Per update, on a batch (s, a, r, s', d), a' ~ pi(.|s'):
    y = r + gamma * (1 - d) * ( min_{j in M} Qbar_j(s', a') - alpha * log pi(a'|s') )
      M = all critics (SAC: the twin minimum) or a fresh random subset of size
      ``target_subset`` each update (REDQ: 2 of 10);
    L_critic = sum_i mean_B (Q_i(s, a) - y)^2
    L_actor  = mean_B ( alpha * log pi(a~|s) - Q(s, a~) ),  Q = min (SAC) or mean (REDQ) over critics
    L_alpha  = -mean_B log alpha * (log pi(a~|s) + target_entropy),  target_entropy = -|A|
``utd`` critic updates per environment step; the actor and alpha are updated on the last one
(REDQ/DroQ: one policy update per env step). DroQ = 2 critics with dropout 0.01 + LayerNorm.
Evaluation adds the normalised Q-bias of REDQ: on the evaluation episodes, mean and std of
(Q(s, a) - G(s, a)) / |mean G| with G the discounted Monte-Carlo return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from envs.control import ControlTask
from methods.common.constraints import Bound, at_least, one_of, positive, within
from methods.common.replay import ReplayBuffer
from methods.common.target import frozen_copy, polyak_
from methods.control.agent import AgentBase
from methods.control.loop import ControlConfig, entry_points
from methods.common.nets import LAYERNORM, Critics, GaussianActor

ACTOR_Q = ("min", "mean")


@dataclass
class Config(ControlConfig):
    """SAC (REDQ/DroQ protocol): lr 3e-4, batch 256, gamma 0.99, tau 0.005, 5k warm-up,
    alpha learned from 1.0 with target entropy -|A|, 2 critics, UTD 1."""

    start_steps: int = 5000
    init_alpha: float = 1.0
    n_critics: int = 2
    target_subset: int = 0  # 0: min over all critics; k: min over k random critics
    actor_q: str = "min"  # how the actor aggregates the critics
    critic_dropout: float = 0.0
    critic_layernorm: str = "none"
    q_bias_episodes: int = 5

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "init_alpha": positive(),  # the temperature is learned as log alpha
        "n_critics": at_least(1),
        "target_subset": at_least(0),
        "critic_dropout": within(0, 1, hi_open=True),  # dropout probability; 1 drops everything
        "critic_layernorm": one_of(*LAYERNORM),
        "q_bias_episodes": at_least(1),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.actor_q not in ACTOR_Q:
            raise ValueError(f"actor_q must be one of {ACTOR_Q} (got {self.actor_q!r})")
        if not 0 <= self.target_subset <= self.n_critics:
            raise ValueError(f"target_subset must be in [0, n_critics] (got {self.target_subset})")


class SACAgent(AgentBase):
    def __init__(
        self, cfg: Config, obs_dim: int, act_dim: int, max_action: float, device: torch.device, gen: torch.Generator
    ):
        super().__init__(cfg, obs_dim, act_dim, max_action, device, gen)
        self.actor = self.build_actor().to(device)
        self.critic = self.build_critic().to(device)
        self.critic_target = frozen_copy(self.critic)
        self.temperature = nn.Module()
        self.temperature.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha), device=device))
        self.target_entropy = -float(act_dim)
        self.actor_opt = self.make_optimizer(self.actor.parameters())
        self.critic_opt = self.make_optimizer(self.critic.parameters())
        self.alpha_opt = self.make_optimizer(self.temperature.parameters())
        self._critic_steps = 0

    def build_actor(self) -> nn.Module:
        return GaussianActor(self.obs_dim, self.act_dim, self.cfg.hidden, self.max_action)

    def build_critic(self) -> nn.Module:
        c = self.cfg
        return Critics(c.n_critics, self.obs_dim, self.act_dim, c.hidden, 2, c.critic_layernorm, c.critic_dropout)

    @property
    def alpha(self) -> torch.Tensor:
        return self.temperature.log_alpha.exp()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        return self.actor(obs[None], deterministic=not explore, gen=self.gen)[0][0]

    def target_members(self) -> torch.Tensor | None:
        """Indices of the critics whose minimum forms the target (None: all)."""
        k = self.cfg.target_subset
        if k == 0 or k == self.cfg.n_critics:
            return None
        return torch.randperm(self.cfg.n_critics, generator=self.gen, device=self.gen.device)[:k].to(self.device)

    @torch.no_grad()
    def td_target(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        a_next, logp_next = self.actor(b["next_obs"], gen=self.gen)
        q_next = self.critic_target(b["next_obs"], a_next)
        members = self.target_members()
        if members is not None:
            q_next = q_next[members]
        v_next = q_next.min(0).values - self.alpha * logp_next
        return b["reward"] + self.cfg.gamma * (1.0 - b["terminated"]) * v_next

    def update(self, buffer: ReplayBuffer, step: int) -> dict[str, Any]:
        b = self.sample_batch(buffer)
        y = self.td_target(b)
        q = self.critic(b["obs"], b["action"])
        critic_loss = (q - y).pow(2).mean(1).sum()
        self.optimizer_step(self.critic_opt, critic_loss, self.critic)
        polyak_(self.critic_target, self.critic, self.cfg.tau)
        self.n_updates += 1
        self._critic_steps += 1
        out: dict[str, Any] = {"critic_loss": critic_loss.detach()}
        if self._critic_steps % self.cfg.utd == 0:  # once per env step
            out.update(self.policy_update(b))
        out.update(self.after_update(buffer, step))
        return out

    def policy_update(self, b: dict[str, torch.Tensor]) -> dict[str, Any]:
        a, logp = self.actor(b["obs"], gen=self.gen)
        q = self.critic(b["obs"], a)
        q = q.min(0).values if self.cfg.actor_q == "min" else q.mean(0)
        actor_loss = (self.alpha.detach() * logp - q).mean()
        self.optimizer_step(self.actor_opt, actor_loss, self.actor)
        alpha_loss = -(self.temperature.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.optimizer_step(self.alpha_opt, alpha_loss, self.temperature)
        return {"actor_loss": actor_loss.detach(), "alpha": self.alpha.detach()}

    @torch.no_grad()
    def evaluation_metrics(self, task: ControlTask, seed: int) -> dict[str, float]:
        """Normalised Q-bias (REDQ): mean and std over visited (s, a) of (Q - G) / |mean G|."""
        env = task.make_eval(seed + 200, self.cfg.iterations)
        obs, _ = env.reset(seed=seed + 200)
        qs, gs = [], []
        for _ in range(self.cfg.q_bias_episodes):
            rewards, q_ep, done = [], [], False
            while not done:
                o = torch.as_tensor(obs, device=self.device)[None]
                a = self.actor(o, deterministic=True)[0]
                q_ep.append(float(self.critic(o, a).mean()))
                obs, r, term, trunc, _ = env.step(a[0].cpu().numpy())
                rewards.append(r)
                done = term or trunc
            g, returns = 0.0, []
            for r in reversed(rewards):  # truncated tails bias G low, as in REDQ's protocol
                g = r + self.cfg.gamma * g
                returns.append(g)
            qs += q_ep
            gs += returns[::-1]
            obs, _ = env.reset()
        env.close()
        q, g = np.asarray(qs), np.asarray(gs)
        bias = (q - g) / max(abs(g.mean()), 1e-8)
        return {"q_bias_mean": float(bias.mean()), "q_bias_std": float(bias.std())}


make_agent, train, evaluate = entry_points(SACAgent)
