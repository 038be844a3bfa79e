"""The checks of a paper config, run before any job exists: the schema, then what a schema
cannot say (unique ids, known envs and methods, hyper-parameters each method's Config accepts,
claims and figures that refer to runs the config defines). ``pipeline.config.load_paper`` calls
them when a config is not in its validated cache; everything fails with ``<file>: <field>: ...``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import envs
import methods
from methods.common.budget import MEASURED
from pipeline.config_base import (
    SCALES,
    SEED_GROUPS,
    STAGE_PLAN,
    fail,
    load_yaml,
    merged_overrides,
    require_unique,
    scale_placeholders,
    validate_schema,
)
from pipeline.confounds import budget_fields, budget_problems


SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_paper(path: Path) -> dict:
    """Every check of one paper config (schema, names, references, hyper-parameters, claims,
    figures); its document, or a ConfigError naming the file and the field."""
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        fail(path, "(top level)", "must be a mapping")
    validate_schema(doc, "paper", path)
    if doc["paper"] != path.stem:
        fail(path, "paper", f"must equal the file name {path.stem!r} (got {doc['paper']!r})")
    require_unique(path, "claims", [c["id"] for c in doc["claims"]], "claim id")
    require_unique(path, "figures", [f["id"] for f in doc["figures"]], "figure id")
    # ids become paths, wildcards and shell words: a safe alphabet, checked before any job
    for exp_id in doc["experiments"]:
        if not SAFE_ID.fullmatch(str(exp_id)):
            fail(
                path,
                f"experiments.{exp_id!r}",
                f"an experiment id must match {SAFE_ID.pattern} "
                "(it becomes a directory, a Snakemake wildcard and a shell word)",
            )
    for i, c in enumerate(doc["claims"]):
        if not SAFE_ID.fullmatch(str(c["id"])):
            fail(path, f"claims[{i}].id", f"a claim id must match {SAFE_ID.pattern} (got {c['id']!r})")
    for exp_id, exp in doc["experiments"].items():
        where = f"experiments.{exp_id}"
        require_unique(path, f"{where}.methods", exp["methods"], "method")
        if exp["env"] not in envs.names():
            fail(path, f"{where}.env", f"unknown env {exp['env']!r}; known: {', '.join(envs.names())}")
        for i, m in enumerate(exp["methods"]):
            if m not in methods.names():
                fail(path, f"{where}.methods[{i}]", f"unknown method {m!r}; known: {', '.join(methods.names())}")
        _check_overrides(path, f"{where}.overrides", exp.get("overrides") or {}, exp["methods"])
        for scale in SCALES:
            sc = exp["scales"][scale]
            require_unique(path, f"{where}.scales.{scale}.methods", sc.get("methods") or [], "method")
            if sc["eval_every"] > sc["iterations"]:
                fail(
                    path,
                    f"{where}.scales.{scale}.eval_every",
                    f"must be <= iterations ({sc['iterations']}): no evaluation would fall inside the run "
                    f"(got {sc['eval_every']})",
                )
            for i, m in enumerate(sc.get("methods") or []):
                if m not in exp["methods"]:
                    fail(
                        path,
                        f"{where}.scales.{scale}.methods[{i}]",
                        f"{m!r} is not a method of this experiment ({', '.join(exp['methods'])})",
                    )
            _check_overrides(path, f"{where}.scales.{scale}.overrides", sc.get("overrides") or {}, exp["methods"])
            try:
                envs.check_kwargs(exp["env"], sc["env_kwargs"])
            except (TypeError, ValueError) as exc:
                fail(path, f"{where}.scales.{scale}.env_kwargs", str(exc))
            for m in exp["methods"]:
                hp = merged_overrides(exp, scale, m)
                cls = methods.load(m).Config
                # with the experiment's env where the config has one: checks that tie a value to
                # the env (e.g. Kaleidoscope's per-unit-type masks need SMAX) see it
                task = {
                    k: v
                    for k, v in (("env", exp["env"]), ("env_kwargs", sc["env_kwargs"]))
                    if k in cls.__dataclass_fields__
                }
                try:  # the dataclass's own checks (__post_init__) on the merged values
                    cfg = cls(**task, **hp)
                except (TypeError, ValueError) as exc:
                    fail(path, f"{where}.scales.{scale} (overrides of {m})", str(exc))
                _record_stages(doc, exp_id, scale, m, cfg, sc)
            _record_seed_groups(path, doc, exp_id, scale, sc, f"{where}.scales.{scale}")
    paper_methods = {m for exp in doc["experiments"].values() for m in exp["methods"]}
    for method, entry in (doc.get("method_differs") or {}).items():
        if method not in paper_methods:
            fail(
                path, f"method_differs.{method}", f"not a method of any experiment ({', '.join(sorted(paper_methods))})"
            )
        for j, name in enumerate(entry["differs_by"]):
            if name not in MEASURED:
                fail(
                    path,
                    f"method_differs.{method}.differs_by[{j}]",
                    f"{name!r} is not a measured quantity "
                    f"({', '.join(MEASURED)}); a setting that differs is named on the claim",
                )
    for i, claim in enumerate(doc["claims"]):
        _check_claim(path, i, claim, doc)
        _check_scale_wording(path, f"claims[{i}].statement", claim.get("statement", ""), doc)
    for i, fig in enumerate(doc["figures"]):
        _check_scale_wording(path, f"figures[{i}].title", fig.get("title", ""), doc)
    for field, problem in budget_problems(doc, SCALES):
        fail(path, field, problem)
    for i, fig in enumerate(doc["figures"]):
        _check_ref(path, f"figures[{i}]", fig, doc)
        # the curve columns every method of the experiment logs (each family's Config says which)
        exp_methods = doc["experiments"][fig["experiment"]]["methods"]
        axes = [
            a
            for a in methods.load(exp_methods[0]).Config.CURVE_AXES
            if all(a in methods.load(m).Config.CURVE_AXES for m in exp_methods)
        ]
        if fig.get("kind", "curve") == "sweep":
            if "x" in fig:
                fail(path, f"figures[{i}].x", "a sweep figure's x axis is the swept setting (drop x)")
            continue
        if fig.get("x", "step") not in axes:
            fail(
                path,
                f"figures[{i}].x",
                f"{fig['x']!r} is not a curve axis of experiment "
                f"{fig['experiment']!r}; its methods log: {', '.join(axes)}",
            )
    return doc


def _check_scale_wording(path: Path, field: str, text: str, doc: dict) -> None:
    """Each ``{experiment.kwarg}`` of a statement or title names an env kwarg that every scale of
    that experiment sets (config_base.at_scale fills it in per scale)."""
    for exp_id, kwarg in scale_placeholders(text):
        exp = doc["experiments"].get(exp_id)
        if exp is None:
            fail(path, field, f"{{{exp_id}.{kwarg}}}: unknown experiment {exp_id!r}")
        for scale in SCALES:
            if kwarg not in ((exp["scales"].get(scale) or {}).get("env_kwargs") or {}):
                fail(
                    path,
                    field,
                    f"{{{exp_id}.{kwarg}}}: experiment {exp_id!r} sets no env kwarg {kwarg!r} at scale {scale}",
                )


# fields each claim kind needs / must not have (pipeline/claims.py)
_CLAIM_NEEDS = {
    "threshold": ("experiment", "threshold"),
    "compare": ("experiment", "baseline"),
    "noninferior": ("experiment", "baseline"),
    "trend": ("experiments", "baseline"),
    "fact": ("experiment",),
}
_CLAIM_FORBIDS = {
    "threshold": ("baseline", "experiments", "margin", "margin_rel", "relative", "differs_by"),
    "compare": ("threshold", "experiments", "margin", "margin_rel", "relative"),
    "noninferior": ("threshold", "experiments", "relative"),
    "trend": ("experiment", "threshold", "margin", "margin_rel", "cap"),
    "fact": ("experiments", "margin", "margin_rel", "relative", "differs_by", "cap"),
}


def _check_claim(path: Path, i: int, claim: dict, doc: dict) -> None:
    where, kind = f"claims[{i}]", claim["kind"]
    for key in _CLAIM_NEEDS[kind]:
        if key not in claim:
            fail(path, f"{where}.{key}", f"missing required field for kind {kind}")
    for key in _CLAIM_FORBIDS[kind]:
        if key in claim:
            fail(path, f"{where}.{key}", f"not a field of kind {kind}")
    if kind == "noninferior" and ("margin" in claim) == ("margin_rel" in claim):
        fail(
            path,
            f"{where}.margin",
            "kind noninferior needs exactly one of margin / margin_rel (how much worse still counts as 'on par')",
        )
    if kind == "fact" and ("baseline" in claim) == ("threshold" in claim):
        fail(path, f"{where}.baseline", "kind fact needs exactly one of baseline / threshold")
    if "margin_basis" in claim and "margin_rel" not in claim:
        fail(path, f"{where}.margin_basis", "only with margin_rel (a share of the baseline's value or gain)")
    if claim.get("extra") and not claim.get("extra_reason"):
        fail(path, f"{where}.extra_reason", "a beyond-paper claim (extra: true) must say why it is run")
    if "baseline_fails" in claim and kind not in ("compare", "noninferior", "trend"):
        fail(path, f"{where}.baseline_fails", f"not a field of kind {kind} (only comparisons have a baseline)")
    if "baseline_fails_scales" in claim and not claim.get("baseline_fails"):
        fail(path, f"{where}.baseline_fails_scales", "only with baseline_fails (the source the scales qualify)")
    metric_cfg = doc["metrics"].get(claim["metric"]) or {}
    lm = metric_cfg.get("learning_metric")
    if lm is not None and lm not in doc["metrics"]:
        fail(path, f"metrics.{claim['metric']}.learning_metric", f"unknown metric {lm!r} (declare it in metrics)")
    if metric_cfg.get("deterministic") and kind != "fact":
        fail(
            path,
            f"{where}.kind",
            f"metric {claim['metric']!r} is deterministic (computed from the "
            "architecture/config, the same for every seed): a claim on it is decided by construction — "
            "use kind fact",
        )
    if kind == "trend":
        if claim["baseline"] == claim["method"]:
            fail(path, f"{where}.baseline", "must differ from method")
        for j, exp_id in enumerate(claim["experiments"]):
            _check_ref(path, where, {**claim, "experiment": exp_id}, doc, field=f"experiments[{j}]")
    else:
        _check_ref(path, where, claim, doc)
        if claim.get("baseline") is not None and claim["baseline"] == claim["method"]:
            fail(path, f"{where}.baseline", "must differ from method")
    sides = [claim["method"]] + ([claim["baseline"]] if claim.get("baseline") else [])
    budget = budget_fields(*sides)
    measured = {*MEASURED, "unit"}
    for j, name in enumerate(claim.get("differs_by") or []):
        if name not in budget | measured:
            fail(
                path,
                f"{where}.differs_by[{j}]",
                f"{name!r} is neither a budget / update-ratio setting of "
                f"{' or '.join(sides)} ({', '.join(sorted(budget)) or 'none'}) nor a measured "
                f"quantity ({', '.join(sorted(measured))})",
            )


def _check_ref(path: Path, where: str, item: dict, doc: dict, field: str = "experiment") -> None:
    exp = doc["experiments"].get(item["experiment"])
    if exp is None:
        fail(path, f"{where}.{field}", f"unknown experiment {item['experiment']!r}")
    if item["metric"] not in doc["metrics"]:
        fail(path, f"{where}.metric", f"unknown metric {item['metric']!r} (declare it in metrics)")
    for key in ("method", "baseline"):
        if key in item and item[key] not in exp["methods"]:
            fail(path, f"{where}.{key}", f"method {item[key]!r} is not run in experiment {item['experiment']!r}")
        # a claim decided at a scale needs its methods run there
        for scale in item.get("scales") or SCALES:
            run_here = exp["scales"][scale].get("methods") or exp["methods"]
            if key in item and item[key] not in run_here:
                fail(
                    path,
                    f"{where}.{key}",
                    f"method {item[key]!r} is not run at scale {scale!r} of experiment "
                    f"{item['experiment']!r} (scales.{scale}.methods)",
                )


def _record_seed_groups(path: Path, doc: dict, exp_id: str, scale: str, sc: dict, where: str) -> None:
    """With ``seed_batch`` > 1, record which of the scale's methods train their seeds together
    (methods/control/group_loop.py); a batch no method can use is an error, not a silent no-op."""
    if sc.get("seed_batch", 1) == 1:
        return
    exp_methods = sc.get("methods") or doc["experiments"][exp_id]["methods"]
    grouped = [m for m in exp_methods if m in methods.GROUP_TRAINERS]
    if not grouped:
        fail(
            path,
            f"{where}.seed_batch",
            f"none of this scale's methods ({', '.join(exp_methods)}) can train seeds together; "
            f"those that can: {', '.join(methods.GROUP_TRAINERS)}",
        )
    doc.setdefault(SEED_GROUPS, {}).setdefault(exp_id, {})[scale] = grouped


def _record_stages(doc: dict, exp_id: str, scale: str, method: str, cfg: Any, sc: dict) -> None:
    """Put the stages a method's runs read (its Config's ``stages()``, with the scale's run length
    filled in) into the document, where the workflow plans them without importing the method."""
    full = dataclasses.replace(
        cfg,
        iterations=sc["iterations"],
        eval_every=sc["eval_every"],
        checkpoint_every=sc.get("checkpoint_every", sc["eval_every"]),
    )
    specs = [spec.to_dict() for spec in full.stages()]
    if specs:
        doc.setdefault(STAGE_PLAN, {}).setdefault(exp_id, {}).setdefault(scale, {})[method] = specs


def _check_overrides(path: Path, where: str, overrides: dict, exp_methods: list[str]) -> None:
    for target, values in overrides.items():
        if target != "all" and target not in exp_methods:
            fail(path, f"{where}.{target}", f"not a method of this experiment ({', '.join(exp_methods)}) nor 'all'")
        targets = exp_methods if target == "all" else [target]
        for m in targets:
            allowed = method_hyperparameters(m)
            for key, value in values.items():
                if key not in allowed:
                    fail(
                        path,
                        f"{where}.{target}.{key}",
                        f"unknown hyper-parameter of method {m!r}; known: {', '.join(sorted(allowed))}",
                    )
                if not _type_ok(value, allowed[key]):
                    fail(
                        path,
                        f"{where}.{target}.{key}",
                        f"must be of type {type(allowed[key]).__name__} (got {value!r})",
                    )
                bad = methods.load(m).Config.value_problem(key, value)
                if bad:
                    fail(path, f"{where}.{target}.{key}", bad)


def method_hyperparameters(method: str) -> dict[str, Any]:
    """Hyper-parameter name -> default of a method's Config dataclass."""
    cls = methods.load(method).Config
    names = set(cls.hyperparameter_names())
    return {
        f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        for f in dataclasses.fields(cls)
        if f.name in names
    }


def _type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return default is None or isinstance(value, type(default))
