"""The algorithms. Each method module exposes ``Config`` (a dataclass whose defaults are the
paper's), ``train(cfg, run)`` and ``evaluate(cfg, model_path, seed)``; it knows nothing of
Snakemake, MLflow or the file layout (see methods.common.runapi)."""
from __future__ import annotations

import importlib
from types import ModuleType

# method name -> module implementing it
METHODS: dict[str, str] = {
    "tb": "methods.gfn.tb",
    "db": "methods.gfn.db",
    "egfn": "methods.gfn.egfn",
    "fm": "methods.gfn.fm",
    "subtb": "methods.gfn.subtb",
    "bn": "methods.gfn.bn",
    "rpe": "methods.gfn.rpe",
    "soft_dqn": "methods.gfn.soft_dqn",
    "mdqn": "methods.gfn.mdqn",
}


class UnknownMethodError(KeyError):
    pass


def names() -> list[str]:
    return sorted(METHODS)


def module_name(method: str) -> str:
    if method not in METHODS:
        raise UnknownMethodError(f"unknown method {method!r}; known: {', '.join(names())}")
    return METHODS[method]


def load(method: str) -> ModuleType:
    return importlib.import_module(module_name(method))
