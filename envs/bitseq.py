"""Bit sequences (Malkin et al. 2022, as used by QGFN ``yunglau/QGFN``).

Bit strings of n = 120 bits built from k-bit tokens (V = 2^k = 16 tokens, L = n/k = 30 steps);
token c stands for the k-bit big-endian binary of c ("0000", "0001", ..., "1111"). Default
MDP: autoregressive (``mdp="ar"``); QGFN's example config uses prepend-append (``mdp="pa"``).
See envs.sequences for the state encoding. Not enumerable (16^30 strings).

Modes: 60 strings, each a concatenation of n/8 = 15 words drawn from the vocabulary
H = {00000000, 11111111, 11110000, 00001111, 00111100}. Worked out (and tested against
``bitseq/modes.pkl`` from the QGFN repository): the word indices are
``numpy.random.default_rng(42).integers(0, 5, size=(60, 15))`` (row i = mode i, H in the
order above), so no data file is needed at run time.

Reward (QGFN): R(x) = exp(1 - d(x)/n)^beta with d(x) = min over modes of the Levenshtein
distance, beta = 3 (``log_reward`` includes beta: train with the core's ``reward_beta = 1``).
A terminal string "finds" mode i when it lies within edit distance ``mode_threshold`` = 28
of it; ``mode_index`` returns the first such mode, else -1.
"""

from __future__ import annotations

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from envs.sequences import SequenceMDP

WORDS = ("00000000", "11111111", "11110000", "00001111", "00111100")


def generate_modes(n: int = 120, n_modes: int = 60, seed: int = 42) -> list[str]:
    """The reference set: ``n_modes`` strings of n/8 words of WORDS, word indices drawn by
    ``numpy.random.default_rng(seed).integers(0, 5, (n_modes, n // 8))``."""
    w = len(WORDS[0])
    if n % w:
        raise ValueError(f"bitseq: n must be a multiple of {w} (got {n})")
    idx = np.random.default_rng(seed).integers(0, len(WORDS), size=(n_modes, n // w))
    return ["".join(WORDS[i] for i in row) for row in idx]


class BitSequence(SequenceMDP):
    name = "bitseq"

    def __init__(
        self,
        n: int = 120,
        k: int = 4,
        beta: float = 3.0,
        mdp: str = "ar",
        n_modes: int = 60,
        modes_seed: int = 42,
        mode_threshold: int = 28,
    ):
        if k < 1 or n % k:
            raise ValueError(f"bitseq: n must be a multiple of k >= 1 (got n={n}, k={k})")
        super().__init__(vocab_size=2**k, length=n // k, mdp=mdp, enumerable=False)
        self.n, self.k, self.beta = int(n), int(k), float(beta)
        self.modes_seed, self.mode_threshold = int(modes_seed), int(mode_threshold)
        self.modes = generate_modes(self.n, n_modes, self.modes_seed)
        self.token_bits = [format(c, f"0{k}b") for c in range(2**k)]

    @property
    def n_modes(self) -> int:
        return len(self.modes)

    def kwargs(self) -> dict:
        return {
            "n": self.n,
            "k": self.k,
            "beta": self.beta,
            "mdp": self.mdp,
            "n_modes": self.n_modes,
            "modes_seed": self.modes_seed,
            "mode_threshold": self.mode_threshold,
        }

    def to_strings(self, tokens: torch.Tensor) -> list[str]:
        """Bit strings of full-length token rows ``[B, L]``."""
        bits = self.token_bits
        return ["".join(bits[t] for t in row) for row in tokens.tolist()]

    def distances(self, strings: list[str]) -> np.ndarray:
        """Levenshtein distance of each string to each mode, ``[B, n_modes]`` int32."""
        if not strings:
            return np.zeros((0, self.n_modes), dtype=np.int32)
        return cdist(strings, self.modes, scorer=Levenshtein.distance, dtype=np.int32)

    def _terminal_log_reward(self, tokens: torch.Tensor) -> torch.Tensor:
        d = self.distances(self.to_strings(tokens)).min(1)
        return torch.as_tensor(self.beta * (1.0 - d / self.n), dtype=torch.float32)

    def _terminal_mode_index(self, tokens: torch.Tensor) -> torch.Tensor:
        close = self.distances(self.to_strings(tokens)) <= self.mode_threshold
        first = np.where(close.any(1), close.argmax(1), -1)
        return torch.as_tensor(first, dtype=torch.long)

    def _terminal_modes_hit(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every mode within the threshold (yunglau/QGFN utils/plotting.py marks all of them
        found, not the first)."""
        return torch.as_tensor(self.distances(self.to_strings(tokens)) <= self.mode_threshold)

    def info(self) -> dict:
        out = super().info()
        out.update(n_bits=self.n, bits_per_token=self.k, beta=self.beta, mode_threshold=self.mode_threshold)
        return out
