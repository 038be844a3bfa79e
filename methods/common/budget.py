"""What a run actually did, counted where it happens: the measured budget.

A comparison is confounded as much by what the two sides *did* as by what their configs say:
RBS and HER drew 512 trajectories per gradient step where GC-GFN drew 256, with the same
``batch_size`` in both configs (the paired replay doubles the batch). So every training loop
counts, as it trains, its gradient steps, the rows its losses consumed (trajectories,
transitions or episodes: ``unit``), what it collected from the environment, its environment
steps and target-network updates, and hands the totals to the run (``Run.record_budget``);
the pipeline compares them across the two sides of every claim (pipeline/confounds.py).

Compute is measured too: a loop wraps each gradient step (loss, backward, optimiser step) in
``meter.measure_flops()``, and on sampled steps (the first two of every ``FLOP_SAMPLE_EVERY``)
torch's ``FlopCounterMode`` counts the matrix-multiply FLOPs the step executed, forward and
backward. ``train_flops`` is their mean per step times ``gradient_steps``: an estimate from the
sampled steps, of what the hardware ran — a masked (sparse) layer multiplies its full weight
matrix, so it costs what the dense one does; the papers' theoretical sparse FLOPs are a metric of
their own (methods/common/flops.py). Counting every step would cost ~9× a small network's
update; one in 128 costs a few per cent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from torch.utils.flop_counter import FlopCounterMode

# the measured quantities, in the order the report shows them
MEASURED = (
    "gradient_steps",
    "samples_per_step",
    "samples",
    "collected",
    "env_steps",
    "target_updates",
    "flops_per_step",
    "train_flops",
)
# a pair of consecutive steps every FLOP_SAMPLE_EVERY: alternating updates (TD3's delayed actor)
# are both seen
FLOP_SAMPLE_EVERY = 128


@dataclass
class BudgetMeter:
    unit: str = "trajectories"  # what one consumed sample is
    gradient_steps: int = 0
    samples: int = 0  # rows consumed by the losses, summed over gradient steps
    collected: int = 0  # trajectories / episodes collected from the environment
    env_steps: int = 0
    target_updates: int = 0
    flops_sampled: float = 0.0  # FLOPs executed by the sampled gradient steps
    steps_sampled: int = 0

    def step(self, samples: int) -> None:
        """One gradient step on a batch of ``samples`` rows."""
        self.gradient_steps += 1
        self.samples += int(samples)

    @contextmanager
    def measure_flops(self) -> Iterator[None]:
        """Wrap one gradient step; on sampled steps its FLOPs are counted (before ``step`` is called
        for it or after: the sample is chosen by how many steps were counted when it began)."""
        if self.gradient_steps % FLOP_SAMPLE_EVERY >= 2:
            yield
            return
        with FlopCounterMode(display=False) as counter:
            yield
        self.flops_sampled += float(counter.get_total_flops())
        self.steps_sampled += 1

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["samples_per_step"] = self.samples / self.gradient_steps if self.gradient_steps else 0.0
        per_step = self.flops_sampled / self.steps_sampled if self.steps_sampled else 0.0
        out["flops_per_step"] = per_step
        out["train_flops"] = per_step * self.gradient_steps
        return out

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
