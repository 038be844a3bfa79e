"""The contract every method's ``Config`` follows (GFlowNet, goal-conditioned GFlowNet,
control, QMIX, MATD3): a dataclass whose task fields the pipeline fills from the experiment,
whose other fields are hyper-parameters a paper config may override, with its value bounds
(``CONSTRAINTS``), the curve columns a figure may use as its x axis (``CURVE_AXES``) and the
settings that change how much data or how many updates a run gets per unit of the
experiment's budget (``BUDGET_FIELDS``: the confound check asks a comparison to equalise them
or to name them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

from methods.common.constraints import Constrained
from methods.common.stages import StageSpec

# Fields the pipeline fills from the experiment (env, budget, schedule); every other field
# is a hyper-parameter that paper configs may override.
TASK_FIELDS = ("env", "env_kwargs", "iterations", "eval_every", "checkpoint_every")


@dataclass
class MethodConfig(Constrained):
    """Base of every method's ``Config``; a subclass with checks of its own in ``__post_init__``
    calls ``super().__post_init__()`` (the value bounds) after them."""

    CURVE_AXES: ClassVar[tuple[str, ...]] = ("step",)
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.check_values()

    @classmethod
    def hyperparameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in TASK_FIELDS]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stages(self) -> tuple[StageSpec, ...]:
        """The trained artifacts a run of this config reads, each made by a job of its own before
        the run (methods/common/stages.py); most methods read none."""
        return ()

    # ------------------------------------------------------------------ the cost plan
    # (pipeline/costs.py, bench/cost_bench.py). A family whose updates or env steps follow
    # another rule than "one update per iteration" overrides these.

    def measure_iterations(self) -> tuple[int, int]:
        """Short and long run lengths of a throughput measurement (the difference cancels start-up)."""
        return 20, 60

    def planned_work(self) -> dict[str, int]:
        """What a run of this config does, counted from its settings before anything runs."""
        return {"iterations": self.iterations, "updates": self.iterations}

    def measurement_config(self, iterations: int) -> MethodConfig:
        """This run's settings cut to ``iterations`` for a throughput measurement: evaluations and
        checkpoints out of the way, nothing else changed."""
        return replace(self, iterations=iterations, eval_every=10**12, checkpoint_every=10**12)
