"""EGFN — Evolution-guided GFlowNets (Ikram, Pan, Liu; TMLR 2025).

A star agent, trained by gradient with a GFlowNet loss (DB by default, the paper's main
objective on HG-A; TB also available), and a population of k agents of the same architecture
trained by evolution only. Every training iteration:

1. Evaluate: each population agent samples E trajectories on-policy; fitness = mean reward.
   All k*E trajectories go into the star's prioritised replay buffer (PRB).
2. Select: the top ``num_elites`` agents by fitness are elites and are copied unchanged into
   free slots; tournament selection (size ``tournament_size``, k - elites draws,
   de-duplicated, made even) picks offspring; the remaining slots are refilled by cloning an
   elite and an offspring and crossing them over.
3. Crossover (weight space): per parameter tensor, a random number of random rows is copied
   from one parent to the other (direction by a coin flip); offspring pairs cross with
   probability ``crossover_prob``.
4. Mutate every non-elite: each parameter tensor, with probability ``mutation_prob``, gets
   i.i.d. Gaussian noise N(0, gamma^2).
5. Train the star: online trajectories of the star + a PRB batch, one gradient step
   (the GFlowNet core's loop; training metrics count the star's own samples only, as in the
   authors' code).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from methods.common.constraints import Bound, at_least, within
from methods.gfn import core, db, loop, tb


@dataclass
class Config(core.GFNConfig):
    """EGFN on the hypergrid (paper Table 2): k = 10, E = 4, 2 elites,
    crossover 0.1, mutation prob 0.9 with gamma = 1, star lr 1e-3 (DB/TB), no ε-exploration.
    ``eval_episodes``: the paper says E = 4, the authors' grid config uses 10 (unverified
    which produced the figures)."""

    base_loss: str = "db"
    population_size: int = 10
    num_elites: int = 2
    tournament_size: int = 4
    eval_episodes: int = 4
    crossover_prob: float = 0.1
    mutation: bool = True
    mutation_prob: float = 0.9
    mutation_std: float = 1.0

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "population_size": at_least(2),  # at least one elite and one agent to evolve
        "num_elites": at_least(1),
        "tournament_size": at_least(1),
        "eval_episodes": at_least(1),
        "crossover_prob": within(0, 1),
        "mutation_prob": within(0, 1),
        "mutation_std": at_least(0),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base_loss not in LOSSES:
            raise ValueError(f"egfn: base_loss must be one of {sorted(LOSSES)} (got {self.base_loss!r})")
        if not 0 < self.num_elites < self.population_size:
            raise ValueError("egfn: need 0 < num_elites < population_size")


LOSSES = {"db": db.DetailedBalance, "tb": tb.TrajectoryBalance}


# ------------------------------------------------------------------ genetic operators
def flat_params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.data for p in net.parameters()]


def clone_into(master: torch.nn.Module, replacee: torch.nn.Module) -> None:
    for dst, src in zip(flat_params(replacee), flat_params(master)):
        dst.copy_(src)


def crossover(a: torch.nn.Module, b: torch.nn.Module, gen: torch.Generator) -> None:
    """Row-wise weight-space crossover. Sequentially, the first copy of a row makes both
    parents' rows equal and later copies of that row change nothing, so each touched row is
    set by the direction of its first draw."""
    for wa, wb in zip(flat_params(a), flat_params(b)):
        rows = wa.shape[0]
        n = int(torch.randint(0, rows, (1,), generator=gen, device=gen.device))
        idx = torch.randint(0, rows, (n,), generator=gen, device=gen.device)
        b_to_a = torch.rand(n, generator=gen, device=gen.device) > 0.5
        seen: set[int] = set()
        for i, d in zip(idx.tolist(), b_to_a.tolist()):
            if i in seen:
                continue
            seen.add(i)
            if d:
                wa[i] = wb[i]
            else:
                wb[i] = wa[i]


def mutate(net: torch.nn.Module, prob: float, std: float, gen: torch.Generator) -> None:
    for w in flat_params(net):
        if float(torch.rand(1, generator=gen, device=gen.device)) < prob:
            w.add_(torch.randn(w.shape, generator=gen, device=w.device) * std)


def pick(items: list[int], gen: torch.Generator) -> int:
    """A uniformly drawn element of ``items`` (one draw from ``gen``)."""
    return items[int(torch.randint(0, len(items), (1,), generator=gen, device=gen.device))]


def tournament(rank: list[int], n_draws: int, size: int, gen: torch.Generator) -> list[int]:
    """Indices of tournament winners (best rank of ``size`` random draws), de-duplicated in
    order of first win and made even by repeating a random winner."""
    winners: list[int] = []
    for _ in range(n_draws):
        w = rank[int(torch.randint(0, len(rank), (size,), generator=gen, device=gen.device).min())]
        if w not in winners:
            winners.append(w)
    if len(winners) % 2:
        winners.append(pick(winners, gen))
    return winners


class Population:
    """The evolving population; an ``Explorer`` of the GFlowNet core."""

    def __init__(self, env: Any, cfg: Config, device: torch.device):
        self.env, self.cfg = env, cfg
        self.agents = [
            core.PolicyNet(env.obs_dim, env.n_actions, env.n_backward_actions, cfg.hidden, cfg.n_hidden_layers)
            .to(device)
            .requires_grad_(False)
            for _ in range(cfg.population_size)
        ]
        self.last_fitness: torch.Tensor | None = None
        self.last_elites: list[int] = []

    @torch.no_grad()
    def evaluate(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fitness (mean reward of E on-policy samples) per agent, and every sample."""
        fitness, all_actions, all_lr = [], [], []
        for agent in self.agents:
            actions = core.sample_trajectories(self.env, agent, self.cfg.eval_episodes, gen)
            log_r = self.cfg.reward_beta * self.env.log_reward(core.terminal_states(self.env, actions))
            fitness.append(log_r.exp().mean())
            all_actions.append(actions)
            all_lr.append(log_r)
        return torch.stack(fitness), torch.cat(all_actions), torch.cat(all_lr)

    @torch.no_grad()
    def evolve(self, fitness: torch.Tensor, gen: torch.Generator) -> list[int]:
        """One generation; returns the slots now holding the elites."""
        cfg, k = self.cfg, self.cfg.population_size
        rank = torch.sort(-fitness.cpu(), stable=True).indices.tolist()  # best first
        elites = rank[: cfg.num_elites]
        offspring = tournament(rank, k - cfg.num_elites, cfg.tournament_size, gen)
        unselected = [i for i in range(k) if i not in elites and i not in offspring]
        shuffle = torch.randperm(len(unselected), generator=gen, device=gen.device).tolist()
        unselected = [unselected[i] for i in shuffle]
        # elites are copied unchanged into free slots (unselected first, then offspring)
        new_elites = []
        for e in elites:
            slot = unselected.pop() if unselected else offspring.pop()
            clone_into(self.agents[e], self.agents[slot])
            new_elites.append(slot)
        # the other unselected slots: clone an elite and an offspring, then cross them
        if unselected and len(unselected) % 2:
            unselected.append(pick(unselected, gen))
        for i, j in zip(unselected[::2], unselected[1::2]):
            clone_into(self.agents[pick(new_elites, gen)], self.agents[i])
            clone_into(self.agents[pick(offspring, gen)], self.agents[j])
            crossover(self.agents[i], self.agents[j], gen)
        for i, j in zip(offspring[::2], offspring[1::2]):
            if float(torch.rand(1, generator=gen, device=gen.device)) < cfg.crossover_prob:
                crossover(self.agents[i], self.agents[j], gen)
        if cfg.mutation:
            for i in range(k):
                if i not in new_elites:
                    mutate(self.agents[i], cfg.mutation_prob, cfg.mutation_std, gen)
        return new_elites

    def step(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        fitness, actions, log_r = self.evaluate(gen)
        self.last_fitness = fitness
        self.last_elites = self.evolve(fitness, gen)
        return actions, log_r

    def state_dict(self) -> dict[str, Any]:
        return {"agents": [copy.deepcopy(a.state_dict()) for a in self.agents]}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for a, sd in zip(self.agents, d["agents"]):
            a.load_state_dict(sd)


make_learner, train, evaluate = loop.entry_points(lambda cfg: LOSSES[cfg.base_loss](), explorer_factory=Population)
