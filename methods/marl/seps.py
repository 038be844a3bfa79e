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

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods.common.constraints import Bound, at_least, one_of
from methods.marl import qmix
from methods.marl.agents import NoPSAgent


@dataclass
class Config(qmix.Config):
    agent_net: str = "seps"
    obs_agent_id: bool = True
    seps_clusters: int = 2               # K [unverified: the paper picks K from the embeddings]
    seps_pretrain_steps: int = 2000      # random-policy env steps for the encoder [ours]
    seps_embed_dim: int = 4
    seps_vae_updates: int = 300
    seps_kl_weight: float = 1e-3

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **qmix.Config.CONSTRAINTS, "agent_net": one_of("seps"), "seps_clusters": at_least(1),
        "seps_pretrain_steps": at_least(1), "seps_embed_dim": at_least(1), "seps_vae_updates": at_least(1),
        "seps_kl_weight": at_least(0)}


# ------------------------------------------------------------------------------ clustering
def random_transitions(task: qmix.TeamTask, steps: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Per-agent transitions of uniformly random available actions: obs (M, N, d), actions
    (M, N), next_obs (M, N, d), reward (M,)."""
    rec: dict[str, list] = {"obs": [], "actions": [], "next_obs": [], "reward": []}
    obs = task.reset_arrays(seed=int(torch.randint(2 ** 31, (1,), generator=gen, device=gen.device)))
    for _ in range(steps):
        avail = torch.as_tensor(task.avail_actions())
        actions = torch.multinomial(avail.float(), 1, generator=gen).squeeze(-1).numpy()
        nxt, reward, terminated, truncated = task.step_arrays(actions)
        rec["obs"].append(obs)
        rec["actions"].append(actions)
        rec["next_obs"].append(nxt)
        rec["reward"].append(reward)
        obs = nxt
        if terminated or truncated:
            obs = task.reset_arrays(seed=int(torch.randint(2 ** 31, (1,), generator=gen, device=gen.device)))
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.long if k == "actions" else torch.float32)
            for k, v in rec.items()}


class TransitionVAE(nn.Module):
    """Encoder q(z | agent id) and decoder p(o', r | o, a, z) of SePS."""

    def __init__(self, n_agents: int, obs_dim: int, n_actions: int, embed: int, hidden: int = 64):
        super().__init__()
        self.n_actions = n_actions
        self.encoder = nn.Sequential(nn.Linear(n_agents, hidden), nn.ReLU(), nn.Linear(hidden, 2 * embed))
        self.decoder = nn.Sequential(nn.Linear(obs_dim + n_actions + embed, hidden), nn.ReLU(),
                                     nn.Linear(hidden, obs_dim + 1))

    def encode(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(ids).chunk(2, -1)
        return mu, logvar

    def loss(self, obs: Tensor, actions: Tensor, ids: Tensor, target: Tensor, gen: torch.Generator,
             kl_weight: float) -> Tensor:
        mu, logvar = self.encode(ids)
        z = mu + torch.randn(mu.shape, generator=gen, device=gen.device).to(mu.device) * (0.5 * logvar).exp()
        pred = self.decoder(torch.cat([obs, F.one_hot(actions, self.n_actions).float(), z], -1))
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1).mean()
        return F.mse_loss(pred, target) + kl_weight * kl


def kmeans(points: Tensor, k: int, iters: int = 50) -> Tensor:
    """Lloyd's k-means with farthest-point initialisation from point 0 (deterministic); labels
    renumbered by first appearance (agent 0 is in cluster 0)."""
    n = points.shape[0]
    k = min(k, n)
    centres = [points[0]]
    for _ in range(1, k):
        d = torch.cdist(points, torch.stack(centres)).min(1).values
        centres.append(points[int(d.argmax())])
    c = torch.stack(centres)
    labels = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        labels = torch.cdist(points, c).argmin(1)
        new = torch.stack([points[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if torch.allclose(new, c):
            break
        c = new
    order = {int(j): i for i, j in enumerate(dict.fromkeys(labels.tolist()))}
    return torch.tensor([order[int(j)] for j in labels])


def cluster_agents(cfg: Config, gen: torch.Generator) -> Tensor:
    """SePS steps 1-3: the cluster of each learned agent (N,) long."""
    task = qmix.make_task(cfg)
    data = random_transitions(task, cfg.seps_pretrain_steps, gen)
    m, n, d = data["obs"].shape
    vae = TransitionVAE(n, d, task.n_actions, cfg.seps_embed_dim)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    ids = torch.eye(n).expand(m, n, n).reshape(-1, n)
    obs, actions = data["obs"].reshape(-1, d), data["actions"].reshape(-1)
    target = torch.cat([data["next_obs"], data["reward"].view(m, 1, 1).expand(m, n, 1)], -1).reshape(-1, d + 1)
    for _ in range(cfg.seps_vae_updates):
        idx = torch.randint(obs.shape[0], (256,), generator=gen, device=gen.device)
        loss = vae.loss(obs[idx], actions[idx], ids[idx], target[idx], gen, cfg.seps_kl_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mu, _ = vae.encode(torch.eye(n))
    return kmeans(mu, cfg.seps_clusters)


# ------------------------------------------------------------------------------ the network
class SePSAgent(NoPSAgent):
    """One 1R3 network per cluster (NoPS's grouped products with G = clusters); agent n uses
    the weights of cluster ``clusters[n]``."""

    def __init__(self, input_dim: int, n_agents: int, n_actions: int, hidden_dim: int, clusters: Tensor,
                 n_clusters: int):
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
    gen = torch.Generator().manual_seed(int(torch.randint(2 ** 31, (1,))))
    return SePSAgent(input_dim, n_agents, n_actions, cfg.hidden_dim, cluster_agents(cfg, gen),
                     min(cfg.seps_clusters, n_agents))


train, evaluate = qmix.entry_points(make_agent_net)
