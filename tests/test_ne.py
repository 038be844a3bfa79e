"""Neuroplastic Expansion (methods/control/ne.py; ../shared/specs/control_video.md §1): growth,
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
    layer = max(critic.layers, key=lambda l: l.weight.numel() - float(l.masks.sum()))
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
    assert k == math.floor(0.5 * g_space) > 0                     # phi(0) = zeta at t = 0
    absent = ~before.bool().reshape(-1)
    ranked = grad[0].abs().reshape(-1).masked_fill(~absent, -1).argsort(descending=True)[:k]
    assert set(ranked.tolist()) == set(grown.nonzero().squeeze(1).tolist())
    assert float(layer.weight.detach().reshape(-1)[grown].abs().max()) == 0.0   # zero init


def test_ne_pruning_capped_by_omega_and_growth_stops_at_target():
    cfg = tiny(ne, delta=20, iterations=1100, start_steps=100, omega=0.4, prune_criterion="magnitude",
               target_sparsity=0.5, zeta=1.0, diag_every=100)
    agent, _ = agent_of(ne, cfg)
    assert ne.global_density(agent.critic) == pytest.approx(0.2, abs=0.01)   # 1 - S_init
    run = MemoryRun(seed=0)
    ne.train(cfg, run)
    dens = [r["critic_density"] for r in run.rows if "critic_density" in r]
    assert all(b >= a - 1e-9 for a, b in zip(dens, dens[1:]))      # net growth only
    assert dens[-1] >= 0.5 - 0.01 and dens[-1] < 0.6                # stops around the target


def test_ne_experience_review_draws_oldest_when_triggered():
    cfg = tiny(ne, review="fau_gate", awaken=0.4)
    agent, task = agent_of(ne, cfg)
    buf = filled_buffer(task, n=300)
    agent.activity.fau = 0.0                  # gate = 1/(1+0.9 e^0.4) = 0.42: review w.p. 0.58
    picks = [agent.sample_batch(buf) for _ in range(200)]
    old = [p for p in picks if float(p["reward"].max()) < 90]     # rewards = insertion index
    assert 0.45 < len(old) / 200 < 0.7 and agent.reviewed == len(old)
    agent.activity.fau = 0.9                  # healthy critic: never
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
    """Spec §1.5: the connections of tau = 0 dormant units are pruned, clipped to omega * k with
    k = floor(phi * G_l) grown. One hidden critic layer is made silent (bias -1e3: every unit
    dormant, more candidates than the cap), so the cap decides the count."""
    cfg = tiny(ne, delta=1, prune_criterion="dormant", omega=omega, zeta=0.1, iterations=10_100)
    agent, task = agent_of(ne, cfg)
    layers = masked_layers(agent.critic)
    silent = layers[1]                          # 16 x 16, followed directly by its ReLU
    with torch.no_grad():
        silent.bias.fill_(-1e3)
    n_active = int(silent.masks[0].sum())
    g_space = round((1.0 - cfg.target_sparsity) * silent.weight.numel()) - n_active
    k = math.floor(0.1 * g_space)               # phi(0) = zeta
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
        cfg = tiny(ne, iterations=600, eval_every=eval_every, diag_every=diag_every, checkpoint_every=600, delta=20,
                   review=review, fluctuation_window=20, fluctuation_threshold=0.0, awaken=0.9)
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
