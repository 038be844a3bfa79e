"""NE's plasticity baselines on TD3 (Liu et al., ICLR 2025, standard settings of
the original papers [unverified for NE's runs]):

* ``Reset`` (Nikishin et al., 2022): re-initialise the networks (all layers, or the last one
  with ``reset_layers = "last"``), their targets and optimiser state every ``reset_interval``
  environment steps; the replay buffer is kept.
* ``ReDo`` (Sokar et al., 2023): every ``redo_interval`` environment steps, find the tau-dormant
  hidden units (tau = 0.1) of actor and critic on a batch; re-initialise their incoming weights,
  zero their outgoing weights and reset the Adam moments of exactly those entries.
* ``PlasticityInjection`` (Nikishin et al., 2023): once, at environment step ``inject_at`` x T
  (T = ``iterations``), every network becomes h = f_theta(x) + f_theta'(x) - f_theta'_frozen(x)
  with theta frozen and theta' a fresh trainable init; the output is unchanged at the moment of
  injection.

Schedules count environment steps, as the paper configs state them (and as a task switch of the
cycling task does): counting updates would shift every event by the warm-up and scale it by the
update-to-data ratio. An event fires at the first update of its environment step, so with
``utd`` > 1 it fires once, and the step's remaining updates train the new networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from methods.common.constraints import Bound, at_least, one_of, within
from methods.common.dormant import dormant_units, inject, record_activations, redo_reset
from methods.common.replay import ReplayBuffer
from methods.common.target import frozen_copy
from methods.control import td3
from methods.common.nets import hidden_layers


def _reinit(module: nn.Module) -> None:
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def first_update_of_step(agent: td3.TD3Agent) -> bool:
    """Whether the update just done is the first of its environment step (``utd`` per step;
    counters only, so a resumed run fires the same events)."""
    return (agent.n_updates - 1) % agent.cfg.utd == 0


def due(agent: td3.TD3Agent, step: int, interval: int) -> bool:
    """An every-``interval``-environment-steps event is due at this update (never after the last
    step: fresh networks that no step trains would be the final model)."""
    return step % interval == 0 and step < agent.cfg.iterations and first_update_of_step(agent)


class ResetAgent(td3.TD3Agent):
    def after_update(self, buffer: ReplayBuffer, step: int) -> dict[str, float]:
        c = self.cfg
        if not due(self, step, c.reset_interval):
            return {}
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=self.gen, device=self.gen.device)))
        for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
            if c.reset_layers == "last":
                heads = [seq[-1] for seq in net.modules() if isinstance(seq, nn.Sequential)]
                linears = [m for m in linears if any(m is h for h in heads)]
            for m in linears:
                m.reset_parameters()
            target.load_state_dict(net.state_dict())
        self.actor_opt = self.make_optimizer(self.actor.parameters())
        self.critic_opt = self.make_optimizer(self.critic.parameters())
        return {"resets": 1.0}


class ReDoAgent(td3.TD3Agent):
    @torch.no_grad()
    def after_update(self, buffer: ReplayBuffer, step: int) -> dict[str, float]:
        c = self.cfg
        if not due(self, step, c.redo_interval):
            return {}
        b = buffer.sample(c.batch, self.gen)
        cpu_gen = torch.Generator().manual_seed(self.n_updates)
        n_reset = 0
        for net, opt, target in (
            (self.actor, self.actor_opt, self.actor_target),
            (self.critic, self.critic_opt, self.critic_target),
        ):
            pairs = hidden_layers(net)
            with record_activations([relu for _, relu, _ in pairs]) as acts:
                net(b["obs"]) if net is self.actor else net(b["obs"], b["action"])
            for (lin_in, _, lin_out), h in zip(pairs, acts.values()):
                n_reset += redo_reset(lin_in, lin_out, dormant_units(h, c.redo_tau), opt, generator=cpu_gen)
        return {"redo_units_reset": float(n_reset)}


class InjectionAgent(td3.TD3Agent):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.injected = False

    def after_update(self, buffer: ReplayBuffer, step: int) -> dict[str, float]:
        c = self.cfg
        if self.injected or step < int(c.inject_at * c.iterations):
            return {}
        self.inject_now()
        return {"injected": 1.0}

    def inject_now(self) -> None:
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=self.gen, device=self.gen.device)))
        self.actor.net = inject(self.actor.net, _reinit)
        for i, member in enumerate(self.critic.members):
            self.critic.members[i] = inject(member, _reinit)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_opt = self.make_optimizer([p for p in self.actor.parameters() if p.requires_grad])
        self.critic_opt = self.make_optimizer([p for p in self.critic.parameters() if p.requires_grad])
        self.injected = True

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"injected": self.injected}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("injected") and not self.injected:
            self.inject_now()  # rebuild the injected architecture, then load its weights
        super().load_state_dict(d)

    def load_model_state(self, d: dict[str, Any]) -> None:
        if any(".new_frozen." in k for k in d["actor"]) and not self.injected:
            self.inject_now()
        super().load_model_state(d)


@dataclass
class ResetConfig(td3.Config):
    reset_interval: int = 200_000  # environment steps
    reset_layers: str = "all"

    # any other reset_layers value would silently reset all layers
    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"reset_interval": at_least(1), "reset_layers": one_of("all", "last")}


@dataclass
class ReDoConfig(td3.Config):
    redo_interval: int = 1000  # environment steps
    redo_tau: float = 0.1

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"redo_interval": at_least(1), "redo_tau": at_least(0)}


@dataclass
class InjectionConfig(td3.Config):
    inject_at: float = 0.5  # fraction of the run's environment steps

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {"inject_at": within(0, 1)}
