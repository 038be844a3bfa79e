"""Kaleidoscope's agent network (methods/marl/kaleidoscope_agent.py); docs/papers/kaleidoscope.md."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from methods.common.masked import MaskedLinear
from methods.marl.kaleidoscope_agent import (
    AdaptiveDiversityCoef,
    KaleidoscopeAgent,
    KaleidoscopeSettings,
    diversity_loss,
    gru_cell_flops,
    make_agent,
)

IN, ACTIONS, AGENTS, H = 10, 5, 3, 64
PRUNE, KEEP = 20.0, -20.0  # thresholds with sigmoid ≈ 1 (prunes every |W| < 1) and ≈ 0 (keeps all)


def agent(seed: int = 0, **settings) -> KaleidoscopeAgent:
    torch.manual_seed(seed)
    return make_agent(KaleidoscopeSettings(**settings), IN, ACTIONS, AGENTS, hidden_dim=H)


def inputs(batch: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, AGENTS, IN, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- settings
def test_settings_defaults_and_validation():
    s = KaleidoscopeSettings()
    assert (s.div_coef, s.reset_interval, s.reset_ratio, s.deque_len) == (0.5, 200_000, 0.1, 100)
    assert s.threshold_init == (5.0, 5.0) and s.layer_weights == (1.0, 2.0, 4.0, 8.0)
    assert KaleidoscopeSettings(layer_weights=[1, 1, 1, 1]).layer_weights == (1.0, 1.0, 1.0, 1.0)
    for bad in (
        {"reset_ratio": 1.5},
        {"div_coef": -1.0},
        {"deque_len": 0},
        {"reset_interval": -1},
        {"layer_weights": (1, 2, 4)},
        {"threshold_init": (5,)},
        {"threshold_init": (-1, 5)},
        {"div_coef": math.nan},
    ):
        with pytest.raises(ValueError):
            KaleidoscopeSettings(**bad)


# ---------------------------------------------------------------------------------- masks
def test_init_is_almost_dense():
    a = agent()
    for layer in a.masked_layers:
        s = torch.sigmoid(layer.threshold)
        assert s.shape == (AGENTS, *layer.weight.shape)
        assert s.max() < 7e-3
        diff = (layer.effective_weight() - layer.weight).abs()
        assert diff.max() <= s.max() + 1e-7  # the soft threshold moves W by at most sigmoid(S)
        assert (diff <= s + 1e-7).all()


def test_forward_shapes_and_agent_n_uses_mask_n():
    a = agent()
    x, h0 = inputs(), a.init_hidden(4)
    assert h0.shape == (4, AGENTS, H) and not h0.any()
    q, h = a(x, h0)
    assert q.shape == (4, AGENTS, ACTIONS) and h.shape == (4, AGENTS, H)
    # an explicit mask per row (SMACv2-style ownership) through MaskedLinear's gather path agrees
    q2, h2 = a(x, h0, mask_ids=torch.arange(AGENTS))
    torch.testing.assert_close(q2, q)
    torch.testing.assert_close(h2, h)
    with torch.no_grad():
        a.fc1.threshold[1, :8] = PRUNE  # agent 1's mask only: changes its hidden state too
        a.fc3.threshold[1, :, :8] = PRUNE
    q3, h3 = a(x, h0)
    others = [0, 2]
    assert torch.equal(q3[:, others], q[:, others]) and torch.equal(h3[:, others], h[:, others])
    assert not torch.allclose(q3[:, 1], q[:, 1]) and not torch.allclose(h3[:, 1], h[:, 1])
    # all rows using mask 0 give agent 0's mapping for every agent's input
    q4, _ = a(x, h0, mask_ids=torch.zeros(4, AGENTS, dtype=torch.long))
    torch.testing.assert_close(q4[:, 0], q[:, 0])


# ---------------------------------------------------------------------------------- diversity
def test_diversity_loss_hand_computed():
    layer = MaskedLinear(2, 2, n_masks=2, soft_threshold=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.2], [0.1, 0.3]]))
        layer.threshold.fill_(KEEP)
        layer.threshold[0, 1, 0] = PRUNE  # mask 0 drops w[1,0] = 0.1
        layer.threshold[1, 0, 1] = PRUNE  # mask 1 drops w[0,1] = -0.2
    # weighted masks: m0 = [[.5,.2],[0,.3]], m1 = [[.5,0],[.1,.3]]; ‖m0 − m1‖1 = 0.3, twice
    # (ordered pairs), layer weight 3, K(K−1) = 2, P = 4
    expected = -3 * 2 * 0.3 / (2 * 4)
    assert diversity_loss([layer], [3.0]).item() == pytest.approx(expected, rel=1e-5)


def test_diversity_loss_zero_for_equal_masks_and_falls_as_they_separate():
    a = agent()
    with torch.no_grad():
        for layer in a.masked_layers:
            layer.threshold.copy_(layer.threshold[0:1].expand_as(layer.threshold))
    assert a.diversity_loss().item() == 0.0
    values = []
    for rows in (0, 4, 8, 16, 32):
        with torch.no_grad():  # mask 0 prunes rows [0, rows) of fc2, mask 1 rows [32, 32 + rows)
            a.fc2.threshold[0, :rows] = PRUNE
            a.fc2.threshold[1, 32 : 32 + rows] = PRUNE
        values.append(a.diversity_loss().item())
    assert values[0] == 0.0
    assert all(later < earlier for earlier, later in zip(values, values[1:]))


def test_gradients_reach_thresholds_through_both_losses_and_div_spares_w():
    a = agent()
    q, _ = a(inputs(), a.init_hidden(4))
    q.pow(2).mean().backward()  # a TD-like loss on q
    for layer in a.masked_layers:
        assert layer.threshold.grad is not None and layer.threshold.grad.abs().sum() > 0
        assert layer.weight.grad.abs().sum() > 0
    a.zero_grad(set_to_none=True)
    with torch.no_grad():  # the masks must differ somewhere for the L1 distance to have a slope
        for layer in a.masked_layers:
            layer.threshold[0, :2] = PRUNE
    aux = a.auxiliary_loss(torch.tensor(1.0))
    aux.backward()
    for layer in a.masked_layers:
        assert layer.threshold.grad is not None and layer.threshold.grad.abs().sum() > 0
        assert layer.weight.grad is None  # W is detached in the diversity loss
    assert a.rnn.weight_ih.grad is None


def test_auxiliary_loss_records_both_losses_and_scales_by_beta_t():
    a = agent(div_coef=0.5)
    with torch.no_grad():
        a.fc4.threshold[0] = PRUNE
    div = a.diversity_loss().item()
    aux = a.auxiliary_loss(torch.tensor(2.0, requires_grad=True))
    assert list(a.coef.base) == [2.0] and list(a.coef.div) == [pytest.approx(div)]
    beta_t = abs(0.5 * 2.0 / div)
    assert a.diagnostics()["div_coef"] == pytest.approx(beta_t)
    assert aux.item() == pytest.approx(beta_t * div)  # = -0.5 * 2: β is the ratio to the TD loss
    assert aux.item() == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------- coefficient
def test_adaptive_coefficient_values():
    c = AdaptiveDiversityCoef(beta=0.5, maxlen=3)
    assert c.value() == 0.5  # nothing recorded
    c.record(1.0, 0.0)
    assert c.value() == 0.5  # mean(div) == 0 → β
    c.record(2.0, -0.2)
    assert c.value() == pytest.approx(abs(0.5 * 1.5 / -0.1))
    assert c.update(3.0, -0.4) == pytest.approx(0.5 * 2.0 / 0.2)
    assert c.update(-7.0, -0.6) == pytest.approx(abs(0.5 * (2 + 3 - 7) / 3 / (-1.2 / 3)))  # oldest dropped
    assert len(c.base) == len(c.div) == 3


def test_coefficient_and_reset_step_survive_a_checkpoint():
    a = agent(deque_len=5)
    for i in range(7):
        a.coef.record(1.0 + i / 3, -0.01 * (i + 1))
    a.last_reset_t = 123_456
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = agent(seed=9, deque_len=5)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert list(b.coef.base) == list(a.coef.base) and list(b.coef.div) == list(a.coef.div)
    assert b.coef.value() == a.coef.value() and b.last_reset_t == 123_456
    b.coef.record(5.0, -1.0)  # no aliasing between the copies
    assert len(a.coef.base) == 5 and list(a.coef.base) != list(b.coef.base)
    # plain-dict round trip of the coefficient alone
    c = AdaptiveDiversityCoef(0.5, 5)
    c.load_state_dict(a.coef.state_dict())
    assert c.value() == a.coef.value()
    # the learner's target network: deepcopy + load_state_dict
    target = copy.deepcopy(a)
    target.load_state_dict(a.state_dict())
    assert target.last_reset_t == a.last_reset_t


# ---------------------------------------------------------------------------------- resets
def test_reset_changes_only_positions_all_masks_pruned():
    a = agent()
    with torch.no_grad():
        for layer in a.masked_layers:
            layer.threshold[:, :16] = PRUNE  # rows 0..15: every mask prunes them
            layer.threshold[0, 16:32] = PRUNE  # rows 16..31: only mask 0 does
    before = copy.deepcopy(a.state_dict())
    all_pruned = {name: ~getattr(a, name).active_mask().any(dim=0) for name in ("fc2", "fc3", "fc4")}
    n = a.reset_(torch.Generator().manual_seed(0), ratio=1.0)
    after = a.state_dict()
    assert torch.equal(after["fc1.weight"], before["fc1.weight"])
    assert torch.equal(after["fc1.threshold"], before["fc1.threshold"])
    for name, where in all_pruned.items():
        w0, w1 = before[f"{name}.weight"], after[f"{name}.weight"]
        s0, s1 = before[f"{name}.threshold"], after[f"{name}.threshold"]
        assert torch.equal(w1[~where], w0[~where]) and torch.equal(s1[:, ~where], s0[:, ~where])
        assert (w1[where] != w0[where]).all()  # ρ = 1: every all-pruned position is re-drawn
        assert (s1[:, where] != s0[:, where]).all()  # for every mask
        assert ((s1[:, where] >= -10) & (s1[:, where] <= -5)).all()  # the init range
        bound = 1 / math.sqrt(w0.shape[1])  # default Linear init: U(±1/sqrt(fan_in))
        assert (w1[where].abs() <= bound).all()
        assert torch.equal(after[f"{name}.bias"], before[f"{name}.bias"])
    assert n == sum(int(w.sum()) for w in all_pruned.values())
    # ρ = 0.1: a subset of the all-pruned positions, about a tenth of them
    b = agent()
    with torch.no_grad():
        for layer in b.reset_layers:
            layer.threshold[:, :32] = PRUNE
    w0 = b.fc2.weight.clone()
    b.reset_(torch.Generator().manual_seed(1))
    changed = b.fc2.weight != w0
    assert not changed[32:].any()
    assert 0.05 < changed[:32].float().mean().item() < 0.15


def test_reset_is_deterministic_given_the_generator():
    a, b = agent(), agent()
    for net in (a, b):
        with torch.no_grad():
            for layer in net.reset_layers:
                layer.threshold[:, :8] = PRUNE
        net.reset_(torch.Generator().manual_seed(3))
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        if k != "_extra_state":
            assert torch.equal(v, w), k


def test_reset_schedule_skips_first_and_last_interval_and_resumes():
    a = agent(reset_interval=200)
    g = torch.Generator().manual_seed(0)
    t_max, fired = 1000, []
    for t in range(25, t_max + 1, 25):
        if a.on_env_steps(t, t_max, g):
            fired.append(t)
    # strictly more than R since the last reset and strictly more than R left
    assert fired == [225, 450, 675]
    assert a.last_reset_t == 675
    # resumed from a checkpoint mid-run, the schedule continues identically
    b = agent(reset_interval=200)
    b.load_state_dict(copy.deepcopy(agent_after(a_steps=300)))
    fired_b = [t for t in range(325, t_max + 1, 25) if b.on_env_steps(t, t_max, g)]
    assert fired_b == [450, 675]
    off = agent(reset_interval=0)
    assert not any(off.on_env_steps(t, 10**7, g) for t in (10**6, 2 * 10**6))


def agent_after(a_steps: int) -> dict:
    a = agent(reset_interval=200)
    g = torch.Generator().manual_seed(0)
    for t in range(25, a_steps + 1, 25):
        a.on_env_steps(t, 1000, g)
    assert a.last_reset_t == 225
    return a.state_dict()


def test_reset_thresholds_draws_from_the_generators_device():
    layer = MaskedLinear(3, 2, n_masks=2, soft_threshold=True)
    layer.reset_thresholds_(generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    expected = torch.stack([-(torch.rand(2, 3, generator=g) * 5 + 5) for _ in range(2)])
    assert torch.equal(layer.threshold.detach(), expected)


# ---------------------------------------------------------------------------------- counts
def test_flops_and_params_dense_then_half_of_fc2_pruned():
    a = agent()
    with torch.no_grad():
        for layer in a.masked_layers:
            layer.threshold.fill_(KEEP)
    gru = 2 * (3 * H * H + 3 * H * H) + 6 * H
    assert gru_cell_flops(a.rnn) == gru
    dense = gru + sum(2 * i * o + o for i, o in ((IN, H), (H, H), (H, H), (H, ACTIONS)))
    assert a.inference_flops_per_agent() == a.dense_inference_flops_per_agent() == dense
    params = (6 * H * H + 6 * H) + sum(i * o + o for i, o in ((IN, H), (H, H), (H, H), (H, ACTIONS)))
    assert a.nonzero_params_per_agent() == a.dense_params_per_agent() == params
    assert a.diagnostics()["flops_ratio"] == 1.0 and a.diagnostics()["sparsity"] == 0.0
    with torch.no_grad():
        a.fc2.threshold[:, :32] = PRUNE  # half of fc2 for every agent: 32*64 connections
    assert a.inference_flops_per_agent() == dense - 2 * 32 * H
    assert a.nonzero_params_per_agent() == params - 32 * H
    assert a.dense_inference_flops_per_agent() == dense
    assert a.sparsities()["sparsity_fc2"] == 0.5
    with torch.no_grad():
        a.fc2.threshold.fill_(KEEP)
        a.fc2.threshold[0, :32] = PRUNE  # half of fc2 for agent 0 only: the mean drops by a third
    assert a.inference_flops_per_agent() == pytest.approx(dense - 2 * 32 * H / AGENTS)
    assert a.inference_flops_per_agent(mask_ids=[0]) == dense - 2 * 32 * H
    d = a.diagnostics()
    assert d["sparsity_fc2"] == pytest.approx(0.5 / AGENTS)
    masked_total = IN * H + 2 * H * H + H * ACTIONS
    assert d["sparsity"] == pytest.approx(32 * H / AGENTS / masked_total)


# ---------------------------------------------------------------------------------- resume
def _train(net: KaleidoscopeAgent, opt: torch.optim.Optimizer, gen: torch.Generator, steps: range) -> None:
    """A learner-shaped loop: TD-like loss + β_t·L_div, Adam, then the env-step hook."""
    x = inputs(batch=2, seed=7)
    for step in steps:
        q, _ = net(x, net.init_hidden(2))
        td = (q - 1.0).pow(2).mean()
        opt.zero_grad()
        (td + net.auxiliary_loss(td)).backward()
        opt.step()
        net.on_env_steps(100 * (step + 1), 1000, gen)


def test_resume_from_a_checkpoint_is_bit_identical():
    def fresh() -> tuple[KaleidoscopeAgent, torch.optim.Optimizer, torch.Generator]:
        net = agent(reset_interval=250)
        with torch.no_grad():  # some all-pruned positions so that resets change something
            for layer in net.masked_layers:
                layer.threshold[:, :8] = PRUNE
                layer.threshold[0, 8:12] = PRUNE
        return net, torch.optim.Adam(net.parameters(), lr=1e-2), torch.Generator().manual_seed(0)

    full, opt, gen = fresh()
    _train(full, opt, gen, range(6))
    part, opt_p, gen_p = fresh()
    _train(part, opt_p, gen_p, range(3))
    buf = io.BytesIO()
    torch.save({"net": part.state_dict(), "opt": opt_p.state_dict(), "gen": gen_p.get_state()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed, opt_r, gen_r = fresh()
    resumed.load_state_dict(ckpt["net"])
    opt_r.load_state_dict(ckpt["opt"])
    gen_r.set_state(ckpt["gen"])
    _train(resumed, opt_r, gen_r, range(3, 6))
    assert full.last_reset_t == resumed.last_reset_t == 600  # resets at 300 (the checkpoint's step) and 600
    assert list(full.coef.div) == list(resumed.coef.div)
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items()):
        if k != "_extra_state":
            assert torch.equal(v, w), k


# ------------------------------------------------------------- Kaleidoscope on the QMIX learner
def _tiny_kaleidoscope(**kw):
    from methods.marl.value import kaleidoscope

    base = dict(
        iterations=300,
        eval_every=100,
        checkpoint_every=100,
        eval_episodes=2,
        batch_size=4,
        buffer_size=8,
        epsilon_anneal_steps=200,
        target_update_interval=3,
        hidden_dim=16,
        mixing_embed_dim=8,
        hypernet_embed=16,
        reset_interval=100,
        reset_ratio=0.5,
    )
    base.update(kw)
    return kaleidoscope.Config(**base)


def test_kaleidoscope_config_is_qmix_plus_its_settings():
    from methods.marl.value import kaleidoscope, qmix

    cfg = kaleidoscope.Config()
    assert (cfg.div_coef, cfg.reset_interval, cfg.reset_ratio, cfg.threshold_init) == (0.5, 200_000, 0.1, (5.0, 5.0))
    assert cfg.iterations == qmix.Config().iterations and cfg.mixer == "qmix" and cfg.obs_agent_id
    assert kaleidoscope.Config(layer_weights=[1, 2, 4, 8]).settings().layer_weights == (1.0, 2.0, 4.0, 8.0)
    with pytest.raises(ValueError, match="obs_agent_id"):
        kaleidoscope.Config(obs_agent_id=False)
    with pytest.raises(ValueError, match="agent_net"):
        kaleidoscope.Config(agent_net="fups_id")
    with pytest.raises(ValueError, match="reset_ratio"):
        kaleidoscope.Config(reset_ratio=1.5)


def test_kaleidoscope_trains_through_qmix_deterministically_and_resumes_exactly():
    """The learner calls the network's hooks: β_t and the sparsities are logged, the resets run
    on the env-step counter, and a preempted run resumes bit-identically."""
    import methods
    from methods.common.runapi import MemoryRun
    from resume import preempted_then_resumed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mod = methods.load("kaleidoscope")
        cfg = _tiny_kaleidoscope()
        a, b = MemoryRun(seed=2), MemoryRun(seed=2)
        mod.train(cfg, a)
        mod.train(cfg, b)
        strip = lambda rows: repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])  # noqa: E731
        assert strip(a.rows) == strip(b.rows) and [r["step"] for r in a.rows] == [100, 200, 300]
        assert all("div_coef" in r and "sparsity" in r for r in a.rows)
        assert a.rows[-1]["div_coef"] != cfg.div_coef  # adaptive once losses are recorded
        part, _ = preempted_then_resumed(mod.train, cfg, seed=2, checkpoints=1)
        assert strip(part.rows) == strip(a.rows)
        assert all(
            torch.equal(part.model["agent"][k], a.model["agent"][k])
            for k in a.model["agent"]
            if isinstance(a.model["agent"][k], torch.Tensor)
        )
        ev = mod.evaluate(cfg, a.model, 2)["metrics"]
        assert 0 < ev["flops_ratio"] <= 1.0 and ev["test_return_mean"] == pytest.approx(a.rows[-1]["test_return"])
    finally:
        torch.set_num_threads(threads)


def test_flops_claim_holds_on_an_untrained_agent_and_the_guard_flags_it():
    """Issue 23's calibration: sigma(S) > 0 prunes from initialisation, so an untrained
    Kaleidoscope agent already needs fewer FLOPs than dense FuPS — the old 'ratio below 1'
    claims held by construction. The step-0 evaluation shows it, and the guard flags the claim."""
    from methods.common.runapi import MemoryRun
    from methods.marl.value import kaleidoscope
    from pipeline import claims

    cfg = _tiny_kaleidoscope(iterations=100, eval_every=100, checkpoint_every=100)
    ratios = {"final": [], "untrained": []}
    for seed in range(6):
        run = MemoryRun(seed=seed)
        kaleidoscope.train(cfg, run)
        ratios["final"].append(kaleidoscope.evaluate(cfg, run.model, seed)["metrics"]["flops_ratio"])
        ratios["untrained"].append(kaleidoscope.evaluate(cfg, run.untrained, seed)["metrics"]["flops_ratio"])
    assert max(ratios["untrained"]) < 1.0
    paper = {
        "paper": "k",
        "metrics": {"flops_ratio": {"label": "FLOPs", "higher_is_better": False}},
        "claims": [
            {
                "id": "fewer-flops",
                "statement": "s",
                "experiment": "tag",
                "metric": "flops_ratio",
                "kind": "threshold",
                "method": "kaleidoscope",
                "threshold": 1.0,
            }
        ],
    }
    stats = {
        "scale": "small",
        "experiments": {
            "tag": {
                "seeds": {"kaleidoscope": list(range(6))},
                "final": {"flops_ratio": {"kaleidoscope": {"values": ratios["final"]}}},
                "untrained": {"flops_ratio": {"kaleidoscope": {"values": ratios["untrained"]}}},
            }
        },
    }
    (rec,) = claims.evaluate(paper, stats)
    assert rec["guards"]["step0"]["by_construction"] is True
    assert rec["verdict"] == "inconclusive" and rec.get("verdict_before_guards") == "reproduced"
