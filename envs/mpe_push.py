"""The custom MPE scenario "Push N v M" of Kaleidoscope's MPE experiments (their
``SimplePush5v2_closest``, not public), rebuilt on mpe2's simple_push: N adversaries, M good
agents and 2 landmarks, one of which (drawn per episode) is the good agents' goal.

Rewards are mpe2's simple_push rewards generalised to N and M, which already read as
"closest": a good agent gets minus its distance to the goal; an adversary gets the distance to
the goal of the *closest* good agent minus its own distance to the goal (it must keep every good
agent away while holding the landmark). Observations as in simple_push: adversary
[vel, landmark offsets, other agents' offsets] (2 + 2·2 + 2·(N+M−1)), good agent
[vel, goal offset, goal colour, landmark offsets, landmark colours, other agents' offsets].
[Reconstruction: the official scenario is not public and its reward may differ; docs/papers/kaleidoscope.md.]
"""

from __future__ import annotations

from gymnasium.utils import EzPickle
from mpe2._mpe_utils.simple_env import SimpleEnv, make_env
from mpe2.simple_push.simple_push import ExtendedAgent, ExtendedLandmark, ExtendedWorld, Scenario
from pettingzoo.utils.conversions import parallel_wrapper_fn


class PushScenario(Scenario):
    def __init__(self, n_adversaries: int = 5, n_good: int = 2):
        super().__init__()
        self.n_adversaries, self.n_good = n_adversaries, n_good

    def make_world(self) -> ExtendedWorld:
        world = ExtendedWorld()
        world.dim_c = 2
        n = self.n_adversaries + self.n_good
        world.agents = [ExtendedAgent() for _ in range(n)]
        for i, agent in enumerate(world.agents):
            agent.adversary = i < self.n_adversaries
            agent.name = f"adversary_{i}" if agent.adversary else f"agent_{i - self.n_adversaries}"
            agent.collide = True
            agent.silent = True
        world.landmarks = [ExtendedLandmark() for _ in range(2)]
        for i, landmark in enumerate(world.landmarks):
            landmark.name = f"landmark {i}"
            landmark.collide = False
            landmark.movable = False
        return world


class raw_env(SimpleEnv, EzPickle):
    def __init__(
        self,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        n_adversaries: int = 5,
        n_good: int = 2,
    ):
        EzPickle.__init__(
            self,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            n_adversaries=n_adversaries,
            n_good=n_good,
        )
        scenario = PushScenario(n_adversaries, n_good)
        SimpleEnv.__init__(
            self,
            scenario=scenario,
            world=scenario.make_world(),
            render_mode=render_mode,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
        )
        self.metadata["name"] = f"simple_push_{n_adversaries}v{n_good}"


env = make_env(raw_env)
parallel_env = parallel_wrapper_fn(env)
