"""What a run actually did, counted where it happens: the measured budget.

A comparison is confounded as much by what the two sides *did* as by what their configs say:
RBS and HER drew 512 trajectories per gradient step where GC-GFN drew 256, with the same
``batch_size`` in both configs (the paired replay doubles the batch). So every training loop
counts, as it trains, its gradient steps, the rows its losses consumed (trajectories,
transitions or episodes: ``unit``), what it collected from the environment, its environment
steps and target-network updates, and hands the totals to the run (``Run.record_budget``);
the pipeline compares them across the two sides of every claim (pipeline/confounds.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# the measured quantities, in the order the report shows them
MEASURED = ("gradient_steps", "samples_per_step", "samples", "collected", "env_steps", "target_updates")


@dataclass
class BudgetMeter:
    unit: str = "trajectories"          # what one consumed sample is
    gradient_steps: int = 0
    samples: int = 0                    # rows consumed by the losses, summed over gradient steps
    collected: int = 0                  # trajectories / episodes collected from the environment
    env_steps: int = 0
    target_updates: int = 0

    def step(self, samples: int) -> None:
        """One gradient step on a batch of ``samples`` rows."""
        self.gradient_steps += 1
        self.samples += int(samples)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["samples_per_step"] = self.samples / self.gradient_steps if self.gradient_steps else 0.0
        return out

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
