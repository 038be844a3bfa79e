"""MATD3 with SePS actors (Christianos, Papoudakis, Rahman, Albrecht, ICML 2021), the selective
parameter-sharing baseline of Kaleidoscope on multi-agent MuJoCo (docs/papers/kaleidoscope.md):

    1. pre-training: ``seps_pretrain_steps`` env steps of uniform random actions in the box;
    2. a VAE: encoder q(z | agent id), decoder p(o'_i, r | o_i, a_i, z) (continuous a_i as is);
    3. k-means (``seps_clusters``) on the encoder means μ_i;
    4. one actor MLP per cluster (methods/marl/actor_critic/actors.py SePSActor), the one-hot id in the input.

Steps 1-3 are methods/marl/seps_clusters.py, shared with SePS on QMIX; the critic and everything
else are methods/marl/actor_critic/matd3.py. [Pre-training steps are not counted in the run's env steps, as
for QMIX; K is a config value (the paper reads it off the embeddings); VAE sizes are ours.]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from envs.mamujoco import MaMuJoCoTask
from methods.common.constraints import Bound, one_of
from methods.marl.actor_critic import matd3
from methods.marl.actor_critic.actors import SePSActor
from methods.marl.seps_clusters import SePSOptions, agent_clusters, uniform_box_actions


@dataclass
class Config(SePSOptions, matd3.Config):
    actor_net: str = "seps"
    obs_agent_id: bool = True  # as SePS on QMIX: agents of one cluster can still differ

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **matd3.Config.CONSTRAINTS,
        **SePSOptions.SEPS_CONSTRAINTS,
        "actor_net": one_of("seps"),
    }


class SePSLearner(matd3.MATD3Learner):
    """MATD3 whose actor is one network per SePS cluster, the clusters found on the run's task."""

    def build_actor(self) -> nn.Module:
        c = self.cfg
        # the pre-training draws from its own generator seeded off the run's global stream, and
        # runs on a task of its own so the run's env starts where it would without it
        gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
        task = MaMuJoCoTask(**c.env_kwargs)
        try:
            clusters = agent_clusters(task, c, gen, uniform_box_actions)
        finally:
            task.close()
        return SePSActor(
            self.input_dim,
            self.act_dim,
            c.hidden,
            self.max_action,
            self.n_agents,
            clusters,
            min(c.seps_clusters, self.n_agents),
        )

    def diagnostics(self) -> dict[str, float]:
        return {**super().diagnostics(), "seps_clusters_used": float(len(torch.unique(self.actor.clusters)))}


train, evaluate = matd3.entry_points(SePSLearner)
