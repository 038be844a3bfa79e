"""NE — Neuroplastic Expansion in deep RL (Liu, Obando-Ceron, Courville, Pan; ICLR 2025),
on TD3.

Actor and critic are sparse (MaskedLinear everywhere; Erdős–Rényi allocation at global
density 1 - S_init, which leaves the input/output layers dense in practice; initial mask =
top-|w| of the default init). The paper's three components, in the order of this module:

1. elastic growth (:class:`GrowthSchedule`, :meth:`SparseNetwork.topology_event`): every
   ``delta`` updates (a topology event, on which the optimiser step is skipped, RigL-style), each
   sparse layer l of a growing network grows k = floor(phi(t) * G_l) absent connections with the
   largest |dense gradient| (initialised to zero, or LeCun-normal as an option), G_l fixed at
   the first event; phi(t) = zeta/2 (1 + cos(pi t / T_end)) (paper) or the constant 0.008
   (code ``--uni``);
2. dormant pruning (same event, :meth:`SparseNetwork.prune`): remove the incoming connections of
   tau = 0 dormant units (paper), or the smallest-|w| ones (code), at most omega * k of them
   (random subset), never regrown at once; once the global density reaches
   1 - target_sparsity, growth stops for good and the network switches to constant-density
   prune-and-regrow (RigL) with zeta = 0.2;
3. experience review (:class:`FauGate`, :class:`DormantFluctuation`): before each batch draw,
   a trigger decides whether the batch comes from the oldest 30 % of the buffer. The code's
   FAU gate (default) or the paper's dormant-ratio fluctuation; ``"off"`` disables it. Both
   read statistics of the training forwards (:class:`TrainingActivity`), never of logging.
Target networks share the online masks. Where the authors' code and paper disagree (ΔT, actor
growth, init of grown weights) the paper's reading is the default and the code's an option;
every run records the options it used in its config.yaml.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from methods.common.constraints import Bound, at_least, within
from methods.common.dormant import TrainingActivity, dormant_units, record_activations
from methods.common.mask_init import init_masks_
from methods.common.masked import MaskedLinear, masked_layers, sync_masks_
from methods.common.prune_grow import (
    cosine_fraction,
    gradient_grow,
    magnitude_prune,
    prune_and_grow,
    reset_optimizer_state,
)
from methods.common.replay import ReplayBuffer
from methods.control import td3
from methods.control.loop import entry_points
from methods.common.nets import Actor, Critics, hidden_layers, relus

GROWTH = ("cosine", "constant")
PRUNE = ("dormant", "magnitude")
REVIEW = ("fau_gate", "dormant_fluctuation", "off")
Batch = dict[str, torch.Tensor]


@dataclass
class Config(td3.Config):
    """NE on MuJoCo TD3 (the paper's settings). Paper readings as defaults: both networks grow, grown
    weights start at zero, cosine growth, dormant (tau = 0) pruning; ``delta`` is in updates."""

    critic_hidden_layers: int = 3
    critic_layernorm: str = "last"
    initial_sparsity: float = 0.8
    target_sparsity: float = 0.25
    delta: int = 10_000
    growth_schedule: str = "cosine"
    zeta: float = 0.0  # 0: auto, the target density is reached at ~60 % of T_end
    constant_fraction: float = 0.008
    omega: float = 0.4
    prune_criterion: str = "dormant"
    grow_init: str = "zero"
    grow_actor: bool = True
    rigl_zeta: float = 0.2
    review: str = "fau_gate"
    awaken: float = 0.4
    tamp: float = 0.9
    review_fraction: float = 0.3
    fluctuation_window: int = 1000
    fluctuation_threshold: float = 0.01

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "initial_sparsity": within(0, 1, hi_open=True),
        "target_sparsity": within(0, 1),
        "delta": at_least(1),  # updates between topology events
        "zeta": at_least(0),  # 0: automatic
        "constant_fraction": within(0, 1),
        "rigl_zeta": within(0, 1),
        "omega": within(0, 1, hi_open=True),  # prune cap; the auto zeta divides by 1 - omega
        "awaken": within(0, 1),  # FAU threshold
        "tamp": at_least(0),
        "review_fraction": within(0, 1, lo_open=True),
        "fluctuation_window": at_least(1),  # updates per window of the dormant-ratio average
        "fluctuation_threshold": at_least(0),  # change of the windowed dormant ratio that triggers
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value, allowed in (
            ("growth_schedule", self.growth_schedule, GROWTH),
            ("prune_criterion", self.prune_criterion, PRUNE),
            ("review", self.review, REVIEW),
            ("grow_init", self.grow_init, ("zero", "lecun")),
        ):
            if value not in allowed:
                raise ValueError(f"ne: {name} must be one of {allowed} (got {value!r})")
        if not 0.0 <= self.target_sparsity <= self.initial_sparsity < 1.0:
            raise ValueError("ne: need 0 <= target_sparsity <= initial_sparsity < 1")

    def growth_zeta(self) -> float:
        """zeta of the cosine schedule. Auto (a reconstruction, not a value from the paper): with E = T_end / delta
        events, net growth per event (1 - omega) phi G, and the cosine's integral up to 0.6 T_end
        being 0.903 T_end, the growth space is used up at ~60 % of T_end when
        zeta = 1 / ((1 - omega) * 0.45 * E)."""
        if self.zeta > 0:
            return self.zeta
        events = max(1.0, self.t_end() / self.delta)
        return min(2.0, 1.0 / ((1.0 - self.omega) * 0.45 * events))

    def t_end(self) -> int:
        """Scheduler horizon in updates (code: max_timesteps - start_timesteps)."""
        return max(1, self.iterations - self.start_steps)


def global_density(net: nn.Module) -> float:
    layers = masked_layers(net)
    return sum(float(layer.masks.sum()) for layer in layers) / sum(layer.weight.numel() for layer in layers)


# ----------------------------------------------------------------------- 1. elastic growth
@dataclass
class GrowthSchedule:
    """phi(t): the fraction of a layer's growth space G_l grown at the event of update t."""

    kind: str  # "cosine" (paper) or "constant" (code --uni)
    zeta: float
    constant_fraction: float
    t_end: int

    def fraction(self, t: int) -> float:
        if self.kind == "constant":
            return self.constant_fraction
        return cosine_fraction(t, self.t_end, self.zeta)


class SparseNetwork:
    """One sparse network (actor or critic) with its target and the topology state NE keeps
    across events: each layer's growth space G_l (fixed at its first event), whether the network
    still grows, and the update at which its constant-density RigL phase began."""

    def __init__(
        self,
        net: nn.Module,
        target: nn.Module,
        forward: Callable[[Batch], Any],
        grows: bool,
        cfg: Config,
        generator: torch.Generator,
    ):
        self.net, self.target, self.forward, self.cfg, self.generator = net, target, forward, cfg, generator
        self.layers = masked_layers(net)
        self.schedule = GrowthSchedule(cfg.growth_schedule, cfg.growth_zeta(), cfg.constant_fraction, cfg.t_end())
        self.growth_space: list[int | None] = [None] * len(self.layers)
        self.growing = grows
        self.rigl_start: int | None = None
        self.events = 0  # growth-phase events (logged)

    def track_dense_grad(self, on: bool) -> None:
        """Dense gradients are captured by hooks registered at forward time, so this is switched
        on before an event update's forwards."""
        for layer in self.layers:
            layer.track_dense_grad = on

    def optimizer_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, t: int, batch: Batch | None) -> None:
        """Backward, then the optimiser step, or on an event (``batch`` given) the topology change
        instead (RigL skips the step; so does a network that no longer changes, e.g. a static
        actor, as before this module was restructured); masks re-applied, the target shares them."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if batch is None:
            opt.step()
        else:
            self.topology_event(opt, t, batch)
        self.track_dense_grad(False)
        for layer in self.layers:
            layer.enforce_masks_()
        if batch is not None:
            sync_masks_(self.net, self.target)

    def topology_event(self, opt: torch.optim.Optimizer, t: int, batch: Batch) -> None:
        grads = [layer.take_dense_grad() for layer in self.layers]
        if self.growing:
            self.grow_and_prune(opt, t, batch, grads)
        elif self.rigl_start is not None:
            self.rigl(opt, t, grads)

    def grow_and_prune(
        self, opt: torch.optim.Optimizer, t: int, batch: Batch, grads: list[torch.Tensor | None]
    ) -> None:
        """Steps 1 and 2: k = floor(phi(t) G_l) grown, at most omega k pruned. The prune set is
        chosen first so that growth can exclude it (a just-pruned connection is never regrown)."""
        c = self.cfg
        phi = self.schedule.fraction(t)
        dormant = self.dormant_rows(batch) if c.prune_criterion == "dormant" else [None] * len(self.layers)
        for i, (layer, g, rows) in enumerate(zip(self.layers, grads, dormant)):
            if g is None:
                continue
            if self.growth_space[i] is None:
                self.growth_space[i] = max(
                    0, int(round((1.0 - c.target_sparsity) * layer.weight.numel() - float(layer.masks.sum())))
                )
            n_grow = int(math.floor(phi * self.growth_space[i]))
            if n_grow <= 0:
                continue
            pruned = self.prune(layer, rows, int(math.floor(c.omega * n_grow)))
            grown = gradient_grow(layer, n_grow, g[0], init=c.grow_init, exclude=pruned, generator=self.generator)
            reset_optimizer_state(opt, layer, torch.cat([pruned, grown]))
        self.events += 1
        if global_density(self.net) >= 1.0 - c.target_sparsity:
            self.growing, self.rigl_start = False, t

    def prune(self, layer: MaskedLinear, dormant_rows: torch.Tensor | None, cap: int) -> torch.Tensor:
        """Positions removed from ``layer``: at most ``cap`` (omega * k). Dormant criterion: the
        incoming connections of the tau = 0 dormant units (none for an output layer, which has
        no ReLU), the excess truncated at random; magnitude: the ``cap`` smallest |w|."""
        none = torch.zeros(0, dtype=torch.long, device=layer.weight.device)
        if cap <= 0:
            return none
        if self.cfg.prune_criterion == "magnitude":
            return magnitude_prune(layer, cap)
        if dormant_rows is None:
            return none
        cand = (layer.masks[0].bool() & dormant_rows[:, None]).reshape(-1).nonzero().squeeze(1)
        if cand.numel() > cap:
            keep = torch.randperm(cand.numel(), generator=self.generator, device=self.generator.device)[:cap]
            cand = cand[keep.to(cand.device)].sort().values
        with torch.no_grad():
            layer.masks[0].view(-1)[cand] = 0.0
            layer.weight.view(-1)[cand] = 0.0
        return cand

    @torch.no_grad()
    def dormant_rows(self, batch: Batch) -> list[torch.Tensor | None]:
        """Per masked layer: its tau = 0 dormant output units on the event's batch (None for
        layers not followed by a ReLU)."""
        hidden = hidden_layers(self.net)
        with record_activations([relu for _, relu, _ in hidden]) as acts:
            self.forward(batch)
        rows = {id(linear): dormant_units(h, 0.0) for (linear, _, _), h in zip(hidden, acts.values())}
        return [rows.get(id(layer)) for layer in self.layers]

    def rigl(self, opt: torch.optim.Optimizer, t: int, grads: list[torch.Tensor | None]) -> None:
        """After growth: constant-density prune-and-regrow, phi cosine from the switch with
        zeta = ``rigl_zeta`` (0.2 in the code)."""
        c = self.cfg
        phi = cosine_fraction(t - self.rigl_start, max(1, c.t_end() - self.rigl_start), c.rigl_zeta)
        for layer, g in zip(self.layers, grads):
            if g is not None and layer.density() < 1.0:
                prune_and_grow(
                    layer,
                    int(phi * float(layer.masks.sum())),
                    g,
                    init=c.grow_init,
                    optimizer=opt,
                    generator=self.generator,
                )

    def state_dict(self) -> dict[str, Any]:
        return {
            "growth_space": list(self.growth_space),
            "growing": self.growing,
            "rigl_start": self.rigl_start,
            "events": self.events,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.growth_space = list(d["growth_space"])
        self.growing, self.rigl_start, self.events = d["growing"], d["rigl_start"], d["events"]


# -------------------------------------------------------------------- 3. experience review
class NoReview:
    """``review = "off"``, and the interface of the triggers: ``wants_review`` before each batch
    draw, ``observe`` after each update (training only), state for checkpoints."""

    def __init__(self, cfg: Config, activity: TrainingActivity):
        self.cfg, self.activity = cfg, activity

    def wants_review(self, gen: torch.Generator) -> bool:
        return False

    def observe(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        pass


# The code's gate caps the skip probability: g >= 0.6 becomes 0.4 (the authors' stl/TD3.py;
# no reason given). With the default Tamp = 0.9, g < 1/1.9 ~ 0.53 whenever FAU < awaken, so the
# cap acts only for Tamp < 2/3.
GATE_CAP, GATE_CAPPED = 0.6, 0.4


class FauGate(NoReview):
    """The authors' code: review when FAU < awaken and U(0,1) >= g, with
    g = 1 / (1 + Tamp exp(awaken - FAU)); U is drawn before every batch, reviewed or not."""

    def gate(self, fau: float) -> float:
        g = 1.0 / (1.0 + self.cfg.tamp * math.exp(self.cfg.awaken - fau))
        return GATE_CAPPED if g >= GATE_CAP else g

    def wants_review(self, gen: torch.Generator) -> bool:
        fau = self.activity.fau
        u = float(torch.rand((), generator=gen, device=gen.device))
        return fau < self.cfg.awaken and u >= self.gate(fau)


class DormantFluctuation(NoReview):
    """The paper's trigger: review while the critic's dormant ratio fluctuates: its
    mean over the last W = ``fluctuation_window`` updates differs from its mean over the W before
    by more than ``fluctuation_threshold`` (the windowed change rate times W). No review before
    2W updates. The paper's dynamic threshold is unknown; it is fixed here."""

    def __init__(self, cfg: Config, activity: TrainingActivity):
        super().__init__(cfg, activity)
        self.history: deque[float] = deque(maxlen=2 * cfg.fluctuation_window)

    def wants_review(self, gen: torch.Generator) -> bool:
        w = self.cfg.fluctuation_window
        if len(self.history) < 2 * w:
            return False
        h = list(self.history)
        return abs(sum(h[w:]) / w - sum(h[:w]) / w) > self.cfg.fluctuation_threshold

    def observe(self) -> None:
        if self.activity.dormant_ratio is not None:
            self.history.append(self.activity.dormant_ratio)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.history.clear()
        self.history.extend(d["history"])


REVIEW_TRIGGERS = {"fau_gate": FauGate, "dormant_fluctuation": DormantFluctuation, "off": NoReview}


# ------------------------------------------------------------------------------- the agent
class NEAgent(td3.TD3Agent):
    def __init__(
        self, cfg: Config, obs_dim: int, act_dim: int, max_action: float, device: torch.device, gen: torch.Generator
    ):
        super().__init__(cfg, obs_dim, act_dim, max_action, device, gen)
        seed = int(torch.randint(0, 2**31, (1,), generator=gen, device=gen.device))
        self.topology_gen = torch.Generator().manual_seed(seed)  # prune subsets, LeCun inits
        for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            init_masks_(masked_layers(net), 1.0 - cfg.initial_sparsity, method="magnitude", allocation="er")
            sync_masks_(net, target)
        self.sparse = {
            "actor": SparseNetwork(
                self.actor, self.actor_target, lambda b: self.actor(b["obs"]), cfg.grow_actor, cfg, self.topology_gen
            ),
            "critic": SparseNetwork(
                self.critic,
                self.critic_target,
                lambda b: self.critic(b["obs"], b["action"]),
                True,
                cfg,
                self.topology_gen,
            ),
        }
        self.activity = TrainingActivity(relus(self.critic))  # the review's statistics
        self.review = REVIEW_TRIGGERS[cfg.review](cfg, self.activity)
        self.reviewed = 0

    def build_actor(self) -> nn.Module:
        return Actor(self.obs_dim, self.act_dim, self.cfg.hidden, self.max_action, linear=MaskedLinear)

    def build_critic(self) -> nn.Module:
        c = self.cfg
        return Critics(
            2, self.obs_dim, self.act_dim, c.hidden, c.critic_hidden_layers, c.critic_layernorm, linear=MaskedLinear
        )

    def sample_batch(self, buffer: ReplayBuffer) -> Batch:
        if self.review.wants_review(self.gen):
            self.reviewed += 1
            return buffer.sample_oldest(self.cfg.batch, self.cfg.review_fraction, self.gen)
        return buffer.sample(self.cfg.batch, self.gen)

    def update(self, buffer: ReplayBuffer, step: int) -> dict[str, Any]:
        """One TD3 update whose optimiser steps are NE's: every ``delta``-th is a topology event
        on the update's batch. The review trigger then sees this update's critic statistics."""
        event = (self.n_updates + 1) % self.cfg.delta == 0
        for sparse in self.sparse.values():
            sparse.track_dense_grad(event)
        self.activity.start()
        batch = self.sample_batch(buffer)
        out = self.update_on(batch, buffer, step, partial(self.sparse_step, batch=batch if event else None))
        for sparse in self.sparse.values():
            sparse.track_dense_grad(False)
        self.activity.finish()
        self.review.observe()
        return out

    def sparse_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module, batch: Batch | None) -> None:
        """TD3's optimiser step for ``net``; ``batch`` given on an event update."""
        sparse = self.sparse["critic" if net is self.critic else "actor"]
        sparse.optimizer_step(opt, loss, self.n_updates, batch)

    def diagnostics(self, buffer: ReplayBuffer, tau: float = 0.1) -> dict[str, float]:
        """Read-only: logging never changes training (tested)."""
        out = super().diagnostics(buffer, tau)
        out.update(
            reviewed_batches=float(self.reviewed),
            topology_events=float(sum(s.events for s in self.sparse.values())),
            critic_fau_train=self.activity.fau,
        )
        return out

    def state_dict(self) -> dict[str, Any]:
        ne = {name: sparse.state_dict() for name, sparse in self.sparse.items()}
        ne.update(
            activity=self.activity.state_dict(),
            review=self.review.state_dict(),
            reviewed=self.reviewed,
            topology_gen=self.topology_gen.get_state(),
        )
        return super().state_dict() | {"ne": ne}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        ne = d["ne"]
        for name, sparse in self.sparse.items():
            sparse.load_state_dict(ne[name])
        self.activity.load_state_dict(ne["activity"])
        self.review.load_state_dict(ne["review"])
        self.reviewed = ne["reviewed"]
        self.topology_gen.set_state(ne["topology_gen"])


make_agent, train, evaluate = entry_points(NEAgent)
