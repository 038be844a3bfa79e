"""Neuroplastic Expansion (methods/control/ne.py; ../shared/specs/control_video.md §1): growth,
dormant pruning, the RigL phase, experience review, and that logging never changes training."""
from __future__ import annotations

import math

import pytest
import torch

from control_helpers import agent_of, filled_buffer, tiny
from methods.common.masked import masked_layers
from methods.control import ne


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
    from methods.common.runapi import MemoryRun

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
