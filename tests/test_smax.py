"""SMAX (envs/smax.py) behind the parallel API and QMIX on it: seeded episodes, available
actions enforced, termination vs the time limit, the win flag, config checks without building,
a QMIX run that reports its win rate; B envs in lockstep (SMAXBatch's vmapped step, TeamBatch)
equal to B single tasks, and QMIX with parallel envs (pymarl2's batch_size_run). Each SMAXTask compiles its
jitted reset/step (~10 s),
so the tests build few of them."""

from __future__ import annotations

import math

import numpy as np
import pytest

import envs
from envs.smax import SMAXTask


@pytest.fixture(scope="module")
def task() -> SMAXTask:
    return SMAXTask("3m", episode_limit=30)


def test_smax_parallel_api_seeded_resets_and_available_actions(task: SMAXTask):
    assert (task.n_agents, task.n_actions, task.obs_dim, task.state_dim) == (3, 8, 75, 72)
    obs, infos = task.reset(seed=11)
    assert sorted(obs) == task.possible_agents == task.agents and set(infos) == set(obs)
    first = task.obs_array()
    assert task.reset_arrays(seed=11).tolist() == first.tolist()  # the seed fixes the episode
    assert task.reset_arrays(seed=12).tolist() != first.tolist()
    assert task.state().shape == (72,)
    avail = task.avail_actions()
    assert avail.shape == (3, 8) and set(np.unique(avail)) <= {0.0, 1.0}
    blocked = np.flatnonzero(avail[0] == 0)
    if blocked.size:  # e.g. attacking out of range
        acts = {a: int(np.flatnonzero(avail[i])[0]) for i, a in enumerate(task.possible_agents)}
        acts[task.possible_agents[0]] = int(blocked[0])
        with pytest.raises(ValueError, match="unavailable"):
            task.step(acts)


def test_smax_episodes_end_by_elimination_or_the_time_limit_and_report_wins(task: SMAXTask):
    rng = np.random.default_rng(0)
    ends = []
    for seed in range(3):  # "stop" every step: the episode may not
        task.reset_arrays(seed=seed)  # outlast the limit (SMAX's own is 1 late)
        for t in range(task.episode_limit):
            _, _, term, trunc = task.step_arrays(np.full(task.n_agents, 4))
            if term:
                break
            assert trunc == (t == task.episode_limit - 1)
        assert not task.agents
    for ep in range(4):
        task.reset_arrays(seed=ep)
        steps, done = 0, False
        while not done:
            acts = np.array([rng.choice(np.flatnonzero(row)) for row in task.avail_actions()])
            _, r, term, trunc = task.step_arrays(acts)
            assert math.isfinite(r) and not (term and trunc)
            steps += 1
            done = term or trunc
        assert steps <= task.episode_limit
        assert trunc == (steps == task.episode_limit) or term
        ends.append((term, task.won))
        with pytest.raises(RuntimeError, match="reset"):
            task.step({a: 0 for a in task.possible_agents})
    assert all(not won or term for term, won in ends)  # a win ends the episode by elimination


def test_smax_kwargs_are_checked_without_building_the_env():
    with pytest.raises(ValueError, match="scenario"):
        envs.check_kwargs("smax", {"scenario": "4m"})
    with pytest.raises(ValueError, match="episode_limit"):
        envs.check_kwargs("smax", {"scenario": "3m", "episode_limit": 0})
    envs.check_kwargs("smax", {"scenario": "smacv2_5_units", "episode_limit": 50})


def test_qmix_on_smax_trains_deterministically_and_reports_the_win_rate():
    import torch

    from methods.common.runapi import MemoryRun
    from methods.marl.value import qmix

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = qmix.Config(
            env="smax",
            env_kwargs={"scenario": "3m", "episode_limit": 20},
            iterations=120,
            eval_every=60,
            checkpoint_every=60,
            eval_episodes=2,
            batch_size=2,
            buffer_size=8,
            epsilon_anneal_steps=100,
            target_update_interval=2,
            hidden_dim=16,
            mixing_embed_dim=8,
            hypernet_embed=16,
        )
        a, b = MemoryRun(seed=0), MemoryRun(seed=0)
        qmix.train(cfg, a)
        qmix.train(cfg, b)
        strip = lambda rows: repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])  # noqa: E731
        assert strip(a.rows) == strip(b.rows)
        assert all(0.0 <= r["test_win_rate"] <= 1.0 for r in a.rows)
        ev = qmix.evaluate(cfg, a.model, 0)
        assert 0.0 <= ev["metrics"]["test_win_rate_mean"] <= 1.0
        assert len(ev["per_episode"]["test_win"]) == 2
        assert "test_win_rate_avg" in ev["metrics"]
    finally:
        torch.set_num_threads(threads)


def test_race_restricted_smacv2_draws_only_the_races_unit_types():
    import jax

    from envs.smax import RACES, compiled

    env, reset, _ = compiled("smacv2_protoss_5v5", 20)
    seen = set()
    for k in range(8):
        _, state, _ = reset(jax.random.PRNGKey(k))
        types = np.asarray(state.state.unit_types)
        assert types[:5].tolist() == types[5:].tolist()  # the enemies mirror the allies
        seen |= set(types.tolist())
    assert seen == set(RACES["smacv2_protoss_5v5"])  # stalkers and zealots, both drawn
    assert SMAXTask("smacv2_protoss_5v5", episode_limit=20).n_agents == 5


def test_kaleidoscope_masks_by_unit_type_read_from_the_observation():
    import torch

    from methods.marl.value import kaleidoscope

    cfg = kaleidoscope.Config(
        env="smax",
        env_kwargs={"scenario": "smacv2_protoss_5v5", "episode_limit": 20},
        mask_owner="unit_type",
        obs_last_action=True,
        hidden_dim=8,
    )
    obs_dim, n, a = 127, 5, 10
    agent = kaleidoscope.make_agent_net(cfg, obs_dim + a + n, n, a)
    assert agent.n_masks == 2  # stalker, zealot
    inputs = torch.zeros(1, n, obs_dim + a + n)
    inputs[0, 0, obs_dim - 6 + 2] = 1.0  # a stalker → mask 0
    inputs[0, 1, obs_dim - 6 + 3] = 1.0  # a zealot → mask 1
    inputs[0, 2, obs_dim - 6 + 3] = 1.0  # a zealot → mask 1; agents 3, 4 dead → 0
    assert agent.mask_ids(inputs).tolist() == [[0, 1, 1, 0, 0]]
    hidden = agent.init_hidden(1)
    q, _ = agent(inputs, hidden)
    torch.testing.assert_close(q, agent(inputs, hidden, torch.tensor([[0, 1, 1, 0, 0]]))[0])
    with pytest.raises(ValueError, match="mask_owner"):
        kaleidoscope.Config(mask_owner="unit_type")  # MPE has no unit types


def _play_in_lockstep(batch, singles, seeds, rng):
    """Random available actions for every env of ``batch`` and the same ones for the single
    tasks; every row of the batch must equal its single task's arrays until that env ends."""
    obs = batch.reset_arrays(seeds)
    for b, (single, seed) in enumerate(zip(singles, seeds)):
        assert np.array_equal(obs[b], single.reset_arrays(seed=seed))
    live = np.ones(len(seeds), dtype=bool)
    lengths = np.zeros(len(seeds), dtype=int)
    while live.any():
        avail = batch.avail_actions()
        acts = np.array([[rng.choice(np.flatnonzero(row)) for row in env_avail] for env_avail in avail])
        obs, reward, term, trunc = batch.step_arrays(acts)
        # an env that had ended is not stepped: no second ending, no reward
        assert not (term | trunc)[~live].any() and (reward[~live] == 0).all()
        for b in np.flatnonzero(live):
            o, r, te, tr = singles[b].step_arrays(acts[b])
            assert np.array_equal(obs[b], o) and reward[b] == r and (term[b], trunc[b]) == (te, tr)
            assert np.array_equal(batch.state()[b], singles[b].state())
            assert np.array_equal(batch.avail_actions()[b], singles[b].avail_actions())
            lengths[b] += 1
            if te or tr:
                live[b] = False
                if singles[b].reports_wins:
                    assert batch.won[b] == float(singles[b].won)
                else:  # MPE: no winner, declared as such
                    assert not batch.reports_wins and np.isnan(batch.won[b])
        assert np.array_equal(batch.active, live)
    return lengths


def test_smax_batch_plays_each_env_as_the_single_task_does_in_one_vmapped_call(task: SMAXTask):
    from envs.smax import SMAXBatch

    batch = SMAXBatch("3m", episode_limit=30, n_envs=3)
    singles = [task, SMAXTask("3m", episode_limit=30), SMAXTask("3m", episode_limit=30)]
    lengths = _play_in_lockstep(batch, singles, [5, 6, 7], np.random.default_rng(1))
    assert (lengths <= 30).all()
    with pytest.raises(ValueError, match="seeds"):
        batch.reset_arrays([1, 2])


def test_team_batch_of_mpe_tasks_plays_each_as_the_single_task():
    from envs.mpe import MPETask
    from envs.team_batch import TeamBatch

    batch = TeamBatch(lambda: MPETask("tag", episode_limit=10), 2)
    lengths = _play_in_lockstep(
        batch, [MPETask("tag", episode_limit=10), MPETask("tag", episode_limit=10)], [3, 4], np.random.default_rng(2)
    )
    assert lengths.tolist() == [10, 10]
    assert not batch.reports_wins


def test_qmix_with_parallel_envs_one_update_per_batch_resumes_exactly_and_evaluates_in_batches():
    """pymarl2's parallel runner: batch_size_run episodes per learner step (SMACv2: 4)."""
    import torch

    from methods.common.runapi import MemoryRun
    from methods.marl.value import qmix
    from methods.marl.value.episodes import greedy_episodes, make_batch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = qmix.Config(
            env="smax",
            env_kwargs={"scenario": "3m", "episode_limit": 20},
            iterations=160,
            eval_every=80,
            checkpoint_every=40,
            eval_episodes=3,
            batch_size=2,
            buffer_size=8,
            epsilon_anneal_steps=100,
            target_update_interval=2,
            hidden_dim=16,
            mixing_embed_dim=8,
            hypernet_embed=16,
            batch_size_run=2,
        )
        strip = lambda rows: repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])  # noqa: E731
        a = MemoryRun(seed=1)
        qmix.train(cfg, a)
        assert a.rows[-1]["episodes"] % 2 == 0  # whole batches of 2 episodes
        assert a.rows[-1]["updates"] <= a.rows[-1]["episodes"] / 2  # at most one update per batch
        stopped = MemoryRun(seed=1, stop_after_checkpoints=1)
        with pytest.raises(Exception, match="stopped"):
            qmix.train(cfg, stopped)
        stopped._stop_after = None
        qmix.train(cfg, stopped)
        assert strip(stopped.rows) == strip(a.rows)
        # greedy test episodes played 2 at a time are the episodes played one at a time
        learner = qmix.QLearner(cfg, make_batch(cfg), qmix.scheme_agent_net, torch.device("cpu"))
        learner.agent.load_state_dict(a.model["agent"])
        one_cfg = qmix.Config(**{**cfg.to_dict(), "batch_size_run": 1})
        batched = greedy_episodes(learner, make_batch(cfg), 0, 3)
        single = greedy_episodes(learner, make_batch(one_cfg), 0, 3)
        assert batched == single and len(batched[0]) == 3
    finally:
        torch.set_num_threads(threads)


def test_smax_batch_does_not_report_an_ended_envs_step():
    """Replay a batch up to a step where env 0 earns a reward, with env 0 marked ended just
    before it: that env's row must report no reward, no ending, and keep its arrays."""
    from envs.smax import SMAXBatch

    batch = SMAXBatch("3m", episode_limit=60, n_envs=2)
    rng = np.random.default_rng(3)
    batch.reset_arrays([21, 22])
    actions = []
    for _ in range(60):
        avail = batch.avail_actions()
        acts = (rng.random(avail.shape) * avail).argmax(-1)
        actions.append(acts)
        _, reward, term, trunc = batch.step_arrays(acts)
        if reward[0] != 0 and not (term | trunc).any():
            break
    assert reward[0] != 0, "no rewarded step found for env 0"
    before = batch.reset_arrays([21, 22])
    for acts in actions[:-1]:
        before = batch.step_arrays(acts)[0]
    batch.active[0] = False  # as if env 0's episode had ended here
    obs, reward, term, trunc = batch.step_arrays(actions[-1])
    assert reward[0] == 0.0 and not term[0] and not trunc[0]
    assert np.array_equal(obs[0], before[0])
