"""Global random state for code that must be a pure function of its seed (evaluation)."""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global generators for the block, then give the caller
    its own states back, so that whatever draws from them inside (DroQ's dropout, say) depends
    on ``seed`` only and the caller's streams are untouched. CUDA generators are seeded too; their
    states are restored only where CUDA was already initialised (forking them would start it)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def rng_states(gen: torch.Generator, rng: np.random.Generator) -> dict:
    """A training loop's random streams for its checkpoint: its torch generator (``gen``), its
    NumPy generator (``rng``) and torch's global generator (dropout, DroQ, draws from it)."""
    return {"gen": gen.get_state(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}


def restore_rng_states(ckpt: dict, gen: torch.Generator, rng: np.random.Generator) -> None:
    """Put back what :func:`rng_states` saved (a resumed run draws what it would have drawn)."""
    gen.set_state(ckpt["gen"])
    rng.bit_generator.state = ckpt["rng"]
    torch.set_rng_state(ckpt["torch_rng"])


def draw_device(generator: torch.Generator | None) -> torch.device:
    """Where a draw from ``generator`` must be made: its own device (a CUDA generator cannot
    fill a CPU tensor, nor a CPU one a CUDA tensor); the CPU for the global generator."""
    return generator.device if generator is not None else torch.device("cpu")
