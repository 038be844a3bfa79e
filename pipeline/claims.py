"""Decide a paper's claims from its per-seed final metrics (stats.json) -> claims.json.

The procedure, with its error rate stated (see ``RULE``):

* Each claim is a one-sided hypothesis test on the per-seed final values of one metric
  (:mod:`pipeline.exact_tests`): exact Mann–Whitney for ``compare`` / ``noninferior``, the exact
  sign test for ``threshold``, Jonckheere–Terpstra for ``trend``. No bootstrap: a percentile
  bootstrap collapses at 2-5 seeds and calls a null effect "reproduced" far more often than its
  nominal rate.
* The p-values of a paper's tested claims (those decided at this scale) are adjusted together
  (Holm by default: family-wise error rate; ``bh``: false discovery rate).
* ``reproduced``: the adjusted p-value of the claimed direction is <= alpha. ``not_reproduced``
  needs its own evidence: the adjusted p-value of the opposite one-sided test is <= alpha (the
  effect's CI excludes the claimed direction, or, for ``noninferior``, the method is worse by
  more than the margin). Otherwise ``inconclusive``.
* Before any data: a claim whose seed counts cannot give a p-value <= alpha is
  ``not_decidable`` (with the power it would have), and is left out of the family
  (:mod:`pipeline.power_plan`).
* A value at a metric's saturation point (``cap``) cannot tell a perfect sampler from an
  over-sharp one: such a "reproduced" is downgraded to inconclusive.
* ``fact``: a quantity computed from the architecture or config (``deterministic`` metrics,
  e.g. FLOPs) is reported as holding or not "by construction" — not a reproduced claim.
* At ``smoke`` scale every verdict is a plumbing check only (``plumbing_only`` in the file).

Claim kinds (fields beyond ``id, statement, source, metric, kind, method``):

* ``compare`` (``experiment``, ``baseline``): the method is better than the baseline.
* ``noninferior`` (``experiment``, ``baseline``, ``margin`` or ``margin_rel``): the method is
  not worse than the baseline by more than the margin (metric units, or a fraction of the
  baseline's median magnitude) — the meaning of "competitive / on par".
* ``threshold`` (``experiment``, ``threshold``): the method's median is beyond the threshold.
* ``trend`` (``experiments`` ordered easy -> hard, ``baseline``, optional ``relative``): the
  method's advantage (per seed index: method - baseline, or relative to |baseline|) grows
  along the ordered experiments.
* ``fact`` (``experiment``, optional ``baseline`` or ``threshold``): see above.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline import guards
from pipeline import exact_tests as inf
from pipeline.config_base import at_scale
from pipeline.power_plan import ALPHA, TESTED_KINDS, budget_fraction, design, power
from pipeline.power_plan import fmt as _fmt
from pipeline.power_plan import in_scale as _in_scale
from pipeline.atomic import atomic_write_json

VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "not_decidable", "fact")
CORRECTION = "holm"
MIN_RUNS = 2
TESTS = {
    "compare": "exact one-sided Mann-Whitney",
    "noninferior": "exact one-sided Mann-Whitney, shifted by the margin",
    "threshold": "exact one-sided sign test",
    "trend": "Jonckheere-Terpstra permutation test (ordered)",
}
CORRECTION_NAMES = {
    "holm": "Holm (family-wise error rate)",
    "bh": "Benjamini-Hochberg (false discovery rate)",
    "none": "no correction",
}


def rule_text(alpha: float, correction: str) -> str:
    """The verdict procedure in one paragraph (shown in the report and written to claims.json)."""
    return (
        f"Each claim is a one-sided test on per-seed final values; p-values of the paper's tested claims "
        f"are adjusted by {CORRECTION_NAMES.get(correction, correction)}. Reproduced: adjusted p <= {alpha} "
        f"in the claimed direction. Not reproduced: adjusted p <= {alpha} in the opposite direction "
        f"(for 'not worse' claims: worse by more than the margin). Otherwise inconclusive. Effects are "
        f"shown with {1 - 2 * alpha:.0%} distribution-free CIs (the CI excludes 0 exactly when the "
        f"unadjusted one-sided test rejects at {alpha})."
    )


def _ci(ci: list) -> str:
    lo, hi = (list(ci or []) + [None, None])[:2]
    return f"[{'-inf' if lo is None else _fmt(lo)}, {'+inf' if hi is None else _fmt(hi)}]"


def _hib(paper_cfg: dict, stats: dict, metric: str) -> bool:
    cfg = (paper_cfg.get("metrics") or {}).get(metric) or {}
    if "higher_is_better" in cfg:
        return bool(cfg["higher_is_better"])
    return bool((stats.get("higher_is_better") or {}).get(metric, True))


def _values(stats: dict, exp: str, metric: str, method: str, block: str = "final") -> tuple[list[float], list[int]]:
    """Finite per-seed final (or ``block="untrained"``: step-0) values of ``method`` and their seeds."""
    e = (stats.get("experiments") or {}).get(exp) or {}
    vals = (((e.get(block) or {}).get(metric) or {}).get(method) or {}).get("values") or []
    seeds = (e.get("seeds") or {}).get(method) or list(range(len(vals)))
    out_v, out_s = [], []
    for v, s in zip(vals, seeds):
        if v is not None and math.isfinite(float(v)):
            out_v.append(float(v))
            out_s.append(int(s))
    return out_v, out_s


def _cap(paper_cfg: dict, claim: dict, scale: str | None) -> float | None:
    cap = claim.get("cap")
    if isinstance(cap, dict):
        cap = cap.get(scale)
    if cap is not None:
        return float(cap)
    cap = ((paper_cfg.get("metrics") or {}).get(claim.get("metric")) or {}).get("cap")
    return None if cap is None else float(cap)


def _at_cap(values: list[float], cap: float | None) -> bool:
    if cap is None or not values:
        return False
    med = inf.median(values)
    return abs(med - cap) <= 1e-9 * max(1.0, abs(cap))


# ---------------------------------------------------------------- one claim's test
def _test(claim: dict, paper_cfg: dict, stats: dict, alpha: float) -> dict:
    """Per-claim test before multiplicity: p_for / p_against, effect and CI, n, design."""
    kind, metric = claim.get("kind"), str(claim.get("metric"))
    hib = _hib(paper_cfg, stats, metric)
    sign = 1.0 if hib else -1.0
    method, base = claim.get("method"), claim.get("baseline")
    conf = 1.0 - 2.0 * alpha
    t: dict[str, Any] = {"higher_is_better": hib, "test": TESTS.get(kind, kind)}

    if kind == "trend":
        groups, n = [], []
        for exp in claim.get("experiments") or []:
            mv, ms = _values(stats, exp, metric, method)
            bv, bs = _values(stats, exp, metric, base)
            bmap = dict(zip(bs, bv))
            gaps = []
            for v, s in zip(mv, ms):  # seed k of the method against seed k of the baseline
                if s in bmap:
                    g = sign * (v - bmap[s])
                    if claim.get("relative"):
                        g = g / abs(bmap[s]) if bmap[s] != 0 else math.nan
                    if math.isfinite(g):
                        gaps.append(g)
            groups.append(gaps)
            n.append(len(gaps))
        t["n"] = n
        t["gaps_median"] = [inf.median_ci(g, conf)["estimate"] for g in groups]
        t["min_p"] = inf.min_p_ordered(n)
        if min(n or [0]) < MIN_RUNS:
            t["missing"] = f"seed-matched gaps per experiment = {n}; need {MIN_RUNS} each"
            return t
        t["p_for"] = inf.jonckheere(groups)["p"]
        t["p_against"] = inf.jonckheere(groups[::-1])["p"]
        t["effect"] = {
            "name": "median gap (method - baseline, good direction) per experiment",
            "estimate": t["gaps_median"],
            "ci": None,
        }
        return t

    exp = claim.get("experiment")
    mv, _ = _values(stats, exp, metric, method)
    t["cap"] = _cap(paper_cfg, claim, stats.get("scale"))
    if kind == "threshold":
        thr = float(claim["threshold"])
        t["n"] = [len(mv)]
        t["min_p"] = inf.min_p_sign(len(mv))
        med = inf.median_ci(mv, conf)
        t["effect"] = {"name": "median", "estimate": med["estimate"], "ci": med["ci"], "threshold": thr}
        t["at_cap"] = _at_cap(mv, t["cap"])
        if len(mv) < MIN_RUNS:
            t["missing"] = f"{len(mv)} finite run(s) of {method}; need {MIN_RUNS}"
            return t
        oriented = [sign * v for v in mv]
        t["p_for"] = inf.sign_test(oriented, sign * thr)["p"]
        t["p_against"] = inf.sign_test([-v for v in oriented], -sign * thr)["p"]
        return t

    bv, _ = _values(stats, exp, metric, base)
    t["n"] = [len(mv), len(bv)]
    t["min_p"] = inf.min_p_two_sample(len(mv), len(bv))
    hl = inf.hodges_lehmann(mv, bv, conf)
    t["effect"] = {"name": "Hodges-Lehmann shift (method - baseline)", "estimate": hl["estimate"], "ci": hl["ci"]}
    t["p_improvement"] = inf.probability_of_improvement([sign * v for v in mv], [sign * v for v in bv])
    t["median"] = {method: inf.median_ci(mv, conf)["estimate"], base: inf.median_ci(bv, conf)["estimate"]}
    t["at_cap"] = _at_cap(mv, t["cap"])
    margin = 0.0
    if kind == "noninferior":
        if claim.get("margin") is not None:
            margin = float(claim["margin"])
        elif bv and claim.get("margin_basis") == "learning":
            # a share of what the baseline learned (final - untrained median): a return with an
            # arbitrary offset (MPE's negative returns) has no meaningful "3 % of its value"
            b0, _ = _values(stats, exp, metric, base, block="untrained")
            if b0:
                gain = inf.median_ci(bv, conf)["estimate"] - inf.median_ci(b0, conf)["estimate"]
                margin = float(claim.get("margin_rel", 0.0)) * abs(gain)
                t["margin_basis"] = (
                    f"{claim.get('margin_rel')} x the baseline's gain over its untrained runs ({_fmt(gain)})"
                )
            else:
                t["missing"] = f"no untrained evaluations of {base}: the margin (a share of its gain) is unknown"
        elif bv:
            margin = float(claim.get("margin_rel", 0.0)) * abs(inf.median_ci(bv, conf)["estimate"])
        t["margin"] = margin
        if "missing" in t:
            return t
    if min(len(mv), len(bv)) < MIN_RUNS:
        t["missing"] = f"runs (method, baseline) = {[len(mv), len(bv)]}; need {MIN_RUNS} of each"
        return t
    xs, ys = [sign * v for v in mv], [sign * v for v in bv]
    t["p_for"] = inf.mann_whitney(xs, ys, shift=margin)["p"]
    t["p_against"] = inf.mann_whitney(ys, xs, shift=-margin)["p"]
    return t


def _fact(claim: dict, paper_cfg: dict, stats: dict) -> dict:
    metric = str(claim.get("metric"))
    hib = _hib(paper_cfg, stats, metric)
    mv, _ = _values(stats, claim.get("experiment"), metric, claim.get("method"))
    numbers: dict[str, Any] = {"higher_is_better": hib, "values": {claim.get("method"): mv}}
    if not mv:
        return {"numbers": numbers, "holds": None, "reason": f"no final {metric} for {claim.get('method')!r}"}
    m = sorted(mv)[len(mv) // 2]
    better = (lambda a, b: a > b) if hib else (lambda a, b: a < b)
    if claim.get("baseline"):
        bv, _ = _values(stats, claim.get("experiment"), metric, claim["baseline"])
        numbers["values"][claim["baseline"]] = bv
        if not bv:
            return {"numbers": numbers, "holds": None, "reason": f"no final {metric} for {claim['baseline']!r}"}
        b = sorted(bv)[len(bv) // 2]
        numbers["ratio"] = m / b if b else None
        holds = better(m, b)
        txt = f"{claim.get('method')} {_fmt(m)} vs {claim['baseline']} {_fmt(b)} (ratio {_fmt(numbers['ratio'])})"
    else:
        thr = float(claim["threshold"])
        holds = better(m, thr)
        txt = f"{claim.get('method')} {_fmt(m)} vs threshold {_fmt(thr)}"
    spread = max(mv) - min(mv)
    return {
        "numbers": numbers,
        "holds": holds,
        "reason": f"{'holds' if holds else 'does not hold'} by construction: {txt}"
        + ("" if spread == 0 else f" (values vary by {_fmt(spread)} across seeds)"),
    }


def _explain(rec: dict, alpha: float) -> str:
    """The verdict in one line a reader can check: effect, CI, test, corrected p, n."""
    n = rec["numbers"]
    eff = n.get("effect") or {}
    parts = []
    if rec["kind"] == "trend":
        parts.append("median gaps " + ", ".join(_fmt(g) for g in eff.get("estimate") or []))
    elif eff:
        parts.append(f"{eff.get('name')} {_fmt(eff.get('estimate'))}, {1 - 2 * alpha:.0%} CI {_ci(eff.get('ci'))}")
    if n.get("margin") is not None:
        parts.append(f"margin {_fmt(n['margin'])}")
    if "threshold" in eff:
        parts.append(f"threshold {_fmt(eff['threshold'])}")
    parts.append(n.get("test", ""))
    if n.get("p_for") is not None:
        parts.append(
            f"p {_fmt(n['p_for'])} (adjusted {_fmt(n.get('p_for_adj'))}, m = {n.get('family_size')}); "
            f"opposite direction p {_fmt(n.get('p_against'))} (adjusted {_fmt(n.get('p_against_adj'))})"
        )
    ns = n.get("n") or []
    parts.append("n = " + " vs ".join(str(k) for k in ns) if ns else "n = 0")
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------- the paper's claims
def evaluate(
    paper_cfg: dict,
    stats: dict,
    *,
    alpha: float = ALPHA,
    correction: str = CORRECTION,
    settings: dict[str, list[dict]] | None = None,
    guard: bool = True,
    measured: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """One verdict record per claim of ``paper_cfg``; see the module docstring.

    ``settings`` (claim id -> resolved settings in which the two sides differ) is copied into
    the records for the report. ``guard``: run :mod:`pipeline.guards` (the claims once more on
    the runs' untrained values, and whether each side of a comparison learned)."""
    scale = stats.get("scale")
    recs: list[dict] = []
    family: list[int] = []
    # decidability comes from the designed seed counts (the config), not from the runs that
    # happened to finish: a lost run must not move a claim out of the family
    planned = {}
    if (
        scale
        and all("scales" in (e or {}) for e in (paper_cfg.get("experiments") or {}).values())
        and paper_cfg.get("experiments")
    ):
        planned = {r["id"]: r for r in design(paper_cfg, scale, alpha=alpha)}
    for claim in paper_cfg.get("claims") or []:
        kind = claim.get("kind")
        rec = {k: claim.get(k) for k in ("id", "statement", "source", "metric", "kind")}
        rec["statement"] = at_scale(rec["statement"], paper_cfg, scale)
        for k in (
            "experiment",
            "experiments",
            "method",
            "baseline",
            "differs_by",
            "differs_reason",
            "extra",
            "extra_reason",
            "baseline_fails",
            "baseline_fails_scales",
        ):
            if k in claim:
                rec[k] = claim[k]
        by_design = {
            s: d
            for s in (claim.get("method"), claim.get("baseline"))
            if kind in ("compare", "noninferior", "trend") and (d := (paper_cfg.get("method_differs") or {}).get(s))
        }
        if by_design:
            # a side's declared design difference (the paper's method_differs) shows with the claim's own
            rec["differs_by"] = sorted(
                {*(claim.get("differs_by") or []), *(n for d in by_design.values() for n in d["differs_by"])}
            )
            rec["differs_reason"] = " ".join(
                [
                    *([claim["differs_reason"]] if claim.get("differs_reason") else []),
                    *(f"{s}: {d['reason']}" for s, d in by_design.items()),
                ]
            )
        if settings and claim.get("id") in settings:
            rec["settings_differ"] = settings[claim["id"]]
        if measured and measured.get(claim.get("id")):
            rec["measured_differ"] = measured[claim["id"]]
        frac = budget_fraction(paper_cfg, claim, scale)
        if frac:
            rec["budget_fraction"] = frac
        # what the scale runs, beside the paper's words ("largest grid" is 16x16 at small)
        runs_here = {
            e: (((paper_cfg.get("experiments") or {}).get(e) or {}).get("scales") or {})
            .get(scale, {})
            .get("env_kwargs")
            for e in (claim.get("experiments") or [claim.get("experiment")])
        }
        if any(runs_here.values()):
            rec["env_at_scale"] = {e: kw for e, kw in runs_here.items() if kw}
        recs.append(rec)
        if kind == "fact" and not _in_scale(claim, scale):
            rec.update(
                verdict="inconclusive",
                numbers={},
                reason=(f"computed at scale {'/'.join(claim['scales'])} only (this is {scale})"),
            )
            continue
        if kind == "fact":
            f = _fact(claim, paper_cfg, stats)
            rec.update(verdict="fact", numbers={**f["numbers"], "holds": f["holds"]}, reason=f["reason"])
            continue
        if kind not in TESTED_KINDS:
            rec.update(verdict="inconclusive", numbers={}, reason=f"unknown claim kind {kind!r}")
            continue
        exps = claim.get("experiments") or [claim.get("experiment")]
        missing_exp = [e for e in exps if e not in (stats.get("experiments") or {})]
        t = _test(claim, paper_cfg, stats, alpha)
        rec["numbers"] = t
        if not _in_scale(claim, scale):
            rec.update(
                verdict="inconclusive",
                reason=(
                    f"claim decided at scale {'/'.join(claim['scales'])} only (this is {scale}); numbers shown "
                    "for reference"
                ),
            )
            continue
        plan = planned.get(claim.get("id"))
        n_design, min_p = (plan["n"], plan["min_p"]) if plan and "n" in plan else (t["n"], t["min_p"])
        if min_p > alpha and (plan or "missing" not in t):
            rec.update(
                verdict="not_decidable",
                reason=(
                    f"not decidable at {scale}: with n = {' vs '.join(map(str, n_design))} the smallest attainable "
                    f"p-value is {_fmt(min_p)} > alpha = {alpha}"
                ),
            )
            continue
        if t["min_p"] > alpha and "missing" not in t:
            t["missing"] = (
                f"runs lost: n = {' vs '.join(map(str, t['n']))} of the planned "
                f"{' vs '.join(map(str, n_design))} cannot reach p <= {alpha}"
            )
        if missing_exp:
            t["missing"] = f"no runs for experiment(s) {', '.join(map(str, missing_exp))}"
        family.append(len(recs) - 1)

    # beyond-paper claims (``extra``: a task or comparison the paper did not run) are a family of
    # their own: they neither spend nor gain from the paper's multiplicity budget
    paper_family = [i for i in family if not recs[i].get("extra")]
    extra_family = [i for i in family if recs[i].get("extra")]
    for fam in (paper_family, extra_family):
        _decide_family(recs, fam, alpha, correction)
    for rec in recs:
        if rec["verdict"] == "not_decidable":
            t = rec["numbers"]
            t["power_1sd"] = power(rec["kind"], t["n"], alpha)
    if guard and any((e or {}).get("untrained") for e in (stats.get("experiments") or {}).values()):
        step0 = evaluate(paper_cfg, guards.untrained_stats(stats), alpha=alpha, correction=correction, guard=False)
        guards.apply(recs, {r["id"]: r for r in step0}, paper_cfg, stats, alpha)
    elif guard:
        for rec in recs:
            rec["guards"] = {"fired": [], "unchecked": "no untrained (step-0) evaluations in these runs"}
    return recs


def _decide_family(recs: list[dict], family: list[int], alpha: float, correction: str) -> None:
    """Adjust the p-values of one family of tested claims together and give their verdicts."""
    adjust = inf.CORRECTIONS[correction]
    # a claim whose data is missing stays in the family with p = 1 (the family is fixed in advance)
    p_for = [recs[i]["numbers"].get("p_for", 1.0) if "missing" not in recs[i]["numbers"] else 1.0 for i in family]
    p_against = [
        recs[i]["numbers"].get("p_against", 1.0) if "missing" not in recs[i]["numbers"] else 1.0 for i in family
    ]
    adj_for, adj_against = (adjust(p_for), adjust(p_against)) if family else ([], [])
    m = len(family)
    for j, i in enumerate(family):
        rec, t = recs[i], recs[i]["numbers"]
        t.update(p_for_adj=adj_for[j], p_against_adj=adj_against[j], family_size=m, alpha=alpha, correction=correction)
        t["power_1sd"] = power(rec["kind"], t["n"], alpha / max(m, 1))
        rec["explanation"] = _explain(rec, alpha)
        if "missing" in t:
            rec.update(verdict="inconclusive", reason=t["missing"])
            continue
        saturated = (
            f"saturated: the method's median is at the metric's cap {_fmt(t.get('cap'))}, where an exact "
            "and an over-sharp sampler look alike"
        )
        against = (
            "worse than the baseline by more than the margin"
            if rec["kind"] == "noninferior"
            else "the opposite direction"
        )
        if adj_for[j] <= alpha:
            if t.get("at_cap"):
                rec.update(verdict="inconclusive", reason=f"{saturated} (adjusted p {_fmt(adj_for[j])})")
            else:
                rec.update(
                    verdict="reproduced", reason=(f"adjusted p {_fmt(adj_for[j])} <= {alpha} in the claimed direction")
                )
        elif adj_against[j] <= alpha:
            rec.update(verdict="not_reproduced", reason=(f"adjusted p {_fmt(adj_against[j])} <= {alpha} for {against}"))
        elif t.get("at_cap"):
            rec.update(verdict="inconclusive", reason=saturated)
        else:
            rec.update(
                verdict="inconclusive",
                reason=(
                    f"neither direction significant after correction (adjusted p {_fmt(adj_for[j])} claimed, "
                    f"{_fmt(adj_against[j])} opposite)"
                ),
            )


def write(
    paper_cfg: dict,
    stats_json: Path,
    out_path: Path,
    *,
    alpha: float = ALPHA,
    correction: str = CORRECTION,
    settings: dict[str, list[dict]] | None = None,
    measured: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """Evaluate the claims against ``stats_json`` and write claims.json (``measured``: claim id
    -> measured budget differences, pipeline.confounds.measured_by_claim)."""
    stats = json.loads(Path(stats_json).read_text(encoding="utf-8"))
    claims = evaluate(paper_cfg, stats, alpha=alpha, correction=correction, settings=settings, measured=measured)
    doc: dict[str, Any] = {"paper": paper_cfg.get("paper", stats.get("paper"))}
    if "scale" in stats:
        doc["scale"] = stats["scale"]
    doc["plumbing_only"] = stats.get("scale") == "smoke"
    doc["procedure"] = {"alpha": alpha, "correction": correction, "rule": rule_text(alpha, correction)}
    if stats.get("scale"):
        doc["design"] = design(paper_cfg, stats["scale"], alpha=alpha)
    doc["claims"] = claims
    doc["guards"] = guards.summary(claims)
    atomic_write_json(out_path, doc)
    return claims
