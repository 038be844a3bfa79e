"""Seed batching, step one (methods/common/stacked.py, methods/control/seed_batch.py): k seeds'
TD3 updates on stacked networks match each seed's single-seed updates."""

from __future__ import annotations

import copy

import pytest
import torch

import methods
from methods.common.replay import ReplayBuffer
from methods.common.stacked import StackedMLP
from methods.common.nets import mlp
from methods.control.seed_batch import StackedTD3
from methods.control.td3 import TD3Agent

OBS, ACT, HID, B = 5, 2, 16, 32


def _agent(seed: int, critic_layernorm: str = "none") -> TD3Agent:
    cfg = methods.load("td3").Config(
        hidden=HID, batch=B, lr=1e-3, critic_layernorm=critic_layernorm, critic_hidden_layers=3
    )
    torch.manual_seed(seed)
    return TD3Agent(cfg, OBS, ACT, 1.0, torch.device("cpu"), torch.Generator().manual_seed(seed))


def _buffer(seed: int) -> ReplayBuffer:
    g = torch.Generator().manual_seed(100 + seed)
    buf = ReplayBuffer(500, OBS, ACT, "cpu")
    for _ in range(300):
        buf.add(
            torch.randn(OBS, generator=g),
            torch.rand(ACT, generator=g) * 2 - 1,
            float(torch.randn(1, generator=g)),
            torch.randn(OBS, generator=g),
            bool(torch.rand(1, generator=g) < 0.05),
        )
    return buf


def test_a_stacked_mlp_is_its_seeds_mlps():
    torch.manual_seed(0)
    nets = [mlp([4, 8, 8, 3]) for _ in range(3)]
    stacked = StackedMLP(nets)
    x = torch.randn(3, 5, 4)
    want = torch.stack([n(x[i]) for i, n in enumerate(nets)])
    assert torch.allclose(stacked(x), want, atol=1e-6)
    assert torch.allclose(stacked(x[[0, 2]], rows=slice(0, None, 2)), want[[0, 2]], atol=1e-6)
    with torch.no_grad():
        stacked.weights[0][1].add_(1.0)
    stacked.write_back(nets)
    assert torch.allclose(nets[1][0].weight, stacked.weights[0][1].t())
    with pytest.raises(ValueError, match="Linear-\\[LayerNorm\\]-ReLU"):
        StackedMLP([mlp([4, 8, 3], dropout=0.1)])
    with pytest.raises(ValueError, match="one shape"):
        StackedMLP([mlp([4, 8, 3]), mlp([4, 8, 3], layernorm="all")])


def test_a_stacked_mlp_with_layernorm_is_its_seeds_mlps():
    """NE's TD3 critic: LayerNorm on the last hidden layer, its gain and shift per seed."""
    torch.manual_seed(0)
    nets = [mlp([4, 8, 8, 8, 1], layernorm="last") for _ in range(3)]
    for n in nets:
        with torch.no_grad():
            n[5].weight.uniform_(0.5, 1.5)
            n[5].bias.uniform_(-0.5, 0.5)
    stacked = StackedMLP(nets)
    x = torch.randn(3, 5, 4)
    want = torch.stack([n(x[i]) for i, n in enumerate(nets)])
    assert torch.allclose(stacked(x), want, atol=1e-6)
    with torch.no_grad():
        stacked.norms["weight2"][1].add_(1.0)
    stacked.write_back(nets)
    assert torch.equal(nets[1][5].weight, stacked.norms["weight2"][1, 0])


@pytest.mark.parametrize("critic_layernorm", ["none", "last"])
def test_k_seeds_updated_together_match_their_single_seed_updates(critic_layernorm):
    seeds = (0, 1, 2)
    single = [_agent(s, critic_layernorm) for s in seeds]
    batched_agents = [copy.deepcopy(a) for a in single]
    buffers = [_buffer(s) for s in seeds]
    gens_single = [torch.Generator().manual_seed(7 + s) for s in seeds]
    gens_batched = [torch.Generator().manual_seed(7 + s) for s in seeds]
    for agent, gen in zip(single, gens_single):
        agent.gen = gen
    stacked = StackedTD3(batched_agents)
    for _ in range(100):
        losses = [a.update(buf, 0)["critic_loss"] for a, buf in zip(single, buffers)]
        out = stacked.update(buffers, gens_batched)
        assert torch.allclose(out["critic_loss"], torch.stack(losses), rtol=1e-4, atol=1e-5)
    stacked.write_back()
    for a, b in zip(single, batched_agents):
        assert a.n_updates == b.n_updates == 100
        for name in ("actor", "critic", "actor_target", "critic_target"):
            for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
                assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
    # the generators were advanced exactly as the single-seed runs advanced theirs
    assert all(torch.equal(g.get_state(), h.get_state()) for g, h in zip(gens_single, gens_batched))


def test_only_plain_td3_agents_are_batched():
    """A subclass (Reset, ReDo, Plasticity Injection) has hooks the stacked update would skip."""
    from methods.control.td3_reset import Config, ResetAgent

    agent = ResetAgent(Config(hidden=HID), OBS, ACT, 1.0, torch.device("cpu"), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="plain TD3"):
        StackedTD3([agent])


@pytest.mark.parametrize("critic_layernorm", ["none", "last"])
def test_k_sac_seeds_updated_together_match_their_single_seed_updates(critic_layernorm):
    """SAC at UTD 2: critic updates every call, policy and temperature on every second; each
    seed's draws (batch, next-action noise, policy noise) from its own generator."""
    from methods.control.sac import Config, SACAgent
    from methods.control.seed_batch import StackedSAC

    cfg = Config(hidden=HID, batch=B, lr=1e-3, utd=2, critic_layernorm=critic_layernorm)
    seeds = (0, 1, 2)
    single = []
    for s in seeds:
        torch.manual_seed(s)
        single.append(SACAgent(cfg, OBS, ACT, 2.0, torch.device("cpu"), torch.Generator().manual_seed(7 + s)))
    batched_agents = [copy.deepcopy(a) for a in single]
    gens = [torch.Generator().manual_seed(7 + s) for s in seeds]
    buffers = [_buffer(s) for s in seeds]
    stacked = StackedSAC(batched_agents)
    for _ in range(100):
        outs = [a.update(buf, 0) for a, buf in zip(single, buffers)]
        out = stacked.update(buffers, gens)
        for key in outs[0]:
            assert torch.allclose(out[key], torch.stack([o[key] for o in outs]), rtol=1e-4, atol=1e-5), key
    stacked.write_back()
    for a, b in zip(single, batched_agents):
        assert a.n_updates == b.n_updates == 100
        for name in ("actor", "critic", "critic_target", "temperature"):
            for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
                assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
    assert all(torch.equal(a.gen.get_state(), g.get_state()) for a, g in zip(single, gens))
    obs = torch.randn(3, OBS)
    want = torch.stack([a.act(obs[i], explore=False) for i, a in enumerate(single)])
    assert torch.allclose(stacked.act(obs, None), want, atol=1e-5)


def test_droq_and_redq_keep_one_seed_a_job():
    from methods.control.sac import Config, SACAgent
    from methods.control.seed_batch import StackedSAC

    for cfg in (Config(hidden=HID, critic_dropout=0.01), Config(hidden=HID, n_critics=10, target_subset=2)):
        agent = SACAgent(cfg, OBS, ACT, 1.0, torch.device("cpu"), torch.Generator().manual_seed(0))
        with pytest.raises(ValueError, match="without critic dropout"):
            StackedSAC([agent])
