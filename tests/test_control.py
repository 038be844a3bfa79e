"""Continuous-control core and the NE / OMNet mechanisms (docs/papers/ne.md, docs/papers/omnet.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from control_helpers import PENDULUM, agent_of, filled_buffer, tiny
from envs.control import ControlTask
from methods.common.replay import ReplayBuffer
from methods.common.runapi import MemoryRun
from methods.control import ne, omnet, plasticity, redq, sac, td3
from resume import preempted_then_resumed


# ----------------------------------------------------------------------------- replay / envs
def test_replay_wraps_and_samples_the_oldest_fraction():
    buf = ReplayBuffer(10, 1, 1)
    for i in range(15):
        buf.add(np.array([i]), np.array([0.0]), float(i), np.array([i + 1]), False)
    assert len(buf) == 10 and sorted(buf.data["reward"].tolist()) == list(map(float, range(5, 15)))
    b = buf.sample_oldest(500, 0.3, torch.Generator().manual_seed(0))
    assert set(b["reward"].tolist()) == {5.0, 6.0, 7.0}  # the 3 oldest of 10
    state = buf.state_dict()
    other = ReplayBuffer(10, 1, 1)
    other.load_state_dict(state)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(buf.sample(8, g1)["obs"], other.sample(8, g2)["obs"])


def test_env_factory_gym_and_dmc():
    pend = ControlTask(**PENDULUM)
    assert (pend.obs_dim, pend.act_dim, pend.max_action) == (3, 1, 2.0)
    pend.check_steps()
    dmc = ControlTask(suite="dmc", task="cartpole-balance")
    assert (dmc.obs_dim, dmc.act_dim, dmc.max_action) == (5, 1, 1.0)  # position 3 + velocity 2
    env = dmc.make(0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (5,)
    with pytest.raises(ValueError, match="suite"):
        ControlTask(suite="atari", task="Pong")


CYCLE = {"suite": "cycle", "task": "Pendulum-v1,MountainCarContinuous-v0", "cycle_steps": 30}


def test_cycle_switches_every_cycle_steps_pads_and_scales():
    task = ControlTask(**CYCLE)
    assert (task.obs_dim, task.act_dim, task.max_action) == (3, 1, 1.0)  # max(3, 2) obs, act 1
    env = task.make(0)
    obs, info = env.reset(seed=0)
    seen, switches, t = [], [], 0
    while t < 95:
        obs, r, term, trunc, info = env.step(np.ones(1, np.float32))
        t += 1
        seen.append(info["task_index"])
        if info["task_index"] == 1:
            assert obs[2] == 0.0  # MountainCar obs (2) zero-padded to 3
        if term or trunc:
            switches.append((t, trunc))
            obs, info = env.reset()
    # the task follows the step count: 30 Pendulum, 30 MountainCar, 30 Pendulum, ...
    assert seen == [(i // 30) % 2 for i in range(95)]
    assert (30, True) in switches and (60, True) in switches and (90, True) in switches
    # the action in [-1, 1] is scaled to the running task's bounds (Pendulum: +-2)
    env.freeze(0)
    env.reset(seed=1)
    inner = env.envs[0]._env.unwrapped
    env.step(np.array([0.5], np.float32))
    assert inner.last_u == pytest.approx(1.0)
    # evaluation after step s uses the task trained at step s - 1, frozen
    assert task.phase_at(29) == 0 and task.phase_at(30) == 1 and task.phase_at(61) == 0
    ev = task.make_eval(5, 60)
    assert ev.phase() == 1 and task.eval_info(60) == {"task_index": 1.0}
    with pytest.raises(ValueError, match="cycle_steps"):
        ControlTask(suite="gym", task="Pendulum-v1", cycle_steps=10)
    with pytest.raises(ValueError, match="cycle_steps"):
        ControlTask(suite="cycle", task="Pendulum-v1,MountainCarContinuous-v0")


def test_cycle_training_resumes_exactly_across_switches():
    cfg = tiny(td3, env_kwargs=CYCLE, iterations=240, eval_every=30, checkpoint_every=60, start_steps=50)
    full = MemoryRun(seed=1)
    td3.train(cfg, full)
    assert [r["task_index"] for r in full.rows] == [0.0, 1.0] * 4
    part, _ = preempted_then_resumed(td3.train, cfg, seed=1, checkpoints=2)
    assert untimed(part.rows) == untimed(full.rows)


# -------------------------------------------------------------------------------- TD3 / SAC
def test_td3_target_clipped_double_q_and_smoothing():
    cfg = tiny(td3, policy_noise=0.0)
    agent, task = agent_of(td3, cfg)
    b = filled_buffer(task).sample(32, torch.Generator().manual_seed(0))
    y = agent.td_target(b)
    with torch.no_grad():
        q = agent.critic_target(b["next_obs"], agent.actor_target(b["next_obs"])).min(0).values
    assert torch.allclose(y, b["reward"] + 0.99 * (1 - b["terminated"]) * q)
    # with huge noise every smoothed action stays within noise_clip * max_action of pi_targ(s')
    agent.cfg = tiny(td3, policy_noise=100.0)
    a0 = agent.actor_target(b["next_obs"])
    noise = (torch.randn(a0.shape, generator=torch.Generator().manual_seed(3)) * 200.0).clamp(-1.0, 1.0)
    assert float(noise.abs().max()) == pytest.approx(1.0)  # c * max_a = 0.5 * 2


def test_sac_subset_target_and_entropy_sign():
    cfg = tiny(redq)
    agent, task = agent_of(sac, cfg)
    assert len(agent.critic.members) == 10
    members = agent.target_members()
    assert members.numel() == 2 and members.unique().numel() == 2
    # entropy -log pi below the target -|A| (log pi = 5) raises alpha; above it lowers alpha
    for logp_value, direction in ((5.0, 1.0), (-5.0, -1.0)):
        before = float(agent.temperature.log_alpha.detach())
        logp = torch.full((16,), logp_value)
        loss = -(agent.temperature.log_alpha * (logp + agent.target_entropy)).mean()
        agent.optimizer_step(agent.alpha_opt, loss, agent.temperature)
        assert direction * (float(agent.temperature.log_alpha.detach()) - before) > 0


def untimed(rows):
    """Curve rows without wall-clock columns (``time_*``), as a comparable string."""
    return repr([{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows])


@pytest.mark.parametrize("mod", [td3, sac, ne])
def test_determinism_and_exact_resume(mod):
    cfg = tiny(mod, **({"delta": 50} if mod is ne else {}))
    a, b = MemoryRun(seed=3), MemoryRun(seed=3)
    mod.train(cfg, a)
    mod.train(cfg, b)
    assert untimed(a.rows) == untimed(b.rows)
    part, _ = preempted_then_resumed(mod.train, cfg, seed=3, checkpoints=1)
    assert untimed(part.rows) == untimed(a.rows)
    # over-training averages survive the resume: the mean of the logged evaluations
    stats = part.model["train_stats"]
    assert stats == a.model["train_stats"]
    assert stats["return_avg"] == pytest.approx(np.mean([r["return"] for r in a.rows if "return" in r]))
    assert "critic_active_ratio_avg" in stats


# ---------------------------------------------------------------------------- baselines
def test_plasticity_injection_keeps_outputs_and_redo_resets_dormant():
    cfg = tiny(td3)
    agent, task = agent_of(td3, cfg)
    inj = plasticity.InjectionAgent(
        cfg, task.obs_dim, task.act_dim, task.max_action, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    b = filled_buffer(task).sample(8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a0, q0 = inj.actor(b["obs"]), inj.critic(b["obs"], b["action"])
        inj.inject_now()
        assert torch.equal(inj.actor(b["obs"]), a0) and torch.equal(inj.critic(b["obs"], b["action"]), q0)
    redo_cfg = plasticity.ReDoConfig(**{**vars(cfg), "redo_interval": 1, "redo_tau": 10.0})
    redo = plasticity.ReDoAgent(
        redo_cfg, task.obs_dim, task.act_dim, task.max_action, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    redo.n_updates = 1
    out = redo.after_update(filled_buffer(task), 1)
    assert out["redo_units_reset"] == 16 * 2 + 16 * 2 * 2  # tau huge: every hidden unit


# ------------------------------------------------------------------------------------ OMNet
def test_single_network_and_high_utd_baselines():
    from methods.control import sac20, sin_droq, sin_sac

    one, _ = agent_of(sin_sac, tiny(sin_sac))
    assert len(one.critic.members) == 1
    drop, _ = agent_of(sin_droq, tiny(sin_droq))
    assert sin_droq.Config().critic_dropout == 0.01 and sin_droq.Config().critic_layernorm == "all"
    assert sum(isinstance(m, torch.nn.Dropout) for m in drop.critic.modules()) >= 1
    assert (sac20.Config().utd, sac20.Config().n_critics) == (20, 2)


def test_omnet_subnetworks_batched_equals_separate_and_masks_differ():
    cfg = tiny(omnet)
    agent, task = agent_of(omnet, cfg)
    critic = agent.critic
    b = filled_buffer(task).sample(8, torch.Generator().manual_seed(0))
    q_all = critic(b["obs"], b["action"])
    assert q_all.shape == (5, 8)
    x = torch.cat([b["obs"], b["action"]], -1)
    for k in range(5):
        h = x
        for j, layer in enumerate(critic.layers):
            h = layer(h, k)
            if j < len(critic.layers) - 1:
                h = torch.relu(h)
        assert torch.allclose(h.squeeze(-1), q_all[k], atol=1e-6)
    masks = critic.layers[1].masks
    assert 0.45 < float(masks.mean()) < 0.55
    assert not torch.equal(masks[0], masks[1])


# ----------------------------------------------------------------------------------- learning
def test_td3_learns_pendulum():
    """Calibrated on seeds 0-3 (2026-11-30): a random policy scores about -1,200 to -1,500 on
    Pendulum-v1; 7,000 steps of TD3 with 64-unit nets and lr 1e-3 reached -175 to -316 (SAC:
    -121 to -198, not tested here to keep the suite short). Threshold -600 leaves a margin."""
    cfg = tiny(
        td3,
        iterations=7000,
        eval_every=7000,
        checkpoint_every=7000,
        start_steps=1000,
        hidden=64,
        batch=64,
        eval_episodes=3,
        lr=1e-3,
    )
    run = MemoryRun(seed=1)
    td3.train(cfg, run)
    assert run.rows[-1]["return"] > -600


def _event_steps(mod, cfg, seed=0, stop_after=None):
    """Environment steps at which the agent's after_update fired an event (non-empty result)."""
    fired = []
    original = {
        "reset": plasticity.ResetAgent.after_update,
        "redo": plasticity.ReDoAgent.after_update,
        "pi": plasticity.InjectionAgent.after_update,
    }

    def spy(orig):
        def wrapped(self, buffer, step):
            out = orig(self, buffer, step)
            if out:
                fired.append(step)
            return out

        return wrapped

    plasticity.ResetAgent.after_update = spy(original["reset"])
    plasticity.ReDoAgent.after_update = spy(original["redo"])
    plasticity.InjectionAgent.after_update = spy(original["pi"])
    try:
        if stop_after is None:
            mod.train(cfg, MemoryRun(seed=seed))
        else:
            preempted_then_resumed(mod.train, cfg, seed, stop_after)
    finally:
        plasticity.ResetAgent.after_update = original["reset"]
        plasticity.ReDoAgent.after_update = original["redo"]
        plasticity.InjectionAgent.after_update = original["pi"]
    return fired


def test_plasticity_schedules_count_environment_steps():
    from methods.control import td3_pi, td3_redo, td3_reset

    # warm-up 100 steps and 2 updates per step: an update counter would fire at steps 200, 300, ...
    cfg = tiny(
        td3_reset, iterations=700, eval_every=700, checkpoint_every=300, start_steps=100, utd=2, reset_interval=200
    )
    assert _event_steps(td3_reset, cfg) == [200, 400, 600]
    # a preempted and resumed run fires the same events
    assert _event_steps(td3_reset, cfg, stop_after=1) == [200, 400, 600]
    cfg = tiny(td3_redo, iterations=500, eval_every=500, start_steps=100, utd=3, redo_interval=150)
    assert _event_steps(td3_redo, cfg) == [150, 300, 450]
    cfg = tiny(td3_pi, iterations=500, eval_every=500, start_steps=100, utd=2, inject_at=0.45)
    assert _event_steps(td3_pi, cfg) == [225]


def test_reset_at_every_switch_of_the_cycle_task():
    from methods.control import td3_reset

    cycle = {"suite": "cycle", "task": "Pendulum-v1,MountainCarContinuous-v0", "cycle_steps": 150}
    cfg = tiny(
        td3_reset,
        env_kwargs=cycle,
        iterations=600,
        eval_every=600,
        checkpoint_every=600,
        start_steps=100,
        reset_interval=150,
    )
    task = ControlTask(**cycle)
    # after `s` environment steps the next one belongs to task phase_at(s)
    switches = [s for s in range(1, 600) if task.phase_at(s) != task.phase_at(s - 1)]
    assert switches == [150, 300, 450]
    # no reset after the last step (it would leave fresh networks as the final model)
    assert _event_steps(td3_reset, cfg) == switches
