"""RBS: Retrospective Backward Synthesis for goal-conditioned GFlowNets (He, Chang, Xu, Pan,
ICLR 2025; code tinnerhrhe/Goal-Conditioned-GFN, grid/main.py and gfn_bit/main.py).

Per iteration:
    1. draw 16 training goals y; roll out P_F(·|s, y) (grid: sticky noise 0.01); R = 1[x = y]
    2. for every y, roll the learned P_B(·|s, y) back from s = y to s_0 and reverse the path: a
       synthetic forward trajectory that ends exactly at y, with R = 1
    3. store both in the replay, the synthetic one in the slot of the forward one of its goal
    4. draw 256 slots (age-based priorities: new 1, sampled reset to ~1e-3); the batch is their
       256 forward and 256 synthetic trajectories
    5. one Adam step on the conditional DB loss (terminal target log(c·R + 1e-9); grid: P_B KL
       regulariser 1e-11 decayed x0.999 per step, trajectories with mean residual >= 10 dropped)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.gfn.goal import core, loop


@dataclass
class Config(core.GFNGoalConfig):
    """The code's grid defaults (see ``core.GFNGoalConfig``); bit tasks override lr, width, heads,
    clipping and the reward intensification in the paper config."""


class RetrospectiveBackwardSynthesis(core.ConditionalDB):
    paired = True

    def pair(
        self, goals: torch.Tensor, actions: torch.Tensor, terminal: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        synthetic = core.backward_synthesis(self.env, self.net, goals, gen)
        return synthetic, goals, torch.ones(goals.shape[0], device=goals.device)


make_learner, train, evaluate = loop.entry_points(RetrospectiveBackwardSynthesis)
