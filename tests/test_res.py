"""RES (methods/marl/value/res.py) and MAST on it (methods/marl/value/mast_res.py): Monte-Carlo returns, the
one-agent-changed joint actions and the softmax value by hand (β → 0: the mean, β large: the
max, unavailable actions out), the regularised loss (determinism and exact resume: tests/test_wqmix.py)."""

from __future__ import annotations

import pytest
import torch

from envs.mpe import MPETask
from methods.marl.value import mast, mast_res, qmix, res

TINY = dict(
    env_kwargs={"task": "spread"},
    iterations=300,
    eval_every=100,
    checkpoint_every=100,
    eval_episodes=1,
    batch_size=4,
    buffer_size=16,
    epsilon_anneal_steps=200,
    target_update_interval=5,
    hidden_dim=16,
    mixing_embed_dim=8,
    hypernet_embed=16,
)


def test_discounted_returns_stop_at_the_episode_end():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    filled = torch.tensor([[1.0, 1.0, 0.0]])
    assert res.discounted_returns(rewards, filled, 0.5).tolist() == [[2.0, 2.0, 0.0]]


def test_one_change_joint_actions_by_hand():
    q = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # agents × actions
    cf = res.one_change_joint_actions(q, torch.tensor([2, 0]))  # greedy: agent 0 plays 2, agent 1 plays 0
    assert cf[0].tolist() == [[1.0, 4.0], [2.0, 4.0], [3.0, 4.0]]  # agent 0 varies, agent 1 greedy
    assert cf[1].tolist() == [[3.0, 4.0], [3.0, 5.0], [3.0, 6.0]]  # agent 1 varies


def test_softmax_value_mean_max_and_unavailable_actions():
    q = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    s = torch.zeros(1)
    vdn = qmix.VDNMixer()
    avail = torch.ones(2, 3, dtype=torch.bool)
    # greedy (2, 2); the six joint-action sums are 7, 8, 9 (agent 0 varies) and 7, 8, 9 (agent 1)
    assert float(res.softmax_value(vdn, vdn, q, q, avail, s, 0.0)) == pytest.approx(8.0)
    assert float(res.softmax_value(vdn, vdn, q, q, avail, s, 200.0)) == pytest.approx(9.0)
    avail[1, 2] = False  # agent 1's greedy becomes action 1: sums 6, 7, 8 and 7, 8
    assert float(res.softmax_value(vdn, vdn, q, q, avail, s, 0.0)) == pytest.approx(36 / 5)
    # the target network's values are the ones averaged: shift them, the value shifts
    assert float(res.softmax_value(vdn, vdn, q, q + 1.0, avail, s, 0.0)) == pytest.approx(36 / 5 + 2)
    none = torch.zeros(2, 3, dtype=torch.bool)  # padding: no action available
    assert float(res.softmax_value(vdn, vdn, q, q, none, s, 0.0)) == 0.0


def _learner(module, learner_cls, make, **kw):
    fields = module.Config.__dataclass_fields__
    cfg = module.Config(**{k: v for k, v in {**TINY, **kw}.items() if k in fields})
    torch.manual_seed(0)
    return learner_cls(cfg, MPETask(**cfg.env_kwargs), make, torch.device("cpu"))


def test_loss_is_td_plus_lambda_times_the_return_regulariser():
    learner = _learner(res, res.RESLearner, qmix.scheme_agent_net, res_lambda=0.5, standardise_rewards=False)
    env = MPETask(**learner.cfg.env_kwargs)
    buf = learner.make_buffer()
    gen = torch.Generator().manual_seed(0)
    for k in range(4):
        buf.add(qmix.run_episode(learner, env, k, 1.0, gen)[0])
    b = buf.sample(4, gen)
    inputs = learner.inputs(b["obs"], torch.cat([torch.full_like(b["actions"][:, :1], -1), b["actions"]], 1))
    q_all = learner.unroll(learner.agent, inputs)
    q_taken = q_all[:, :-1].gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
    loss, _, _, extra = learner.td_loss(b, b["reward"], inputs, q_all, q_taken)
    assert float(loss.detach()) == pytest.approx(extra["td_loss"] + 0.5 * extra["return_reg"], rel=1e-5)
    q_tot = learner.mixer(q_taken, b["state"][:, :-1]).detach()
    g = res.discounted_returns(b["reward"], b["filled"], learner.cfg.gamma)
    want = float(((q_tot - g) * b["filled"]).pow(2).sum() / b["filled"].sum())
    assert extra["return_reg"] == pytest.approx(want, rel=1e-5)


def test_mast_on_res_uses_the_softmax_target_not_soft_mellowmax():
    learner = _learner(mast_res, mast_res.MASTRESLearner, mast.make_agent_net, topology_interval=3)
    assert isinstance(learner, mast.MASTLearner) and isinstance(learner, res.RESLearner)
    assert not learner.cfg.soft_mellowmax and learner.cfg.res_beta == 0.05
    assert learner.diagnostics()["density"] == pytest.approx(0.1, abs=0.01)
