"""Weighted QMIX (methods/marl/value/wqmix.py) and MAST on it (methods/marl/value/mast_wqmix.py): the OW/CW
weights by hand, targets from the central Q̂* (not the QMIX target mixer), the weighted loss
against its parts, MAST's hooks composed with WQMIX's loss, determinism and exact resume."""

from __future__ import annotations

import pytest
import torch

from envs.mpe import MPETask
from methods.marl.value import mast, mast_wqmix, qmix, wqmix

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
    central_mixing_embed_dim=16,
    central_rnn_hidden_dim=8,
)


def _learner(module=wqmix, learner_cls=wqmix.WQMIXLearner, make=qmix.scheme_agent_net, **kw):
    fields = module.Config.__dataclass_fields__
    cfg = module.Config(**{k: v for k, v in {**TINY, **kw}.items() if k in fields})
    torch.manual_seed(0)
    return learner_cls(cfg, MPETask(**cfg.env_kwargs), make, torch.device("cpu"))


def _batch(learner, n: int = 4) -> dict[str, torch.Tensor]:
    env = MPETask(**learner.cfg.env_kwargs)
    buf = learner.make_buffer()
    gen = torch.Generator().manual_seed(0)
    for k in range(n):
        buf.add(qmix.run_episode(learner, env, k, 1.0, gen)[0])
    return buf.sample(n, gen)


def test_ow_and_cw_weights_by_hand():
    td = torch.tensor([[-1.0, 0.5, 0.0, 2.0]])  # Q_tot − y
    targets = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    greedy = torch.tensor([[False, True, False, False]])
    central = torch.tensor([[0.0, 5.0, 5.0, 0.5]])  # Q̂* at the greedy joint action
    # OW: weight 1 where Q_tot underestimates y
    assert wqmix.weights("ow", 0.25, td, targets, greedy, central).tolist() == [[1.0, 0.25, 0.25, 0.25]]
    # CW: weight 1 on the greedy joint action or where y > Q̂*(s, greedy)
    assert wqmix.weights("cw", 0.25, td, targets, greedy, central).tolist() == [[1.0, 1.0, 0.25, 1.0]]


def test_targets_come_from_the_central_target_and_the_loss_is_weighted_qmix_plus_central():
    learner = _learner(w=1.0, standardise_rewards=False)
    b = _batch(learner)
    inputs = learner.inputs(b["obs"], torch.cat([torch.full_like(b["actions"][:, :1], -1), b["actions"]], 1))
    q_all = learner.unroll(learner.agent, inputs)
    q_taken = q_all[:, :-1].gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)
    loss, targets, td, extra = learner.td_loss(b, b["reward"], inputs, q_all, q_taken)
    filled = b["filled"]
    # w = 1: the QMIX part is QMIX's masked MSE against the same targets
    assert extra["qmix_loss"] == pytest.approx(float((td.pow(2)).sum() / filled.sum()), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(extra["qmix_loss"] + extra["central_loss"], rel=1e-5)
    assert extra["w_mean"] == pytest.approx(1.0)
    with torch.no_grad():  # the QMIX target mixer plays no part
        for p in learner.target_mixer.parameters():
            p.add_(1.0)
    torch.testing.assert_close(learner.td_loss(b, b["reward"], inputs, q_all, q_taken)[1], targets)
    with torch.no_grad():  # the central target's V(s) shifts every bootstrap
        learner.target_central_mixer.v[-1].bias.add_(1.0)
    shifted = learner.td_loss(b, b["reward"], inputs, q_all, q_taken)[1]
    torch.testing.assert_close(shifted - targets, learner.cfg.gamma * (1 - b["terminated"]))
    # down-weighting (w < 1) can only lower the QMIX part
    low = _learner(w=0.1, standardise_rewards=False)
    assert low.td_loss(b, b["reward"], inputs, q_all, q_taken)[3]["qmix_loss"] <= extra["qmix_loss"] + 1e-6


def test_one_optimiser_trains_agents_mixer_and_central_q_and_targets_copy_it():
    learner = _learner(target_update_interval=1)
    central = {id(p) for m in (learner.central_agent, learner.central_mixer) for p in m.parameters()}
    assert central <= {id(p) for p in learner.params}
    before = [p.detach().clone() for p in learner.central_mixer.parameters()]
    learner.train(_batch(learner))
    assert any(not torch.equal(p, q) for p, q in zip(learner.central_mixer.parameters(), before))
    for p, q in zip(learner.central_mixer.parameters(), learner.target_central_mixer.parameters()):
        torch.testing.assert_close(p, q)  # hard copy after the update


def test_mast_on_wqmix_keeps_mast_hooks_and_wqmix_loss():
    learner = _learner(mast_wqmix, mast_wqmix.MASTWQMIXLearner, mast.make_agent_net, topology_interval=3)
    assert isinstance(learner, mast.MASTLearner) and isinstance(learner, wqmix.WQMIXLearner)
    central = {id(p) for m in (learner.central_agent, learner.central_mixer) for p in m.parameters()}
    assert central <= {id(p) for p in learner.params}  # rebuilt optimiser kept Q̂*
    assert learner.diagnostics()["density"] == pytest.approx(0.1, abs=0.01)  # agents + mixer sparse
    out = learner.train(_batch(learner))
    assert {"central_loss", "qmix_loss", "topology_moved"} <= set(out)
    # the dense Q̂* is counted on both sides of the training-FLOPs ratio: the ratio rises
    plain = _learner(mast, mast.MASTLearner, mast.make_agent_net, topology_interval=3)
    plain.train(_batch(plain))
    ratio = lambda lr: lr.flops["sparse"] / lr.flops["dense"]  # noqa: E731
    assert ratio(plain) < ratio(learner) < 1.0


@pytest.mark.parametrize("method", ["wqmix_nops", "mast_wqmix", "res_nops", "mast_res"])
def test_mast_base_algorithms_train_deterministically_and_resume_exactly(method):
    """WQMIX and RES (methods/marl/value/res.py), dense and under MAST."""
    import methods
    from methods.common.runapi import MemoryRun
    from resume import preempted_then_resumed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mod = methods.load(method)
        fields = mod.Config.__dataclass_fields__
        kw = {**TINY, **({"topology_interval": 2} if method.startswith("mast") else {})}
        cfg = mod.Config(**{k: v for k, v in kw.items() if k in fields})
        a, b = MemoryRun(seed=2), MemoryRun(seed=2)
        mod.train(cfg, a)
        mod.train(cfg, b)
        strip = lambda rows: repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])  # noqa: E731
        assert strip(a.rows) == strip(b.rows)
        part, _ = preempted_then_resumed(mod.train, cfg, seed=2, checkpoints=1)
        assert strip(part.rows) == strip(a.rows)
        ev = mod.evaluate(cfg, a.model, 2)["metrics"]
        assert ev["test_return_mean"] == pytest.approx(a.rows[-1]["test_return"])
    finally:
        torch.set_num_threads(threads)


def test_wqmix_config_errors_name_the_field():
    with pytest.raises(ValueError, match="weighting"):
        wqmix.Config(**{**TINY, "weighting": "xw"})
    with pytest.raises(ValueError, match="agent_net"):
        mast_wqmix.Config(**{**TINY, "agent_net": "fups"})
