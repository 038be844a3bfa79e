"""QMIX (Rashid et al. 2018) and VDN (Sunehag et al. 2018) as in EPyMARL (Papoudakis et al.
2021), with the Kaleidoscope MPE settings (LXXXXR/Kaleidoscope Kalei_MPE).

Data flow (EPyMARL's): an episode runner plays whole episodes on one env with ε-greedy over
the available actions (ε linear 1.0 → 0.05 over ``epsilon_anneal_steps`` env steps; greedy
at test) → an episode replay buffer (methods/common/replay.py: EpisodeReplay) → once at least
``batch_size`` episodes are stored, one learner step per collected episode:

    Q_i(τ_t, ·)         unrolled over the episode by the agent network (GRU hidden from zeros)
    a*_{t+1}            argmax over available actions of the *online* Q_i(τ_{t+1}, ·) (double Q)
    Q̄_tot(t+1)          target mixer over the target network's Q_i(τ_{t+1}, a*_{t+1}) and s_{t+1}
    y_t  = r_t + γ (1 - d_t) [(1-λ) Q̄_tot(t+1) + λ y_{t+1}]   (λ = 0: the 1-step target; the
           episode's last step bootstraps fully from Q̄_tot(t+1))
    L    = Σ_t filled_t (Q_tot(t) - y_t)² / Σ_t filled_t          (masked MSE)

with rewards standardised by a running mean/std, Adam (lr 5e-4), grad-norm clip 10 and a hard
target copy every ``target_update_interval`` learner steps. Mixers: ``qmix`` (monotonic
hypernetwork mixer on the state: w1, w_final = |hypernet(s)| with 2-layer hypernets, b1 linear,
V(s) 2-layer, ELU) and ``vdn`` (sum). Evaluation every ``eval_every`` env steps: the mean team
return of ``eval_episodes`` greedy episodes (``test_return``), on a fixed set of seeds.

Agent networks are initialised from torch's global generator, seeded with the run's seed just
before they are built. Pluggable agent network: :func:`entry_points` turns an agent-network factory
``make_agent_net(cfg, input_dim, n_agents, n_actions) -> AgentNetwork`` (methods/marl/agents.py)
into the ``train`` / ``evaluate`` a method module exposes; a module such as Kaleidoscope
subclasses :class:`Config` with its own fields (and its own ``agent_net`` name, with
``CONSTRAINTS = {"agent_net": one_of("kalei")}`` replacing the scheme list) and passes its
factory: ``train, evaluate = qmix.entry_points(make_kalei_net)``. The learner calls the
network's optional hooks (``auxiliary_loss``, ``on_env_steps``, ``diagnostics``, FLOP and
parameter counts). State a network keeps outside its parameters and buffers must travel in its
``state_dict`` (``get_extra_state`` / ``set_extra_state``) to be checkpointed.

The runner (episodes, evaluation, checkpoints) is ``loop.py``; ``qmix.py`` is the QMIX
method module. Exact resume: checkpoints at episode boundaries (the first after each ``checkpoint_every``
env steps, or when the run is asked to stop) hold the networks, optimiser, reward statistics,
replay buffer and every random state; episodes are reset with seeds drawn from a checkpointed
generator, so a resumed run is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods.common.target import frozen_copy
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, one_of, positive, within
from methods.common.replay import EpisodeReplay
from methods.marl.agents import SCHEMES, AgentNetwork
from methods.marl.value.episodes import TASKS, TeamTask
from methods.marl.value.value_blocks import (
    QMixer,
    RunningMeanStd,
    VDNMixer,
    next_agent_values,
    select_actions,
    td_targets,
)

MIXERS = ("qmix", "vdn")


@dataclass
class Config(MethodConfig):
    """EPyMARL QMIX with Kaleidoscope's MPE settings: 1R3 GRU agent (hidden 64) with one-hot
    ids and full sharing, QMIX mixer (embed 32, hypernet 64), Adam 5e-4, γ 0.99, batch 32
    episodes, buffer 5000 episodes, 1-step double-Q targets, standardised rewards, hard target
    update every 200 learner steps, grad clip 10, ε 1 → 0.05 over 50k steps, t_max 3.05M env
    steps (``iterations``), evaluation every 50k steps with 100 episodes."""

    env: str = "mpe"
    env_kwargs: dict = field(default_factory=lambda: {"task": "spread"})
    iterations: int = 3_050_000  # t_max, environment steps
    eval_every: int = 50_000  # test_interval
    checkpoint_every: int = 50_000
    eval_episodes: int = 100  # test_nepisode
    agent_net: str = "fups_id"  # parameter-sharing scheme (methods/marl/agents.py)
    obs_agent_id: bool = True  # the learner appends the one-hot agent id
    obs_last_action: bool = False  # ... and the agent's previous action, one-hot (EPyMARL's
    # MPE configs: off; pymarl2/SMAC: on)
    hidden_dim: int = 64
    mixer: str = "qmix"
    mixing_embed_dim: int = 32
    hypernet_embed: int = 64
    lr: float = 5e-4
    gamma: float = 0.99
    batch_size: int = 32  # episodes
    buffer_size: int = 5000  # episodes
    target_update_interval: int = 200  # learner steps
    grad_norm_clip: float = 10.0
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000  # env steps
    double_q: bool = True
    td_lambda: float = 0.0  # 0: 1-step targets (EPyMARL); pymarl2 uses 0.6
    standardise_rewards: bool = True
    batch_size_run: int = 1  # envs run in lockstep, one learner step per batch of
    # episodes (pymarl2's parallel runner; SMACv2: 4)

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "iterations": at_least(1),
        "eval_every": at_least(1),
        "checkpoint_every": at_least(1),
        "eval_episodes": at_least(1),
        "agent_net": one_of(*SCHEMES),
        "hidden_dim": at_least(1),
        "mixer": one_of(*MIXERS),
        "mixing_embed_dim": at_least(1),
        "hypernet_embed": at_least(1),
        "lr": positive(),
        "gamma": within(0, 1),
        "batch_size": at_least(1),
        "buffer_size": at_least(1),
        "target_update_interval": at_least(1),
        "grad_norm_clip": positive(),
        "epsilon_start": within(0, 1),
        "epsilon_finish": within(0, 1),
        "epsilon_anneal_steps": at_least(1),
        "td_lambda": within(0, 1),
        "batch_size_run": at_least(1),
    }
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("batch_size", "buffer_size")

    def measure_iterations(self) -> tuple[int, int]:
        # learner steps start once ``batch_size`` episodes are stored (800-4000 env steps)
        return 5000, 12000

    def planned_work(self) -> dict[str, int]:
        # one learner step per batch of episodes: their count depends on episode lengths, not on the config
        return {"env_steps": self.iterations}

    def measurement_config(self, iterations: int) -> Config:
        return replace(super().measurement_config(iterations), eval_episodes=1)

    def __post_init__(self) -> None:
        if self.env not in TASKS:
            raise ValueError(f"QMIX-family methods need env one of {sorted(TASKS)} (got {self.env!r})")
        super().__post_init__()
        if self.agent_net in ("fups", "fups_id") and self.obs_agent_id != (self.agent_net == "fups_id"):
            raise ValueError(
                f"obs_agent_id must be {self.agent_net == 'fups_id'} with agent_net "
                f"{self.agent_net!r} (fups_id is FuPS with the one-hot id appended)"
            )
        if self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})")


AgentNetFactory = Callable[[Any, int, int, int], AgentNetwork]


def scheme_agent_net(cfg: Config, input_dim: int, n_agents: int, n_actions: int) -> AgentNetwork:
    """The default factory: the parameter-sharing scheme ``cfg.agent_net``."""
    return SCHEMES[cfg.agent_net](input_dim, n_agents, n_actions, cfg.hidden_dim)


# ------------------------------------------------------------------------------ small pieces
def epsilon_at(cfg: Config, t_env: int) -> float:
    """EPyMARL's linear schedule: start → finish over ``epsilon_anneal_steps`` env steps, then flat."""
    delta = (cfg.epsilon_start - cfg.epsilon_finish) / cfg.epsilon_anneal_steps
    return max(cfg.epsilon_finish, cfg.epsilon_start - delta * t_env)


def make_mixer(cfg: Config, n_agents: int, state_dim: int) -> nn.Module:
    if cfg.mixer == "vdn":
        return VDNMixer()
    return QMixer(n_agents, state_dim, cfg.mixing_embed_dim, cfg.hypernet_embed)


# ------------------------------------------------------------------------------ the learner
class QLearner:
    """Agent network + mixer, their targets and the optimiser; ``act`` for the runner and
    ``train`` for one learner step on a batch of episodes."""

    def __init__(self, cfg: Config, env: TeamTask, make_agent_net: AgentNetFactory, device: torch.device):
        self.cfg, self.device = cfg, device
        self.n_agents, self.n_actions = env.n_agents, env.n_actions
        self.input_dim = (
            env.obs_dim + (env.n_actions if cfg.obs_last_action else 0) + (env.n_agents if cfg.obs_agent_id else 0)
        )
        self.agent = make_agent_net(cfg, self.input_dim, env.n_agents, env.n_actions).to(device)
        self.mixer = make_mixer(cfg, env.n_agents, env.state_dim).to(device)
        # the interface's target: a deep copy, hard-copied with load_state_dict (masks travel)
        self.target_agent = frozen_copy(self.agent)
        self.target_mixer = frozen_copy(self.mixer)
        self.build_optimizer()
        self.reward_ms = RunningMeanStd()
        self.n_updates = 0
        self.t_env = 0  # set by the runner before each learner step
        self.eye = torch.eye(env.n_agents, device=device)
        self.env_dims = (env.episode_limit, env.n_agents, env.obs_dim, env.state_dim, env.n_actions)

    # -- the hooks a learner variant overrides (MAST: methods/marl/value/mast.py; WQMIX: wqmix.py) -----
    def trainable_modules(self) -> list[nn.Module]:
        """The networks the optimiser trains (and the gradient norm is clipped over)."""
        return [self.agent, self.mixer]

    def build_optimizer(self) -> None:
        """A fresh Adam over :meth:`trainable_modules` (variants call it again after adding or
        replacing networks, before any step)."""
        self.params = [p for m in self.trainable_modules() for p in m.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=self.cfg.lr)

    def unmasked_forward_flops(self) -> float:
        """Per-sample forward FLOPs of trained networks a sparse variant leaves dense and does
        not otherwise count (none here; WQMIX's central Q̂*)."""
        return 0.0

    def make_buffer(self) -> EpisodeReplay:
        """The episode replay the runner fills and samples ``batch_size`` episodes from."""
        return EpisodeReplay(self.cfg.buffer_size, *self.env_dims, self.device)

    def bootstrap_values(self, online_next: Tensor, target_next: Tensor, avail_next: Tensor) -> Tensor:
        """Per-agent values (B, T, N) the target mixer bootstraps from: double Q or max."""
        return next_agent_values(online_next if self.cfg.double_q else None, target_next, avail_next)

    def current_td_lambda(self) -> float:
        return self.cfg.td_lambda

    def apply_gradients(self, total: Tensor) -> Tensor:
        """Backward, grad-norm clip and one optimiser step; returns the gradient norm."""
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_norm_clip)
        self.opt.step()
        return grad_norm

    def inputs(self, obs: Tensor, last_actions: Tensor) -> Tensor:
        """Agent inputs (EPyMARL's order): obs (..., N, obs_dim) ⊕ one-hot of ``last_actions``
        (..., N), -1 for none (the first step) ⊕ one-hot agent id, each part when configured."""
        parts = [obs]
        if self.cfg.obs_last_action:
            none = last_actions < 0
            onehot = F.one_hot(last_actions.clamp(min=0), self.n_actions).to(obs.dtype)
            parts.append(onehot.masked_fill(none.unsqueeze(-1), 0.0))
        if self.cfg.obs_agent_id:
            parts.append(self.eye.expand(*obs.shape[:-1], self.n_agents))
        return torch.cat(parts, -1) if len(parts) > 1 else obs

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        avail: np.ndarray,
        hidden: Tensor,
        epsilon: float,
        gen: torch.Generator,
        last_actions: np.ndarray,
    ) -> tuple[np.ndarray, Tensor]:
        """ε-greedy actions of one env (obs (N, d)) or of a batch of envs (obs (B, N, d), the
        hidden state of B episodes)."""
        x = self.inputs(torch.as_tensor(obs, device=self.device), torch.as_tensor(last_actions, device=self.device))
        one_env = x.dim() == 2
        q, hidden = self.agent(x.unsqueeze(0) if one_env else x, hidden)
        a = select_actions(q[0] if one_env else q, torch.as_tensor(avail, device=self.device).bool(), epsilon, gen)
        return a.cpu().numpy(), hidden

    def unroll(self, net: AgentNetwork, inputs: Tensor) -> Tensor:
        """Q values (B, T+1, N, A) of ``net`` over the episodes ``inputs`` (B, T+1, N, in)."""
        hidden = net.init_hidden(inputs.shape[0])
        qs = []
        for t in range(inputs.shape[1]):
            q, hidden = net(inputs[:, t], hidden)
            qs.append(q)
        return torch.stack(qs, 1)

    def train(self, b: dict[str, Tensor]) -> dict[str, float]:
        cfg = self.cfg
        rewards, filled = b["reward"], b["filled"]
        if cfg.standardise_rewards:
            self.reward_ms.update(rewards[filled > 0])
            rewards = self.reward_ms.normalise(rewards)
        # the action before step t: none at t = 0, then a_{t-1} (the bootstrap step sees the last)
        before = torch.full_like(b["actions"][:, :1], -1)
        inputs = self.inputs(b["obs"], torch.cat([before, b["actions"]], 1))
        q_all = self.unroll(self.agent, inputs)  # (B, T+1, N, A)
        q_taken = q_all[:, :-1].gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)  # (B, T, N)
        loss, targets, td, extra = self.td_loss(b, rewards, inputs, q_all, q_taken)
        aux = self.agent.auxiliary_loss(loss)
        total = loss + aux if aux is not None else loss
        grad_norm = self.apply_gradients(total)
        self.n_updates += 1
        if self.n_updates % cfg.target_update_interval == 0:
            self.update_targets()
        n = filled.sum()
        loss, total, td, q_taken = loss.detach(), total.detach(), td.detach(), q_taken.detach()
        return {
            "loss": float(loss),
            "total_loss": float(total),
            "grad_norm": float(grad_norm),
            "td_error_abs": float(td.abs().sum() / n),
            "q_taken_mean": float((q_taken * filled.unsqueeze(-1)).sum() / (n * self.n_agents)),
            "target_mean": float((targets * filled).sum() / n),
            **extra,
        }

    def td_loss(
        self, b: dict[str, Tensor], rewards: Tensor, inputs: Tensor, q_all: Tensor, q_taken: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """QMIX's loss on a batch: (masked MSE, targets (B, T), masked TD errors (B, T), extra
        metrics). ``q_all`` (B, T+1, N, A) are the online agent Qs, ``q_taken`` (B, T, N)."""
        filled = b["filled"]
        with torch.no_grad():
            target_all = self.unroll(self.target_agent, inputs)[:, 1:]
            q_next = self.bootstrap_values(q_all.detach()[:, 1:], target_all, b["avail"][:, 1:])
            next_tot = self.target_mixer(q_next, b["state"][:, 1:])  # (B, T)
            targets = td_targets(rewards, b["terminated"], filled, next_tot, self.cfg.gamma, self.current_td_lambda())
        q_tot = self.mixer(q_taken, b["state"][:, :-1])
        td = (q_tot - targets) * filled
        return td.pow(2).sum() / filled.sum(), targets, td, {}

    def update_targets(self) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())

    def diagnostics(self) -> dict[str, float]:
        """Learner-level values logged with each evaluation (averaged over the run as ``<k>_avg``)."""
        return {}

    def final_metrics(self) -> dict[str, float]:
        """Learner-level final metrics saved with the model (e.g. training FLOPs)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "mixer": self.mixer.state_dict(),
            "target_agent": self.target_agent.state_dict(),
            "target_mixer": self.target_mixer.state_dict(),
            "opt": self.opt.state_dict(),
            "reward_ms": self.reward_ms.state_dict(),
            "n_updates": self.n_updates,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.agent.load_state_dict(d["agent"])
        self.mixer.load_state_dict(d["mixer"])
        self.target_agent.load_state_dict(d["target_agent"])
        self.target_mixer.load_state_dict(d["target_mixer"])
        self.opt.load_state_dict(d["opt"])
        self.reward_ms.load_state_dict(d["reward_ms"])
        self.n_updates = d["n_updates"]
