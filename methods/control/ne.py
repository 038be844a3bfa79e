"""NE — Neuroplastic Expansion in deep RL (Liu, Obando-Ceron, Courville, Pan; ICLR 2025),
../shared/specs/control_video.md §1.3-1.10, on TD3.

Actor and critic are sparse (MaskedLinear everywhere; Erdős–Rényi allocation at global
density 1 - S_init, which leaves the input/output layers dense in practice; initial mask =
top-|w| of the default init). Every ``delta`` updates (a topology event, on which the
optimiser step is skipped, RigL-style), for every sparse layer l of a growing network:

1. elastic growth: k = floor(phi(t) * G_l), G_l = S_init * N_l - |M_l| fixed at the first event;
   phi(t) = zeta/2 (1 + cos(pi t / T_end)) (paper) or the constant 0.008 (code ``--uni``);
   grow the k absent connections with the largest |dense gradient| (initialised to zero, or
   LeCun-normal as an option);
2. dormant pruning: remove the incoming connections of tau = 0 dormant units (paper), or the
   smallest-|w| ones (code), at most omega * k of them (random subset), never regrown at once;
3. once the global density reaches 1 - target_sparsity, growth stops for good and the layer
   switches to constant-density prune-and-regrow (RigL) with zeta = 0.2.
4. experience review: when the critic's FAU (share of positive hidden activations) falls
   below ``awaken`` and a gate draw passes, the batch comes from the oldest 30 % of the buffer
   (code); ``review = "dormant_fluctuation"`` triggers on the change rate of the dormant ratio
   instead (the paper's description); ``"off"`` disables it.
Target networks share the online masks. Where the authors' code and paper disagree (ΔT, actor
growth, init of grown weights) the paper's reading is the default and the code's an option;
every run records the options it used in its config.yaml.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from methods.common.constraints import Bound, at_least, within
from methods.common.dormant import dormant_units
from methods.common.masked import (MaskedLinear, cosine_fraction, gradient_grow, init_masks_,
                                   magnitude_prune, masked_layers, prune_and_grow,
                                   reset_optimizer_state, sync_masks_)
from methods.common.replay import ReplayBuffer
from methods.control import td3
from methods.control.loop import entry_points
from methods.control.nets import Actor, Critics

GROWTH = ("cosine", "constant")
PRUNE = ("dormant", "magnitude")
REVIEW = ("fau_gate", "dormant_fluctuation", "off")


@dataclass
class Config(td3.Config):
    """NE on MuJoCo TD3 (spec §1.2-1.6). Paper readings as defaults: both networks grow, grown
    weights start at zero, cosine growth, dormant (tau = 0) pruning; ``delta`` is in updates."""

    critic_hidden_layers: int = 3
    critic_layernorm: str = "last"
    initial_sparsity: float = 0.8
    target_sparsity: float = 0.25
    delta: int = 10_000
    growth_schedule: str = "cosine"
    zeta: float = 0.0              # 0: auto, the target density is reached at ~60 % of T_end
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
        "initial_sparsity": within(0, 1, hi_open=True), "target_sparsity": within(0, 1),
        "delta": at_least(1),                   # updates between topology events
        "zeta": at_least(0),                    # 0: automatic
        "constant_fraction": within(0, 1), "rigl_zeta": within(0, 1),
        "omega": within(0, 1, hi_open=True),    # prune cap; the auto zeta divides by 1 - omega
        "awaken": within(0, 1),                 # FAU threshold
        "tamp": at_least(0), "review_fraction": within(0, 1, lo_open=True),
        "fluctuation_window": at_least(1), "fluctuation_threshold": at_least(0),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value, allowed in (("growth_schedule", self.growth_schedule, GROWTH),
                                     ("prune_criterion", self.prune_criterion, PRUNE),
                                     ("review", self.review, REVIEW), ("grow_init", self.grow_init, ("zero", "lecun"))):
            if value not in allowed:
                raise ValueError(f"ne: {name} must be one of {allowed} (got {value!r})")
        if not 0.0 <= self.target_sparsity <= self.initial_sparsity < 1.0:
            raise ValueError("ne: need 0 <= target_sparsity <= initial_sparsity < 1")

    def growth_zeta(self) -> float:
        """zeta of the cosine schedule. Auto (spec §1.4 recommendation): with E = T_end / delta
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


def masked_linear(i: int, o: int) -> nn.Module:
    return MaskedLinear(i, o)


def global_density(net: nn.Module) -> float:
    layers = masked_layers(net)
    return sum(float(layer.masks.sum()) for layer in layers) / sum(layer.weight.numel() for layer in layers)


class NEAgent(td3.TD3Agent):
    def __init__(self, cfg: Config, obs_dim: int, act_dim: int, max_action: float,
                 device: torch.device, gen: torch.Generator):
        super().__init__(cfg, obs_dim, act_dim, max_action, device, gen)
        cpu_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen, device=gen.device)))
        self.topology_gen = cpu_gen
        for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            init_masks_(masked_layers(net), 1.0 - cfg.initial_sparsity, method="magnitude", allocation="er")
            sync_masks_(net, target)
        self.growth_space: dict[int, int] = {}    # id(layer) -> G_l
        self.growing = {"actor": cfg.grow_actor, "critic": True}
        self.rigl_start: dict[str, int] = {}
        self.last_fau = 1.0
        # critic dormant ratio (tau = 0) on each training batch, appended by updates only
        self.dormant_history: deque[float] = deque(maxlen=2)
        self.reviewed = 0
        self.events = 0
        self._batch: dict[str, torch.Tensor] | None = None
        self._event = False
        self._fau_hooks()

    def build_actor(self) -> nn.Module:
        return Actor(self.obs_dim, self.act_dim, self.cfg.hidden, self.max_action, linear=masked_linear)

    def build_critic(self) -> nn.Module:
        c = self.cfg
        return Critics(2, self.obs_dim, self.act_dim, c.hidden, c.critic_hidden_layers, c.critic_layernorm,
                       linear=masked_linear)

    # ----------------------------------------------------------------- experience review
    def _fau_hooks(self) -> None:
        """Record the critic's FAU on every training forward (the code's gate statistic) and which
        units were active on the update's first critic forward (for the dormant ratio)."""
        from methods.control.nets import relus

        self._fau_parts: list[torch.Tensor] = []
        self._unit_activity: dict[int, torch.Tensor] = {}

        def hook(m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            if torch.is_grad_enabled():
                active = out.detach() > 0
                self._fau_parts.append(active.float().mean())
                self._unit_activity.setdefault(id(m), active.reshape(-1, active.shape[-1]).any(0))
        for m in relus(self.critic):
            m.register_forward_hook(hook)

    def review_now(self) -> bool:
        c = self.cfg
        if c.review == "off" or len(self.dormant_history) == 0 and c.review == "dormant_fluctuation":
            return False
        if c.review == "fau_gate":
            gate = 1.0 / (1.0 + c.tamp * math.exp(c.awaken - self.last_fau))
            gate = 0.4 if gate >= 0.6 else gate
            u = float(torch.rand((), generator=self.gen, device=self.gen.device))
            return self.last_fau < c.awaken and u >= gate
        h = self.dormant_history
        return len(h) >= 2 and abs(h[-1] - h[-2]) / c.fluctuation_window > c.fluctuation_threshold / c.fluctuation_window

    def sample_batch(self, buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
        if self.review_now():
            self.reviewed += 1
            b = buffer.sample_oldest(self.cfg.batch, self.cfg.review_fraction, self.gen)
        else:
            b = buffer.sample(self.cfg.batch, self.gen)
        self._batch = b
        return b

    # --------------------------------------------------------------------- topology
    def update(self, buffer: ReplayBuffer, step: int) -> dict[str, Any]:
        self._event = (self.n_updates + 1) % self.cfg.delta == 0
        self._fau_parts, self._unit_activity = [], {}
        # dense gradients are captured by hooks registered at forward time, so switch tracking
        # on before this update's forwards; optimizer_step switches it off again
        for layer in self._all_layers():
            layer.track_dense_grad = self._event
        out = super().update(buffer, step)
        if self._fau_parts:
            self.last_fau = float(torch.stack(self._fau_parts).mean())
        if self._unit_activity:
            units = list(self._unit_activity.values())
            self.dormant_history.append(1.0 - float(sum(int(u.sum()) for u in units)) / sum(u.numel() for u in units))
        return out

    def optimizer_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module) -> None:
        name = "critic" if net is self.critic else "actor"
        layers = masked_layers(net)
        event = self._event
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if event:
            self.topology_update(name, net, opt)     # the optimiser step is skipped (RigL)
        else:
            opt.step()
        for layer in layers:
            layer.track_dense_grad = False
            layer.enforce_masks_()
        target = self.critic_target if name == "critic" else self.actor_target
        if event:
            sync_masks_(net, target)

    @torch.no_grad()
    def dormant_rows(self, net: nn.Module) -> list[torch.Tensor | None]:
        """Per masked layer: its tau = 0 dormant output units on the current batch (None for
        output layers, which have no ReLU)."""
        from methods.common.dormant import record_activations
        from methods.control.nets import relus

        b = self._batch
        seq_layers = masked_layers(net)
        acts_of: dict[int, torch.Tensor] = {}
        # the ReLU after each hidden layer follows it in its nn.Sequential
        for seq in (m for m in net.modules() if isinstance(m, nn.Sequential)):
            mods = list(seq)
            for i, m in enumerate(mods):
                if isinstance(m, MaskedLinear):
                    relu = next((x for x in mods[i + 1:] if isinstance(x, (nn.ReLU, MaskedLinear))), None)
                    if isinstance(relu, nn.ReLU):
                        acts_of[id(relu)] = m
        with record_activations(relus(net)) as acts:
            if net is self.actor:
                net(b["obs"])
            else:
                net(b["obs"], b["action"])
        rows: dict[int, torch.Tensor] = {}
        for (name, h), relu in zip(acts.items(), relus(net)):
            rows[id(acts_of[id(relu)])] = dormant_units(h, 0.0)
        return [rows.get(id(layer)) for layer in seq_layers]

    def topology_update(self, name: str, net: nn.Module, opt: torch.optim.Optimizer) -> None:
        c = self.cfg
        t = self.n_updates
        layers = masked_layers(net)
        grads = [layer.take_dense_grad() for layer in layers]
        if not self.growing.get(name, False):
            if name in self.rigl_start:          # constant-density RigL after growth
                phi = cosine_fraction(t - self.rigl_start[name], max(1, c.t_end() - self.rigl_start[name]), c.rigl_zeta)
                for layer, g in zip(layers, grads):
                    if g is not None and layer.density() < 1.0:
                        prune_and_grow(layer, int(phi * float(layer.masks.sum())), g, init=c.grow_init,
                                       optimizer=opt, generator=self.topology_gen)
            return
        phi = (cosine_fraction(t, c.t_end(), c.growth_zeta()) if c.growth_schedule == "cosine" else c.constant_fraction)
        dormant = self.dormant_rows(net) if c.prune_criterion == "dormant" else [None] * len(layers)
        for layer, g, rows in zip(layers, grads, dormant):
            if g is None:
                continue
            key = id(layer)
            if key not in self.growth_space:
                self.growth_space[key] = max(0, int(round((1.0 - c.target_sparsity) * layer.weight.numel()
                                                          - float(layer.masks.sum()))))
            n_grow = int(math.floor(phi * self.growth_space[key]))
            if n_grow <= 0:
                continue
            pruned = self.prune(layer, rows, int(math.floor(c.omega * n_grow)))
            grown = gradient_grow(layer, n_grow, g[0], init=c.grow_init, exclude=pruned,
                                  generator=self.topology_gen)
            reset_optimizer_state(opt, layer, torch.cat([pruned, grown]))
        self.events += 1
        if global_density(net) >= 1.0 - c.target_sparsity:
            self.growing[name] = False
            self.rigl_start[name] = t

    def prune(self, layer: MaskedLinear, dormant_rows: torch.Tensor | None, cap: int) -> torch.Tensor:
        """Positions removed from ``layer``: at most ``cap`` (omega * k)."""
        if cap <= 0:
            return torch.zeros(0, dtype=torch.long, device=layer.weight.device)
        if self.cfg.prune_criterion == "magnitude" or dormant_rows is None:
            return magnitude_prune(layer, cap) if self.cfg.prune_criterion == "magnitude" else \
                torch.zeros(0, dtype=torch.long, device=layer.weight.device)
        cand = (layer.masks[0].bool() & dormant_rows[:, None]).reshape(-1).nonzero().squeeze(1)
        if cand.numel() > cap:                   # the excess is truncated at random
            keep = torch.randperm(cand.numel(), generator=self.topology_gen,
                                  device=self.topology_gen.device)[:cap].to(cand.device)
            cand = cand[keep].sort().values
        with torch.no_grad():
            layer.masks[0].view(-1)[cand] = 0.0
            layer.weight.view(-1)[cand] = 0.0
        return cand

    def diagnostics(self, buffer: ReplayBuffer, tau: float = 0.1) -> dict[str, float]:
        out = super().diagnostics(buffer, tau)
        out.update(reviewed_batches=float(self.reviewed), topology_events=float(self.events),
                   critic_fau_train=self.last_fau)
        return out

    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d["ne"] = {"growth_space": [self.growth_space.get(id(layer)) for layer in self._all_layers()],
                   "growing": dict(self.growing), "rigl_start": dict(self.rigl_start),
                   "last_fau": self.last_fau, "dormant_history": list(self.dormant_history),
                   "reviewed": self.reviewed, "events": self.events,
                   "topology_gen": self.topology_gen.get_state()}
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        ne = d["ne"]
        self.growth_space = {id(layer): g for layer, g in zip(self._all_layers(), ne["growth_space"]) if g is not None}
        self.growing, self.rigl_start = dict(ne["growing"]), dict(ne["rigl_start"])
        self.last_fau = ne["last_fau"]
        self.dormant_history = deque(ne["dormant_history"], maxlen=self.dormant_history.maxlen)
        self.reviewed, self.events = ne["reviewed"], ne["events"]
        self.topology_gen.set_state(ne["topology_gen"])

    def _all_layers(self) -> list[MaskedLinear]:
        return masked_layers(self.actor) + masked_layers(self.critic)


make_agent, train, evaluate = entry_points(NEAgent)
