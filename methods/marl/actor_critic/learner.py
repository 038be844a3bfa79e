"""MATD3 (Ackermann et al. 2019) in the HARL style (Zhong et al. 2024) with full parameter
sharing: the base learner of Kaleidoscope's multi-agent MuJoCo experiments (official
Kalei_MaMuJoCo code, built on PKU-MARL/HARL). FuPS, so one actor for all agents; a centralised critic on
the global state and the
joint action.

Per update, on a batch of n-step transitions (s, o, a, R, s', o', term, γ^m):
    a'_i = clip(π̄(o'_i) + clip(N(0, σ), −c, c), −1, 1)              (target policy smoothing)
    y    = R + γ^m (1 − term) · min_k Q̄_k(s', a')                    (min over all K critics)
    L_Q  = Σ_k mean_B (Q_k(s, a) − y)²                                 (K = 2: twin critics;
                                                                        K = 5: the critic ensemble)
and every ``policy_freq``-th update, agent by agent in a fixed order (HARL's ``fixed_order``),
one Adam step of the shared actor on
    L_π,i = −mean_B mean_k Q_k(s, a_{−i} ⊕ π(o_i))
where a_{−i} are the other agents' actions from the replay batch (``others_actions`` "batch", both
official runners; "policy": their current policies', recomputed after each agent's step),
then Polyak targets (τ = 0.005). HARL calls the shared actor's soft update once per agent, so
the target actor moves n_agents times per policy step (``target_actor_polyak_per_agent``, the
official runner's quirk, on by default).

Exploration: π(o_i) + N(0, expl_noise), clipped, after ``start_steps`` uniform random steps.
Training: ``updates_per_train`` updates every ``train_interval`` env steps.

Hyper-parameters are the Kaleidoscope MaMuJoCo configs' (Kalei_MaMuJoCo tuned_configs): actor lr 5e-4,
critic lr 1e-3, batch 1000, buffer 1e6, n-step per task (HalfCheetah 10), policy_freq 2,
MLP 256-256 (critic with LayerNorm), γ 0.99, 10k uniform warm-up steps. The update schedule
follows HARL's: HARL runs 10 envs and makes update_per_train 1 × train_interval 50 = 50
updates every 50 vector steps, i.e. one update per 10 env transitions; with our single env
that is ``updates_per_train`` 5 every ``train_interval`` 50 env steps. ``others_actions``:
the replay batch's actions for the other agents (HARL's off_policy_ma_runner.train and
Kaleidoscope's copy of it); the current policies' are an option.

The actor's parameter-sharing scheme is ``actor_net`` (methods/marl/actor_critic/actors.py): FuPS by
default; NoPS, MultiH and SNP-PS are Kaleidoscope's sharing baselines (methods/marl/actor_critic/
matd3_{nops,multih,snp}.py). Every scheme keeps the per-agent actor step above.

The network-building methods (``build_actor``, ``build_critic``) and the ``actor_aux_loss`` /
``critic_aux_loss`` / ``on_env_steps`` hooks are what Kaleidoscope (methods/marl/actor_critic/
kaleidoscope_matd3.py) overrides.

The runner (episodes, evaluation, checkpoints) is ``loop.py``; ``matd3.py`` is the MATD3 method
module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from envs.mamujoco import MaMuJoCoTask
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, one_of, positive, within
from methods.common.target import frozen_copy, polyak_
from methods.common.nets import Critics
from methods.marl.actor_critic.actors import ACTOR_SCHEMES, SNPPSActor, dense_actor_flops


@dataclass
class Config(MethodConfig):
    env: str = "mamujoco"
    env_kwargs: dict = field(
        default_factory=lambda: {"scenario": "HalfCheetah", "agent_conf": "2x3", "agent_obsk": 0, "episode_limit": 1000}
    )
    iterations: int = 10_000_000  # env steps
    eval_every: int = 10_000
    checkpoint_every: int = 50_000
    eval_episodes: int = 40  # the paper's evaluation (40 episodes)
    actor_lr: float = 5e-4
    critic_lr: float = 1e-3
    batch: int = 1000
    gamma: float = 0.99
    tau: float = 0.005
    hidden: int = 256
    buffer_size: int = 1_000_000
    start_steps: int = 10_000  # uniform random warm-up (official tuned configs)
    n_step: int = 10  # HalfCheetah 2x3 (Hopper/Ant 5, Walker 20/25)
    policy_freq: int = 2
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    expl_noise: float = 0.1
    n_critics: int = 2  # 2: twin critics (TD3); 5: the critic ensemble
    critic_layernorm: bool = False  # HARL's twin critic is a plain MLP (PlainMLP)
    obs_agent_id: bool = False  # HARL's share_param MATD3 feeds observations only
    train_interval: int = 50  # env steps between training rounds
    updates_per_train: int = 5  # one update per 10 env transitions, as HARL with 10 envs
    # a_{−i} in agent i's actor loss: the replay batch's (HARL's off_policy_ma_runner.train and
    # Kaleidoscope's copy of it) or the current policies' ("policy")
    others_actions: str = "batch"
    # which critics the actor climbs: HARL's get_values reads critic 1 only ("first");
    # Kaleidoscope's masked ensemble averages all of them ("mean")
    actor_critics: str = "first"
    target_actor_polyak_per_agent: bool = True
    actor_net: str = "fups"  # parameter-sharing scheme of the actor (methods/marl/actor_critic/actors.py)
    snp_keep: float = 0.5  # SNP-PS: share of hidden units each agent keeps [unverified]

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "iterations": at_least(1),
        "eval_every": at_least(1),
        "checkpoint_every": at_least(1),
        "eval_episodes": at_least(1),
        "actor_lr": positive(),
        "critic_lr": positive(),
        "batch": at_least(1),
        "gamma": within(0, 1),
        "tau": within(0, 1, lo_open=True),
        "hidden": at_least(1),
        "buffer_size": at_least(1),
        "start_steps": at_least(0),
        "n_step": at_least(1),
        "policy_freq": at_least(1),
        "policy_noise": at_least(0),
        "noise_clip": at_least(0),
        "expl_noise": at_least(0),
        "n_critics": at_least(1),
        "train_interval": at_least(1),
        "updates_per_train": at_least(1),
        "others_actions": one_of("policy", "batch"),
        "actor_critics": one_of("first", "mean"),
        "actor_net": one_of(*ACTOR_SCHEMES),
        "snp_keep": within(0, 1, lo_open=True),
    }
    # (the family-wide list of old, QMIX's batch_size, missed MATD3's batch entirely)
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("batch", "buffer_size", "updates_per_train")

    def measure_iterations(self) -> tuple[int, int]:
        # after a 1000-step warm-up (the paper's 10k would dominate a short run)
        return 1500, 3500

    def planned_work(self) -> dict[str, int]:
        rounds = max(0, self.iterations - self.start_steps) // self.train_interval
        return {"env_steps": self.iterations, "updates": rounds * self.updates_per_train}

    def measurement_config(self, iterations: int) -> Config:
        return replace(
            super().measurement_config(iterations),
            start_steps=min(self.start_steps, 1000),
            eval_episodes=1,
            buffer_size=min(self.buffer_size, iterations),
        )

    def __post_init__(self) -> None:
        if self.env != "mamujoco":
            raise ValueError(f"MATD3 needs env 'mamujoco' (got {self.env!r})")
        super().__post_init__()


class MATD3Learner:
    def __init__(self, cfg: Config, task: MaMuJoCoTask, device: torch.device, gen: torch.Generator):
        self.cfg, self.device, self.gen = cfg, device, gen
        self.n_agents, self.act_dim, self.max_action = task.n_agents, task.act_dim, task.max_action
        self.input_dim = task.obs_dim + (task.n_agents if cfg.obs_agent_id else 0)
        self.state_dim = task.state_dim
        self.action_mask = torch.as_tensor(task.action_mask(), device=device)  # [N, act]
        self.actor = self.build_actor().to(device)
        self.critic = self.build_critic().to(device)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.n_updates = 0
        self.t_env = 0

    # -- networks (Kaleidoscope overrides) ----------------------------------------------------
    def build_actor(self) -> nn.Module:
        """The actor of the config's sharing scheme ``actor_net``."""
        c = self.cfg
        if c.actor_net == "snp_ps":
            return SNPPSActor(self.input_dim, self.act_dim, c.hidden, self.max_action, self.n_agents, c.snp_keep)
        return ACTOR_SCHEMES[c.actor_net](self.input_dim, self.act_dim, c.hidden, self.max_action, self.n_agents)

    def build_critic(self) -> nn.Module:
        """K Q-networks on (state, joint action): [in → 256 → 256 → 1], Linear → LayerNorm → ReLU."""
        c = self.cfg
        return Critics(
            c.n_critics,
            self.state_dim,
            self.n_agents * self.act_dim,
            c.hidden,
            2,
            "all" if c.critic_layernorm else "none",
        )

    def actor_aux_loss(self, base: Tensor) -> Tensor:
        return base.new_zeros(())

    def critic_aux_loss(self, base: Tensor) -> Tensor:
        return base.new_zeros(())

    def on_env_steps(self, t_env: int) -> dict[str, float]:
        return {}

    # -- acting -------------------------------------------------------------------------------
    def inputs(self, obs: Tensor) -> Tensor:
        """``obs [..., N, d]`` → actor inputs, with the one-hot agent id if ``obs_agent_id``."""
        if not self.cfg.obs_agent_id:
            return obs
        ids = torch.eye(self.n_agents, device=obs.device).expand(*obs.shape[:-1], self.n_agents)
        return torch.cat([obs, ids], -1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        a = self.actor(self.inputs(torch.as_tensor(obs, device=self.device)[None]))[0]
        if explore:
            noise = torch.randn(a.shape, generator=self.gen, device=self.gen.device).to(a.device)
            a = (a + noise * self.cfg.expl_noise * self.max_action).clamp(-self.max_action, self.max_action)
        return (a * self.action_mask).cpu().numpy()

    # -- learning -----------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, b: dict[str, Tensor]) -> Tensor:
        c, m = self.cfg, self.max_action
        a_next = self.actor_target(self.inputs(b["next_obs"]))
        noise = torch.randn(a_next.shape, generator=self.gen, device=self.gen.device).to(a_next.device)
        noise = (noise * c.policy_noise * m).clamp(-c.noise_clip * m, c.noise_clip * m)
        a_next = ((a_next + noise).clamp(-m, m) * self.action_mask).flatten(1)
        q_next = self.critic_target(b["next_state"], a_next).min(0).values
        return b["reward"] + b["discount"] * (1.0 - b["terminated"]) * q_next

    def update(self, b: dict[str, Tensor]) -> dict[str, float]:
        c = self.cfg
        y = self.td_target(b)
        q = self.critic(b["state"], b["actions"].flatten(1))  # [K, B]
        critic_base = (q - y).pow(2).mean(1).sum()
        critic_loss = critic_base + self.critic_aux_loss(critic_base)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.n_updates += 1
        out = {"critic_loss": float(critic_base.detach()), "q_mean": float(q.detach().mean())}
        if self.n_updates % c.policy_freq == 0:
            out["actor_loss"] = self.update_actor(b)
            polyak_(self.critic_target, self.critic, c.tau)
            for _ in range(self.n_agents if c.target_actor_polyak_per_agent else 1):
                polyak_(self.actor_target, self.actor, c.tau)
        return out

    def update_actor(self, b: dict[str, Tensor]) -> float:
        """One Adam step per agent, in agent order, on the shared actor."""
        inputs = self.inputs(b["obs"])  # [B, N, in]
        if self.cfg.others_actions == "policy":
            with torch.no_grad():
                joint = self.actor(inputs) * self.action_mask
        else:
            joint = b["actions"].clone()
        losses = []
        for i in range(self.n_agents):
            a_i = self.actor.forward_agent(inputs[:, i], i) * self.action_mask[i]
            acts = torch.cat([joint[:, :i], a_i[:, None], joint[:, i + 1 :]], 1)
            q = self.critic(b["state"], acts.flatten(1))  # [K, B]
            base = -(q[0] if self.cfg.actor_critics == "first" else q).mean()
            loss = base + self.actor_aux_loss(base)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward(inputs=list(self.actor.parameters()))
            self.actor_opt.step()
            losses.append(float(base.detach()))
            if self.cfg.others_actions == "policy":
                with torch.no_grad():
                    joint[:, i] = self.actor.forward_agent(inputs[:, i], i) * self.action_mask[i]
        return float(np.mean(losses))

    # -- counts and state ---------------------------------------------------------------------
    def inference_flops_per_agent(self) -> float:
        """One agent's actor forward pass (FLOPs, methods/common/flops.py's conventions)."""
        return float(self.actor.inference_flops_per_agent())

    def dense_inference_flops_per_agent(self) -> float:
        """The dense FuPS actor of the same sizes: the reference of ``flops_ratio``."""
        return float(dense_actor_flops(self.input_dim, self.cfg.hidden, self.act_dim))

    def diagnostics(self) -> dict[str, float]:
        return {"flops_ratio": self.inference_flops_per_agent() / self.dense_inference_flops_per_agent()}

    def state_dict(self) -> dict[str, Any]:
        return {
            k: v.state_dict() for k, v in vars(self).items() if isinstance(v, (nn.Module, torch.optim.Optimizer))
        } | {"n_updates": self.n_updates, "t_env": self.t_env}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for k, v in vars(self).items():
            if isinstance(v, (nn.Module, torch.optim.Optimizer)):
                v.load_state_dict(d[k])
        self.n_updates, self.t_env = d["n_updates"], d["t_env"]


LearnerFactory = Callable[[Config, MaMuJoCoTask, torch.device, torch.Generator], MATD3Learner]
