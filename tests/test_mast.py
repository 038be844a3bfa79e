"""MAST (methods/marl/value/mast.py) and its sparse baselines: the mechanisms of docs/papers/mast.md
on hand-checkable cases — ER allocation, drop/grow at constant density, masked gradients,
Soft Mellowmax limits, the dual buffer's composition, the hybrid TD(λ) switch, the topology
schedule (no optimiser step on a topology update), FLOPs and model-size accounting, exact
resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from envs.mpe import MPETask
from methods.common.masked import GroupedMaskedLinear, MaskedLinear
from methods.common.replay import DualEpisodeReplay
from methods.marl.value import mast, qmix
from methods.marl.value.qmix_tiny import tiny_hidden
from methods.marl.value.sparse_agent import SparseAgent


def _cfg(**kw) -> mast.Config:
    base = dict(
        env_kwargs={"task": "spread"},
        iterations=400,
        eval_every=200,
        checkpoint_every=200,
        eval_episodes=1,
        batch_size=4,
        buffer_size=16,
        epsilon_anneal_steps=200,
        target_update_interval=5,
        hidden_dim=16,
        mixing_embed_dim=8,
        hypernet_embed=16,
        topology_interval=3,
    )
    base.update(kw)
    return mast.Config(**base)


def _learner(cfg: mast.Config) -> mast.MASTLearner:
    torch.manual_seed(0)
    return mast.MASTLearner(cfg, MPETask(**cfg.env_kwargs), mast.make_agent_net, torch.device("cpu"))


def _batch(learner: mast.MASTLearner, n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    env = MPETask(**learner.cfg.env_kwargs)
    buf = learner.make_buffer()
    gen = torch.Generator().manual_seed(seed)
    for k in range(n):
        buf.add(qmix.run_episode(learner, env, seed + k, 1.0, gen)[0])
    return buf.sample(n, gen)


# ------------------------------------------------------------------------------ layers
def test_grouped_masked_linear_is_one_linear_per_group():
    torch.manual_seed(0)
    layer = GroupedMaskedLinear(3, 5, 4)
    layer.masks.bernoulli_(0.5)
    x = torch.randn(7, 3, 5)
    w = (layer.weight * layer.masks[0]).view(3, 4, 5)
    b = layer.bias.view(3, 4)
    want = torch.stack([F.linear(x[:, g], w[g], b[g]) for g in range(3)], 1)
    assert torch.allclose(layer(x), want, atol=1e-6)
    assert layer.group_nonzeros().tolist() == layer.masks[0].view(3, -1).sum(1).tolist()
    bound = 1 / math.sqrt(5)  # nn.Linear's init, each group
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound


# ------------------------------------------------------------------------------ init and ER
def test_er_allocation_hits_the_global_density_and_targets_share_the_masks():
    for density in (0.05, 0.1, 0.25):
        learner = _learner(_cfg(density=density, hidden_dim=64, mixing_embed_dim=32, hypernet_embed=64))
        nnz = sum(int(lay.masks.sum()) for lay in learner.sparse_layers)
        size = sum(lay.weight.numel() for lay in learner.sparse_layers)
        assert abs(nnz / size - density) <= 0.005
        # ER: a layer's density ∝ (n_in + n_out)/(n_in·n_out) of one agent's block
        fc2, fc4 = learner.agent.fc2, learner.agent.fc4  # 64x64 vs 64x5
        d2, d4 = fc2.masks.mean().item(), fc4.masks.mean().item()
        if d4 < 1:
            assert d4 / d2 == pytest.approx(((64 + 5) / (64 * 5)) / ((64 + 64) / (64 * 64)), rel=0.05)
        # absent weights are zero; the mask keeps the largest |w| of the init; targets share it
        for lay in learner.sparse_layers:
            assert torch.all(lay.weight[lay.masks[0] == 0] == 0)
        targets = mast.masked_layers(learner.target_agent) + mast.masked_layers(learner.target_mixer)
        for a, b in zip(learner.sparse_layers, targets):
            assert torch.equal(a.masks, b.masks)
    assert len(learner.sparse_layers) == 6 + 7  # agent: fc1, GRU ih/hh, fc2..4; mixer's 7 linears


def test_magnitude_init_keeps_the_largest_weights_of_the_random_init():
    torch.manual_seed(0)  # _learner seeds 0 and builds the agent first
    dense = SparseAgent(18, 3, 5, 16)  # spread: obs 18, 3 agents, 5 actions
    learner = _learner(_cfg(density=0.2))
    for lay, ref in zip(learner.agent.layers(), dense.layers()):
        kept = lay.masks[0].bool()
        assert torch.equal(lay.weight[kept], ref.weight.detach()[kept])
        if (~kept).any():
            assert ref.weight.detach().abs()[kept].min() >= ref.weight.detach().abs()[~kept].max()


def test_sparse_mixer_option():
    on = _learner(_cfg(sparse_mixer=True))
    off = _learner(_cfg(sparse_mixer=False))
    assert any(isinstance(m, MaskedLinear) for m in on.mixer.modules())
    assert not any(isinstance(m, MaskedLinear) for m in off.mixer.modules())
    assert len(off.sparse_layers) == 6


# ------------------------------------------------------------------------------ topology
def test_topology_update_keeps_nnz_grows_zeros_and_skips_the_optimiser_step():
    cfg = _cfg(topology_interval=3, drop_fraction=0.5)
    learner = _learner(cfg)
    b = _batch(learner)
    nnz0 = [int(lay.masks.sum()) for lay in learner.sparse_layers]
    learner.train(b)
    learner.train(b)  # updates 0 and 1: ordinary steps
    before = {k: v.clone() for k, v in learner.agent.state_dict().items()}
    masks_before = [lay.masks.clone() for lay in learner.sparse_layers]
    assert learner.topology_step() and learner.tracks_dense_grad()
    out = learner.train(b)  # update 2: the topology update
    assert out["topology_moved"] > 0
    for lay, m0, n0 in zip(learner.sparse_layers, masks_before, nnz0):
        assert int(lay.masks.sum()) == n0  # constant density per layer
        grown = (lay.masks[0] > 0) & (m0[0] == 0)
        assert torch.all(lay.weight[grown] == 0)  # grown weights start at 0
        pruned = (lay.masks[0] == 0) & (m0[0] > 0)
        assert torch.all(lay.weight[pruned] == 0)
        assert int(grown.sum()) == int(pruned.sum())
    # no optimiser step: every weight still present is unchanged
    for name, lay in (("fc2", learner.agent.fc2), ("rnn_hh", learner.agent.rnn_hh)):
        keep = lay.masks[0].bool()
        assert torch.equal(lay.weight[keep], before[f"{name}.weight"][keep])
        assert torch.equal(lay.bias, before[f"{name}.bias"])
    # the optimiser state at changed positions is reset
    lay = learner.agent.fc2
    changed = lay.masks[0] != masks_before[3][0]
    st = learner.opt.state[lay.weight]
    assert torch.all(st["exp_avg"][changed] == 0) and torch.all(st["exp_avg_sq"][changed] == 0)


def test_masked_gradients_and_weights_stay_zero_after_optimiser_steps():
    learner = _learner(_cfg(topology="static"))
    b = _batch(learner)
    for _ in range(3):
        learner.train(b)
    for lay in learner.sparse_layers:
        absent = lay.masks[0] == 0
        assert torch.all(lay.weight[absent] == 0)
        assert lay.weight.grad is None or torch.all(lay.weight.grad[absent] == 0)


def test_set_grows_at_random_and_static_never_moves():
    for topo, moves in (("set", True), ("static", False)):
        learner = _learner(_cfg(topology=topo))
        b = _batch(learner)
        masks0 = [lay.masks.clone() for lay in learner.sparse_layers]
        for _ in range(3):
            learner.train(b)
        changed = any(not torch.equal(m, lay.masks) for m, lay in zip(masks0, learner.sparse_layers))
        assert changed == moves
        assert not learner.tracks_dense_grad()  # only RigL pays for dense gradients


def test_topology_schedule_interval_accumulation_and_end():
    learner = _learner(_cfg(topology_interval=4, grad_accumulation=2, iterations=1000, topology_end=0.5))
    steps, tracks = [], []
    for u in range(12):
        learner.n_updates, learner.t_env = u, 0
        steps.append(learner.topology_step())
        tracks.append(learner.tracks_dense_grad())
    assert [u for u, s in enumerate(steps) if s] == [3, 7, 11]
    assert [u for u, t in enumerate(tracks) if t] == [2, 3, 6, 7, 10, 11]
    learner.n_updates, learner.t_env = 3, 500  # at T_end = 0.5 · 1000: off
    assert not learner.topology_step() and not learner.tracks_dense_grad()
    with pytest.raises(ValueError, match="grad_accumulation"):
        _cfg(topology_interval=2, grad_accumulation=3)


def test_drop_fraction_is_cosine_annealed_over_t_end():
    from methods.common.prune_grow import cosine_fraction

    assert cosine_fraction(0, 1000, 0.5) == 0.5
    assert cosine_fraction(500, 1000, 0.5) == pytest.approx(0.25)
    assert cosine_fraction(1000, 1000, 0.5) == 0.0


# ------------------------------------------------------------------------------ targets
def test_soft_mellowmax_hand_value_and_limits():
    q = torch.tensor([[1.0, 2.0, 4.0]])
    avail = torch.tensor([[True, True, False]])
    # ω = 1, α = 1 over {1, 2}: log(Σ e^{2q}) − log(Σ e^{q})
    want = math.log(math.exp(2) + math.exp(4)) - math.log(math.exp(1) + math.exp(2))
    assert mast.soft_mellowmax(q, avail, 1.0, 1.0).item() == pytest.approx(want, rel=1e-6)
    assert mast.soft_mellowmax(q, avail, 1e4, 1.0).item() == pytest.approx(2.0, abs=1e-3)  # → max (available)
    q64 = q.double()
    assert mast.soft_mellowmax(q64, avail, 1e-4, 0.0).item() == pytest.approx(1.5, abs=1e-3)  # → mean, α = 0
    none = torch.zeros_like(avail)
    assert mast.soft_mellowmax(q, none, 5.0, 1.0).item() == 0.0  # padding
    # the learner bootstraps from it when switched on, from double Q otherwise
    on, off = _learner(_cfg()), _learner(_cfg(soft_mellowmax=False))
    qn, tn, av = torch.randn(2, 3, 3, 5), torch.randn(2, 3, 3, 5), torch.ones(2, 3, 3, 5, dtype=torch.bool)
    assert torch.allclose(on.bootstrap_values(qn, tn, av), mast.soft_mellowmax(tn, av, 10.0, 1.0))
    assert torch.equal(off.bootstrap_values(qn, tn, av), qmix.next_agent_values(qn, tn, av))


def test_hybrid_td_switch():
    learner = _learner(_cfg(iterations=1000, td_switch=0.3, td_lambda_before=0.0, td_lambda_after=0.8))
    learner.t_env = 299
    assert learner.current_td_lambda() == 0.0
    learner.t_env = 300
    assert learner.current_td_lambda() == 0.8
    plain = _learner(_cfg(hybrid_td=False, td_lambda=0.4))
    plain.t_env = 0
    assert plain.current_td_lambda() == 0.4


# ------------------------------------------------------------------------------ dual buffer
def test_dual_buffer_batch_is_half_recent_half_off_policy():
    buf = DualEpisodeReplay(20, 4, 0.5, 2, 1, 1, 1, 2)
    for k in range(12):
        buf.add(
            {
                "obs": torch.full((3, 1, 1), float(k)),
                "state": torch.zeros(3, 1),
                "avail": torch.ones(3, 1, 2),
                "actions": torch.zeros(2, 1),
                "reward": torch.zeros(2),
                "terminated": torch.zeros(2),
                "filled": torch.ones(2),
            }
        )
    assert len(buf) == 12 and len(buf.on) == 4
    gen = torch.Generator().manual_seed(0)
    ids = buf.sample(8, gen)["obs"][:, 0, 0, 0].tolist()
    assert sorted(ids[:4]) == [8.0, 9.0, 10.0, 11.0]  # the 4 most recent episodes
    assert len(ids) == 8 and all(0 <= i <= 11 for i in ids[4:])
    state = buf.state_dict()
    other = DualEpisodeReplay(20, 4, 0.5, 2, 1, 1, 1, 2)
    other.load_state_dict(state)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(buf.sample(8, g1)["obs"], other.sample(8, g2)["obs"])
    assert isinstance(_learner(_cfg()).make_buffer(), DualEpisodeReplay)
    assert not isinstance(_learner(_cfg(dual_buffer=False)).make_buffer(), DualEpisodeReplay)


# ------------------------------------------------------------------------------ accounting
def test_flops_and_params_per_agent_by_hand():
    agent = SparseAgent(6, 2, 3, hidden_dim=4)
    with torch.no_grad():
        for lay in agent.layers():
            lay.masks.zero_()
        agent.fc1.masks[0].view(2, 4, 6)[0, :, :3] = 1  # agent 0: 12 weights in fc1, agent 1: none
        agent.fc4.masks[0].view(2, 3, 4)[1] = 1  # agent 1: 12 weights in fc4
    bias = 4 + 12 + 12 + 4 + 4 + 3  # dense biases per agent
    assert agent.nonzero_params_per_agent() == pytest.approx((12 + 12) / 2 + bias)
    assert agent.inference_flops_per_agent() == pytest.approx(2 * (12 + 12) / 2 + bias)
    d = agent.diagnostics()
    assert d["agent_density"] == pytest.approx(12 / (24 + 48 + 48 + 16 + 16 + 12))
    assert d["agent_density_spread"] == 0.0


def test_training_flops_count_the_dense_backward_of_rigl():
    learner = _learner(_cfg(topology_interval=2, sparse_mixer=False))
    agent_layers = learner.agent.layers()
    f_s = sum(2 * int(lay.masks.sum()) + lay.out_features for lay in agent_layers)
    f_d = sum(2 * lay.weight.numel() + lay.out_features for lay in agent_layers)
    mix = sum(2 * m.weight.numel() + m.out_features for m in learner.mixer.modules() if isinstance(m, torch.nn.Linear))
    learner.count_flops(dense_backward=False)
    learner.count_flops(dense_backward=True)
    assert learner.flops["sparse"] == pytest.approx(4 * (f_s + mix) + 4 * (f_s + mix) + (f_d - f_s))
    assert learner.flops["dense"] == pytest.approx(8 * (f_d + mix))


def test_tiny_hidden_matches_the_parameter_budget():
    # spread: in 18, A 5, width 64 → 34,821 parameters; 10 % → 3,482: width 18 (3,173), not 19 (3,501)
    assert tiny_hidden(18, 5, 64, 0.1) == 18
    assert tiny_hidden(18, 5, 64, 1.0) == 64


# ------------------------------------------------------------------------------ end to end
def test_mast_trains_deterministically_resumes_exactly_and_reports_its_costs():
    import methods
    from methods.common.runapi import MemoryRun
    from resume import preempted_then_resumed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mod = methods.load("mast")
        cfg = _cfg(
            iterations=300,
            eval_every=100,
            checkpoint_every=100,
            topology_interval=2,
            onpolicy_buffer_size=2,
            td_switch=0.5,
        )
        a, b = MemoryRun(seed=1), MemoryRun(seed=1)
        mod.train(cfg, a)
        mod.train(cfg, b)
        strip = lambda rows: repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])  # noqa: E731
        assert strip(a.rows) == strip(b.rows) and [r["step"] for r in a.rows] == [100, 200, 300]
        assert all(r["density"] == pytest.approx(0.1, abs=0.005) for r in a.rows)
        part, _ = preempted_then_resumed(mod.train, cfg, seed=1, checkpoints=1)
        assert strip(part.rows) == strip(a.rows)
        assert all(torch.equal(part.model["agent"][k], a.model["agent"][k]) for k in a.model["agent"])
        ev = mod.evaluate(cfg, a.model, 1)["metrics"]
        assert 0 < ev["flops_ratio"] < 0.2 and 0 < ev["size_ratio"] < 0.2
        assert ev["flops_ratio"] < ev["train_flops_ratio"] < 0.25  # + RigL's dense backward
        assert ev["test_return_mean"] == pytest.approx(a.rows[-1]["test_return"])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["qmix_ss", "qmix_set", "qmix_rigl", "qmix_rlx2", "qmix_tiny"])
def test_baselines_are_mast_with_parts_switched_off(method):
    import methods

    mod = methods.load(method)
    cfg = mod.Config()
    if method == "qmix_tiny":
        assert cfg.agent_net == "nops" and not cfg.obs_agent_id and cfg.param_fraction == mast.Config().density
        return
    assert isinstance(cfg, mast.Config) and cfg.density == mast.Config().density
    assert not cfg.soft_mellowmax and not cfg.dual_buffer
    assert cfg.hybrid_td == (method == "qmix_rlx2")
    assert cfg.topology == {"qmix_ss": "static", "qmix_set": "set"}.get(method, "rigl")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="density"):
        _cfg(density=0.0)
    with pytest.raises(ValueError, match="topology"):
        _cfg(topology="magic")
    with pytest.raises(ValueError, match="obs_agent_id"):
        _cfg(sharing="fups_id")
    shared = _learner(_cfg(sharing="fups_id", obs_agent_id=True))
    assert shared.agent.groups == 1


def test_mast_learns_spread_on_its_calibrated_seed():
    """A learning regression test at 10 % density. Calibration (12.5k steps, this config, 20
    test episodes, Dec 2026; mean of the last two greedy test returns vs the untrained greedy
    policy on the same test seeds): seed 0 -104.3 vs -187.4, seed 1 -88.4 vs -194.7, seed 2
    -92.8 vs -101.3, seed 3 -80.1 vs -75.8 (flat: at width 32 and 10 % density some seeds keep a
    constant greedy policy for this short budget). Seeds 0 and 1 learn clearly; the test runs
    seed 1 (deterministic on CPU) with the QMIX test's margin over the untrained policy."""
    import numpy as np

    from methods.common.runapi import MemoryRun

    cfg = mast.Config(
        iterations=12_500,
        eval_every=2500,
        checkpoint_every=12_500,
        eval_episodes=20,
        batch_size=16,
        buffer_size=500,
        epsilon_anneal_steps=3000,
        target_update_interval=50,
        hidden_dim=32,
        lr=1e-3,
        topology_interval=50,
    )
    torch.manual_seed(1)
    env = MPETask("spread")
    untrained = np.mean(
        qmix.greedy_returns(
            mast.MASTLearner(cfg, env, mast.make_agent_net, torch.device("cpu")), env, 1, cfg.eval_episodes
        )
    )
    run = MemoryRun(seed=1)
    mast.train(cfg, run)
    learned = np.mean([r["test_return"] for r in run.rows if "test_return" in r][-2:])
    assert learned > -100.0 and learned > untrained + 50, (learned, untrained)
