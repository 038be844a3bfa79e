"""Guards on a paper's claims: checks that catch an experiment which cannot support its verdict.

A verdict is only as good as the experiment under it. Two faults an outside read found in this
project — a baseline that never learned (QGFN's TB with a log Z stuck near its initial value) and
a claim that held before any training (Kaleidoscope's FLOPs: the masks prune from initialisation)
— are caught here, on every claim, from the runs' own files:

* **learned** — for each side of a comparison (``compare`` / ``noninferior`` / ``trend``), the
  trained runs' final values must beat the same evaluation of the same seeds' *untrained* agents
  (step 0; ``eval.json["untrained"]``), by the exact one-sided Mann–Whitney test the claims use,
  at alpha, unadjusted. Learning is judged on the claim's metric, or on the metric the paper
  config names for it (``metrics.<m>.learning_metric``: a diversity metric is at its best
  before training, so "did the baseline learn" is asked of the reward). A claim whose baseline
  did not learn is ``inconclusive`` ("baseline did not learn") unless the claim declares, with
  a source, that the paper reports the baseline failing (``baseline_fails: "<source>"``; with
  ``baseline_fails_scales`` only at the scales listed — a paper that reports the baseline failing
  on its 128x128 grid says nothing about the 16x16 grid ``small`` runs). A
  "reproduced" whose method did not learn is ``inconclusive`` too. Where the seed counts cannot
  reach alpha at all (smoke's 2 seeds) the guard reports "cannot tell at n = ..." and decides
  nothing: smoke runs are too short to learn, so the guard is shown there, not applied.
* **by construction** — every tested claim and every fact is evaluated once more with each
  run's untrained values in place of its final ones (same seeds, same test, same family). A
  claim that comes out "reproduced" — or a fact that holds — on untrained agents is flagged;
  such a claim cannot count as reproduced (``inconclusive``, "holds at step 0").

The guards' findings go into each claim record (``guards``) and so into the ledger.
"""

from __future__ import annotations

import copy
from typing import Any

from pipeline import exact_tests as inf

COMPARE_KINDS = ("compare", "noninferior", "trend")
LEARNED, NOT_LEARNED, CANNOT_TELL, UNCHECKED = "learned", "did not learn", "cannot tell", "unchecked"


def learning_metric(paper_cfg: dict, metric: str) -> str:
    """The metric on which "did this run learn" is judged for claims on ``metric``."""
    cfg = (paper_cfg.get("metrics") or {}).get(metric) or {}
    return str(cfg.get("learning_metric") or metric)


def _higher_is_better(paper_cfg: dict, stats: dict, metric: str) -> bool:
    cfg = (paper_cfg.get("metrics") or {}).get(metric) or {}
    if "higher_is_better" in cfg:
        return bool(cfg["higher_is_better"])
    return bool((stats.get("higher_is_better") or {}).get(metric, True))


def paired_values(stats: dict, exp: str, metric: str, method: str) -> tuple[list[float], list[float]]:
    """Finite final and untrained values of ``method`` (each list on its own: a run's untrained
    value exists wherever its final one does, but not conversely for runs of older code)."""
    e = (stats.get("experiments") or {}).get(exp) or {}

    def finite(block: str) -> list[float]:
        vals = ((((e.get(block) or {}).get(metric) or {}).get(method) or {}).get("values")) or []
        return [float(v) for v in vals if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")]

    return finite("final"), finite("untrained")


def learned(paper_cfg: dict, stats: dict, exp: str, metric: str, method: str, alpha: float) -> dict[str, Any]:
    """Whether ``method``'s runs of ``exp`` learned: final vs untrained on the learning metric."""
    lm = learning_metric(paper_cfg, metric)
    final, before = paired_values(stats, exp, lm, method)
    out: dict[str, Any] = {"experiment": exp, "method": method, "metric": lm, "n": [len(final), len(before)]}
    if not final or not before:
        out.update(status=UNCHECKED, reason=f"no untrained evaluation of {method} on {lm}")
        return out
    sign = 1.0 if _higher_is_better(paper_cfg, stats, lm) else -1.0
    p = inf.mann_whitney([sign * v for v in final], [sign * v for v in before])["p"]
    min_p = inf.min_p_two_sample(len(final), len(before))
    out.update(p=p, min_p=min_p, median_final=inf.median(final), median_untrained=inf.median(before))
    if p is not None and p <= alpha:
        out["status"] = LEARNED
    elif min_p > alpha:
        out["status"] = CANNOT_TELL
        # too few seeds to test (smoke's 2): still say which way it went, so the "did not
        # learn" path shows on every smoke DAG; it decides nothing
        better = (sign * out["median_final"]) > (sign * out["median_untrained"])
        out["descriptive"] = "improved" if better else "no improvement"
    else:
        out["status"] = NOT_LEARNED
    out["reason"] = (
        f"{method} {lm}: median {out['median_final']:.4g} trained vs {out['median_untrained']:.4g} "
        f"untrained, one-sided Mann-Whitney p {p:.3g}"
        + (
            f" (smallest attainable {min_p:.3g} > alpha: cannot tell; descriptively {out['descriptive']})"
            if out["status"] == CANNOT_TELL
            else ""
        )
    )
    return out


def learned_checks(paper_cfg: dict, stats: dict, claim: dict, alpha: float) -> list[dict[str, Any]]:
    """The learned check of each side of a comparison claim in each of its experiments."""
    if claim.get("kind") not in COMPARE_KINDS or not claim.get("baseline"):
        return []
    exps = claim.get("experiments") or [claim.get("experiment")]
    out = []
    for exp in exps:
        for side in ("method", "baseline"):
            check = learned(paper_cfg, stats, exp, str(claim.get("metric")), str(claim[side]), alpha)
            check["side"] = side
            out.append(check)
    return out


def untrained_stats(stats: dict) -> dict:
    """``stats`` with every run's final values replaced by its untrained ones (what the claims
    would have said before any training)."""
    out = copy.deepcopy(stats)
    for e in (out.get("experiments") or {}).values():
        e["final"] = {
            m: {meth: {"values": list(v.get("values") or [])} for meth, v in by_m.items()}
            for m, by_m in (e.get("untrained") or {}).items()
        }
    return out


def declared_failing(claim: dict, scale: str | None) -> str | None:
    """The claim's source for "the paper reports this baseline failing", where it applies at ``scale``."""
    source = claim.get("baseline_fails")
    scales = claim.get("baseline_fails_scales")
    if not source or (scales is not None and scale not in scales):
        return None
    return str(source)


def apply(records: list[dict], step0: dict[str, dict], paper_cfg: dict, stats: dict, alpha: float) -> None:
    """Attach both guards to the verdict ``records`` (in place) and downgrade where they fire.

    ``step0``: claim id -> its record evaluated on untrained values."""
    claims = {c.get("id"): c for c in paper_cfg.get("claims") or []}
    for rec in records:
        claim = claims.get(rec.get("id")) or {}
        g: dict[str, Any] = {}
        zero = step0.get(rec.get("id"))
        if zero is not None:
            holds = zero.get("verdict") == "reproduced" or (
                zero.get("verdict") == "fact" and (zero.get("numbers") or {}).get("holds") is True
            )
            g["step0"] = {"verdict": zero.get("verdict"), "by_construction": holds, "reason": zero.get("reason")}
        checks = learned_checks(paper_cfg, stats, claim, alpha)
        if checks:
            g["learned"] = checks
        rec["guards"] = g
        fired = []
        if g.get("step0", {}).get("by_construction"):
            fired.append(
                "by construction: "
                + ("the fact holds" if rec.get("verdict") == "fact" else "reproduced")
                + " on untrained agents (step 0)"
            )
        declared = declared_failing(claim, stats.get("scale"))
        base_fail = [c for c in checks if c["side"] == "baseline" and c["status"] == NOT_LEARNED]
        meth_fail = [c for c in checks if c["side"] == "method" and c["status"] == NOT_LEARNED]
        if base_fail:
            if declared:
                g["baseline_fails_declared"] = declared
            else:
                fired.append("baseline did not learn (" + "; ".join(c["reason"] for c in base_fail) + ")")
        if meth_fail and rec.get("verdict") == "reproduced":
            fired.append("method did not learn (" + "; ".join(c["reason"] for c in meth_fail) + ")")
        g["fired"] = fired
        if not fired or rec.get("verdict") in ("fact", "not_decidable"):
            continue
        by_constr = g.get("step0", {}).get("by_construction")
        if rec.get("verdict") == "reproduced" and (by_constr or meth_fail or (base_fail and not declared)):
            rec["verdict_before_guards"] = rec["verdict"]
            rec.update(verdict="inconclusive", reason="; ".join(fired) + f" (was: {rec.get('reason')})")
        elif base_fail and not declared and rec.get("verdict") == "not_reproduced":
            rec["verdict_before_guards"] = rec["verdict"]
            rec.update(verdict="inconclusive", reason="; ".join(fired) + f" (was: {rec.get('reason')})")


def findings(rec: dict) -> list[str]:
    """One claim's findings as lines: what fired, what was flagged at step 0, whom learning
    could not be told for, and measured differences (named or not)."""
    g = rec.get("guards") or {}
    out = [f"FIRED {f}" for f in g.get("fired") or []]
    if (g.get("step0") or {}).get("by_construction") and rec.get("kind") == "fact":
        out.append("fact holds on untrained agents (by construction, as a fact should)")
    tell = sorted(
        {
            f"{c['method']} on {c['experiment']} ({c.get('descriptive')})"
            for c in g.get("learned") or []
            if c["status"] == CANNOT_TELL
        }
    )
    if tell:
        out.append("cannot tell whether these learned: " + ", ".join(tell))
    for m in rec.get("measured_differ") or []:
        out.append(
            f"measured {m['quantity']} {m['method']} vs {m['baseline']} on {m['experiment']}"
            + (" (named in differs_by)" if m.get("named") else " (NOT named)")
        )
    return out


def summary(records: list[dict]) -> dict[str, int]:
    """Counts of the guards' findings over a paper's claims (for the report's summary line)."""
    out = {"by_construction": 0, "baseline_did_not_learn": 0, "method_did_not_learn": 0, "downgraded": 0}
    for rec in records:
        g = rec.get("guards") or {}
        out["by_construction"] += bool((g.get("step0") or {}).get("by_construction"))
        out["baseline_did_not_learn"] += any(
            c["side"] == "baseline" and c["status"] == NOT_LEARNED for c in g.get("learned") or []
        )
        out["method_did_not_learn"] += any(
            c["side"] == "method" and c["status"] == NOT_LEARNED for c in g.get("learned") or []
        )
        out["downgraded"] += "verdict_before_guards" in rec
    return out
