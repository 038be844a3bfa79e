"""TD3 and SAC updates of k seeds in one process (issue 26): the same updates as
``td3.TD3Agent.update_on`` and ``sac.SACAgent.update``, run on stacked networks
(methods/common/stacked.py).

Each seed keeps what makes it a seed: its own replay buffer and random generator, drawn in the
single-seed order (the batch, then the target-policy noise or SAC's next-action noise, then the
policy update's), so seed i's first updates match its
single-seed run to float tolerance (tests/test_seed_batch.py). What is shared is only the
arithmetic: one batched matmul per layer for all seeds, one fused Adam step over the stacked
tensors (element-wise, so per seed the same rule).

The loop that trains k seeds with it, and its checkpoints: methods/control/group_loop.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from methods.common.nets import squashed_gaussian
from methods.common.replay import ReplayBuffer
from methods.common.stacked import StackedMLP
from methods.control import group_loop, sac, td3
from methods.control.sac import SACAgent
from methods.control.td3 import TD3Agent


class StackedTD3:
    """k TD3 agents of the plain ``TD3Agent`` class (no masks, resets or other hooks; LayerNorm
    critics allowed) updated together."""

    def __init__(self, agents: list[TD3Agent]):
        first = agents[0]
        if any(type(a) is not TD3Agent for a in agents):
            raise ValueError("StackedTD3 batches plain TD3 agents only (no subclass: its hooks would be skipped)")
        self.agents, self.cfg, self.max_action = agents, first.cfg, first.max_action
        self.actor = StackedMLP([a.actor.net for a in agents])
        self.actor_target = StackedMLP([a.actor_target.net for a in agents])
        # seed-major: row 2s + j is seed s's critic j
        self.critic = StackedMLP([m for a in agents for m in a.critic.members])
        self.critic_target = StackedMLP([m for a in agents for m in a.critic_target.members])
        for net in (self.actor_target, self.critic_target):
            net.requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.cfg.lr, fused=True)
        self.n_updates = first.n_updates

    def _pi(self, net: StackedMLP, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(net(obs))

    def _q(self, net: StackedMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """[k, 2, B] from obs [k, B, o] and act [k, B, a]."""
        x = torch.cat([obs, act], -1)
        k, n, _ = x.shape
        return net(x.repeat_interleave(2, 0)).view(k, 2, n)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        """Every seed's action ``[k, act]`` for its observation ``obs [k, obs]``; with ``gens``
        (exploring), each seed's Gaussian noise drawn from its own generator as ``TD3Agent.act`` draws it."""
        a = self._pi(self.actor, obs[:, None])[:, 0]
        if gens is None:
            return a
        scale = self.cfg.expl_noise * self.max_action
        noise = torch.stack([torch.randn(a.shape[1:], generator=g, device=a.device) for g in gens])
        return (a + noise * scale).clamp(-self.max_action, self.max_action)

    def state_dict(self) -> dict[str, Any]:
        nets = ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt")
        return {name: getattr(self, name).state_dict() for name in nets} | {"n_updates": self.n_updates}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for name, value in d.items():
            if name == "n_updates":
                self.n_updates = value
            else:
                getattr(self, name).load_state_dict(value)
        self.write_back()

    def update(self, buffers: list[ReplayBuffer], gens: list[torch.Generator]) -> dict[str, torch.Tensor]:
        """One TD3 update of every seed; per-seed losses ``[k]``."""
        c, m = self.cfg, self.max_action
        batches, noises = [], []
        for buffer, gen in zip(buffers, gens):  # each seed's draws in its single-seed order
            b = buffer.sample(c.batch, gen)
            noises.append(torch.randn(b["action"].shape, generator=gen, device=b["action"].device))
            batches.append(b)
        b = {key: torch.stack([x[key] for x in batches]) for key in batches[0]}
        with torch.no_grad():
            noise = (torch.stack(noises) * (c.policy_noise * m)).clamp(-c.noise_clip * m, c.noise_clip * m)
            a_next = (self._pi(self.actor_target, b["next_obs"]) + noise).clamp(-m, m)
            q_next = self._q(self.critic_target, b["next_obs"], a_next).min(1).values
            y = b["reward"] + c.gamma * (1.0 - b["terminated"]) * q_next
        q = self._q(self.critic, b["obs"], b["action"])
        critic_loss = (q - y[:, None]).pow(2).mean(2).sum(1)  # [k]
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward(inputs=list(self.critic.parameters()))
        self.critic_opt.step()
        self.n_updates += 1
        out = {"critic_loss": critic_loss.detach()}
        if self.n_updates % c.policy_delay == 0:
            obs = b["obs"]
            # Q_1 alone (rows 0, 2, ...): the twin is not in the actor's loss
            q1 = self.critic(torch.cat([obs, self._pi(self.actor, obs)], -1), rows=slice(0, None, 2)).squeeze(-1)
            actor_loss = -q1.mean(1)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.sum().backward(inputs=list(self.actor.parameters()))
            self.actor_opt.step()
            for target, online in ((self.critic_target, self.critic), (self.actor_target, self.actor)):
                torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), c.tau)
            out["actor_loss"] = actor_loss.detach()
        return out

    def write_back(self) -> None:
        """Every seed's networks back into its own agent (for saving or evaluation)."""
        self.actor.write_back([a.actor.net for a in self.agents])
        self.actor_target.write_back([a.actor_target.net for a in self.agents])
        self.critic.write_back([mm for a in self.agents for mm in a.critic.members])
        self.critic_target.write_back([mm for a in self.agents for mm in a.critic_target.members])
        for a in self.agents:
            a.n_updates = self.n_updates


class StackedSAC:
    """k SAC agents of the plain ``SACAgent`` class (SAC, SAC at a higher UTD; LayerNorm critics
    allowed) updated together. Not DroQ (critic dropout draws from the global generator, shared by
    the seeds) nor REDQ (a random target subset): those keep one seed a job."""

    def __init__(self, agents: list[SACAgent]):
        first = agents[0]
        c = first.cfg
        if any(type(a) is not SACAgent for a in agents):
            raise ValueError("StackedSAC batches plain SAC agents only (no subclass: its hooks would be skipped)")
        if c.critic_dropout > 0 or c.target_subset not in (0, c.n_critics):
            raise ValueError("StackedSAC batches SAC without critic dropout or a random target subset")
        self.agents, self.cfg, self.max_action = agents, c, first.max_action
        self.n_critics, self.target_entropy, self.act_dim = c.n_critics, first.target_entropy, first.act_dim
        self.actor = StackedMLP([a.actor.net for a in agents])
        # seed-major: row n*s + j is seed s's critic j
        self.critic = StackedMLP([m for a in agents for m in a.critic.members])
        self.critic_target = StackedMLP([m for a in agents for m in a.critic_target.members])
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.stack([a.temperature.log_alpha.detach() for a in agents]))
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c.lr, fused=True)
        self.n_updates, self.critic_steps = first.n_updates, first._critic_steps

    def _pi(self, obs: torch.Tensor, gens: list[torch.Generator] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``[k, B, act]`` and log-probabilities ``[k, B]``; ``gens`` None: the means."""
        out = self.actor(obs)
        eps = None
        if gens is not None:
            shape = (*out.shape[1:-1], self.act_dim)
            eps = torch.stack([torch.randn(shape, generator=g, device=out.device, dtype=out.dtype) for g in gens])
        return squashed_gaussian(out, eps, self.max_action)

    def _q(self, net: StackedMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``[k, n, B]`` from obs ``[k, B, o]`` and act ``[k, B, a]``."""
        x = torch.cat([obs, act], -1)
        k, n_rows, _ = x.shape
        return net(x.repeat_interleave(self.n_critics, 0)).view(k, self.n_critics, n_rows)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return self._pi(obs[:, None], gens)[0][:, 0]

    def update(self, buffers: list[ReplayBuffer], gens: list[torch.Generator]) -> dict[str, torch.Tensor]:
        """One critic update of every seed (and the policy and temperature updates on every
        ``utd``-th); per-seed values ``[k]``."""
        c = self.cfg
        b = [buffer.sample(c.batch, gen) for buffer, gen in zip(buffers, gens)]
        b = {key: torch.stack([x[key] for x in b]) for key in b[0]}
        with torch.no_grad():
            a_next, logp_next = self._pi(b["next_obs"], gens)
            q_next = self._q(self.critic_target, b["next_obs"], a_next).min(1).values
            v_next = q_next - self.log_alpha.exp()[:, None] * logp_next
            y = b["reward"] + c.gamma * (1.0 - b["terminated"]) * v_next
        q = self._q(self.critic, b["obs"], b["action"])
        critic_loss = (q - y[:, None]).pow(2).mean(2).sum(1)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward(inputs=list(self.critic.parameters()))
        self.critic_opt.step()
        torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), c.tau)
        self.n_updates += 1
        self.critic_steps += 1
        out = {"critic_loss": critic_loss.detach()}
        if self.critic_steps % c.utd == 0:  # once per env step
            a, logp = self._pi(b["obs"], gens)
            q = self._q(self.critic, b["obs"], a)
            q = q.min(1).values if c.actor_q == "min" else q.mean(1)
            actor_loss = (self.log_alpha.exp().detach()[:, None] * logp - q).mean(1)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.sum().backward(inputs=list(self.actor.parameters()))
            self.actor_opt.step()
            alpha_loss = -(self.log_alpha[:, None] * (logp.detach() + self.target_entropy)).mean(1)
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.sum().backward(inputs=[self.log_alpha])
            self.alpha_opt.step()
            out.update(actor_loss=actor_loss.detach(), alpha=self.log_alpha.exp().detach())
        return out

    def state_dict(self) -> dict[str, Any]:
        parts = ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt")
        return {name: getattr(self, name).state_dict() for name in parts} | {
            "log_alpha": self.log_alpha.detach().clone(),
            "n_updates": self.n_updates,
            "critic_steps": self.critic_steps,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for name in ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(d[name])
        with torch.no_grad():
            self.log_alpha.copy_(d["log_alpha"])
        self.n_updates, self.critic_steps = d["n_updates"], d["critic_steps"]
        self.write_back()

    @torch.no_grad()
    def write_back(self) -> None:
        """Every seed's networks and temperature back into its own agent (saving, evaluation)."""
        self.actor.write_back([a.actor.net for a in self.agents])
        self.critic.write_back([m for a in self.agents for m in a.critic.members])
        self.critic_target.write_back([m for a in self.agents for m in a.critic_target.members])
        for s, a in enumerate(self.agents):
            a.temperature.log_alpha.copy_(self.log_alpha[s])
            a.n_updates, a._critic_steps = self.n_updates, self.critic_steps


def train_group(cfg: Any, group: group_loop.RunGroup) -> list[dict[str, float]]:
    """k seeds in one process: the group loop with the stacked update of the config's algorithm
    (TD3: ``td3``, ``td3_ln``; SAC: ``sac``, ``sac20``; methods.GROUP_TRAINERS points here)."""
    if isinstance(cfg, sac.Config):
        return group_loop.train_group(cfg, group, sac.make_agent, StackedSAC)
    return group_loop.train_group(cfg, group, td3.make_agent, StackedTD3)
