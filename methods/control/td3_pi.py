"""TD3 + Injection — an NE baseline; the mechanism lives in methods/control/plasticity.py."""

from __future__ import annotations

from methods.control.loop import entry_points
from methods.control.plasticity import InjectionAgent, InjectionConfig

Config = InjectionConfig

make_agent, train, evaluate = entry_points(InjectionAgent)
