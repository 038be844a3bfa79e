"""Value checks of hyper-parameters, by name, for every method's Config.

A typo that type-checks (``lr: -1.0e-3``, ``hidden: 0``, ``online_batch: -4``, ``lr: .nan``)
would otherwise train to completion or fail deep inside a job. One table serves every family:
a field's meaning is the same wherever its name appears (the families share their names on
purpose). Numbers not listed only need to be finite.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

Rule = tuple[Callable[[float], bool], str]

POSITIVE: Rule = (lambda v: v > 0, "must be > 0")
AT_LEAST_1: Rule = (lambda v: v >= 1, "must be >= 1")
NON_NEGATIVE: Rule = (lambda v: v >= 0, "must be >= 0")
UNIT: Rule = (lambda v: 0 <= v <= 1, "must be in [0, 1]")
OPEN_UNIT_HIGH: Rule = (lambda v: 0 < v <= 1, "must be in (0, 1]")
BELOW_1: Rule = (lambda v: 0 <= v < 1, "must be in [0, 1)")

RULES: dict[str, Rule] = {
    # learning rates and scales
    **{k: POSITIVE for k in ("lr", "log_z_lr", "reward_beta", "init_alpha")},
    # sizes and counts (0 would be an empty network, batch or schedule)
    **{k: AT_LEAST_1 for k in (
        "hidden", "n_hidden_layers", "critic_hidden_layers", "batch", "online_batch", "transition_batch",
        "buffer_size", "replay_size", "train_steps", "utd", "policy_delay", "n_critics", "eval_episodes",
        "eval_samples", "emp_l1_window", "q_bias_episodes", "population_size", "num_elites",
        "tournament_size", "delta", "fluctuation_window", "reset_interval", "redo_interval")},
    # counts where 0 means "off" / "none"
    **{k: NON_NEGATIVE for k in (
        "replay_batch", "start_steps", "diag_every", "target_subset", "mutation_std", "expl_noise",
        "policy_noise", "noise_clip", "leaf_coef", "fm_epsilon", "munchausen_alpha", "constant_fraction",
        "zeta", "fluctuation_threshold", "redo_tau")},
    # probabilities, fractions, discount and averaging factors
    **{k: UNIT for k in (
        "epsilon", "gamma", "tau", "target_tau", "replay_top_frac", "crossover_prob", "mutation_prob",
        "lamda", "per_alpha", "inject_at", "initial_sparsity", "target_sparsity", "omega", "awaken", "tamp",
        "review_fraction", "rigl_zeta")},
    "keep": OPEN_UNIT_HIGH,
    "critic_dropout": BELOW_1,
}


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for the hyper-parameter ``name``, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"must be a finite number (got {value!r})"
    rule = RULES.get(name)
    if rule is not None and not rule[0](value):
        return f"{rule[1]} (got {value!r})"
    return None


def check(cfg: Any) -> None:
    """Raise ValueError naming the first unacceptable field of a Config dataclass instance."""
    for f in dataclasses.fields(cfg):
        msg = problem(f.name, getattr(cfg, f.name))
        if msg:
            raise ValueError(f"{f.name}: {msg}")
