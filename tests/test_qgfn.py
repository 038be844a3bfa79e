"""QGFN (Lau et al., NeurIPS 2024): the three mixture policies, the training-time p schedule,
the n-step double-DQN target, the uniform-P_B TB term, and p changed at evaluation without
retraining."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from methods.common.runapi import MemoryRun
from methods.gfn import core, loop, qgfn, qgfn_of_max, qgfn_quantile, tb
from methods.gfn.policy import masked_log_softmax
from resume import preempted_then_resumed

HG = {"ndim": 2, "height": 4, "r0": 0.1}
LOGITS = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.0]])
Q = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
ALL = torch.ones(1, 5, dtype=torch.bool)


@pytest.mark.parametrize("kind", qgfn.MIXTURES)
def test_p_zero_is_the_gflownet_policy(kind: str) -> None:
    mask = torch.tensor([[True, True, False, True, True]])
    got = qgfn.mixture_log_probs(kind, 0.0, LOGITS, Q, mask)
    assert torch.allclose(got.exp(), masked_log_softmax(LOGITS, mask).exp())


@pytest.mark.parametrize("kind", qgfn.MIXTURES)
def test_p_one_is_greedy_in_q_among_valid_actions(kind: str) -> None:
    mask = torch.tensor([[True, True, True, True, False]])  # the best Q (index 4) is invalid
    probs = qgfn.mixture_log_probs(kind, 1.0, LOGITS, Q, mask).exp()
    assert torch.allclose(probs, torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]]))


def test_p_greedy_mixes_the_greedy_action_in_with_weight_p() -> None:
    pf = torch.softmax(LOGITS, -1)
    got = qgfn.mixture_log_probs("p_greedy", 0.4, LOGITS, Q, ALL).exp()
    expected = 0.6 * pf + 0.4 * torch.tensor([[0.0, 0, 0, 0, 1]])
    assert torch.allclose(got, expected)


def test_p_quantile_keeps_exactly_the_actions_at_or_above_the_quantile() -> None:
    # valid Q = {1, 2, 4, 5} (index 2 masked): the 0.5-quantile (linear) is 3 -> keep Q 4 and 5
    mask = torch.tensor([[True, True, False, True, True]])
    got = qgfn.mixture_log_probs("p_quantile", 0.5, LOGITS, Q, mask).exp()
    keep = torch.tensor([[False, False, False, True, True]])
    assert torch.equal(got > 0, keep)
    assert torch.allclose(got, masked_log_softmax(LOGITS, keep).exp())
    # a quantile that falls exactly on a value keeps that action: {1,2,3,4,5}, p = 0.5 -> 3
    got = qgfn.mixture_log_probs("p_quantile", 0.5, LOGITS, Q, ALL).exp()
    assert torch.equal(got > 0, torch.tensor([[False, False, True, True, True]]))


def test_p_quantile_is_taken_within_each_action_type() -> None:
    """yunglau/QGFN takes the quantile per logit row (prepend and append tokens separately on
    bit sequences): the best of each type survives, not only the best overall."""
    q = torch.tensor([[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]])
    logits = torch.zeros(1, 6)
    mask = torch.ones(1, 6, dtype=torch.bool)
    joint = qgfn.mixture_log_probs("p_quantile", 0.8, logits, q, mask).exp()
    assert torch.equal(joint > 0, torch.tensor([[False, False, False, False, True, True]]))
    per_type = qgfn.mixture_log_probs("p_quantile", 0.8, logits, q, mask, [(0, 3), (3, 6)]).exp()
    assert torch.equal(per_type > 0, torch.tensor([[False, False, True, False, False, True]]))
    # a one-action block (stop) always stays
    with_stop = qgfn.mixture_log_probs("p_quantile", 0.99, logits, q, mask, [(0, 5), (5, 6)]).exp()
    assert bool(with_stop[0, 5] > 0) and bool(with_stop[0, 4] > 0)


def test_env_action_blocks_cover_the_actions_once() -> None:
    import envs

    for name, kw in (("bitseq", {"mdp": "pa"}), ("hypergrid", {}), ("tfbind8", {})):
        env = envs.make(name, **kw)
        covered = [i for a, b in env.action_blocks() for i in range(a, b)]
        assert covered == list(range(env.n_actions)), name
    assert envs.make("bitseq", mdp="pa").action_blocks() == [(0, 16), (16, 32)]


def test_p_of_max_keeps_actions_within_p_of_the_best_positive_q() -> None:
    q = torch.tensor([[-1.0, 0.5, 1.0, 2.0, 1.5]])
    got = qgfn.mixture_log_probs("p_of_max", 0.5, LOGITS, q, ALL).exp()  # threshold 0.5 * 2 = 1
    assert torch.equal(got > 0, torch.tensor([[False, False, True, True, True]]))
    # every Q <= 0: p * max(max Q, 0) = 0 <= 1e-3, so every valid action stays
    got = qgfn.mixture_log_probs("p_of_max", 0.9, LOGITS, -q.abs(), ALL).exp()
    assert torch.allclose(got, torch.softmax(LOGITS, -1))


def test_training_p_ramps_on_a_half_cosine_to_p() -> None:
    assert qgfn.ramped_p(0.4, 0, 1500) == 0.0
    assert qgfn.ramped_p(0.4, 750, 1500) == pytest.approx(0.2)
    assert qgfn.ramped_p(0.4, 375, 1500) == pytest.approx(0.4 * (1 - math.cos(math.pi / 4)) / 2)
    assert qgfn.ramped_p(0.4, 1500, 1500) == pytest.approx(0.4)
    assert qgfn.ramped_p(0.4, 9000, 1500) == pytest.approx(0.4)
    assert qgfn.ramped_p(0.4, 3, 0) == 0.4


def test_n_step_double_dqn_target_on_a_hand_made_trajectory() -> None:
    """One trajectory of T = 4 transitions (states s_0..s_4), 2 actions, n = 2. Transition t
    bootstraps from s_{t+2} while t + 2 < 4 (t = 0, 1), else takes the reward R = 0.7. The
    bootstrap action is the ONLINE argmax, its value the LAGGED net's (double DQN)."""
    q_online = torch.tensor([[[0, 0], [0, 0], [1.0, 9.0], [5.0, 1.0], [0, 0]]])
    q_lagged = torch.tensor([[[0, 0], [0, 0], [0.25, 0.5], [0.75, 3.0], [0, 0]]])
    mask = torch.ones(1, 5, 2, dtype=torch.bool)
    y = qgfn.n_step_targets(q_online, q_lagged, mask, torch.tensor([4]), torch.tensor([0.7]), n=2)
    # t=0 -> s_2, online argmax 1 -> lagged 0.5; t=1 -> s_3, online argmax 0 -> lagged 0.75
    assert torch.allclose(y, torch.tensor([[0.5, 0.75, 0.7, 0.7]]))
    # an invalid action is never the bootstrap action, whatever its online value
    mask[0, 2, 1] = False
    y = qgfn.n_step_targets(q_online, q_lagged, mask, torch.tensor([4]), torch.tensor([0.7]), n=2)
    assert y[0, 0] == 0.25
    # n >= T: every transition takes the reward (Monte-Carlo)
    y = qgfn.n_step_targets(q_online, q_lagged, mask, torch.tensor([4]), torch.tensor([0.7]), n=25)
    assert torch.allclose(y, torch.full((1, 4), 0.7))


def test_tb_term_uses_a_uniform_backward_policy() -> None:
    """On a 2-D hypergrid the state (1, 1) has two parents and (1, 0) one: a trajectory
    right, up, stop has sum log P_B = log 1 + log 1/2 (the stop edge has P_B = 1)."""
    from envs.hypergrid import HyperGrid

    env = HyperGrid(**HG)
    net = core.PolicyNet(env.obs_dim, env.n_actions, env.n_backward_actions, 8, 1)
    actions = torch.tensor([[0, 1, env.stop_action]])
    batch = core.evaluate_trajectories(env, net, actions)
    log_pb = tb.uniform_log_pb(env, batch)
    assert torch.allclose(log_pb, torch.tensor([[0.0, math.log(0.5), 0.0]]))
    res = tb.trajectory_balance_residuals(batch, torch.tensor(0.3), log_pb)
    assert torch.allclose(res, 0.3 + batch.log_pf.sum(1) - batch.log_reward - math.log(0.5))


def _cfg(module=qgfn, **kw) -> qgfn.Config:
    base = dict(
        env="hypergrid",
        env_kwargs=HG,
        iterations=12,
        eval_every=4,
        checkpoint_every=6,
        hidden=16,
        online_batch=8,
        eval_samples=200,
        p_ramp_steps=6,
        dqn_n_step=2,
        eval_p_sweep=[0.0, 1.0],
    )
    base.update(kw)
    return module.Config(**base)


@pytest.mark.parametrize("module", [qgfn, qgfn_quantile, qgfn_of_max])
def test_p_changes_at_evaluation_without_retraining(module) -> None:
    cfg = _cfg(module)
    run = MemoryRun(seed=0)
    module.train(cfg, run)
    assert {"q_net", "sampler"} <= set(run.model["learner"])
    res = module.evaluate(cfg, run.model, seed=3)["metrics"]
    for name in qgfn.SWEEP_METRICS:
        assert f"{name}_p00" in res and f"{name}_p100" in res
    # p = 0 samples the trained sampling model's P_F: its exact TV is that policy's
    learner = module.make_learner(dataclasses.replace(cfg, eval_p=0.0))
    env, net, _ = core.build(cfg, torch.device("cpu"), 0)
    net.load_state_dict(run.model["net"])
    learner.bind(env, net)
    learner.load_model_state(run.model["learner"])
    for name, value in run.model["learner"]["q_net"].items():  # evaluation uses the trained Q
        assert torch.equal(learner.q_net.state_dict()[name], value)
    exact = core.ExactDistribution(env)
    target = core.exact_target(env, 1.0, exact.states)
    tv_p0 = core.total_variation(exact.terminal_probs(learner.policy(env, net)), target)
    tv_sampler = core.total_variation(exact.terminal_probs(learner.sampler), target)
    assert tv_p0 == pytest.approx(tv_sampler)
    # p = 1 is greedy in Q: a single terminal state, so top-100 diversity is undefined; the
    # p-quantile is taken per action type and a one-action type (stop) is never cut, as in
    # yunglau/QGFN, so there p = 1 keeps the best increment and stop
    if module is not qgfn_quantile:
        assert math.isnan(res["top100_diversity_p100"]) and res["sample_modes_p100"] <= 1


def test_q_network_is_trained_by_the_same_optimiser_step() -> None:
    cfg = _cfg(iterations=3, eval_every=3, p_ramp_steps=0)
    run = MemoryRun(seed=0)
    qgfn.train(cfg, run)
    env, net, _ = core.build(cfg, torch.device("cpu"), 0)
    fresh = qgfn.make_learner(cfg)
    fresh.bind(env, net)
    trained = run.model["learner"]["q_net"]
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.q_net.state_dict().items())


def test_qgfn_resume_is_exact() -> None:
    cfg = _cfg()
    full = MemoryRun(seed=1)
    qgfn.train(cfg, full)
    part, _ = preempted_then_resumed(qgfn.train, cfg, seed=1)
    assert repr(part.rows) == repr(full.rows)


def test_learning_rates_halve_every_half_life() -> None:
    cfg = _cfg(lr=1e-3, log_z_lr=1e-2, lr_half_life=10, log_z_lr_half_life=20)
    opt = torch.optim.Adam(
        [
            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0},
            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0},
        ]
    )
    core.set_learning_rates(opt, cfg, 20, has_log_z=True)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2.5e-4, 5e-3])


def test_core_clips_the_gflownet_only(monkeypatch) -> None:
    """The core hands the clip the policy net and log Z, never the learner's Q network
    (yunglau/QGFN clips the GFlowNet model alone)."""
    seen = []
    real = core.clip_gradients
    monkeypatch.setattr(
        loop, "clip_gradients", lambda cfg, opt, params: (seen.append(list(params)), real(cfg, opt, params))[1]
    )
    cfg = _cfg(iterations=1, eval_every=1, grad_clip_mode="per_tensor")
    run = MemoryRun(seed=0)
    qgfn.train(cfg, run)
    n_q = sum(1 for _ in run.model["learner"]["q_net"])
    n_gfn = len(run.model["net"]) + 1  # policy-net tensors + log Z's scalar
    assert seen and len(seen[0]) == n_gfn and n_q > 0
