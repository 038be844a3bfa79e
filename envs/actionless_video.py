"""Actionless, captioned video of other embodiments: the offline stand-in for VPDD's Ego4D human
videos (a documented deviation: Ego4D cannot be downloaded on an offline machine).

VPDD pre-trains its video model on human videos that have no actions, next to the robot
demonstrations. What matters for that role is video of *another* embodiment handling objects,
with a caption and no action labels. Two simulated sources from gymnasium-robotics give that:

* ``fetch``: the Fetch arm (a different robot, camera and scene from Meta-World's Sawyer) driven by
  short hand-written controllers on FetchPickAndPlace (move above the block, descend, close the
  gripper, carry it to the target), FetchPush (get behind the block, lower the closed gripper, push
  it to the target) and FetchReach (move the gripper to the target), with Gaussian action noise.
* ``adroit``: the 24-joint Shadow-like Adroit hand, the closest thing to a human hand we can
  simulate, on AdroitHandDoor, AdroitHandRelocate and AdroitHandHammer. An open-loop-in-the-fingers
  grasp motion: the arm moves the palm toward the object (damped least squares on the palm site's
  Jacobian over the arm joints), the fingers close along one flexion synergy, then the arm moves on
  (door: back toward where the palm started, i.e. pulling; ball: toward the floating target;
  hammer: up and down toward the nail); slowly varying random offsets on every joint target
  make each episode's motion different. The grasps seldom hold the object (no feedback from
  contact); the captions describe the motion, not a success.

Frames are rendered square (``render_size``, default twice the resolution, multisampling off),
centre-cropped and resized to ``resolution`` as the Meta-World frames are; the actions are
discarded. Each episode gets a caption from a few templates per task. Episodes alternate between
the sources (episode ``e`` uses ``sources[e % len(sources)]``) and, within a source, cycle through
its tasks in the order above; each is reset with its own seed (:func:`actionless_episode_seed`),
and the control noise is drawn from a generator seeded by it, so a collection is deterministic
given ``seed``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from envs.metaworld_video import center_square
from envs.offscreen import OffscreenRenderer, configure_headless_rendering

FETCH_TASKS = ("FetchPickAndPlace-v4", "FetchPush-v4", "FetchReach-v4")
ADROIT_TASKS = ("AdroitHandDoor-v1", "AdroitHandRelocate-v1", "AdroitHandHammer-v1")
SOURCES = {"fetch": FETCH_TASKS, "adroit": ADROIT_TASKS}
CAMERAS = {"fetch": "external_camera_0", "adroit": "fixed"}

CAPTIONS: dict[str, tuple[str, ...]] = {
    "FetchPickAndPlace-v4": (
        "a robot arm picks up a block and carries it to the target",
        "a robot gripper grasps a cube on the table and lifts it toward a red marker",
    ),
    "FetchPush-v4": (
        "a robot arm pushes a block to the target",
        "a robot gripper slides a cube across the table toward a red marker",
    ),
    "FetchReach-v4": (
        "a robot arm moves its gripper to a target point",
        "a robot gripper reaches toward a red marker above the table",
    ),
    "AdroitHandDoor-v1": (
        "a human-like hand reaches for a door handle, closes its fingers on it and pulls back",
        "a hand moves to the handle of a door and grips it",
    ),
    "AdroitHandRelocate-v1": (
        "a human-like hand reaches down to a ball on the table and closes its fingers",
        "a hand moves over a ball and then rises toward a green target",
    ),
    "AdroitHandHammer-v1": (
        "a human-like hand reaches for a hammer on the table and closes its fingers",
        "a hand moves over a hammer and then toward a nail in a board",
    ),
}

DEFAULT_FETCH_NOISE = 0.1  # std of the Gaussian noise on Fetch actions in [-1, 1]


def actionless_episode_seed(seed: int, episode: int) -> int:
    """Reset seed of episode ``episode`` of an actionless collection seeded ``seed``."""
    state = np.random.SeedSequence([int(seed), 0x5EED, int(episode)]).generate_state(1, dtype=np.uint32)
    return int(state[0] >> 1)


def _make_gym_env(env_id: str, max_steps: int):
    configure_headless_rendering()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Adroit's reward-version notice
        import gymnasium as gym
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        return gym.make(env_id, max_episode_steps=max_steps)


# ------------------------------------------------------------------------------------------------
# Fetch: hand-written controllers
# ------------------------------------------------------------------------------------------------


class FetchController:
    """Phase-based scripted controller for one Fetch episode (actions: gripper displacement in
    units of 5 cm, clipped to [-1, 1], and the finger command, +1 open / -1 closed)."""

    GAIN = 10.0
    ABOVE = 0.08  # height above the block before descending (m)
    TOL = 0.012

    def __init__(self, task: str):
        self.task = task
        self.phase = 0
        self.close_steps = 0

    def _move(self, grip: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.clip(self.GAIN * (target - grip), -1.0, 1.0)

    def __call__(self, obs: dict) -> np.ndarray:
        o, goal = obs["observation"], obs["desired_goal"]
        grip = o[:3]
        if self.task == "FetchReach-v4":
            return np.concatenate([self._move(grip, goal), [1.0]])
        block = o[3:6]
        if self.task == "FetchPush-v4":
            d = goal[:2] - block[:2]
            d = d / (np.linalg.norm(d) + 1e-8)
            behind = np.array([*(block[:2] - 0.06 * d), block[2]])
            if self.phase == 0:  # above the point behind the block
                target = behind + [0.0, 0.0, self.ABOVE]
                if np.linalg.norm(grip[:2] - target[:2]) < self.TOL:
                    self.phase = 1
            if self.phase == 1:  # down beside the table
                target = behind
                if abs(grip[2] - behind[2]) < self.TOL:
                    self.phase = 2
            if self.phase == 2:  # push through the block toward the goal
                target = np.array([*(grip[:2] + (goal[:2] - block[:2]) + 0.02 * d), block[2]])
                if np.linalg.norm(grip[:2] - block[:2]) > 0.12:  # lost it: start over
                    self.phase = 0
            return np.concatenate([self._move(grip, target), [-1.0]])
        # pick and place
        if self.phase == 0:  # above the block, fingers open
            target, fingers = block + [0.0, 0.0, self.ABOVE], 1.0
            if np.linalg.norm(grip[:2] - block[:2]) < self.TOL:
                self.phase = 1
        if self.phase == 1:  # descend onto it
            target, fingers = block.copy(), 1.0
            if abs(grip[2] - block[2]) < self.TOL:
                self.phase, self.close_steps = 2, 0
        if self.phase == 2:  # close
            target, fingers = block.copy(), -1.0
            self.close_steps += 1
            if self.close_steps >= 4:
                self.phase = 3
        if self.phase == 3:  # carry it to the goal
            target, fingers = goal.copy(), -1.0
            if np.linalg.norm(grip - block) > 0.06:  # dropped: start over
                self.phase = 0
        return np.concatenate([self._move(grip, target), [fingers]])


# ------------------------------------------------------------------------------------------------
# Adroit: reach-and-grasp motions
# ------------------------------------------------------------------------------------------------


class AdroitMotion:
    """Reach, grasp and move on for one Adroit episode; see the module docstring. Returns the
    env's normalised action (``ctrl = act_mean + a * act_rng``) in [-1, 1]."""

    REACH_STEPS = 25  # steps of reaching before the fingers start to close
    CLOSE_STEPS = 10  # steps over which they close
    DAMPING = 1e-2

    def __init__(self, env_id: str, unwrapped, rng: np.random.Generator, max_steps: int):
        import mujoco

        self._mj = mujoco
        self.env_id = env_id
        self.u = unwrapped
        m = unwrapped.model
        self.rng = rng
        names = [m.actuator(i).name for i in range(m.nu)]
        self.joint = np.array([m.actuator_trnid[i, 0] for i in range(m.nu)])
        self.qadr = np.array([m.jnt_qposadr[j] for j in self.joint])
        self.dofadr = np.array([m.jnt_dofadr[j] for j in self.joint])
        self.arm = np.array([n.startswith("A_AR") for n in names])
        finger = np.array([n[2:4] in ("FF", "MF", "RF", "LF", "TH") for n in names])
        # flexion joints close the hand; abduction (FF/MF/RF/LF J3, LFJ4, THJ4) only wiggles
        abduct = np.array([(n[4:] == "J3" and n[2:4] != "TH") or n in ("A_LFJ4", "A_THJ4") for n in names])
        self.flex = finger & ~abduct
        self.lo, self.hi = m.actuator_ctrlrange[:, 0].copy(), m.actuator_ctrlrange[:, 1].copy()
        self.palm = m.site("S_grasp").id
        # translations move the palm freely; rotations only a little, and never the roll (ARRz),
        # so that the palm keeps facing the object
        arm_names = [n for n, a in zip(names, self.arm) if a]
        self.arm_weight = np.array([1.0 if n.startswith("A_ART") else 0.0 if n == "A_ARRz" else 0.3 for n in arm_names])
        self.t = 0
        self.start_palm = None
        self.arm_target = None
        self.close_at = self.REACH_STEPS + int(rng.integers(0, 10))
        self.offset = np.zeros(m.nu)
        self.offset_target = np.zeros(m.nu)
        self.max_steps = max_steps

    def _object(self) -> np.ndarray:
        d, m = self.u.data, self.u.model
        if self.env_id == "AdroitHandDoor-v1":
            return d.site_xpos[m.site("S_handle").id].copy()
        return d.xpos[m.body("Object").id].copy()

    def _goal(self) -> np.ndarray:
        d, m = self.u.data, self.u.model
        if self.env_id == "AdroitHandRelocate-v1":
            return d.site_xpos[m.site("target").id].copy()
        if self.env_id == "AdroitHandHammer-v1":
            nail = d.site_xpos[m.site("S_target").id].copy()
            return nail + (0.0, 0.0, 0.08 if (self.t // 8) % 2 == 0 else 0.0)  # swing up and down
        return self.start_palm  # door: pull back toward where the palm started

    def __call__(self) -> np.ndarray:
        mj, m, d = self._mj, self.u.model, self.u.data
        palm = d.site_xpos[self.palm].copy()
        if self.start_palm is None:
            self.start_palm = palm.copy()
        grasping = self.t >= self.close_at
        target = self._goal() if self.t >= self.close_at + self.CLOSE_STEPS else self._object()
        # damped least squares on the arm joints
        jacp = np.zeros((3, m.nv))
        mj.mj_jacSite(m, d, jacp, None, self.palm)
        cols = self.dofadr[self.arm]
        J = jacp[:, cols] * self.arm_weight  # J W^(1/2): weighted damped least squares
        err = target - palm
        dq = self.arm_weight * (J.T @ np.linalg.solve(J @ J.T + self.DAMPING * np.eye(3), err))
        if self.arm_target is None:
            self.arm_target = d.qpos[self.qadr][self.arm].copy()
        # the arm's servo targets integrate the steps (so the servos' lag does not stall them)
        self.arm_target = np.clip(self.arm_target + np.clip(dq, -0.04, 0.04), self.lo[self.arm], self.hi[self.arm])
        ctrl = d.qpos[self.qadr].copy()
        ctrl[self.arm] = self.arm_target
        # fingers: open (0) -> closed (1) along one synergy
        closure = np.clip((self.t - self.close_at) / self.CLOSE_STEPS, 0.0, 1.0) if grasping else 0.0
        flex_ctrl = self.lo + (0.15 + 0.7 * closure) * (self.hi - self.lo)
        ctrl[self.flex] = flex_ctrl[self.flex]
        rest = ~self.arm & ~self.flex
        ctrl[rest] = 0.5 * (self.lo[rest] + self.hi[rest])
        # slowly varying random offsets (new target every 10 steps, low-passed)
        if self.t % 10 == 0:
            self.offset_target = self.rng.normal(0.0, 0.08, size=m.nu) * (self.hi - self.lo)
            self.offset_target[self.arm] *= 0.25
        self.offset += 0.2 * (self.offset_target - self.offset)
        ctrl = np.clip(ctrl + self.offset, self.lo, self.hi)
        self.t += 1
        return np.clip((ctrl - self.u.act_mean) / self.u.act_rng, -1.0, 1.0)


# ------------------------------------------------------------------------------------------------
# collection
# ------------------------------------------------------------------------------------------------


def collect_actionless_videos(
    n_episodes: int,
    max_steps: int = 50,
    resolution: int = 96,
    seed: int = 0,
    sources: tuple[str, ...] | list[str] = ("fetch", "adroit"),
    render_size: int | None = None,
    fetch_action_noise_std: float = DEFAULT_FETCH_NOISE,
) -> dict[str, np.ndarray]:
    """Captioned videos of scripted Fetch and Adroit episodes, without actions.

    Storage as :func:`envs.metaworld_video.collect_demonstrations` (flat over frames with
    per-episode offsets; frame ``t`` is the one observed before step ``t``), minus the actions:

    * ``frames`` uint8 ``[N, resolution, resolution, 3]``; ``step_episode``, ``step_index`` int32 ``[N]``
    * ``episode_starts``, ``episode_lengths``, ``episode_seeds`` int64 ``[E]``
    * ``episode_source`` str ``[E]`` (``fetch`` / ``adroit``), ``episode_env`` str ``[E]`` (env id),
      ``captions`` str ``[E]``, ``episode_success`` bool ``[E]`` (the env's own success flag at the
      end: ``is_success`` for Fetch, ``success`` for Adroit; for diagnostics only)
    * scalars ``resolution``, ``render_size``, ``max_steps``, ``seed``, ``fetch_action_noise_std``

    Every episode runs ``max_steps`` steps (Fetch and Adroit never terminate early)."""
    sources = tuple(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"unknown sources {unknown}; choose from {sorted(SOURCES)}")
    if n_episodes < 1 or max_steps < 1:
        raise ValueError("n_episodes and max_steps must be >= 1")
    render_size = int(render_size or 2 * resolution)
    envs: dict[str, tuple[Any, OffscreenRenderer]] = {}
    frames, step_episode, step_index = [], [], []
    ep_start, ep_len, ep_seed, ep_source, ep_env, captions, ep_success = [], [], [], [], [], [], []
    per_source = {s: 0 for s in sources}
    n_rows = 0
    try:
        for e in range(n_episodes):
            source = sources[e % len(sources)]
            tasks = SOURCES[source]
            env_id = tasks[per_source[source] % len(tasks)]
            per_source[source] += 1
            if env_id not in envs:
                env = _make_gym_env(env_id, max_steps)
                u = env.unwrapped
                cam = CAMERAS[source]
                envs[env_id] = (env, OffscreenRenderer(u.model, render_size, render_size, cam))
            env, renderer = envs[env_id]
            u = env.unwrapped
            s = actionless_episode_seed(seed, e)
            rng = np.random.default_rng(s)
            obs, _ = env.reset(seed=s)
            if source == "fetch":
                ctrl = FetchController(env_id)
            else:
                ctrl = AdroitMotion(env_id, u, rng, max_steps)
            info: dict = {}
            for t in range(max_steps):
                if source == "fetch":
                    u._render_callback()  # moves the target marker to the goal
                frames.append(center_square(renderer.render(u.data), resolution))
                step_episode.append(e)
                step_index.append(t)
                if source == "fetch":
                    act = ctrl(obs)
                    act = np.clip(act + rng.normal(0.0, fetch_action_noise_std, size=act.shape), -1.0, 1.0)
                else:
                    act = ctrl()
                obs, _, terminated, truncated, info = env.step(act.astype(np.float32))
                if terminated:
                    break
            n = len(frames) - n_rows
            ep_start.append(n_rows)
            ep_len.append(n)
            n_rows += n
            ep_seed.append(s)
            ep_source.append(source)
            ep_env.append(env_id)
            templates = CAPTIONS[env_id]
            captions.append(templates[int(rng.integers(len(templates)))])
            ep_success.append(bool(info.get("is_success", info.get("success", False))))
    finally:
        for env, renderer in envs.values():
            renderer.close()
            env.close()
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "step_episode": np.asarray(step_episode, dtype=np.int32),
        "step_index": np.asarray(step_index, dtype=np.int32),
        "episode_starts": np.asarray(ep_start, dtype=np.int64),
        "episode_lengths": np.asarray(ep_len, dtype=np.int64),
        "episode_seeds": np.asarray(ep_seed, dtype=np.int64),
        "episode_source": np.asarray(ep_source, dtype=str),
        "episode_env": np.asarray(ep_env, dtype=str),
        "captions": np.asarray(captions, dtype=str),
        "episode_success": np.asarray(ep_success, dtype=bool),
        "resolution": np.int64(resolution),
        "render_size": np.int64(render_size),
        "max_steps": np.int64(max_steps),
        "seed": np.int64(seed),
        "fetch_action_noise_std": np.float64(fetch_action_noise_std),
    }
