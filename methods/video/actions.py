"""VPDD's action tokens: continuous Meta-World actions (dx, dy, dz, gripper) as discrete tokens.

The position deltas are quantile-binned per dimension (the official code's discretiser, from
Trajectory Transformer: thresholds every ceil(n/N)-th sorted value plus the maximum; a value's
token is the last threshold it reaches; a token decodes to the middle of its bin), fitted on the
fine-tuning actions. The gripper is a token per value the scripted expert emits: the official code
lists the 10 values of Meta-World v2's experts; v3's are recomputed from the demonstrations
(``gripper_values``), and a value between two of them takes the nearer one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QuantileBins:
    """Per-dimension quantile bins; ``thresholds`` is ``[n_bins + 1, dim]``."""

    thresholds: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray, n_bins: int) -> QuantileBins:
        data = np.asarray(data, dtype=np.float64)
        per_bin = int(np.ceil(len(data) / n_bins))
        ordered = np.sort(data, axis=0)
        lower = ordered[::per_bin]
        # fewer points than bins: pad with the maximum so every token still has a bin
        if len(lower) < n_bins:
            lower = np.concatenate([lower, np.repeat(ordered[-1:], n_bins - len(lower), axis=0)])
        return cls(np.concatenate([lower[:n_bins], ordered[-1:]], axis=0))

    @property
    def n_bins(self) -> int:
        return len(self.thresholds) - 1

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.thresholds.shape[1])
        # thresholds ascend, so the last one reached is the count reached, minus one
        last = (x[None] >= self.thresholds[:, None]).sum(axis=0) - 1
        return np.clip(last, 0, self.n_bins - 1).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.clip(np.asarray(tokens, dtype=np.int64).reshape(-1, self.thresholds.shape[1]), 0, self.n_bins - 1)
        left = np.take_along_axis(self.thresholds, tokens, axis=0)
        right = np.take_along_axis(self.thresholds, tokens + 1, axis=0)
        return (left + right) / 2.0


def gripper_values(expert_gripper: np.ndarray, max_values: int) -> np.ndarray:
    """The distinct gripper commands of the scripted experts (rounded to 1e-4), at most
    ``max_values`` of them (the most frequent, sorted), as the token table."""
    values, counts = np.unique(np.round(np.asarray(expert_gripper, dtype=np.float64), 4), return_counts=True)
    if len(values) > max_values:
        values = np.sort(values[np.argsort(-counts, kind="stable")[:max_values]])
    return values


@dataclass
class ActionTokenizer:
    """(dx, dy, dz) by quantile bins, the gripper by its value table; tokens ``[..., 4]`` in [0, n_bins)."""

    position: QuantileBins
    gripper: np.ndarray  # sorted values, one token each

    @classmethod
    def fit(cls, actions: np.ndarray, expert_gripper: np.ndarray, n_bins: int) -> ActionTokenizer:
        table = gripper_values(expert_gripper, n_bins)
        return cls(QuantileBins.fit(np.asarray(actions)[:, :3], n_bins), table)

    @property
    def n_bins(self) -> int:
        return self.position.n_bins

    def encode(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float64)
        flat = a.reshape(-1, 4)
        pos = self.position.encode(flat[:, :3])
        grip = np.abs(flat[:, 3:4] - self.gripper[None]).argmin(axis=1)[:, None]
        return np.concatenate([pos, grip], axis=1).reshape(a.shape).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens, dtype=np.int64)
        flat = t.reshape(-1, 4)
        pos = self.position.decode(flat[:, :3])
        grip = self.gripper[np.clip(flat[:, 3], 0, len(self.gripper) - 1)][:, None]
        return np.concatenate([pos, grip], axis=1).reshape(t.shape).astype(np.float32)

    def state_dict(self) -> dict:
        return {"thresholds": self.position.thresholds.copy(), "gripper": self.gripper.copy()}

    @classmethod
    def from_state_dict(cls, state: dict) -> ActionTokenizer:
        return cls(QuantileBins(np.asarray(state["thresholds"])), np.asarray(state["gripper"]))
