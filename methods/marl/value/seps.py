"""SePS — selective parameter sharing (Christianos, Papoudakis, Rahman, Albrecht, ICML 2021) as a
parameter-sharing baseline of Kaleidoscope, on QMIX:

    1. pre-training: ``seps_pretrain_steps`` env steps of uniformly random available actions,
       kept as per-agent transitions (o_i, a_i, o'_i, r);
    2. an encoder q(z | i) of the one-hot agent id and a decoder p(o'_i, r | o_i, a_i, z) trained
       as a VAE (Gaussian z, reconstruction MSE + ``seps_kl_weight``·KL);
    3. k-means (``seps_clusters`` clusters) on the encoder means μ_i;
    4. one 1R3 network per cluster (the grouped products of NoPS with each agent reading its
       cluster's weights), the one-hot id kept in the input so agents of a cluster can differ.

The clusters are a buffer of the network (saved and restored with it). Pre-training steps are
not counted in the run's env steps [as the paper reports its curves]. [The number of clusters is
a config value here; the paper reads it off the embeddings. Sizes of the VAE are ours.]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from methods.common.constraints import Bound, one_of
from methods.marl.value import qmix
from methods.marl.agents import NoPSAgent
from methods.marl.seps_clusters import SePSOptions, agent_clusters, kmeans as kmeans  # noqa: F401 (kmeans: tests)


@dataclass
class Config(SePSOptions, qmix.Config):
    agent_net: str = "seps"
    obs_agent_id: bool = True

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS,
        **SePSOptions.SEPS_CONSTRAINTS,
        "agent_net": one_of("seps"),
    }


# ------------------------------------------------------------------------------ clustering
def cluster_agents(cfg: Config, gen: torch.Generator) -> Tensor:
    """SePS steps 1-3 for a QMIX config's discrete task."""
    return agent_clusters(qmix.make_task(cfg), cfg, gen)


# ------------------------------------------------------------------------------ the network
class SePSAgent(NoPSAgent):
    """One 1R3 network per cluster (NoPS's grouped products with G = clusters); agent n uses
    the weights of cluster ``clusters[n]``."""

    def __init__(
        self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int, clusters: Tensor, n_clusters: int
    ):
        # n_clusters is fixed by the config (k-means may leave a cluster empty)
        super().__init__(input_dim, n_agents, n_actions, hidden_dim, groups=n_clusters)
        self.register_buffer("clusters", clusters.clone().long())

    def forward(self, inputs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        self.index = self.clusters
        return super().forward(inputs, hidden)

    def diagnostics(self) -> dict[str, float]:
        return {"seps_clusters_used": float(len(torch.unique(self.clusters)))}


def make_agent_net(cfg: Config, input_dim: int, n_agents: int, n_actions: int) -> SePSAgent:
    # the pre-training draws from its own generator seeded off the run's global stream
    gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
    return SePSAgent(
        input_dim, n_agents, n_actions, cfg.hidden_dim, cluster_agents(cfg, gen), min(cfg.seps_clusters, n_agents)
    )


train, evaluate = qmix.entry_points(make_agent_net)
