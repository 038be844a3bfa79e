"""SePS's agent clustering (Christianos et al., ICML 2021; steps 1-3 of methods/marl/value/seps.py),
for any team task of the arrays API, discrete (QMIX, methods/marl/value/seps.py) or continuous
(MATD3, methods/marl/actor_critic/matd3_seps.py): random-action transitions, a VAE whose encoder sees only
the agent id, and k-means on the encoder means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods.common.constraints import Bound, at_least


@dataclass
class SePSOptions:
    """SePS's config fields, mixed into the QMIX and MATD3 configs of its methods."""

    seps_clusters: int = 2  # K [unverified: the paper picks K from the embeddings]
    seps_pretrain_steps: int = 2000  # random-action env steps for the encoder [ours]
    seps_embed_dim: int = 4
    seps_vae_updates: int = 300
    seps_kl_weight: float = 1e-3

    SEPS_CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "seps_clusters": at_least(1),
        "seps_pretrain_steps": at_least(1),
        "seps_embed_dim": at_least(1),
        "seps_vae_updates": at_least(1),
        "seps_kl_weight": at_least(0),
    }


ActionSampler = Callable[[Any, torch.Generator], np.ndarray]


def uniform_available_actions(task: Any, gen: torch.Generator) -> np.ndarray:
    """Discrete tasks: one uniformly random available action per agent, (N,)."""
    avail = torch.as_tensor(task.avail_actions())
    return torch.multinomial(avail.float(), 1, generator=gen).squeeze(-1).numpy()


def uniform_box_actions(task: Any, gen: torch.Generator) -> np.ndarray:
    """Continuous tasks: actions uniform in [-max_action, max_action], padded entries 0, (N, act)."""
    u = torch.rand((task.n_agents, task.act_dim), generator=gen, device=gen.device).cpu().numpy() * 2 - 1
    return (u * task.max_action * task.action_mask()).astype(np.float32)


def random_transitions(
    task: Any, steps: int, gen: torch.Generator, sample_actions: ActionSampler = uniform_available_actions
) -> dict[str, Tensor]:
    """Per-agent transitions of random actions: obs (M, N, d), actions (M, N) long or (M, N, act)
    float, next_obs (M, N, d), reward (M,)."""
    rec: dict[str, list] = {"obs": [], "actions": [], "next_obs": [], "reward": []}
    obs = task.reset_arrays(seed=int(torch.randint(2**31, (1,), generator=gen, device=gen.device)))
    for _ in range(steps):
        actions = sample_actions(task, gen)
        nxt, reward, terminated, truncated = task.step_arrays(actions)
        rec["obs"].append(obs)
        rec["actions"].append(actions)
        rec["next_obs"].append(nxt)
        rec["reward"].append(reward)
        obs = nxt
        if terminated or truncated:
            obs = task.reset_arrays(seed=int(torch.randint(2**31, (1,), generator=gen, device=gen.device)))
    out = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in rec.items()}
    if np.issubdtype(np.asarray(rec["actions"]).dtype, np.integer):
        out["actions"] = out["actions"].long()
    return out


class TransitionVAE(nn.Module):
    """Encoder q(z | agent id) and decoder p(o', r | o, a, z) of SePS; discrete actions enter the
    decoder one-hot (``n_actions`` of them), continuous ones as they are (``n_actions`` = their size)."""

    def __init__(self, n_agents: int, obs_dim: int, n_actions: int, embed: int, hidden: int = 64):
        super().__init__()
        self.n_actions = n_actions
        self.encoder = nn.Sequential(nn.Linear(n_agents, hidden), nn.ReLU(), nn.Linear(hidden, 2 * embed))
        self.decoder = nn.Sequential(
            nn.Linear(obs_dim + n_actions + embed, hidden), nn.ReLU(), nn.Linear(hidden, obs_dim + 1)
        )

    def encode(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(ids).chunk(2, -1)
        return mu, logvar

    def action_features(self, actions: Tensor) -> Tensor:
        return F.one_hot(actions, self.n_actions).float() if actions.dtype == torch.long else actions

    def loss(
        self, obs: Tensor, actions: Tensor, ids: Tensor, target: Tensor, gen: torch.Generator, kl_weight: float
    ) -> Tensor:
        mu, logvar = self.encode(ids)
        z = mu + torch.randn(mu.shape, generator=gen, device=gen.device).to(mu.device) * (0.5 * logvar).exp()
        pred = self.decoder(torch.cat([obs, self.action_features(actions), z], -1))
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


def agent_clusters(
    task: Any, cfg: Any, gen: torch.Generator, sample_actions: ActionSampler = uniform_available_actions
) -> Tensor:
    """SePS steps 1-3 on any team task of the arrays API: the cluster of each learned agent (N,)
    long. ``cfg`` carries the ``seps_*`` fields."""
    data = random_transitions(task, cfg.seps_pretrain_steps, gen, sample_actions)
    m, n, d = data["obs"].shape
    actions = data["actions"]
    action_size = task.n_actions if actions.dtype == torch.long else actions.shape[-1]
    vae = TransitionVAE(n, d, action_size, cfg.seps_embed_dim)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    ids = torch.eye(n).expand(m, n, n).reshape(-1, n)
    obs, actions = data["obs"].reshape(-1, d), actions.reshape(m * n, *actions.shape[2:])
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
