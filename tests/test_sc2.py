"""envs/sc2.py, the StarCraft II adapter for clusters that have the game: StarCraft II cannot run
here, so these tests drive the adapter with a stand-in of SMAC's env API (get_env_info, reset,
get_obs/get_state/get_avail_actions, step → reward, terminated, info) and check what the adapter
itself decides: when the game is seeded, terminated vs SMAC's time limit, wins, available-action
checks, QMIX's episode records — and that a config naming it fails validation where the game
is missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from envs.sc2 import SC2Task


class SMACStandIn:
    """SMAC's env API on a two-unit toy: both agents choosing action 2 for two steps wins; the
    map's limit is 4 steps (SMAC reports it as info["episode_limit"] with terminated True)."""

    def __init__(self, seed: int | None, log: list):
        self.seed, self.closed = seed, False
        log.append(seed)

    def get_env_info(self) -> dict:
        return {"n_agents": 2, "n_actions": 3, "obs_shape": 4, "state_shape": 5, "episode_limit": 4}

    def reset(self) -> None:
        self.t, self.streak = 0, 0

    def get_obs(self) -> list:
        return [np.full(4, self.t + i, dtype=np.float32) for i in range(2)]

    def get_state(self) -> np.ndarray:
        return np.full(5, self.t, dtype=np.float32)

    def get_avail_actions(self) -> list:
        return [[1, 1, 1], [1, 0, 1]]  # agent 1 cannot take action 1

    def step(self, actions: list) -> tuple[float, bool, dict]:
        self.t += 1
        self.streak = self.streak + 1 if actions == [2, 2] else 0
        if self.streak == 2:
            return 10.0, True, {"battle_won": True}
        if self.t >= 4:
            return 0.5, True, {"battle_won": False, "episode_limit": True}
        return 0.5, False, {"battle_won": False}

    def close(self) -> None:
        self.closed = True


def make_task(log: list) -> SC2Task:
    return SC2Task("3m", env_factory=lambda seed: SMACStandIn(seed, log))


def test_the_game_is_seeded_once_at_the_first_reset_from_its_seed():
    log: list = []
    task = make_task(log)
    assert (task.n_agents, task.n_actions, task.obs_dim, task.state_dim, task.episode_limit) == (2, 3, 4, 5, 4)
    assert log == [None]  # sizes from an unseeded probe
    task.reset_arrays(seed=17)
    task.reset_arrays(seed=99)  # SC2 cannot restart from a seed
    assert log == [None, 17]
    short = SC2Task("3m", episode_limit=2, env_factory=lambda seed: SMACStandIn(seed, []))
    longer = SC2Task("3m", episode_limit=99, env_factory=lambda seed: SMACStandIn(seed, []))
    assert (short.episode_limit, longer.episode_limit) == (2, 4)  # the map's limit caps it
    short.reset_arrays(seed=1)
    assert [short.step_arrays(np.array([0, 0]))[2:] for _ in range(2)] == [(False, False), (False, True)]


def test_wins_end_by_termination_and_smacs_time_limit_is_truncation():
    task = make_task([])
    obs = task.reset_arrays(seed=1)
    assert obs.shape == (2, 4) and task.state().shape == (5,) and task.avail_actions()[1].tolist() == [1, 0, 1]
    task.step_arrays(np.array([2, 2]))
    obs, reward, term, trunc = task.step_arrays(np.array([2, 2]))
    assert (reward, term, trunc, task.won) == (10.0, True, False, True)
    with pytest.raises(RuntimeError, match="reset"):
        task.step_arrays(np.array([0, 0]))
    task.reset_arrays(seed=1)
    ends = [task.step_arrays(np.array([0, 0]))[2:] for _ in range(4)]
    assert ends == [(False, False)] * 3 + [(False, True)] and task.won is False  # time limit: truncated
    task.reset_arrays(seed=1)
    with pytest.raises(ValueError, match="unavailable"):
        task.step_arrays(np.array([0, 1]))


def test_qmix_records_an_episode_on_the_adapter():
    from methods.marl.value import qmix

    cfg = qmix.Config(env="sc2", env_kwargs={"map_name": "3m"}, hidden_dim=8, mixing_embed_dim=4, hypernet_embed=8)
    task = make_task([])
    learner = qmix.QLearner(cfg, task, qmix.scheme_agent_net, torch.device("cpu"))
    episode, ret = qmix.run_episode(learner, task, 3, 1.0, torch.Generator().manual_seed(0))
    steps = len(episode["reward"])
    assert 2 <= steps <= 4 and episode["obs"].shape == (steps + 1, 2, 4) and episode["state"].shape == (steps + 1, 5)
    assert (episode["actions"][:, 1] != 1).all()  # unavailable actions never chosen
    assert ret == pytest.approx(float(episode["reward"].sum()))


def test_a_config_naming_sc2_fails_validation_where_the_game_is_missing(monkeypatch):
    monkeypatch.delenv("SC2PATH", raising=False)
    with pytest.raises(ValueError, match="'smac' package is not installed|SC2PATH"):
        envs.check_kwargs("sc2", {"map_name": "3s5z"})
    with pytest.raises(ValueError, match="'smacv2' package is not installed|SC2PATH"):
        envs.check_kwargs("sc2", {"map_name": "10gen_protoss", "capability_config": {"n_units": 5}})
    with pytest.raises(ValueError, match="episode_limit"):
        envs.check_kwargs("sc2", {"map_name": "3s5z", "episode_limit": 0})


def test_switching_an_experiment_to_sc2_stops_at_validation_naming_file_and_field(tmp_path, monkeypatch):
    import yaml

    from pipeline import config as pc

    monkeypatch.delenv("SC2PATH", raising=False)
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    doc = yaml.safe_load((repo / "config/papers/mast.yaml").read_text(encoding="utf-8"))
    exp = doc["experiments"]["smax_3s5z"]
    exp["env"] = "sc2"
    for scale in exp["scales"].values():
        scale["env_kwargs"] = {"map_name": "3s5z"}
    path = tmp_path / "mast.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(pc.ConfigError) as err:
        pc.load_paper(path)
    assert str(err.value).startswith(f"{path}: experiments.smax_3s5z.scales.")
    assert "env_kwargs" in str(err.value) and "StarCraft II" in str(err.value)


class TypedStandIn(SMACStandIn):
    """The stand-in with SMAC's observation tail: agent 0 is type 2 and agent 1 type 1 of the map's
    three (one-hot at the end of the own features; agent 1 dies at the first step, and a dead
    unit's type bits are zero)."""

    def get_env_info(self) -> dict:
        return {**super().get_env_info(), "obs_shape": 6}

    def reset(self) -> None:
        super().reset()
        self.dead = False

    def get_obs(self) -> list:
        obs = np.zeros((2, 6), dtype=np.float32)
        obs[:, 0] = self.t
        obs[0, 3 + 2] = 1.0
        if not self.dead:
            obs[1, 3 + 1] = 1.0
        return list(obs)

    def step(self, actions: list) -> tuple[float, bool, dict]:
        self.dead = True
        return super().step(actions)


def test_unit_type_bits_come_from_the_maps_registry_of_smac_or_smacv2(monkeypatch):
    import sys
    import types

    from envs import sc2

    for package, bits in (("smac", 2), ("smacv2", 3)):
        maps = types.ModuleType(f"{package}.env.starcraft2.maps")
        maps.get_map_params = lambda name, bits=bits: {"3s5z": {"unit_type_bits": bits}}[name]
        monkeypatch.setitem(sys.modules, f"{package}.env.starcraft2.maps", maps)
    assert sc2.unit_type_bits("3s5z") == 2
    assert sc2.unit_type_bits("3s5z", capability_config={"n_units": 5}) == 3


def test_kaleidoscope_masks_by_unit_type_on_the_adapter(monkeypatch):
    """mask_owner unit_type on sc2: K = the map's unit types, each agent's mask read from the type
    bits that end its SMAC observation; a dead unit (all-zero observation) takes mask 0."""
    from envs import sc2
    from methods.marl.value import kaleidoscope, qmix

    monkeypatch.setattr(sc2, "unit_type_bits", lambda map_name, capability_config=None: 3)
    cfg = kaleidoscope.Config(
        env="sc2",
        env_kwargs={"map_name": "3s5z"},
        mask_owner="unit_type",
        hidden_dim=8,
        mixing_embed_dim=4,
        hypernet_embed=8,
    )
    task = SC2Task("3s5z", env_factory=lambda seed: TypedStandIn(seed, []))
    learner = qmix.QLearner(cfg, task, kaleidoscope.make_agent_net, torch.device("cpu"))
    agent = learner.agent
    assert isinstance(agent, kaleidoscope.UnitTypeKaleidoscopeAgent) and agent.n_masks == 3
    episode, _ = qmix.run_episode(learner, task, 3, 1.0, torch.Generator().manual_seed(0))
    last = np.concatenate([np.full((1, 2), -1), episode["actions"][:1]])
    inputs = learner.inputs(torch.as_tensor(episode["obs"][:2]), torch.as_tensor(last))
    assert agent.mask_ids(inputs).tolist() == [[2, 1], [2, 0]]  # step 1: agent 1 is dead
    monkeypatch.setattr(sc2, "unit_type_bits", lambda map_name, capability_config=None: 0)
    with pytest.raises(ValueError, match="one unit type"):
        kaleidoscope.Config(env="sc2", env_kwargs={"map_name": "3m"}, mask_owner="unit_type")


def test_kaleidoscopes_smacv2_experiment_switches_to_sc2_with_its_unit_type_masks(tmp_path, monkeypatch):
    """Where the game is (its checks stubbed here), Kaleidoscope's SMACv2 experiment runs on sc2
    by env and env_kwargs alone: its per-unit-type masks (mask_owner unit_type) pass validation."""
    import yaml

    from envs import sc2
    from pipeline import config as pc

    monkeypatch.setattr(SC2Task, "validate_kwargs", staticmethod(lambda **kwargs: None))
    monkeypatch.setattr(sc2, "unit_type_bits", lambda map_name, capability_config=None: 3)
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    doc = yaml.safe_load((repo / "config/papers/kaleidoscope.yaml").read_text(encoding="utf-8"))
    exp = doc["experiments"]["smacv2_protoss"]
    exp["env"] = "sc2"
    for scale in exp["scales"].values():
        scale["env_kwargs"] = {"map_name": "10gen_protoss", "capability_config": {"n_units": 5, "n_enemies": 5}}
    path = tmp_path / "kaleidoscope.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    loaded = pc.load_paper(path)
    overrides = loaded["experiments"]["smacv2_protoss"]["scales"]["paper"]["overrides"]["kaleidoscope"]
    assert overrides["mask_owner"] == "unit_type"
