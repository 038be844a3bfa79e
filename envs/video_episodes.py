"""The episodes VPDD learns from, as the setup job writes them (envs/vpdd_data.py), and the
windows its stages cut from them.

An episode is a run of rendered frames (actions and the expert's gripper command beside them
for demonstrations; none for the actionless videos) and one text (the task's instruction or the
video's caption). A *window* ending at step t is the ``frames`` frames up to and including t,
the first frame repeated where the episode is shorter: the clip the policy sees at t (history),
and, ``future_offset`` steps later, the clip the video model predicts (VPDD: 20 steps ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMOS_FILE = "demos.npz"
ACTIONLESS_FILE = "actionless.npz"


@dataclass
class Episodes:
    frames: np.ndarray  # [S, H, W, 3] uint8, episodes back to back
    starts: np.ndarray  # [E] first frame of each episode
    lengths: np.ndarray  # [E]
    texts: list[str]  # [E] instruction (demonstrations) or caption (actionless videos)
    task: np.ndarray  # [E] task index (actionless videos: their source's index)
    heldout: np.ndarray  # [E] bool: kept out of training (the video-quality evaluation's clips)
    actions: np.ndarray | None = None  # [S, 4] the executed actions (demonstrations only)
    expert_gripper: np.ndarray | None = None  # [S] the scripted expert's noise-free gripper command
    task_names: list[str] | None = None  # [K] the environments' names by task index (demonstrations)

    @property
    def n_episodes(self) -> int:
        return len(self.starts)

    def window(self, episode: int, t: int, frames: int) -> np.ndarray:
        """Frame indices ``[frames]`` of the window ending at step ``t`` of ``episode``."""
        t = min(max(t, 0), int(self.lengths[episode]) - 1)
        steps = np.clip(np.arange(t - frames + 1, t + 1), 0, None)
        return int(self.starts[episode]) + steps

    def steps(self, episodes: np.ndarray | list[int]) -> np.ndarray:
        """``[n, 2]`` (episode, t) for every step of the given episodes."""
        rows = [np.stack([np.full(int(self.lengths[e]), e), np.arange(int(self.lengths[e]))], 1) for e in episodes]
        return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)

    def first_episodes_per_task(self, per_task: int) -> np.ndarray:
        """The first ``per_task`` training (not held-out) episodes of each task, in order."""
        out = []
        for task in np.unique(self.task):
            ids = np.flatnonzero((self.task == task) & ~self.heldout)
            out.extend(ids[:per_task].tolist())
        return np.asarray(sorted(out), dtype=np.int64)

    def to_npz(self) -> dict[str, np.ndarray]:
        arrays = {
            "frames": self.frames,
            "starts": self.starts,
            "lengths": self.lengths,
            "texts": np.asarray(self.texts),
            "task": self.task,
            "heldout": self.heldout,
        }
        if self.actions is not None:
            arrays["actions"] = self.actions
            arrays["expert_gripper"] = self.expert_gripper
        if self.task_names is not None:
            arrays["task_names"] = np.asarray(self.task_names)
        return arrays

    @classmethod
    def from_npz(cls, path: Path) -> Episodes:
        with np.load(path, allow_pickle=False) as f:
            return cls(
                frames=f["frames"],
                starts=f["starts"],
                lengths=f["lengths"],
                texts=[str(t) for t in f["texts"]],
                task=f["task"],
                heldout=f["heldout"].astype(bool),
                actions=f["actions"] if "actions" in f else None,
                expert_gripper=f["expert_gripper"] if "expert_gripper" in f else None,
                task_names=[str(t) for t in f["task_names"]] if "task_names" in f else None,
            )


def load_demonstrations(assets_dir: Path) -> Episodes:
    return Episodes.from_npz(Path(assets_dir) / DEMOS_FILE)


def load_actionless(assets_dir: Path) -> Episodes:
    return Episodes.from_npz(Path(assets_dir) / ACTIONLESS_FILE)
