"""QMIX (Rashid et al. 2018) and VDN (Sunehag et al. 2018) as in EPyMARL: the method module.

The algorithm and its settings are in ``learner.py`` (``Config``, ``QLearner``), the runner in
``loop.py``; the QMIX-family variants and the tests reach the learner, the runner, the episode
helpers and the value blocks through this module's names.
"""

from __future__ import annotations

from methods.marl.value.episodes import TASKS as TASKS
from methods.marl.value.episodes import TeamTask as TeamTask
from methods.marl.value.episodes import eval_seed as eval_seed
from methods.marl.value.episodes import greedy_episodes as greedy_episodes
from methods.marl.value.episodes import greedy_returns as greedy_returns
from methods.marl.value.episodes import make_batch as make_batch
from methods.marl.value.episodes import make_task as make_task
from methods.marl.value.episodes import run_episode as run_episode
from methods.marl.value.episodes import run_episodes as run_episodes
from methods.marl.value.learner import MIXERS as MIXERS
from methods.marl.value.learner import AgentNetFactory as AgentNetFactory
from methods.marl.value.learner import Config as Config
from methods.marl.value.learner import QLearner as QLearner
from methods.marl.value.learner import epsilon_at as epsilon_at
from methods.marl.value.learner import make_mixer as make_mixer
from methods.marl.value.learner import scheme_agent_net as scheme_agent_net
from methods.marl.value.loop import entry_points as entry_points
from methods.marl.value.loop import evaluate_qmix as evaluate_qmix
from methods.marl.value.loop import train_qmix as train_qmix
from methods.marl.value.value_blocks import QMixer as QMixer
from methods.marl.value.value_blocks import RunningMeanStd as RunningMeanStd
from methods.marl.value.value_blocks import VDNMixer as VDNMixer
from methods.marl.value.value_blocks import next_agent_values as next_agent_values
from methods.marl.value.value_blocks import select_actions as select_actions
from methods.marl.value.value_blocks import td_targets as td_targets

train, evaluate = entry_points(scheme_agent_net)
