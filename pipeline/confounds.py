"""What differs between the two sides of a comparison claim, and where each value came from.

A comparison is only as good as its controls: BN at lr 1e-3 against FM at 1e-4, or OMNet at an
update-to-data ratio of 5 against SAC at 1, measures the settings as much as the methods. For
every comparison claim this module resolves both methods' hyper-parameters at a scale (method
default -> experiment overrides -> scale overrides), lists each one in which they differ with its
provenance, and rejects a difference in the sample budget or update ratio unless the claim names
it in ``differs_by`` as the point of the comparison.

Provenance of a value: the method's dataclass default (its docstring cites the paper or code),
or the override's place in the paper config, annotated by the experiment's ``sources`` map
(``{field: text}`` or ``{"<method>.<field>": text}``; e.g. "EGFN Table 2 [PAPER]",
"chosen here: 2-core budget").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import methods
from pipeline import exact_tests as inf
from pipeline.config_base import overrides_with_provenance


def budget_fields(*method_names: str) -> set[str]:
    """Settings that change how much data or how many updates a method gets per unit of the
    experiment's budget (the budget itself, ``iterations``, is per experiment): each method's
    ``Config.BUDGET_FIELDS`` (methods/common/method_config.py), joined over the methods."""
    return {f for m in method_names for f in methods.load(m).Config.BUDGET_FIELDS}


COMPARE_KINDS = ("compare", "noninferior", "trend")


def _defaults(method: str) -> dict[str, Any]:
    cls = methods.load(method).Config
    names = set(cls.hyperparameter_names())
    return {
        f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        for f in dataclasses.fields(cls)
        if f.name in names
    }


def resolved_settings(paper_cfg: dict, exp_id: str, scale: str, method: str) -> dict[str, dict]:
    """``{field: {"value", "source"}}`` of every hyper-parameter of ``method`` in an experiment."""
    exp = paper_cfg["experiments"][exp_id]
    variant = methods.variant_of(method)
    where = (
        f"{variant[0]}.VARIANTS[{variant[1]!r}] over its base's Config"
        if variant
        else f"{methods.module_name(method)}.Config"
    )
    notes = exp.get("sources") or {}
    out = {k: {"value": v, "source": f"method default ({where})"} for k, v in _defaults(method).items()}
    for key, (value, where) in overrides_with_provenance(exp, scale, method).items():
        note = notes.get(f"{method}.{key}") or notes.get(key) or "source not stated"
        out[key] = {"value": value, "source": f"experiments.{exp_id}.{where} ({note})"}
    return out


def _differences(paper_cfg: dict, exp_id: str, scale: str, method: str, baseline: str) -> list[dict]:
    a = resolved_settings(paper_cfg, exp_id, scale, method)
    b = resolved_settings(paper_cfg, exp_id, scale, baseline)
    rows = []
    absent = {"value": "(no such setting)", "source": "the method has no such setting"}
    # settings only one side has count too (MAST's Soft Mellowmax has no dense counterpart)
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, absent), b.get(key, absent)
        if va["value"] != vb["value"]:
            rows.append(
                {
                    "experiment": exp_id,
                    "setting": key,
                    "method": va["value"],
                    "method_source": va["source"],
                    "baseline": vb["value"],
                    "baseline_source": vb["source"],
                }
            )
    return rows


def claim_differences(paper_cfg: dict, claim: dict, scale: str) -> list[dict]:
    """Settings in which the claim's method and baseline differ at ``scale`` (all experiments
    of a trend claim)."""
    if claim.get("kind") not in COMPARE_KINDS or not claim.get("baseline"):
        return []
    exps = claim.get("experiments") or [claim.get("experiment")]
    rows: list[dict] = []
    for exp_id in exps:
        run = (
            paper_cfg["experiments"][exp_id]["scales"][scale].get("methods")
            or paper_cfg["experiments"][exp_id]["methods"]
        )
        if claim["method"] in run and claim["baseline"] in run:
            rows += _differences(paper_cfg, exp_id, scale, claim["method"], claim["baseline"])
    return rows


def settings_by_claim(paper_cfg: dict, scale: str) -> dict[str, list[dict]]:
    """claim id -> its differing settings, for claims.json and the report."""
    return {
        c["id"]: claim_differences(paper_cfg, c, scale)
        for c in paper_cfg.get("claims") or []
        if c.get("kind") in COMPARE_KINDS
    }


def budget_problems(paper_cfg: dict, scales: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(field path, problem)`` for each comparison that differs in budget or update ratio
    without naming it in ``differs_by``."""
    problems = []
    for i, claim in enumerate(paper_cfg.get("claims") or []):
        if claim.get("kind") not in COMPARE_KINDS:
            continue
        budget = budget_fields(claim["method"], claim["baseline"])
        named = set(claim.get("differs_by") or [])
        for scale in claim.get("scales") or scales:
            for row in claim_differences(paper_cfg, claim, scale):
                if row["setting"] in budget and row["setting"] not in named:
                    problems.append(
                        (
                            f"claims[{i}] ({claim['id']})",
                            f"{claim['method']} and {claim['baseline']} differ in {row['setting']} at scale {scale} "
                            f"({row['method']} vs {row['baseline']}, experiment {row['experiment']}): a budget / "
                            f"update-ratio difference confounds the comparison; equalise it or name it in "
                            f"differs_by if it is the point of the claim",
                        )
                    )
                    break
            else:
                continue
            break
    return problems


# ---------------------------------------------------------------- measured budgets
# Which config settings explain a difference in which measured quantity, per family: a claim
# that names the setting in ``differs_by`` names the measured difference it causes too.
EXPLAINS = {
    "online_batch": ("samples_per_step", "samples", "collected"),
    "train_steps": ("gradient_steps", "samples"),
    "utd": ("gradient_steps", "samples"),
    "start_steps": ("gradient_steps", "samples"),
    "batch_size": ("samples_per_step", "samples"),
}
# relative difference of the seeds' medians above which two sides differ in a measured quantity
# (episode-based loops end a few steps apart; 5 % is far below any budget choice)
MEASURED_TOLERANCE = 0.05
# the FLOPs are estimated from sampled steps whose batches vary (trajectory lengths, episode
# lengths): 10 % is the noise floor of that estimate on two sides with the same networks
FLOPS_TOLERANCE = 0.10
# compute follows from what a step consumed and how many steps there were: a claim that names
# those names the FLOPs difference they cause
FLOPS_EXPLAINED_BY = {
    "flops_per_step": ("samples_per_step", "train_flops"),
    "train_flops": ("flops_per_step", "samples_per_step", "gradient_steps", "samples"),
}


def named_differences(claim: dict, method_differs: dict | None = None) -> set[str]:
    """What the claim names as differing by design: its own ``differs_by`` and the paper's
    ``method_differs`` of either side (a method that differs from any other by design)."""
    named = set(claim.get("differs_by") or [])
    for side in (claim.get("method"), claim.get("baseline")):
        named |= set(((method_differs or {}).get(side) or {}).get("differs_by") or [])
    return named


def measured_differences(stats: dict, claim: dict, method_differs: dict | None = None) -> list[dict]:
    """The measured quantities (methods/common/budget.py) in which the claim's two sides differ,
    per experiment: ``{experiment, quantity, method, baseline, named}``; ``named``: the claim's
    ``differs_by`` (or the paper's ``method_differs`` of one side) names the quantity or a
    setting that explains it."""
    from methods.common.budget import MEASURED

    if claim.get("kind") not in COMPARE_KINDS or not claim.get("baseline"):
        return []
    named = named_differences(claim, method_differs)
    explained = named | {q for s in named for q in EXPLAINS.get(s, ())}
    rows = []
    for exp_id in claim.get("experiments") or [claim.get("experiment")]:
        budget = ((stats.get("experiments") or {}).get(exp_id) or {}).get("budget") or {}
        a, b = budget.get(claim["method"]) or {}, budget.get(claim["baseline"]) or {}
        if not a or not b:
            continue
        unit_a, unit_b = (a.get("unit") or [None])[0], (b.get("unit") or [None])[0]
        if unit_a != unit_b:
            rows.append(
                {
                    "experiment": exp_id,
                    "quantity": "unit",
                    "method": unit_a,
                    "baseline": unit_b,
                    "named": "unit" in named,
                }
            )
        for q in MEASURED:
            if q == "collected" and unit_a != "trajectories":
                continue  # episodes end when the policy ends them: env_steps is the budget there
            ma, mb = inf.median(a.get(q) or []), inf.median(b.get(q) or [])
            if ma is None or mb is None or ma == mb:
                continue
            tolerance = FLOPS_TOLERANCE if q in FLOPS_EXPLAINED_BY else MEASURED_TOLERANCE
            if abs(ma - mb) > tolerance * max(abs(ma), abs(mb)):
                named_q = q in explained or any(e in explained for e in FLOPS_EXPLAINED_BY.get(q, ()))
                rows.append({"experiment": exp_id, "quantity": q, "method": ma, "baseline": mb, "named": named_q})
    return rows


def measured_by_claim(paper_cfg: dict, stats: dict) -> dict[str, list[dict]]:
    """claim id -> its measured differences (for claims.json and the report)."""
    return {
        c["id"]: measured_differences(stats, c, paper_cfg.get("method_differs"))
        for c in paper_cfg.get("claims") or []
        if c.get("kind") in COMPARE_KINDS
    }


def measured_problems(paper_cfg: dict, stats: dict) -> list[tuple[str, str]]:
    """``(field path, problem)`` for each measured difference a claim does not name."""
    out = []
    for i, claim in enumerate(paper_cfg.get("claims") or []):
        for row in measured_differences(stats, claim, paper_cfg.get("method_differs")):
            if not row["named"]:
                out.append(
                    (
                        f"claims[{i}] ({claim['id']}).differs_by",
                        f"{claim['method']} and {claim['baseline']} measured different {row['quantity']} in "
                        f"experiment {row['experiment']} ({row['method']} vs {row['baseline']}): equalise it, or "
                        f"name {row['quantity']!r} in differs_by if it is part of the method",
                    )
                )
    return out
