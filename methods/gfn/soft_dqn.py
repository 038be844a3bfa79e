"""Soft DQN and Munchausen DQN as GFlowNet samplers (Tiapkin et al., AISTATS 2024, "Generative
Flow Networks as Entropy-Regularized RL"), the MaxEnt-RL baselines of RPE (He et al.
2025; Tiapkin et al.'s code, d-tiapkin/gflownet-rl, hypergrid/algorithms/soft_dqn.py).

The forward head is read as soft Q-values Q(s, .); the sampler is pi = softmax(Q) over valid
actions. With a fixed uniform backward policy the GFlowNet problem is an entropy-regularised
MDP whose intermediate reward is log P_B(s|s') = -log|B(s')|. Per transition (s, a, s'):

    y = log P_B(s|s') + beta log R(s')                          if s' is terminal
    y = log P_B(s|s') + logsumexp_{a'} Qbar(s', a')             otherwise
    M-DQN:  y += alpha * clip(log pibar(a|s), l0, 0),   pibar = softmax(Qbar(s, .))

(a stop edge has P_B = 1). Qbar is a Polyak target network (tau = 0.25 every step). Loss: Huber
between Q(s, a) and y on a batch of transitions from a proportional prioritised buffer
(alpha 0.5, beta 0, capacity 1e5, batch 256); lr 1e-3; MLP 2 x 256 (hypergrid config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from methods.common.target import frozen_copy, polyak_
from methods.common.constraints import Bound, at_least, at_most, within
from methods.gfn import core, loop
from methods.common.replay import TransitionReplay


@dataclass
class Config(core.GFNConfig):
    """Tiapkin et al.'s hypergrid config: lr 1e-3, batch 256 transitions, PER (0.5, 0),
    buffer 1e5, target tau 0.25, no Munchausen term (alpha 0)."""

    lr: float = 1e-3
    online_batch: int = 16
    replay_batch: int = 0  # the core's trajectory replay is not used
    transition_batch: int = 256
    buffer_size: int = 100_000
    per_alpha: float = 0.5
    target_tau: float = 0.25
    munchausen_alpha: float = 0.0
    munchausen_l0: float = -100.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "transition_batch": at_least(1),
        "buffer_size": at_least(1),
        "per_alpha": at_least(0),  # priority exponent; 0 = uniform sampling
        "target_tau": within(0, 1, lo_open=True),  # Polyak weight; 0 would freeze the target
        "munchausen_alpha": at_least(0),  # 0 = soft DQN
        "munchausen_l0": at_most(0),  # lower clip of a log-probability
    }


def transitions(env: Any, actions: torch.Tensor, reward_beta: float) -> dict[str, torch.Tensor]:
    """Flatten padded trajectories into transitions (s, a, s', terminal, log P_B, log R)."""
    states = env.trajectory_states(actions)
    valid = actions >= 0
    lengths = valid.sum(1)
    b, t = valid.nonzero(as_tuple=True)
    s, nxt, a = states[b, t], states[b, t + 1], actions[b, t]
    is_stop = (a == env.stop_action) if env.stop_action is not None else torch.zeros_like(valid[b, t])
    terminal = t == lengths[b] - 1
    n_parents = env.backward_mask(nxt).sum(-1).clamp(min=1)
    log_pb = torch.where(is_stop, torch.zeros((), device=a.device), -n_parents.float().log())
    log_r = torch.where(terminal, reward_beta * env.log_reward(nxt).float(), torch.zeros((), device=a.device))
    return {"s": s, "a": a, "next": nxt, "terminal": terminal, "log_pb": log_pb, "log_r": log_r}


class SoftQLearning(core.TransitionLearner):
    """Soft DQN (``munchausen_alpha = 0``) or Munchausen DQN (> 0) with its own PER buffer."""

    uses_log_z = False

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.buffer = TransitionReplay(cfg.buffer_size, cfg.per_alpha)
        self.env: Any = None
        self.net: torch.nn.Module | None = None
        self.target: torch.nn.Module | None = None
        self._last_idx: torch.Tensor | None = None

    def bind(self, env: Any, net: torch.nn.Module) -> None:
        self.env, self.net = env, net
        self.target = frozen_copy(net)

    def q_values(self, net: torch.nn.Module, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.env.forward_mask(states)
        return net(self.env.obs(states))[0].masked_fill(~mask, -torch.inf), mask

    @torch.no_grad()
    def td_target(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        q_next, _ = self.q_values(self.target, b["next"])
        soft_v = torch.logsumexp(q_next, -1)
        y = b["log_pb"] + torch.where(b["terminal"], b["log_r"], soft_v)
        if self.cfg.munchausen_alpha > 0:
            q_s, _ = self.q_values(self.target, b["s"])
            log_pi = torch.log_softmax(q_s, -1).gather(1, b["a"][:, None]).squeeze(1)
            y = y + self.cfg.munchausen_alpha * log_pi.clamp(self.cfg.munchausen_l0, 0.0)
        return y

    def observe(self, actions: torch.Tensor) -> None:
        self.buffer.add(transitions(self.env, actions, self.cfg.reward_beta))

    def batch_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Huber loss of a batch and its TD errors."""
        q, _ = self.q_values(self.net, b["s"])
        q_sa = q.gather(1, b["a"][:, None]).squeeze(1)
        y = self.td_target(b)
        return F.huber_loss(q_sa, y), (q_sa - y).detach()

    def batch_transitions(self) -> int:
        return self.cfg.transition_batch

    def sample_loss(self, gen: torch.Generator) -> torch.Tensor:
        idx, b = self.buffer.sample(self.cfg.transition_batch, gen)
        loss, td = self.batch_loss(b)
        self.buffer.update_priorities(idx, td)
        return loss

    def after_step(self) -> None:
        polyak_(self.target, self.net, self.cfg.target_tau)

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.target.load_state_dict(d["target"])
        self.buffer.load_state_dict(d["buffer"])


make_learner, train, evaluate = loop.entry_points(SoftQLearning)
