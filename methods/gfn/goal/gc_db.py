"""GC-GFN without RBS: the goal-conditioned GFlowNet of RBS's code (tinnerhrhe/Goal-Conditioned-GFN)
trained by conditional detailed balance on its own forward trajectories only.

Per iteration:
    1. draw 16 training goals y; roll out P_F(·|s, y) (grid: sticky noise 0.01); R = 1[x = y]
    2. store (trajectory, y, R) in the replay (age-based priorities)
    3. one Adam step on the conditional DB loss of 256 replayed trajectories

The official grid script takes no gradient step at all unless ``--backward`` or ``--her`` is set;
this baseline trains on the forward data alone, which is the comparison the paper describes.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.gfn.goal import core, loop


@dataclass
class Config(core.GFNGoalConfig):
    """The code's grid defaults (see ``core.GFNGoalConfig``)."""


make_learner, train, evaluate = loop.entry_points(core.ConditionalDB)
