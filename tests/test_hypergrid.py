"""HG-A hypergrid mechanics: forced termination, parents, reward, exact target."""

import itertools

import numpy as np
import torch

import envs


def test_factory_and_unknown():
    env = envs.make("hypergrid", ndim=2, height=4)
    assert env.n_actions == 3 and env.obs_dim == 8
    try:
        envs.make("nope")
    except envs.UnknownEnvError as e:
        assert "nope" in str(e)
    else:
        raise AssertionError("unknown env accepted")


def test_forced_termination_and_step():
    env = envs.make("hypergrid", ndim=2, height=4)
    s = torch.tensor([[2, 0], [1, 1], [0, 0]])
    nxt, done = env.step(s, torch.tensor([0, 2, 1]))
    assert nxt.tolist() == [[3, 0], [1, 1], [0, 1]]
    assert done.tolist() == [True, True, False]  # reached H-1, stop, plain move


def test_backward_mask_excludes_terminal_parents():
    env = envs.make("hypergrid", ndim=2, height=4)
    s = torch.tensor([[3, 2], [2, 2], [0, 1], [0, 0]])
    # (3,2): lowering dim 1 leaves (3,1), which was terminal -> invalid; lowering dim 0 ok
    assert env.backward_mask(s).tolist() == [[True, False], [True, True], [False, True], [False, False]]


def test_reward_and_modes_match_spec_formula():
    env = envs.make("hypergrid", ndim=2, height=20, r0=1e-3)
    for cell in itertools.product(range(20), repeat=2):
        x = -1 + 2 * np.array(cell) / 19
        ax = np.abs(x)
        r = 1e-3 + 0.5 * np.all(ax > 0.5) + 2.0 * np.all((ax > 0.6) & (ax < 0.8))
        got = float(env.log_reward(torch.tensor([cell])).exp())
        assert abs(got - r) < 1e-6 * max(1, r)
    assert env.n_modes == 4
    regions = env.mode_index(env.all_states())
    assert sorted(torch.unique(regions[regions >= 0]).tolist()) == [0, 1, 2, 3]


def test_target_excludes_unreachable_and_sums_to_one():
    env = envs.make("hypergrid", ndim=3, height=5)
    p = env.target_distribution()
    states = env.all_states()
    two_top = (states == 4).sum(-1) >= 2
    assert np.isclose(p.sum(), 1.0)
    assert (p[two_top.numpy()] == 0).all() and (p[~two_top.numpy()] > 0).all()


def test_assets_roundtrip(tmp_path):
    env = envs.make("hypergrid", ndim=2, height=6)
    info = env.write_assets(tmp_path)
    assert info["n_terminal"] == 36 - 1  # (5,5) is unreachable
    assert np.array_equal(env.target_distribution(cache_dir=tmp_path), env.target_distribution())
    env.check_steps()


def test_fast_trajectory_states_match_generic_replay():
    from envs.base import replay_states

    env = envs.make("hypergrid", ndim=3, height=5)
    actions = torch.full((3, env.max_traj_len), -1)
    actions[0, :4] = torch.tensor([0, 2, 1, 3])  # ends with stop
    actions[1, :4] = torch.tensor([1, 1, 1, 1])  # forced termination at height-1
    actions[2, :1] = torch.tensor([3])  # immediate stop
    assert torch.equal(env.trajectory_states(actions), replay_states(env, actions))
    nxt = env.trajectory_states(actions)[:, 1:]
    assert torch.equal(env.backward_action(nxt, actions.clamp(min=0))[1, :4], torch.tensor([1, 1, 1, 1]))


def test_parents_invert_step():
    env = envs.make("hypergrid", ndim=3, height=4)
    states = env.all_states()[env.terminal_mask(env.all_states())]
    par, act, valid = env.parents(states)
    for d in range(3):
        ok = valid[:, d]
        child, _ = env.step(par[ok, d], act[ok, d])
        assert torch.equal(child, states[ok])
        assert not env.is_forced_terminal(par[ok, d]).any()
