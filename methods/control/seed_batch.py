"""TD3 updates of k seeds in one process (issue 26, step one): the same update as
``td3.TD3Agent.update_on``, run on stacked networks (methods/common/stacked.py).

Each seed keeps what makes it a seed: its own replay buffer and random generator, drawn in the
single-seed order (the batch, then the target-policy noise), so seed i's first updates match its
single-seed run to float tolerance (tests/test_seed_batch.py). What is shared is only the
arithmetic: one batched matmul per layer for all seeds, one fused Adam step over the stacked
tensors (element-wise, so per seed the same rule).

The loop that trains k seeds with it, and its checkpoints: methods/control/group_loop.py.
"""

from __future__ import annotations

import torch

from typing import Any

from methods.common.replay import ReplayBuffer
from methods.common.stacked import StackedMLP
from methods.control import group_loop
from methods.control.td3 import TD3Agent, make_agent


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


def train_group(cfg: Any, group: group_loop.RunGroup) -> list[dict[str, float]]:
    """k seeds of TD3 (``td3``, or ``td3_ln``: the same agent with a LayerNorm critic) in one
    process: the group loop with this stacked update (methods.GROUP_TRAINERS points here)."""
    return group_loop.train_group(cfg, group, make_agent, StackedTD3)
