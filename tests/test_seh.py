"""The sEH fragment environment (envs.seh) and its proxy (envs.seh_proxy).

Where the proxy's reference values come from: no official repository we could read
(GFNOrg/gflownet via zarifikram/EGFN, recursionpharma/gflownet, yunglau/QGFN) publishes a
SMILES together with its sEH proxy score (no test, notebook, log or README table holds one).
The values in ``REFERENCE`` were therefore produced on 2026-12-03 by running recursion's own
model code unchanged -- ``src/gflownet/models/bengio2021flow.py`` at recursionpharma/gflownet
commit f064713 (``load_original_model`` + ``mol2graph``, i.e. its featuriser and its
torch_geometric NNConv/GRU/Set2Set network) -- with torch_geometric 2.6.1 (a stub
``torch_sparse.coalesce`` that sorts the edges), on the sha256-pinned weights file, outside
this repository (torch_geometric is not a dependency). They are what QGFN's reward sees. The
first five SMILES are recursion's ``SOME_MOLS`` (``tasks/seh_frag.py``), high-reward samples:
all score about 8.0, i.e. a flat reward of about 1, which is itself a sanity check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")

import envs  # noqa: E402
from envs.seh import MAX_SLOTS, N_BLOCKS, SEHFragments, blocks  # noqa: E402
from envs.seh_proxy import SEHProxy, atom_features, atom_graph  # noqa: E402
from methods.common.runapi import MemoryRun  # noqa: E402
from methods.gfn import tb  # noqa: E402
from methods.gfn.policy import sample_trajectories, terminal_states, uniform_policy  # noqa: E402

# (SMILES, score of recursion's bengio2021flow model, float32) -- see the module docstring
REFERENCE = [
    ("O=C(NCc1cc(CCc2cccc(N3CCC(c4cc(-c5cc(-c6cncnc6)[nH]n5)ccn4)CC3)c2)ccn1)c1cccc2ccccc12", 8.003174),
    (
        "O=c1nc2[nH]c3cc(-c4cc(C5CC(c6ccc(CNC7CCOC7c7csc(C8=CC(c9ccc%10ccccc%10c9)CCC8)n7)cc6)CO5)c[nH]4)"
        "ccc3nc-2c(=O)[nH]1",
        8.003542,
    ),
    ("c1ccc(-c2cnn(-c3cc(-c4cc(CCc5cc(C6CCC(c7cc(-c8ccccc8)[nH]n7)CO6)ncn5)n[nH]4)ccn3)c2)cc1", 8.003588),
    ("O=C(NCc1cc(C2CCNC2C2CCNC2)ncn1)c1cccc(-c2cccc(-c3cccc(C4CCC(c5ccccc5)CO4)c3)c2)c1", 8.004503),
    (
        "O=C(NCc1cccc(C2COC(c3ccc4nc5c(=O)[nH]c(=O)nc-5[nH]c4c3)C2)c1)c1cccc(CCc2cccc(-c3ncnc4c3ncn4C3CCCN3)c2)c1",
        8.004535,
    ),
    ("CC(=O)Oc1ccccc1C(=O)O", 2.489920),  # aspirin
    ("CN1C=NC2=C(C1=O)N(C)C(=O)N2C", 1.769052),  # caffeine
    ("CC(C)Cc1ccc(C(C)C(=O)O)cc1", 3.106742),  # ibuprofen
    ("c1ccccc1", 0.928756),
    ("C", -0.415643),  # no bond: the self-loop path
    ("Br", -0.385066),
    ("O=c1nc2[nH]c3ccccc3nc-2c(=O)[nH]1", 4.874470),
]
DRUG_LIKE = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C(C1=O)N(C)C(=O)N2C",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "CC(=O)Nc1ccc(O)cc1",
    "OC(=O)c1ccccc1O",
    "c1ccc2c(c1)[nH]c1ccccc12",
]


@pytest.fixture(scope="module")
def proxy() -> SEHProxy:
    return SEHProxy.pretrained()


@pytest.fixture(scope="module")
def env() -> SEHFragments:
    return envs.make("seh")


def _rollouts(env: SEHFragments, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    actions = sample_trajectories(env, uniform_policy(env), n, torch.Generator().manual_seed(seed))
    return actions, terminal_states(env, actions)


# ------------------------------------------------------------------------------ proxy
def test_proxy_matches_recursion_reference(proxy: SEHProxy) -> None:
    smiles, expected = zip(*REFERENCE)
    got = proxy.predict_smiles(list(smiles))
    np.testing.assert_allclose(got.numpy(), np.array(expected), atol=2e-5)


def test_proxy_drug_like_finite_and_plausible(proxy: SEHProxy) -> None:
    got = proxy.predict_smiles(DRUG_LIKE)
    assert torch.isfinite(got).all()
    assert bool(((got > 0) & (got < 9)).all()), got


def test_proxy_deterministic_and_batch_order_independent(proxy: SEHProxy) -> None:
    smiles = [s for s, _ in REFERENCE] + DRUG_LIKE
    first = proxy.predict_smiles(smiles)
    assert torch.equal(first, proxy.predict_smiles(smiles))  # same batch: bit-identical
    perm = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = proxy.predict_smiles([smiles[i] for i in perm])
    # another batch layout may change BLAS blocking, hence float32 round-off only
    np.testing.assert_allclose(shuffled.numpy(), first[perm].numpy(), atol=1e-5)
    one_by_one = torch.cat([proxy.predict_smiles([s]) for s in smiles[:4]])
    np.testing.assert_allclose(one_by_one.numpy(), first[:4].numpy(), atol=1e-5)


def test_proxy_weights_map_and_root_layout(proxy: SEHProxy) -> None:
    assert proxy.conv_root.shape == (64, 64) and proxy.lin3.weight.shape == (1, 128)
    original = SEHProxy.pretrained(root_layout="original")
    a = proxy.predict_smiles(["c1ccccc1"])
    b = original.predict_smiles(["c1ccccc1"])
    assert not torch.allclose(a, b)  # the two layouts are genuinely different networks
    with pytest.raises(ValueError):
        SEHProxy(root_layout="sideways")
    with pytest.raises(ValueError, match="expected 22 arrays"):
        SEHProxy().load_arrays([np.zeros(1)])


def test_atom_features_layout() -> None:
    from rdkit import Chem

    f = atom_features(Chem.MolFromSmiles("c1ccncc1Cl"))
    assert f.shape == (7, 71)
    assert f[0, 1] == 1 and f[3, 2] == 1 and f[6, 5] == 1  # C, N, "other" (Cl)
    assert f[0, 9] == 1 and f[0, 11] == 1 and f[0, 13] == 1  # aromatic, SP2, one H
    assert f[6, 13 + 17] == 1 and f[0, 13 + 6] == 1  # atomic-number one-hot
    assert f[:, 70].sum() == 0 and f[:, 6:9].sum() == 0
    g = atom_graph([Chem.MolFromSmiles("C"), Chem.MolFromSmiles("CO")])
    assert g.src.tolist() == [0, 1, 2] and g.dst.tolist() == [0, 2, 1]
    assert g.edge_type.tolist() == [4, 0, 0] and g.batch.tolist() == [0, 1, 1]


# ------------------------------------------------------------------------ environment
def test_registry_and_sizes(env: SEHFragments) -> None:
    assert envs.module_of("seh") == "envs.seh" and envs._KWARGS_CHECK["seh"] == "signature"
    envs.check_kwargs("seh", {"beta": 16.0, "max_frags": 9})
    smi, r, _ = blocks()
    assert len(smi) == N_BLOCKS and len(set(smi)) == 72 and max(map(len, r)) == MAX_SLOTS
    assert env.n_actions == 9 * 6 * 105 + 1 and env.stop_action == env.n_actions - 1
    assert env.n_backward_actions == 9 and env.max_traj_len == 9
    assert not env.enumerable and env.n_modes == 0
    s = env.initial(3)
    assert s.shape == (3, 82) and env.obs(s).shape == (3, env.obs_dim)
    assert env.forward_mask(s)[:, :N_BLOCKS].all() and env.forward_mask(s).sum(1).eq(N_BLOCKS).all()


def test_random_rollouts_valid_molecules(env: SEHFragments) -> None:
    from rdkit import Chem

    actions, x = _rollouts(env, 200, seed=1)
    n = x[:, 0]
    assert bool(((n >= 1) & (n <= 9)).all()) and bool((n == 9).any())
    for smi in env.smiles(x):
        assert smi is not None and Chem.MolFromSmiles(smi) is not None
    lr = env.log_reward(x)
    flat = env.flat_reward(x)
    assert torch.isfinite(lr).all()
    torch.testing.assert_close(lr.double(), 32.0 * flat.log(), rtol=0, atol=1e-4)
    assert bool(((flat >= 1e-4) & (flat <= 100)).all())
    env.check_steps(32, seed=2)


def test_trajectory_states_equal_stepping(env: SEHFragments) -> None:
    actions, _ = _rollouts(env, 64, seed=3)
    traj = env.trajectory_states(actions)
    s = env.initial(64)
    for t in range(actions.shape[1]):
        a = actions[:, t]
        live = a >= 0
        if live.any():
            nxt, _ = env.step(s[live], a[live])
            s = s.clone()
            s[live] = nxt
        assert torch.equal(traj[:, t + 1], s)


def test_forward_backward_round_trip(env: SEHFragments) -> None:
    actions, _ = _rollouts(env, 64, seed=4)
    traj = env.trajectory_states(actions)
    for t in range(actions.shape[1]):
        a = actions[:, t]
        move = (a >= 0) & (a != env.stop_action)
        if not move.any():
            continue
        nxt = traj[move, t + 1]
        back = env.backward_action(nxt, a[move])
        par, par_actions, valid = env.parents(nxt)
        rows = torch.arange(len(nxt))
        assert valid[rows, back].all()
        assert torch.equal(par[rows, back], traj[move, t])
        assert torch.equal(par_actions[rows, back], a[move])
        assert env.backward_mask(nxt)[rows, back].all()


def test_parents_consistent_with_step(env: SEHFragments) -> None:
    _, x = _rollouts(env, 48, seed=5)
    par, par_actions, valid = env.parents(x)
    smiles_x = env.smiles(x)
    for b in range(len(x)):
        n = int(x[b, 0])
        for i in valid[b].nonzero().squeeze(1).tolist():
            p = par[b, i][None]
            assert int(p[0, 0]) == n - 1
            assert env.forward_mask(p)[0, par_actions[b, i]]
            child, _ = env.step(p, par_actions[b, i][None])
            if i == n - 1:
                assert torch.equal(child[0], x[b])
            # another leaf: the same rooted tree with node i stored last -- same molecule
            assert env.smiles(child)[0] == smiles_x[b]
            assert sorted(child[0, 1 : 1 + n].tolist()) == sorted(x[b, 1 : 1 + n].tolist())
        # a node with children is never removable, nor the root of a larger tree
        kids = set(x[b, 1 + 9 + 1 : 1 + 9 + n].tolist())
        assert not any(valid[b, j] for j in kids if n > 1)
        assert n == 1 or not valid[b, 0]


def test_masks_forbid_occupied_slots(env: SEHFragments) -> None:
    _, x = _rollouts(env, 64, seed=6)
    x = x[x[:, 0] < 9]
    mask = env.forward_mask(x)[:, :-1].reshape(len(x), 9, MAX_SLOTS, N_BLOCKS)
    _, r, _ = blocks()
    for b in range(len(x)):
        n = int(x[b, 0])
        occ = x[b, 1 + 27 :].reshape(9, MAX_SLOTS)
        for node in range(9):
            for k in range(MAX_SLOTS):
                exists = node < n and k < len(r[int(x[b, 1 + node])])
                free = exists and int(occ[node, k]) == 0
                assert bool(mask[b, node, k].all()) == free and bool(mask[b, node, k].any()) == free
        # every child's own slot 0 and its parent's slot are occupied
        for j in range(1, n):
            assert occ[j, 0] == 1 and occ[int(x[b, 10 + j]), int(x[b, 19 + j])] == 1
    assert env.forward_mask(x)[:, -1].all()  # stop once non-empty


def test_invalid_molecules_get_invalid_reward(env: SEHFragments) -> None:
    empty = env.initial(1)
    # five methyls on one carbon (a hand-written state no action sequence reaches): RDKit
    # rejects the pentavalent carbon
    carbon = blocks()[0].index("C")
    bad = env.initial(1)
    bad[0, 0] = 6
    bad[0, 1:7] = carbon
    valid_pair = env.trajectory_states(torch.tensor([[carbon, env.encode_action(0, 0, carbon)]]))[:, -1]
    states = torch.cat([empty, bad, valid_pair])
    assert env.smiles(states)[:2] == [None, None] and env.smiles(states)[2] == "CC"
    lr = env.log_reward(states)
    assert lr[:2].tolist() == [-75.0, -75.0]
    # a valid molecule keeps beta*log(flat) even below -75 (as in QGFN: ethane's flat reward is
    # about 0.004, so 32*log(flat) is about -178)
    assert lr[2].item() == pytest.approx(32 * math.log(env.flat_reward(valid_pair).item()), abs=1e-3)
    assert env.flat_reward(states)[:2].tolist() == [0.0, 0.0]
    assert envs.make("seh", invalid_log_reward=-10.0).log_reward(bad).item() == -10.0


def test_regression_molecule(env: SEHFragments) -> None:
    """Benzene root, pyridine (bonded via its atom 1) at benzene atom 0, the tricyclic block 100
    (via its atom 8) at benzene atom 3, a methyl on the pyridine's atom 0. Score checked
    against recursion's model on the SMILES (see the module docstring): 6.385064."""
    e = env.encode_action
    acts = torch.tensor([[0, e(0, 0, 10), e(0, 3, 100), e(1, 1, 8), env.stop_action]])
    x = env.trajectory_states(acts)[:, -1]
    assert env.smiles(x) == ["Cc1ccncc1-c1ccc(-c2ccc3[nH]c4nc(=O)[nH]c(=O)c-4nc3c2)cc1"]
    assert env.proxy_scores(x).item() == pytest.approx(6.385064, abs=2e-5)
    assert env.flat_reward(x).item() == pytest.approx(6.385064 / 8, abs=3e-6)
    assert env.log_reward(x).item() == pytest.approx(32 * math.log(6.385064 / 8), abs=1e-3)
    assert envs.make("seh", beta=4.0).log_reward(x).item() == pytest.approx(4 * math.log(6.385064 / 8), abs=1e-3)


def test_proxy_cache_per_smiles(env: SEHFragments) -> None:
    fresh = SEHFragments()
    calls = []
    proxy = fresh.proxy()
    original = proxy.predict_mols
    proxy.predict_mols = lambda mols, *a, **k: calls.append(len(mols)) or original(mols, *a, **k)
    _, x = _rollouts(fresh, 32, seed=7)
    first = fresh.log_reward(x)
    assert torch.equal(fresh.log_reward(torch.cat([x, x])), torch.cat([first, first]))
    assert calls == [len(set(fresh.smiles(x)))]  # one batched call, no repeats


def test_similarity_and_distance(env: SEHFragments) -> None:
    from rdkit import Chem, DataStructs

    _, x = _rollouts(env, 12, seed=8)
    sim = env.similarity(x, x[:5])
    assert sim.shape == (12, 5)
    np.testing.assert_allclose(np.diag(sim[:5]), 1.0)
    d = env.pairwise_distance(x)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_allclose(d, 1.0 - env.similarity(x, x))
    smi = env.smiles(x[:2])
    fps = [Chem.RDKFingerprint(Chem.MolFromSmiles(s)) for s in smi]  # QGFN's fingerprint
    assert sim[0, 1] == pytest.approx(DataStructs.TanimotoSimilarity(fps[0], fps[1]))
    assert env.similarity(env.initial(1), x[:2]).tolist() == [[0.0, 0.0]]
    morgan = envs.make("seh", fingerprint="morgan").similarity(x[:3], x[:3])
    np.testing.assert_allclose(np.diag(morgan), 1.0)


def test_tb_trains_on_seh() -> None:
    cfg = tb.Config(
        env="seh",
        env_kwargs={"max_frags": 4},
        iterations=3,
        eval_every=3,
        hidden=16,
        online_batch=4,
        replay_batch=4,
        eval_samples=16,
    )
    run = MemoryRun(seed=0)
    final = tb.train(cfg, run)
    assert math.isfinite(final["loss"]) and final["trajectories"] == 12
    assert math.isnan(final["exact_tv"]) and final["modes_found"] == 0
    out = tb.evaluate(cfg, run.model, seed=0)
    assert out["n_episodes"] == 16
    m = out["metrics"]
    assert 0 < m["mean_reward"] and 0 <= m["top100_diversity"] <= 1
