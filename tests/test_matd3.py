"""Multi-agent MuJoCo, MATD3 and Kaleidoscope on MATD3: the env wrapper, n-step returns, the
TD target, the sequential actor update with its Polyak quirk, the masked actor and critic
ensemble (heads, resets, diversity coefficients, FLOPs), determinism and exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from envs.mamujoco import MaMuJoCoTask
from methods.common.replay import NStepWriter
from methods.common.runapi import MemoryRun
from methods.marl.actor_critic import kaleidoscope_matd3 as kmatd3
import methods
from methods.marl.actor_critic import matd3, matd3_seps
from methods.marl.seps_clusters import agent_clusters, uniform_box_actions
from methods.marl.actor_critic.actors import linear_flops

ENV = {"scenario": "HalfCheetah", "agent_conf": "2x3", "agent_obsk": 0, "episode_limit": 30}
TINY = dict(
    env_kwargs=ENV,
    iterations=120,
    eval_every=60,
    checkpoint_every=30,
    eval_episodes=1,
    batch=16,
    buffer_size=200,
    hidden=16,
    start_steps=30,
    train_interval=10,
    updates_per_train=3,
    n_step=3,
)
SEPS_TINY = dict(seps_pretrain_steps=60, seps_vae_updates=5)


def test_mamujoco_task_parallel_api_and_arrays() -> None:
    task = MaMuJoCoTask(**ENV)
    assert (task.n_agents, task.obs_dim, task.act_dim, task.state_dim) == (2, 11, 3, 17)
    obs, _ = task.reset(seed=3)
    assert sorted(obs) == task.possible_agents
    a = task.reset_arrays(seed=3)
    b = MaMuJoCoTask(**ENV).reset_arrays(seed=3)
    np.testing.assert_array_equal(a, b)  # seeded resets are reproducible
    acts = np.full((2, 3), 0.3, dtype=np.float32)
    steps = 0
    while True:
        obs, r, term, trunc = task.step_arrays(acts)
        steps += 1
        assert obs.shape == (2, 11) and math.isfinite(r)
        if term or trunc:
            break
    assert trunc and steps == ENV["episode_limit"]
    hopper = MaMuJoCoTask("Hopper", "3x1", episode_limit=10)
    assert hopper.n_agents == 3 and hopper.act_dim == 1
    with pytest.raises(ValueError, match="scenario"):
        MaMuJoCoTask("Walker2d6x1")


def test_walker2d_6x1_gives_each_joint_its_own_agent() -> None:
    """The custom factorisation (not shipped by gymnasium-robotics): 6 agents, one actuator
    each, in the single-agent env's actuator order."""
    task = MaMuJoCoTask("Walker2d", "6x1", episode_limit=10)
    assert (task.n_agents, task.act_dim, task.state_dim) == (6, 1, 17)
    labels = [[node.label for node in part] for part in task._env.agent_action_partitions]
    assert labels == [
        ["thigh_joint"],
        ["leg_joint"],
        ["foot_joint"],
        ["thigh_left_joint"],
        ["leg_left_joint"],
        ["foot_left_joint"],
    ]
    task.reset_arrays(seed=0)
    acts = np.zeros((6, 1), dtype=np.float32)
    acts[2, 0] = 0.7  # agent 2 drives the right foot only
    task.step_arrays(acts)
    np.testing.assert_allclose(task._env.single_agent_env.unwrapped.data.ctrl, [0, 0, 0.7, 0, 0, 0], atol=1e-6)


def test_n_step_writer_on_a_hand_made_episode() -> None:
    w = NStepWriter(3, 0.5, ("obs",), ("next_obs",))
    out = []
    for t, r in enumerate([1.0, 2.0, 3.0, 4.0]):
        out += w.push({"obs": t, "next_obs": t + 1, "reward": r, "terminated": t == 3, "done": t == 3})
    assert [o["obs"] for o in out] == [0, 1, 2, 3]
    # R_0 = 1 + .5*2 + .25*3, bootstrap from s_3 with γ^3; R_1 = 2 + .5*3 + .25*4 from s_4 (terminal)
    assert [o["reward"] for o in out] == [2.75, 4.5, 5.0, 4.0]
    assert [o["next_obs"] for o in out] == [3, 4, 4, 4]
    assert [o["discount"] for o in out] == [0.125, 0.125, 0.25, 0.5]
    assert [o["terminated"] for o in out] == [0.0, 1.0, 1.0, 1.0]
    assert not w.pending


def _learner(cls=matd3.MATD3Learner, cfg_cls=matd3.Config, **kw):
    cfg = cfg_cls(**{**TINY, **kw})
    task = MaMuJoCoTask(**ENV)
    torch.manual_seed(0)
    return cls(cfg, task, torch.device("cpu"), torch.Generator().manual_seed(0)), task


def _batch(task: MaMuJoCoTask, B: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n, d, a, s = task.n_agents, task.obs_dim, task.act_dim, task.state_dim
    return {
        "obs": torch.randn(B, n, d, generator=g),
        "state": torch.randn(B, s, generator=g),
        "actions": torch.rand(B, n, a, generator=g) * 2 - 1,
        "reward": torch.randn(B, generator=g),
        "next_obs": torch.randn(B, n, d, generator=g),
        "next_state": torch.randn(B, s, generator=g),
        "terminated": torch.tensor([0.0, 1.0] * (B // 2)),
        "discount": torch.full((B,), 0.9**3),
    }


def test_td_target_is_the_n_step_return_plus_the_min_over_target_critics() -> None:
    learner, task = _learner(policy_noise=0.0, n_critics=3)
    b = _batch(task)
    with torch.no_grad():
        a_next = learner.actor_target(b["next_obs"]).flatten(1)
        q = learner.critic_target(b["next_state"], a_next)  # [3, B]
    expected = b["reward"] + b["discount"] * (1 - b["terminated"]) * q.min(0).values
    torch.testing.assert_close(learner.td_target(b), expected)


def test_policy_step_updates_each_agent_in_turn_and_polyaks_the_actor_target_n_times() -> None:
    learner, task = _learner(policy_freq=1, tau=0.1)
    before = [p.detach().clone() for p in learner.actor_target.parameters()]
    steps = []
    orig = learner.actor_opt.step
    learner.actor_opt.step = lambda *a, **k: (steps.append(1), orig(*a, **k))[1]
    learner.update(_batch(task))
    assert len(steps) == task.n_agents  # one Adam step per agent
    for p0, pt, p in zip(before, learner.actor_target.parameters(), learner.actor.parameters()):
        # n_agents Polyak moves: target = p + (1 - τ)^N (target_0 - p)
        torch.testing.assert_close(pt, p + (0.9**task.n_agents) * (p0 - p))
    learner2, _ = _learner(policy_freq=1, tau=0.1, target_actor_polyak_per_agent=False)
    before = [p.detach().clone() for p in learner2.actor_target.parameters()]
    learner2.update(_batch(task))
    for p0, pt, p in zip(before, learner2.actor_target.parameters(), learner2.actor.parameters()):
        torch.testing.assert_close(pt, p + 0.9 * (p0 - p))


def _actor_grads(learner, task, b) -> list[torch.Tensor]:
    """The actor's gradient of agent 0's step (update_actor, Adam's step skipped)."""
    grads = []
    learner.actor_opt.step = lambda *a, **k: grads.append(
        [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in learner.actor.parameters()]
    )
    learner.update_actor(b)
    return grads[0]


def test_actor_loss_takes_the_other_agents_actions_from_the_batch() -> None:
    """HARL's off_policy_ma_runner.train: a_{-i} are the replay batch's actions."""
    learner, task = _learner(others_actions="batch")
    b = _batch(task)
    seen = []
    critic = learner.critic
    learner.critic = lambda state, acts: (seen.append(acts.detach().clone()), critic(state, acts))[1]
    learner.actor_opt.step = lambda *a, **k: None
    learner.update_actor(b)
    a = task.act_dim
    for i, acts in enumerate(seen):
        joint = acts.view(acts.shape[0], task.n_agents, a)
        others = [j for j in range(task.n_agents) if j != i]
        torch.testing.assert_close(joint[:, others], b["actions"][:, others])


def test_baseline_actor_climbs_critic_one_only_and_kaleidoscope_the_mean() -> None:
    """HARL's get_values reads critic 1; changing critic 2 leaves the baseline actor's gradient."""
    learner, task = _learner(policy_freq=1)
    assert learner.cfg.actor_critics == "first" and not learner.cfg.critic_layernorm
    b = _batch(task)
    g1 = _actor_grads(learner, task, b)
    learner2, _ = _learner(policy_freq=1)
    with torch.no_grad():
        for p in learner2.critic.members[1].parameters():
            p.mul_(3.0)
    g2 = _actor_grads(learner2, task, b)
    for x, y in zip(g1, g2):
        torch.testing.assert_close(x, y)
    mean, _ = _learner(policy_freq=1, actor_critics="mean")
    with torch.no_grad():
        for p in mean.critic.members[1].parameters():
            p.mul_(3.0)
    g3 = _actor_grads(mean, task, b)
    assert any(not torch.allclose(x, y) for x, y in zip(g1, g3))
    assert kmatd3.Config().actor_critics == "mean" and kmatd3.Config().critic_layernorm


def test_kaleidoscope_actor_masks_per_agent_and_critic_heads_per_member() -> None:
    learner, task = _learner(kmatd3.KaleidoscopeMATD3Learner, kmatd3.Config)
    b = _batch(task)
    actor, critic = learner.actor, learner.critic
    full = actor(b["obs"])
    for i in range(task.n_agents):
        torch.testing.assert_close(full[:, i], actor.forward_agent(b["obs"][:, i], i))
    q = critic(b["state"], b["actions"].flatten(1))
    assert q.shape == (5, 8)
    # thresholds from [-20, 0]: the heads start as different random sub-networks
    assert not torch.allclose(q[0], q[1])
    density = [float(critic.layers[0].active_mask(k).float().mean()) for k in range(5)]
    assert all(0.2 < d < 0.95 for d in density)
    # the actor starts almost dense (S in [-10, -5])
    assert float(actor.layers[0].active_mask(0).float().mean()) > 0.95
    # adaptive coefficients: deques of 100·N (actor) and 100·policy_freq (critic)
    assert learner.actor_coef.maxlen == 100 * task.n_agents
    assert learner.critic_coef.maxlen == 100 * learner.cfg.policy_freq
    assert learner.inference_flops_per_agent() <= learner.dense_inference_flops_per_agent()


def test_kaleidoscope_critic_reset_redraws_one_member_in_turn() -> None:
    learner, _ = _learner(
        kmatd3.KaleidoscopeMATD3Learner, kmatd3.Config, iterations=1000, critic_reset_interval=100, reset_interval=0
    )
    before = [layer.threshold.detach().clone() for layer in learner.critic.layers]
    weights = [layer.weight.detach().clone() for layer in learner.critic.layers]
    assert learner.on_env_steps(100) == {}  # strictly more than R steps
    out = learner.on_env_steps(101)
    assert out == {"critic_reset_member": 0.0}
    for layer, s0, w0 in zip(learner.critic.layers, before, weights):
        changed = (layer.threshold != s0).flatten(1).any(1)
        assert changed.tolist() == [True, False, False, False, False]
        torch.testing.assert_close(layer.weight, w0)
    assert learner.on_env_steps(202)["critic_reset_member"] == 1.0
    assert learner.on_env_steps(950) == {}  # not within the last R steps


def test_kaleidoscope_actor_reset_only_touches_positions_every_mask_pruned() -> None:
    learner, _ = _learner(
        kmatd3.KaleidoscopeMATD3Learner,
        kmatd3.Config,
        iterations=10_000,
        reset_interval=100,
        reset_ratio=1.0,
        critic_reset_interval=0,
    )
    layer = learner.actor.layers[1]
    with torch.no_grad():
        layer.threshold[:, :4] = 5.0  # rows 0-3: every mask prunes them
    w0 = layer.weight.detach().clone()
    assert learner.on_env_steps(101)["actor_reset_positions"] > 0
    changed = layer.weight != w0
    assert changed[:4].all() and not changed[4:].any()


@pytest.mark.parametrize("scheme", ["fups", "nops", "multih", "snp_ps"])
def test_every_sharing_scheme_acts_per_agent_as_it_acts_jointly(scheme: str) -> None:
    learner, task = _learner(actor_net=scheme, obs_agent_id=scheme == "snp_ps")
    x = learner.inputs(_batch(task)["obs"])
    full = learner.actor(x)
    assert full.shape == (8, task.n_agents, task.act_dim)
    for i in range(task.n_agents):
        torch.testing.assert_close(full[:, i], learner.actor.forward_agent(x[:, i], i))
    if scheme != "fups":  # agents act differently on the same input
        same = x[:, :1].expand_as(x)
        assert not torch.allclose(learner.actor(same)[:, 0], learner.actor(same)[:, 1])


@pytest.mark.parametrize("scheme, own", [("nops", "nets"), ("multih", "heads")])
def test_an_agents_actor_step_leaves_the_other_agents_own_parameters_alone(scheme: str, own: str) -> None:
    """HARL steps one optimiser per agent; with one Adam over separate modules, agent 1's step
    must not move agent 0's network / head even once Adam has momentum for it."""
    learner, task = _learner(actor_net=scheme, policy_freq=1)
    b = _batch(task)
    for _ in range(2):
        learner.update(b)  # both agents stepped: Adam state for every parameter
    agent0 = [p.detach().clone() for p in getattr(learner.actor, own)[0].parameters()]
    agent1 = [p.detach().clone() for p in getattr(learner.actor, own)[1].parameters()]
    shared = [p.detach().clone() for n, p in learner.actor.named_parameters() if not n.startswith(own)]
    x = learner.inputs(b["obs"])
    with torch.no_grad():
        joint = learner.actor(x)
    a1 = learner.actor.forward_agent(x[:, 1], 1)
    loss = -learner.critic(b["state"], torch.stack([joint[:, 0], a1], 1).flatten(1)).mean()
    learner.actor_opt.zero_grad(set_to_none=True)
    loss.backward(inputs=list(learner.actor.parameters()))
    learner.actor_opt.step()
    for p, p0 in zip(getattr(learner.actor, own)[0].parameters(), agent0):
        torch.testing.assert_close(p, p0, rtol=0, atol=0)
    assert any(not torch.equal(p, p1) for p, p1 in zip(getattr(learner.actor, own)[1].parameters(), agent1))
    if shared:  # MultiH's trunk moves with every agent
        after = [p for n, p in learner.actor.named_parameters() if not n.startswith(own)]
        assert any(not torch.equal(p, p0) for p, p0 in zip(after, shared))


def test_snp_ps_actor_keeps_a_fixed_share_of_units_per_agent_and_counts_their_flops() -> None:
    learner, task = _learner(matd3.MATD3Learner, methods.load("matd3_snp").Config, hidden=16)
    actor = learner.actor
    assert actor.unit_masks.shape == (2, task.n_agents, 16)
    assert (actor.unit_masks.sum(-1) == 8).all()  # keep 0.5 of 16
    assert not torch.equal(actor.unit_masks[0, 0], actor.unit_masks[0, 1])
    # a hidden unit agent 0 has pruned in layer 1 does not affect agent 0's action
    x = learner.inputs(_batch(task)["obs"])[:, 0]
    before = actor.forward_agent(x, 0)
    pruned = int((actor.unit_masks[0, 0] == 0).nonzero()[0])
    with torch.no_grad():
        actor.fc1.weight[pruned] += 3.0
    torch.testing.assert_close(actor.forward_agent(x, 0), before)
    d, a = task.obs_dim + task.n_agents, task.act_dim  # SNP-PS feeds the one-hot id
    expected = (linear_flops(d, 8) + linear_flops(8, 8) + linear_flops(8, a)) / (
        linear_flops(d, 16) + linear_flops(16, 16) + linear_flops(16, a)
    )
    assert learner.diagnostics()["flops_ratio"] == pytest.approx(expected)
    nops, _ = _learner(matd3.MATD3Learner, methods.load("matd3_nops").Config)
    assert nops.diagnostics()["flops_ratio"] == pytest.approx(1.0)  # each agent runs one dense net


class MirroredPairTask:
    """A continuous team task of the arrays API whose agents 0 and 1 move the same way under an
    action and agent 2 the opposite way: SePS must put 0 and 1 in one cluster, 2 in another."""

    n_agents, obs_dim, act_dim, max_action = 3, 2, 2, 1.0

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def action_mask(self) -> np.ndarray:
        return np.ones((3, 2), dtype=np.float32)

    def reset_arrays(self, seed: int | None = None) -> np.ndarray:
        self.obs = np.random.default_rng(seed).normal(size=(3, 2)).astype(np.float32)
        return self.obs

    def step_arrays(self, actions: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        self.obs = (self.obs + np.array([[1.0], [1.0], [-1.0]]) * actions).astype(np.float32)
        return self.obs, 0.0, False, False


def test_seps_clusters_agents_by_their_transitions_under_random_box_actions() -> None:
    cfg = matd3_seps.Config(env_kwargs=ENV, seps_clusters=2, seps_pretrain_steps=400, seps_vae_updates=2000)
    for seed in (0, 1):  # the VAE's init comes from the global generator
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        assert agent_clusters(MirroredPairTask(), cfg, gen, uniform_box_actions).tolist() == [0, 0, 1]
    a = uniform_box_actions(MaMuJoCoTask(**ENV), torch.Generator().manual_seed(0))
    assert a.shape == (2, 3) and (np.abs(a) <= 1).all() and np.abs(a).max() > 0.5


def test_seps_actor_shares_one_network_per_cluster_and_steps_only_the_agents_cluster() -> None:
    learner, task = _learner(matd3_seps.SePSLearner, matd3_seps.Config, seps_clusters=1, **SEPS_TINY)
    assert learner.actor.clusters.tolist() == [0, 0] and len(learner.actor.nets) == 1  # K = 1: FuPS+ID
    learner, task = _learner(matd3_seps.SePSLearner, matd3_seps.Config, **SEPS_TINY)
    actor = learner.actor
    assert sorted(actor.clusters.tolist()) == [0, 1] and len(actor.nets) == 2  # 2 agents, K = 2: NoPS
    assert learner.diagnostics()["seps_clusters_used"] == 2.0
    x = learner.inputs(_batch(task)["obs"])
    torch.testing.assert_close(actor(x)[:, 1], actor.forward_agent(x[:, 1], 1))
    own = int(actor.clusters[1])
    before = [p.detach().clone() for p in actor.nets[1 - own].parameters()]
    actor.forward_agent(x[:, 1], 1).sum().backward()
    assert all(p.grad is None for p in actor.nets[1 - own].parameters())
    assert all(p.grad is not None for p in actor.nets[own].parameters())
    assert all(torch.equal(p, b) for p, b in zip(actor.nets[1 - own].parameters(), before))
    state = learner.state_dict()
    assert "clusters" in "".join(state["actor"])  # saved with the actor


def test_kaleidoscope_matd3_rejects_another_sharing_scheme() -> None:
    with pytest.raises(ValueError, match="actor_net"):
        kmatd3.Config(**{**TINY, "actor_net": "nops"})


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


@pytest.mark.parametrize(
    "module", [matd3, kmatd3, methods.load("matd3_nops"), methods.load("matd3_multih"), matd3_seps]
)
def test_matd3_is_deterministic_and_resumes_exactly(module) -> None:
    cfg = module.Config(**TINY, **(SEPS_TINY if module is matd3_seps else {}))
    a, b = MemoryRun(seed=4), MemoryRun(seed=4)
    module.train(cfg, a)
    module.train(cfg, b)
    assert _untimed(a.rows) == _untimed(b.rows)
    stopped = MemoryRun(seed=4, stop_after_checkpoints=1)
    with pytest.raises(Exception, match="stopped"):
        module.train(cfg, stopped)
    stopped._stop_after = None
    module.train(cfg, stopped)
    assert _untimed(stopped.rows) == _untimed(a.rows)
    for k in a.model["actor"]:
        torch.testing.assert_close(stopped.model["actor"][k], a.model["actor"][k])
    metrics = module.evaluate(cfg, a.model, 4)["metrics"]
    assert math.isfinite(metrics["test_return_mean"]) and "test_return_avg" in metrics
