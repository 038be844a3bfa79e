"""Stages a run depends on: trained artifacts shared by several runs (VPDD's video tokenizer and
its pre-trained video model), each trained once by a job of its own before the runs that read it.

A method whose runs need such artifacts declares them on its Config (``MethodConfig.stages``): one
:class:`StageSpec` per stage, in order. A stage is trained by its own module's
``train(settings, run)`` — the same run contract as a method's training (curve, checkpoint and
resume, a ``model.pt``) — and is identified by what it reads: its module, its settings, the
environment, the upstream stages it reads and, where ``per_seed``, the seed. Two runs whose stage
specs agree share one stage job; changing a stage's settings (or those of a stage it reads)
makes a new one, and the runs that read it rerun. The run reads the stages' output directories
as ``run.stage_dirs[name]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageSpec:
    name: str  # the stage's name within its method ("tokenizer", "pretrain")
    module: str  # the module whose ``train(settings, run)`` trains it
    settings: dict[str, Any] = field(default_factory=dict)  # what it reads (JSON values), its identity
    per_seed: bool = True  # False: one stage for every seed (trained with ``settings["seed"]``)
    needs: tuple[str, ...] = ()  # names of earlier stages whose outputs it reads

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "settings": dict(self.settings),
            "per_seed": self.per_seed,
            "needs": list(self.needs),
        }
