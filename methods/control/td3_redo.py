"""TD3 + ReDo — an NE baseline; the mechanism lives in methods/control/plasticity.py."""

from __future__ import annotations

from methods.control.loop import entry_points
from methods.control.plasticity import ReDoAgent, ReDoConfig

Config = ReDoConfig

make_agent, train, evaluate = entry_points(ReDoAgent)
