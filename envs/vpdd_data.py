"""VPDD's data, made by the setup job once per setting and shared by every method and seed:
Meta-World v3 demonstrations from the scripted experts with Gaussian action noise (the QueST
collection the official README points to) and the actionless "human" videos' offline substitute
(envs/actionless_video.py: cross-embodiment Fetch and Adroit hand videos with captions).

``write_assets`` renders both headless (EGL, software rendering) and writes ``demos.npz`` and
``actionless.npz`` (envs/video_episodes.py) before ``info.json``: the expert's success rate, the
counts and the simulator versions. The last ``heldout_per_task`` demonstrations of each task are
kept out of every training stage: the video model's predicted clips are scored on them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from envs.base import package_versions, write_env_assets
from envs.video_episodes import ACTIONLESS_FILE, DEMOS_FILE, Episodes


class MetaWorldVideo:
    """Registered as ``metaworld_video``; its keyword arguments are the data set's settings."""

    def __init__(
        self,
        tasks: list[str] | tuple[str, ...] = ("reach-v3",),
        demos_per_task: int = 20,
        heldout_per_task: int = 2,
        max_demo_steps: int = 200,
        action_noise: float = 0.2,
        stop_on_success_after: int = 10,
        resolution: int = 96,
        render_size: int = 480,
        actionless_episodes: int = 0,
        actionless_steps: int = 60,
        actionless_sources: list[str] | tuple[str, ...] = ("fetch", "adroit"),
        seed: int = 0,
    ):
        from envs.metaworld_video import TASK_PROMPTS

        unknown = [t for t in tasks if t not in TASK_PROMPTS]
        if unknown:
            raise ValueError(f"unknown Meta-World v3 task(s) {unknown}; known: {', '.join(sorted(TASK_PROMPTS))}")
        if demos_per_task < 1 or heldout_per_task < 0 or max_demo_steps < 1 or actionless_episodes < 0:
            raise ValueError(
                "demos_per_task >= 1, heldout_per_task >= 0, max_demo_steps >= 1, actionless_episodes >= 0"
            )
        self.tasks = list(tasks)
        self.demos_per_task, self.heldout_per_task = demos_per_task, heldout_per_task
        self.max_demo_steps, self.action_noise = max_demo_steps, action_noise
        self.stop_on_success_after = stop_on_success_after
        self.resolution, self.render_size = resolution, render_size
        self.actionless_episodes, self.actionless_steps = actionless_episodes, actionless_steps
        self.actionless_sources = list(actionless_sources)
        self.seed = seed

    def check_steps(self) -> None:
        """The render libraries are there and one task renders a frame."""
        from envs.metaworld_video import RenderedMetaWorld
        from envs.offscreen import check_render_libraries

        check_render_libraries()
        env = RenderedMetaWorld(self.tasks[0], self.resolution, self.render_size, max_episode_steps=3)
        try:
            env.reset(self.seed)
            env.step(np.zeros(4))
            frame = env.render()
            if frame.shape != (self.resolution, self.resolution, 3) or frame.std() == 0:
                raise RuntimeError(f"metaworld_video: bad frame {frame.shape} (std {frame.std():.3g})")
        finally:
            env.close()

    def demonstrations(self) -> tuple[Episodes, dict]:
        from envs.metaworld_video import collect_demonstrations

        per_task = self.demos_per_task + self.heldout_per_task
        d = collect_demonstrations(
            self.tasks,
            per_task,
            max_steps=self.max_demo_steps,
            action_noise_std=self.action_noise,
            resolution=self.resolution,
            render_size=self.render_size,
            seed=self.seed,
            stop_on_success_after=self.stop_on_success_after,
        )
        n = len(d["episode_starts"])
        index_in_task = np.arange(n) % per_task  # episodes come task by task
        episodes = Episodes(
            frames=d["frames"],
            starts=d["episode_starts"],
            lengths=d["episode_lengths"],
            texts=[str(d["task_prompts"][k]) for k in d["episode_task"]],
            task=d["episode_task"],
            heldout=index_in_task >= self.demos_per_task,
            actions=d["actions"],
            expert_gripper=d["expert_actions"][:, 3],
            task_names=[str(t) for t in d["task_names"]],
        )
        stats = {
            "expert_success_rate": float(d["success_rate"]),
            "expert_task_success_rate": dict(zip(self.tasks, map(float, d["task_success_rate"]))),
            "demo_steps": int(len(d["frames"])),
        }
        return episodes, stats

    def actionless(self) -> Episodes:
        if self.actionless_episodes == 0:
            empty = np.zeros(0, np.int64)
            frames = np.zeros((0, self.resolution, self.resolution, 3), np.uint8)
            return Episodes(frames, empty, empty, [], empty, np.zeros(0, bool))
        from envs.actionless_video import collect_actionless_videos

        v = collect_actionless_videos(
            self.actionless_episodes,
            self.actionless_steps,
            self.resolution,
            self.seed,
            sources=tuple(self.actionless_sources),
        )
        return Episodes(
            frames=v["frames"],
            starts=v["episode_starts"],
            lengths=v["episode_lengths"],
            texts=[str(c) for c in v["captions"]],
            task=np.asarray([self.actionless_sources.index(str(x)) for x in v["episode_source"]], dtype=np.int64),
            heldout=np.zeros(len(v["episode_starts"]), bool),
        )

    def write_assets(self, out_dir: str | Path) -> dict:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        demos, stats = self.demonstrations()
        actionless = self.actionless()
        for name, episodes in ((DEMOS_FILE, demos), (ACTIONLESS_FILE, actionless)):
            tmp = out / f".{name}.tmp.npz"
            np.savez_compressed(tmp, **episodes.to_npz())
            os.replace(tmp, out / name)
        info = {
            "env": "metaworld_video",
            "tasks": self.tasks,
            "demonstrations": int(demos.n_episodes),
            "heldout": int(demos.heldout.sum()),
            "actionless_videos": int(actionless.n_episodes),
            "actionless_captions": sorted(set(actionless.texts)),
            **stats,
            "versions": package_versions("metaworld", "mujoco", "gymnasium-robotics"),
        }
        return write_env_assets(out, info)
