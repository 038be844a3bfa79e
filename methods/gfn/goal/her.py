"""HER-style relabelling for goal-conditioned GFlowNets (Andrychowicz et al., 2017, as RBS's code
runs it with ``--her 1``; tinnerhrhe/Goal-Conditioned-GFN, grid/main.py).

Per iteration:
    1. draw 16 training goals y; roll out P_F(·|s, y) (grid: sticky noise 0.01); R = 1[x = y]
    2. relabel each trajectory with the outcome it reached: goal := x, R = 1
    3. store the original and, in its slot, the relabelled trajectory
    4. one Adam step on the conditional DB loss of 256 slots (256 original + 256 relabelled)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.gfn.goal import core, loop


@dataclass
class Config(core.GFNGoalConfig):
    """The same settings as RBS (see ``core.GFNGoalConfig``)."""


class HindsightRelabelling(core.ConditionalDB):
    paired = True

    def pair(
        self, goals: torch.Tensor, actions: torch.Tensor, terminal: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        achieved = self.env.achieved(terminal)
        return actions, achieved, torch.ones(goals.shape[0], device=goals.device)


make_learner, train, evaluate = loop.entry_points(HindsightRelabelling)
