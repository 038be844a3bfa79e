"""MATD3 (Ackermann et al. 2019) in the HARL style with full parameter sharing: the method module.

The algorithm and its settings are in ``learner.py`` (``Config``, ``MATD3Learner``), the runner in
``loop.py``; the MATD3-based variants and the tests reach them through this module's names.
"""

from __future__ import annotations

from methods.marl.actor_critic.learner import Config as Config
from methods.marl.actor_critic.learner import LearnerFactory as LearnerFactory
from methods.marl.actor_critic.learner import MATD3Learner as MATD3Learner
from methods.marl.actor_critic.loop import entry_points as entry_points
from methods.marl.actor_critic.loop import evaluate_matd3 as evaluate_matd3
from methods.marl.actor_critic.loop import greedy_returns as greedy_returns
from methods.marl.actor_critic.loop import train_matd3 as train_matd3

train, evaluate = entry_points()
