"""Neuroplastic Expansion (methods/control/ne.py; docs/papers/ne.md): growth,
dormant pruning, the RigL phase, experience review, and that logging never changes training."""

from __future__ import annotations

import math

import pytest
import torch

from control_helpers import agent_of, filled_buffer, tiny
from methods.common.masked import masked_layers
from methods.common.runapi import MemoryRun
from methods.control import ne


def test_ne_growth_uses_largest_dense_gradients_and_zero_init():
    cfg = tiny(ne, delta=1, prune_criterion="magnitude", omega=0.0, zeta=0.5, iterations=10_100, start_steps=100)
    agent, task = agent_of(ne, cfg)
    critic = agent.sparse["critic"]
    layer = max(critic.layers, key=lambda lay: lay.weight.numel() - float(lay.masks.sum()))
    before = layer.masks[0].clone()
    batch = filled_buffer(task).sample(16, torch.Generator().manual_seed(0))
    grad = torch.randn(1, *layer.weight.shape, generator=torch.Generator().manual_seed(1))
    layer._dense_grad = grad.clone()
    for other in masked_layers(agent.critic):
        if other is not layer:
            other._dense_grad = torch.zeros_like(other.masks)
    critic.topology_event(agent.critic_opt, 0, batch)
    grown = (layer.masks[0] > before).reshape(-1)
    k = int(grown.sum())
    g_space = critic.growth_space[critic.layers.index(layer)]
    assert k == math.floor(0.5 * g_space) > 0  # phi(0) = zeta at t = 0
    absent = ~before.bool().reshape(-1)
    ranked = grad[0].abs().reshape(-1).masked_fill(~absent, -1).argsort(descending=True)[:k]
    assert set(ranked.tolist()) == set(grown.nonzero().squeeze(1).tolist())
    assert float(layer.weight.detach().reshape(-1)[grown].abs().max()) == 0.0  # zero init


def test_ne_pruning_capped_by_omega_and_growth_stops_at_target():
    cfg = tiny(
        ne,
        delta=20,
        iterations=1100,
        start_steps=100,
        omega=0.4,
        prune_criterion="magnitude",
        target_sparsity=0.5,
        zeta=1.0,
        diag_every=100,
    )
    agent, _ = agent_of(ne, cfg)
    assert ne.global_density(agent.critic) == pytest.approx(0.2, abs=0.01)  # 1 - S_init
    run = MemoryRun(seed=0)
    ne.train(cfg, run)
    dens = [r["critic_density"] for r in run.rows if "critic_density" in r]
    assert all(b >= a - 1e-9 for a, b in zip(dens, dens[1:]))  # net growth only
    assert dens[-1] >= 0.5 - 0.01 and dens[-1] < 0.6  # stops around the target


def test_ne_experience_review_draws_oldest_when_triggered():
    cfg = tiny(ne, review="fau_gate", awaken=0.4)
    agent, task = agent_of(ne, cfg)
    buf = filled_buffer(task, n=300)
    agent.activity.fau = 0.0  # gate = 1/(1+0.9 e^0.4) = 0.42: review w.p. 0.58
    picks = [agent.sample_batch(buf) for _ in range(200)]
    old = [p for p in picks if float(p["reward"].max()) < 90]  # rewards = insertion index
    assert 0.45 < len(old) / 200 < 0.7 and agent.reviewed == len(old)
    agent.activity.fau = 0.9  # healthy critic: never
    agent.reviewed = 0
    for _ in range(50):
        agent.sample_batch(buf)
    assert agent.reviewed == 0


def topology_change(agent, buffer, net):
    """Run one update (an event when delta = 1) and return, per masked layer of ``net``, the
    (pruned, grown) connection counts."""
    before = [layer.masks[0].bool().clone() for layer in masked_layers(net)]
    agent.update(buffer, step=agent.cfg.start_steps + 1)
    after = [layer.masks[0].bool() for layer in masked_layers(net)]
    return [(int((b & ~a).sum()), int((~b & a).sum())) for b, a in zip(before, after)]


@pytest.mark.parametrize("omega", [0.0, 0.25, 0.5, 0.8])
def test_ne_dormant_pruning_removes_omega_times_grown(omega):
    """The paper's pruning: the connections of tau = 0 dormant units are pruned, clipped to omega * k with
    k = floor(phi * G_l) grown. One hidden critic layer is made silent (bias -1e3: every unit
    dormant, more candidates than the cap), so the cap decides the count."""
    cfg = tiny(ne, delta=1, prune_criterion="dormant", omega=omega, zeta=0.1, iterations=10_100)
    agent, task = agent_of(ne, cfg)
    layers = masked_layers(agent.critic)
    silent = layers[1]  # 16 x 16, followed directly by its ReLU
    with torch.no_grad():
        silent.bias.fill_(-1e3)
    n_active = int(silent.masks[0].sum())
    g_space = round((1.0 - cfg.target_sparsity) * silent.weight.numel()) - n_active
    k = math.floor(0.1 * g_space)  # phi(0) = zeta
    cap = math.floor(omega * k)
    assert 0 < cap < n_active or omega == 0.0
    pruned, grown = topology_change(agent, filled_buffer(task), agent.critic)[1]
    assert grown == k and pruned == cap


@pytest.mark.parametrize("review", ne.REVIEW)
def test_ne_logging_frequency_never_changes_training(review):
    """Evaluations and diagnostics only read the agent: a run that logs every 30 steps and one
    that logs once end with the same parameters, and the review did fire."""
    models = []
    for eval_every, diag_every in ((600, 0), (100, 30)):
        cfg = tiny(
            ne,
            iterations=600,
            eval_every=eval_every,
            diag_every=diag_every,
            checkpoint_every=600,
            delta=20,
            review=review,
            fluctuation_window=20,
            fluctuation_threshold=0.0,
            awaken=0.9,
        )
        run = MemoryRun(seed=2)
        ne.train(cfg, run)
        models.append(run)
    quiet, chatty = models
    assert len(chatty.rows) > len(quiet.rows) + 5
    assert (quiet.rows[-1]["reviewed_batches"] > 0) == (review != "off")
    assert quiet.rows[-1]["reviewed_batches"] == chatty.rows[-1]["reviewed_batches"]
    for part in ("actor", "critic"):
        for key, value in quiet.model[part].items():
            assert torch.equal(value, chatty.model[part][key]), (part, key)


class FakeActivity:
    fau, dormant_ratio = 1.0, None


def test_ne_dormant_fluctuation_compares_window_means():
    """The paper's trigger: |mean of the last W dormant ratios - mean of the W before| > eps.
    A single spike of 0.3 moves a 3-update mean by 0.1 only, so W decides whether it triggers."""

    def trigger(window, values, threshold=0.15):
        activity = FakeActivity()
        review = ne.DormantFluctuation(tiny(ne, fluctuation_window=window, fluctuation_threshold=threshold), activity)
        for v in values:
            activity.dormant_ratio = v
            review.observe()
        return review

    spike = [0.0] * 5 + [0.3]
    assert trigger(1, spike).wants_review(None)
    assert not trigger(3, spike).wants_review(None)
    assert trigger(3, [0.0] * 3 + [0.3] * 3).wants_review(None)
    assert not trigger(3, [0.0] * 3 + [0.3] * 3, threshold=0.35).wants_review(None)
    assert not trigger(3, [0.0] * 2 + [0.3] * 3).wants_review(None)  # fewer than 2W updates
    saved = trigger(3, [0.0] * 3 + [0.3] * 3)
    restored = trigger(3, [])
    restored.load_state_dict(saved.state_dict())
    assert restored.wants_review(None) and list(restored.history) == list(saved.history)


def test_ne_fau_gate_formula_cap_and_threshold():
    """Code's gate g = 1/(1 + Tamp e^(awaken - FAU)), g >= 0.6 replaced by 0.4; review only
    below awaken (the authors' stl/TD3.py)."""
    gate = ne.FauGate(tiny(ne, awaken=0.4, tamp=0.9), FakeActivity())
    assert gate.gate(0.0) == pytest.approx(1 / (1 + 0.9 * math.exp(0.4)))
    low_tamp = ne.FauGate(tiny(ne, awaken=0.4, tamp=0.5), FakeActivity())
    assert 1 / (1 + 0.5 * math.exp(0.01)) > 0.6 and low_tamp.gate(0.39) == 0.4
    gen = torch.Generator().manual_seed(0)
    gate.activity.fau = 0.41
    assert not any(gate.wants_review(gen) for _ in range(100))
    strict = ne.FauGate(tiny(ne, awaken=0.9, tamp=0.9), FakeActivity())
    strict.activity.fau = 0.41  # below awaken 0.9: reviews with prob. 1 - g
    share = sum(strict.wants_review(gen) for _ in range(2000)) / 2000
    assert share == pytest.approx(1 - strict.gate(0.41), abs=0.04)


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_ne_review_fraction_is_the_oldest_share(fraction):
    cfg = tiny(ne, review="fau_gate", awaken=1.0, tamp=0.0, review_fraction=fraction)
    agent, task = agent_of(ne, cfg)
    agent.activity.fau = 0.0  # tamp 0: gate 1 -> capped 0.4, review w.p. 0.6
    picks = [agent.sample_batch(filled_buffer(task, n=300)) for _ in range(100)]
    old = [p for p in picks if float(p["reward"].max()) < 300 * fraction]
    assert agent.reviewed == len(old) > 30


def test_ne_growth_schedules_and_auto_zeta():
    cfg = tiny(ne, iterations=10_100, start_steps=100, delta=100, omega=0.4, zeta=0.0)
    events = cfg.t_end() / cfg.delta
    assert cfg.growth_zeta() == pytest.approx(1 / (0.6 * 0.45 * events))
    cosine = ne.GrowthSchedule("cosine", 0.3, 0.008, 1000)
    assert cosine.fraction(0) == pytest.approx(0.3) and cosine.fraction(500) == pytest.approx(0.15)
    assert cosine.fraction(1000) == 0.0
    constant = ne.GrowthSchedule("constant", 0.3, 0.008, 1000)
    assert constant.fraction(0) == constant.fraction(999) == 0.008


def test_ne_events_every_delta_updates_and_static_actor():
    """Masks change at updates delta, 2 delta, ... only; with grow_actor off the actor's never."""
    cfg = tiny(ne, delta=3, zeta=0.2, iterations=10_100, grow_actor=False)
    agent, task = agent_of(ne, cfg)
    buf = filled_buffer(task)
    actor_masks = [layer.masks.clone() for layer in masked_layers(agent.actor)]
    changed_at = []
    for n in range(1, 10):
        before = [layer.masks.clone() for layer in masked_layers(agent.critic)]
        agent.update(buf, step=cfg.start_steps + n)
        if any(not torch.equal(b, layer.masks) for b, layer in zip(before, masked_layers(agent.critic))):
            changed_at.append(n)
    assert changed_at == [3, 6, 9]
    assert all(torch.equal(a, layer.masks) for a, layer in zip(actor_masks, masked_layers(agent.actor)))


def test_ne_magnitude_pruning_and_lecun_growth():
    cfg = tiny(ne, delta=1, prune_criterion="magnitude", omega=0.5, zeta=0.1, grow_init="lecun", iterations=10_100)
    agent, task = agent_of(ne, cfg)
    layer = masked_layers(agent.critic)[1]
    active = layer.masks[0].bool().clone()
    weights = layer.weight.detach().clone()
    pruned, grown = topology_change(agent, filled_buffer(task), agent.critic)[1]
    assert pruned == math.floor(0.5 * grown) > 0
    gone = (active & ~layer.masks[0].bool()).reshape(-1)
    smallest = weights.abs().reshape(-1).masked_fill(~active.reshape(-1), float("inf")).argsort()[:pruned]
    assert set(gone.nonzero().squeeze(1).tolist()) == set(smallest.tolist())
    new = (~active & layer.masks[0].bool()).reshape(-1)
    values = layer.weight.detach().reshape(-1)[new]
    bound = 2 / math.sqrt(layer.in_features)  # LeCun normal truncated at 2 sigma
    assert (values != 0).all() and (values.abs() <= bound).all()


def test_ne_rigl_phase_keeps_density_with_rigl_zeta():
    """After growth: every event swaps floor(phi * |M_l|) connections, phi cosine from the switch
    with zeta = rigl_zeta; the density stays."""
    cfg = tiny(ne, delta=1, rigl_zeta=0.4, iterations=10_100)
    agent, task = agent_of(ne, cfg)
    critic = agent.sparse["critic"]
    critic.growing, critic.rigl_start = False, 0
    layer = critic.layers[1]
    n_active = int(layer.masks[0].sum())
    pruned, grown = topology_change(agent, filled_buffer(task), agent.critic)[1]
    assert pruned == grown == int(0.4 * n_active) > 0
    assert int(layer.masks[0].sum()) == n_active
