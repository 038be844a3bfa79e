"""Goal-conditioned DQN baseline of RBS's comparison (He et al., ICLR 2025: "DQN / goal-conditioned
RL"; the paper's exact DQN set-up is not in the official code).

Standard recipe followed: DQN (Mnih et al., Nature 2015) with a universal value function
Q(s, y, a) (Schaul et al., ICML 2015), i.e. the goal is part of the input:
    * Q(s, y, ·) = the forward head's action outputs of the same ``GoalNet`` as the GFlowNets
      (its log-flow output is unused); invalid actions are masked out of every max / argmax;
    * sparse reward 1[x = y] on the episode's last transition, gamma = 0.99;
    * epsilon-greedy behaviour, epsilon annealed linearly from 1.0 to 0.05 over the first 20 %
      of training; evaluation is greedy;
    * 1-step TD targets r + gamma (1 - done) max_a' Q_target(s', y, a') from a target network
      copied every 100 gradient steps; Huber loss; Adam;
    * uniform replay of whole trajectories (the same buffer, priorities never reset), all
      transitions of 256 replayed trajectories per gradient step; one step per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from methods.common.target import frozen_copy
from methods.common.constraints import Bound, at_least, within
from methods.gfn.goal import core, loop, replay


@dataclass
class Config(core.GoalConfig):
    """DQN settings on top of the shared ones (same nets, lr, batch and goals per step as the
    GFlowNets; uniform replay)."""

    priority_reset: bool = False
    gamma: float = 0.99
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_fraction: float = 0.2
    target_update_every: int = 100

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "gamma": within(0, 1),
        "eps_start": within(0, 1),
        "eps_end": within(0, 1),
        "eps_fraction": within(0, 1),
        "target_update_every": at_least(1),
    }


def _greedy(q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return q.masked_fill(~mask, float("-inf")).argmax(-1)


class GoalDQN(core.GoalLearner):
    cfg: Config

    def bind(self, env: Any, net: core.GoalNet) -> None:
        super().bind(env, net)
        self.target = frozen_copy(net)

    def epsilon(self, iteration: int) -> float:
        cfg = self.cfg
        frac = min(1.0, iteration / max(1.0, cfg.eps_fraction * cfg.iterations))
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    def _chooser(self, epsilon: float) -> core.Chooser:
        env, net = self.env, self.net

        def choose(states: torch.Tensor, goals: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            greedy = _greedy(net(core.net_inputs(env, states, goals))[0], mask)
            if epsilon <= 0:
                return greedy
            explore = torch.rand(len(states), generator=gen, device=gen.device).to(states.device) < epsilon
            uniform = torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)
            return torch.where(explore, uniform, greedy)

        return choose

    def behaviour(self, iteration: int) -> core.Chooser:
        return self._chooser(self.epsilon(iteration))

    def policy(self) -> core.Chooser:
        return self._chooser(0.0)

    def loss(self, batch: replay.ReplayBatch, iteration: int) -> torch.Tensor:
        env, actions, goals = self.env, batch.actions, batch.goals
        B, L = actions.shape
        valid = actions >= 0
        lengths = valid.sum(1)
        last = valid & (torch.arange(L, device=actions.device)[None] == (lengths - 1)[:, None])
        states = env.trajectory_states(actions)
        g = goals[:, None].expand(B, L, goals.shape[-1])[valid]
        s, s_next, a = states[:, :-1][valid], states[:, 1:][valid], actions[valid]
        q = self.net(core.net_inputs(env, s, g))[0].gather(1, a[:, None]).squeeze(1)
        with torch.no_grad():
            q_next = self.target(core.net_inputs(env, s_next, g))[0]
            mask = env.forward_mask(s_next)
            best = q_next.masked_fill(~mask, float("-inf")).max(-1).values
            done = last[valid]
            best = torch.where(done | ~mask.any(-1), torch.zeros_like(best), best)
            reward = torch.where(done, batch.reward[:, None].expand(B, L)[valid], torch.zeros_like(best))
            target = reward + self.cfg.gamma * best
        return torch.nn.functional.smooth_l1_loss(q, target)

    def after_step(self, iteration: int) -> None:
        if (iteration + 1) % self.cfg.target_update_every == 0:
            self.target.load_state_dict(self.net.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "target" in state:
            self.target.load_state_dict(state["target"])


make_learner, train, evaluate = loop.entry_points(GoalDQN)
