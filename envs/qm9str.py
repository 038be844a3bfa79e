"""QM9str (Shen et al. 2023, ``maxwshen/gflownet:exps/qm9str``).

Strings of L = 5 blocks over the 11 blocks of ``qm9str/block_qm9str_v1.json``
(C, O, N, C-F, C=O, C=C, C#C, benzene, cyclohexane, pyrrolidine, CCC = tokens 0..10), built
by the prepend-append MDP (``mdp="pa"``, default) or autoregressively (``mdp="ar"``); see
envs.sequences for the state encoding. Enumerable: 11^5 = 161,051 terminal strings.

Oracle: the complete lookup table ``block_qm9str_v1_s5.pkl`` (dict, 161,051 entries): each
key is the 5-character string of block indices over ``0123456789a`` (``a`` = block 10; first
character = first block), each value the raw MXMNet HOMO-LUMO-gap reward r (-2.77 .. 17.37).

Reward (Shen et al. / LS-GFN): R = max(r, 1e-3)^beta * c, c = 100 / max(max(r, 1e-3)^beta),
so max R = 100. ``beta`` defaults to 5 (Shen, LS-GFN); EGFN's QM9str runs use beta = 1 (its
logs and Table 2) — pass ``beta=1`` there. ``log_reward`` includes beta: train with the core's
``reward_beta = 1``.

Modes: ``mode_set="modes"`` (default) = the 805 top-0.5 % strings of ``qm9str/mode_info.pkl``
(verified to be exactly the 805 best raw rewards, r >= 9.13); ``"modes_div_threshold_05"`` (364)
and ``"modes_div_threshold_075"`` (37) are LS-GFN's diversity-filtered subsets. Modes are
numbered in sorted string order.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import torch

from envs.base import mode_lookup
from envs import data
from envs.sequences import SequenceMDP, shen_scale

TABLE_FILE = "qm9str/block_qm9str_v1_s5.pkl"
BLOCKS_FILE = "qm9str/block_qm9str_v1.json"
MODES_FILE = "qm9str/mode_info.pkl"
KEY_CHARS = "0123456789a"
N_BLOCKS, LENGTH = 11, 5
MODE_SETS = ("modes", "modes_div_threshold_05", "modes_div_threshold_075")


def key_to_int(key: str) -> int:
    return int(key, N_BLOCKS)  # '0'..'9','a' are the base-11 digits, first char most significant


def int_to_key(value: int) -> str:
    out = []
    for _ in range(LENGTH):
        out.append(KEY_CHARS[value % N_BLOCKS])
        value //= N_BLOCKS
    return "".join(reversed(out))


@lru_cache(maxsize=1)
def raw_rewards() -> np.ndarray:
    """Raw reward r of all 11^5 strings in base-11 order (float64, read-only)."""
    table = data.load(TABLE_FILE)
    r = np.full(N_BLOCKS**LENGTH, np.nan)
    for k, v in table.items():
        if len(k) != LENGTH or any(ch not in KEY_CHARS for ch in k):
            raise ValueError(f"{TABLE_FILE}: unexpected key {k!r}")
        r[key_to_int(k)] = float(v)
    if np.isnan(r).any():
        raise ValueError(f"{TABLE_FILE}: {int(np.isnan(r).sum())} strings missing")
    r.setflags(write=False)
    return r


@lru_cache(maxsize=1)
def blocks() -> list[str]:
    """SMILES of the 11 blocks, by token id."""
    with open(data.fetch(BLOCKS_FILE)) as f:
        d = json.load(f)
    return [d["block_smi"][str(i)] for i in range(N_BLOCKS)]


@lru_cache(maxsize=1)
def mode_info() -> dict[str, tuple[int, ...]]:
    info = data.load(MODES_FILE)
    return {k: tuple(sorted(key_to_int(s) for s in info[k])) for k in MODE_SETS}


class QM9Str(SequenceMDP):
    name = "qm9str"

    def __init__(
        self,
        mdp: str = "pa",
        beta: float = 5.0,
        reward_max: float = 100.0,
        reward_min: float = 1e-3,
        mode_set: str = "modes",
    ):
        if mode_set not in MODE_SETS:
            raise ValueError(f"qm9str: mode_set must be one of {MODE_SETS} (got {mode_set!r})")
        if beta <= 0:
            raise ValueError(f"qm9str: beta must be > 0 (got {beta})")
        super().__init__(vocab_size=N_BLOCKS, length=LENGTH, mdp=mdp, enumerable=True)
        self.beta, self.reward_max, self.reward_min = float(beta), float(reward_max), float(reward_min)
        self.mode_set = mode_set
        self.r = raw_rewards()
        R, self.scale = shen_scale(self.r, self.beta, self.reward_max, self.reward_min, clip_first=True)
        self._log_r = torch.as_tensor(np.log(R), dtype=torch.float32)
        self.modes = mode_info()[mode_set]
        self._mode_lut = mode_lookup(self.modes, N_BLOCKS**LENGTH)

    @property
    def n_modes(self) -> int:
        return len(self.modes)

    def kwargs(self) -> dict:
        return {
            "mdp": self.mdp,
            "beta": self.beta,
            "reward_max": self.reward_max,
            "reward_min": self.reward_min,
            "mode_set": self.mode_set,
        }

    def _terminal_log_reward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._log_r[self.tokens_value(tokens).cpu()].to(tokens.device)

    def _terminal_mode_index(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._mode_lut[self.tokens_value(tokens).cpu()].to(tokens.device)

    def smiles_blocks(self, states: torch.Tensor) -> list[list[str]]:
        """Block SMILES of each state's tokens (for diversity metrics)."""
        smi = blocks()
        n = self.lengths(states).tolist()
        return [[smi[t] for t in row[:k]] for row, k in zip(states[:, : self.length].tolist(), n)]

    def info(self) -> dict:
        out = super().info()
        out.update(
            oracle=TABLE_FILE, reward_scale=self.scale, mode_raw_reward_min=float(self.r[list(self.modes)].min())
        )
        return out
