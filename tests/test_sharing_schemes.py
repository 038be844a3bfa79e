"""The parameter-sharing baselines SNP-PS (methods/marl/agents.py SNPPSAgent, qmix_snp) and SePS
(methods/marl/value/seps.py): each mechanism on a hand-checkable case, and both through QMIX."""

from __future__ import annotations

import pytest
import torch

from methods.marl.value import qmix_snp, seps
from methods.marl.agents import GroupedLinear, SNPPSAgent


# ------------------------------------------------------------------------------ SNP-PS
def test_snp_masks_keep_a_fixed_share_of_units_per_agent_and_differ_between_agents():
    torch.manual_seed(0)
    net = SNPPSAgent(10, 4, 5, hidden_dim=16, keep=0.25)
    assert net.unit_masks.shape == (3, 4, 16)
    assert torch.all(net.unit_masks.sum(-1) == 4)
    assert not torch.equal(net.unit_masks[0, 0], net.unit_masks[0, 1])
    torch.manual_seed(0)
    assert torch.equal(SNPPSAgent(10, 4, 5, hidden_dim=16, keep=0.25).unit_masks, net.unit_masks)  # seeded
    assert "unit_masks" in net.state_dict()  # checkpointed with the network


def test_snp_agent_ignores_the_units_outside_its_mask():
    torch.manual_seed(1)
    net = SNPPSAgent(6, 2, 3, hidden_dim=8, keep=0.5)
    x, h = torch.randn(5, 2, 6), torch.randn(5, 2, 8)
    q0, _ = net(x, h)
    # change fc3's rows (outputs) for the units agent 0 has pruned in fc3: agent 0 cannot see them
    pruned0 = net.unit_masks[2, 0] == 0
    with torch.no_grad():
        net.fc3.weight[pruned0] += 1.0
    q1, _ = net(x, h)
    assert torch.allclose(q0[:, 0], q1[:, 0])
    if (pruned0 & (net.unit_masks[2, 1] > 0)).any():  # a unit agent 1 keeps: it moves
        assert not torch.allclose(q0[:, 1], q1[:, 1])


def test_snp_inference_flops_by_hand():
    torch.manual_seed(2)
    net = SNPPSAgent(6, 2, 3, hidden_dim=8, keep=0.5)  # 4 of 8 units in each masked layer
    lin = lambda i, o: 2 * i * o + o  # noqa: E731
    want = lin(6, 4) + lin(4, 24) + lin(8, 24) + lin(8, 4) + lin(4, 4) + lin(4, 3)
    assert net.inference_flops_per_agent() == want
    with pytest.raises(ValueError, match="snp_keep"):
        qmix_snp.Config(snp_keep=0.0)


# ------------------------------------------------------------------------------ SePS
def test_kmeans_on_hand_points():
    pts = torch.tensor([[0.0, 0.0], [10.0, 10.0], [0.1, 0.0], [10.0, 9.9], [0.0, 0.2]])
    assert seps.kmeans(pts, 2).tolist() == [0, 1, 0, 1, 0]
    assert seps.kmeans(pts, 1).tolist() == [0] * 5
    assert seps.kmeans(pts[:2], 5).tolist() == [0, 1]  # k capped at the number of points


def test_grouped_linear_index_reads_each_rows_group():
    torch.manual_seed(3)
    layer = GroupedLinear(2, 4, 3)
    x = torch.randn(6, 3, 4)
    idx = torch.tensor([1, 0, 1])
    y = layer(x, idx)
    for n, g in enumerate(idx.tolist()):
        assert torch.allclose(y[:, n], x[:, n] @ layer.weight[g] + layer.bias[g], atol=1e-6)


def test_agents_of_one_cluster_share_their_weights():
    torch.manual_seed(4)
    net = seps.SePSAgent(5, 3, 4, 8, torch.tensor([0, 1, 0]), n_clusters=2)
    x = torch.randn(2, 1, 5).expand(2, 3, 5).contiguous()  # the same input for every agent
    q, _ = net(x, net.init_hidden(2))
    assert torch.allclose(q[:, 0], q[:, 2]) and not torch.allclose(q[:, 0], q[:, 1])
    assert net.nonzero_params_per_agent() == sum(p.numel() for p in net.parameters()) / 2
    other = seps.SePSAgent(5, 3, 4, 8, torch.tensor([0, 0, 0]), n_clusters=2)
    other.load_state_dict(net.state_dict())
    assert other.clusters.tolist() == [0, 1, 0]  # the clusters travel with the model


def test_seps_separates_world_comms_leader_from_the_other_adversaries():
    """MPE World: the leader (agent 0: 20 actions, other observations) is a different kind of
    agent; the transition encoder + k-means put it alone in its cluster."""
    cfg = seps.Config(env_kwargs={"task": "world"}, seps_pretrain_steps=1000, seps_clusters=2)
    gen = torch.Generator().manual_seed(0)
    assert seps.cluster_agents(cfg, gen).tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize("method", ["qmix_snp", "qmix_seps"])
def test_schemes_train_through_qmix_deterministically(method):
    import methods
    from methods.common.runapi import MemoryRun

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mod = methods.load(method)
        extra = {"seps_pretrain_steps": 200, "seps_vae_updates": 20} if method == "qmix_seps" else {}
        cfg = mod.Config(
            env_kwargs={"task": "spread"},
            iterations=200,
            eval_every=100,
            checkpoint_every=100,
            eval_episodes=1,
            batch_size=2,
            buffer_size=4,
            epsilon_anneal_steps=100,
            target_update_interval=2,
            hidden_dim=8,
            mixing_embed_dim=4,
            hypernet_embed=8,
            **extra,
        )
        a, b = MemoryRun(seed=3), MemoryRun(seed=3)
        mod.train(cfg, a)
        mod.train(cfg, b)
        strip = lambda rows: repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])  # noqa: E731
        assert strip(a.rows) == strip(b.rows)
        ev = mod.evaluate(cfg, a.model, 3)["metrics"]
        assert ev["test_return_mean"] == pytest.approx(a.rows[-1]["test_return"])
        assert 0 < ev["flops_ratio"] <= 1.0
    finally:
        torch.set_num_threads(threads)


def test_seps_config_errors():
    with pytest.raises(ValueError, match="seps_clusters"):
        seps.Config(seps_clusters=0)
