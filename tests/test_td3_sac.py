"""Mechanism tests of the TD3 and SAC updates that the continuous-control papers build on
(target policy smoothing, delayed actor updates, the entropy term of SAC's target). Each was
a surviving mutant of tests/mutants.py before it had a test."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from methods.common.replay import ReplayBuffer
from methods.control import sac, td3

OBS, ACT = 3, 1
TASK = SimpleNamespace(obs_dim=OBS, act_dim=ACT, max_action=1.0)


def _batch(n: int = 512) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"next_obs": torch.randn(n, OBS, generator=g), "reward": torch.zeros(n), "terminated": torch.zeros(n)}


class ZeroActor(nn.Module):
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], ACT)


class ActionSumCritics(nn.Module):
    """Two 'critics' that both return sum(a): the target then reads off the target action."""

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return act.sum(-1)[None].expand(2, -1)


class ZeroCritics(nn.Module):
    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.zeros(2, obs.shape[0])


def _agent(mod, **kw):  # noqa: ANN001, ANN003, ANN202
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    return mod.make_agent(mod.Config(**kw), TASK, torch.device("cpu"), gen)


def test_td3_target_policy_noise_is_clipped():
    """a' = clip(pi'(s') + clip(eps, -c, c), -m, m) with eps ~ N(0, sigma^2): with sigma huge
    and c = 0.5 every target action lies in [-0.5, 0.5], and the noise is really there."""
    agent = _agent(td3, policy_noise=100.0, noise_clip=0.5)
    agent.actor_target, agent.critic_target = ZeroActor(), ActionSumCritics()
    y = agent.td_target(_batch())
    a_next = y / agent.cfg.gamma
    assert float(a_next.abs().max()) <= 0.5 + 1e-6
    assert float((a_next.abs() > 0.49).float().mean()) > 0.9  # sigma >> c: nearly all clipped


def _filled_buffer(n: int = 300) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(n, OBS, ACT)
    for _ in range(n):
        buf.add(rng.normal(size=OBS), rng.uniform(-1, 1, ACT), rng.normal(), rng.normal(size=OBS), False)
    return buf


def _params(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_td3_actor_and_targets_move_only_every_policy_delay_updates():
    agent = _agent(td3, policy_delay=3, hidden=16)
    buf = _filled_buffer()
    actor, actor_t, critic_t = _params(agent.actor), _params(agent.actor_target), _params(agent.critic_target)
    for _ in range(2):
        critic = _params(agent.critic)
        agent.update(buf, 0)
        assert not _same(critic, _params(agent.critic))  # the critic learns every update
        assert _same(actor, _params(agent.actor)) and _same(actor_t, _params(agent.actor_target))
        assert _same(critic_t, _params(agent.critic_target))
    agent.update(buf, 0)  # the 3rd: delayed step
    assert not _same(actor, _params(agent.actor))
    assert not _same(actor_t, _params(agent.actor_target))
    assert not _same(critic_t, _params(agent.critic_target))


@pytest.mark.parametrize("init_alpha", [0.1, 2.0])
def test_sac_target_carries_the_entropy_term(init_alpha):
    """y = r + gamma (1 - d) (min_j Qbar_j(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s'):
    with the critics at zero, y is exactly -gamma alpha log pi of the sampled action."""
    agent = _agent(sac, init_alpha=init_alpha, hidden=16)
    agent.critic_target = ZeroCritics()
    b = _batch(64)
    state = agent.gen.get_state()
    y = agent.td_target(b)
    agent.gen.set_state(state)
    with torch.no_grad():
        _, logp = agent.actor(b["next_obs"], gen=agent.gen)
    expected = -agent.cfg.gamma * init_alpha * logp
    assert torch.allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert float(y.abs().max()) > 0
