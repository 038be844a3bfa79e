"""The algorithms. Each method module exposes ``Config`` (a dataclass whose defaults are the
paper's), ``train(cfg, run)`` and ``evaluate(cfg, model_path, seed)``; it knows nothing of
Snakemake, MLflow or the file layout (see methods.common.runapi).

A registry entry is a module path, or ``"<table module>:<entry>"`` for a thin variant (another
method's ``Config`` with other defaults, methods/common/variants.py)."""

from __future__ import annotations

import importlib
from types import ModuleType

# method name -> module implementing it
METHODS: dict[str, str] = {
    "tb": "methods.gfn.tb",
    "db": "methods.gfn.db",
    "egfn": "methods.gfn.egfn",
    "egfn_no_mutation": "methods.gfn.egfn_no_mutation",
    "fm": "methods.gfn.fm",
    "subtb": "methods.gfn.subtb",
    "bn": "methods.gfn.bn",
    "rpe": "methods.gfn.rpe",
    "soft_dqn": "methods.gfn.soft_dqn",
    "mdqn": "methods.gfn.mdqn",
    "qgfn": "methods.gfn.qgfn",
    "qgfn_quantile": "methods.gfn.qgfn_quantile",
    "qgfn_of_max": "methods.gfn.qgfn_of_max",
    # goal-conditioned GFlowNets (RBS) and their baselines
    "rbs": "methods.gfn.goal.rbs",
    "gc_db": "methods.gfn.goal.gc_db",
    "her": "methods.gfn.goal.her",
    "gc_dqn": "methods.gfn.goal.gc_dqn",
    "td3": "methods.control.td3",
    "sac": "methods.control.sac",
    "ne": "methods.control.ne",
    "td3_reset": "methods.control.td3_reset",
    "td3_redo": "methods.control.td3_redo",
    "td3_pi": "methods.control.td3_pi",
    "td3_ln": "methods.control.td3_ln",
    "omnet": "methods.control.omnet",
    "redq": "methods.control.redq",
    "droq": "methods.control.droq",
    "sac20": "methods.control.sac20",
    "sin_sac": "methods.control.sin_sac",
    "sin_droq": "methods.control.sin_droq",
    # value-based multi-agent RL on MPE (EPyMARL style)
    "qmix": "methods.marl.value.qmix",
    "qmix_fups": "methods.marl.value.variants:qmix_fups",
    "qmix_nops": "methods.marl.value.variants:qmix_nops",
    "qmix_multih": "methods.marl.value.variants:qmix_multih",
    "vdn": "methods.marl.value.variants:vdn",
    "qmix_snp": "methods.marl.value.qmix_snp",
    "qmix_seps": "methods.marl.value.seps",
    "kaleidoscope": "methods.marl.value.kaleidoscope",
    "mast": "methods.marl.value.mast",
    "qmix_tiny": "methods.marl.value.qmix_tiny",
    "qmix_ss": "methods.marl.value.variants:qmix_ss",
    "qmix_set": "methods.marl.value.variants:qmix_set",
    "qmix_rigl": "methods.marl.value.variants:qmix_rigl",
    "qmix_rlx2": "methods.marl.value.variants:qmix_rlx2",
    "wqmix": "methods.marl.value.wqmix",
    "wqmix_nops": "methods.marl.value.variants:wqmix_nops",
    "mast_wqmix": "methods.marl.value.mast_wqmix",
    "res": "methods.marl.value.res",
    "res_nops": "methods.marl.value.variants:res_nops",
    "mast_res": "methods.marl.value.mast_res",
    # actor-critic multi-agent RL on multi-agent MuJoCo (HARL-style MATD3)
    "matd3": "methods.marl.actor_critic.matd3",
    "matd3_id": "methods.marl.actor_critic.variants:matd3_id",
    "matd3_ens": "methods.marl.actor_critic.variants:matd3_ens",
    "matd3_nops": "methods.marl.actor_critic.variants:matd3_nops",
    "matd3_multih": "methods.marl.actor_critic.variants:matd3_multih",
    "matd3_snp": "methods.marl.actor_critic.variants:matd3_snp",
    "matd3_seps": "methods.marl.actor_critic.matd3_seps",
    "kalei_matd3": "methods.marl.actor_critic.kaleidoscope_matd3",
    # video-pretrained discrete diffusion policy (VPDD) on Meta-World, its ablations and baseline
    "vpdd": "methods.video.vpdd",
    "vpdd_no_human": "methods.video.variants:vpdd_no_human",
    "mt_diffusion_policy": "methods.video.variants:mt_diffusion_policy",
    "vpdd_1demo": "methods.video.variants:vpdd_1demo",
    "vpdd_5demos": "methods.video.variants:vpdd_5demos",
}


class UnknownMethodError(KeyError):
    pass


def names() -> list[str]:
    return sorted(METHODS)


def module_name(method: str) -> str:
    if method not in METHODS:
        raise UnknownMethodError(f"unknown method {method!r}; known: {', '.join(names())}")
    return METHODS[method]


def variant_of(method: str) -> tuple[str, str] | None:
    """``(table module, entry)`` where ``method`` is a thin variant, else None."""
    table, sep, entry = module_name(method).partition(":")
    return (table, entry) if sep else None


# methods whose seeds can train together in one job (a paper config's seed_batch > 1) -> the module
# with their ``train_group(cfg, group)``. Kept out of the method's own module, so that the runs
# of the methods built on it (NE on TD3) do not hold the group loop in their code hash.
GROUP_TRAINERS: dict[str, str] = {
    "td3": "methods.control.seed_batch",
    "td3_ln": "methods.control.seed_batch",
    "sac": "methods.control.seed_batch",
    "sac20": "methods.control.seed_batch",
}


def group_trainer(method: str) -> ModuleType | None:
    """The module that trains k seeds of ``method`` together, or None where it cannot."""
    name = GROUP_TRAINERS.get(method)
    return importlib.import_module(name) if name else None


_VARIANT_MODULES: dict[str, ModuleType] = {}


def load(method: str) -> ModuleType:
    variant = variant_of(method)
    if variant is None:
        return importlib.import_module(module_name(method))
    if method not in _VARIANT_MODULES:  # one module (one Config class) per variant and process
        from methods.common.variants import make_variant

        table, entry = variant
        spec = importlib.import_module(table).VARIANTS[entry]
        _VARIANT_MODULES[method] = make_variant(method, load(spec["base"]), spec)
    return _VARIANT_MODULES[method]
