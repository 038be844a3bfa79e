"""RL benchmark environments behind one factory: ``envs.make(name, **kwargs)``.

Each environment lives in its own module and registers a constructor here. Environments
whose terminal space is enumerable expose the exact target distribution.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

# name -> "module:constructor"; modules are imported lazily so that importing `envs`
# stays cheap and one env's heavy dependencies never load for another.
_REGISTRY: dict[str, str] = {
    "hypergrid": "envs.hypergrid:HyperGrid",
    "tfbind8": "envs.tfbind8:TFBind8",
    "qm9str": "envs.qm9str:QM9Str",
    "seh": "envs.seh:SEHFragments",
    "bitseq": "envs.bitseq:BitSequence",
    "rna": "envs.rna:RNABinding",
    "control": "envs.control:ControlTask",
    "mpe": "envs.mpe:MPETask",
    "mamujoco": "envs.mamujoco:MaMuJoCoTask",
    "smax": "envs.smax:SMAXTask",
    "sc2": "envs.sc2:SC2Task",  # StarCraft II itself (SMAC/SMACv2), where installed
    # goal-conditioned tasks of RBS (methods/gfn/goal/)
    "goal_grid": "envs.goal_grid:GoalGrid",
    "goal_bitseq": "envs.goal_seq:GoalBitSequence",
    "goal_tfbind8": "envs.goal_seq:GoalTFBind8",
    # VPDD's demonstrations and actionless videos (Meta-World v3, gymnasium-robotics)
    "metaworld_video": "envs.vpdd_data:MetaWorldVideo",
}


# How config validation checks an env's keyword arguments, where not by building it: by the
# constructor's signature alone (envs that load data files: validating a config never downloads
# anything), or by the class's static ``validate_kwargs`` (envs that are slow to build).
_KWARGS_CHECK: dict[str, str] = {
    "qm9str": "signature",
    "rna": "signature",
    "seh": "signature",
    "tfbind8": "signature",
    "smax": "validate_kwargs",
    "sc2": "validate_kwargs",
}


class UnknownEnvError(KeyError):
    pass


def names() -> list[str]:
    return sorted(_REGISTRY)


def module_of(name: str) -> str:
    """Dotted module path implementing env `name` (used for code hashing)."""
    if name not in _REGISTRY:
        raise UnknownEnvError(f"unknown env {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name].split(":")[0]


def constructor(name: str) -> Callable[..., Any]:
    module, attr = _REGISTRY[name].split(":") if name in _REGISTRY else (None, None)
    if module is None:
        raise UnknownEnvError(f"unknown env {name!r}; known: {', '.join(names())}")
    return getattr(importlib.import_module(module), attr)


def check_kwargs(name: str, kwargs: dict) -> None:
    """Raise TypeError/ValueError for keyword arguments env `name` would reject (how: see
    ``_KWARGS_CHECK``; every other env is built)."""
    import inspect

    ctor = constructor(name)
    inspect.signature(ctor).bind(**kwargs)
    how = _KWARGS_CHECK.get(name, "build")
    if how == "validate_kwargs":
        ctor.validate_kwargs(**kwargs)
    elif how == "build":
        ctor(**kwargs)


def make(name: str, **kwargs: Any) -> Any:
    """Build environment `name` with keyword arguments `kwargs`."""
    return constructor(name)(**kwargs)
