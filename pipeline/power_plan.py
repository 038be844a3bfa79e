"""Before anything runs: which of a paper's claims its configured seed counts can decide at a
scale, the power they would have, and, for a claim that could only be reproduced once other
claims of the paper are (its smallest attainable p above Holm's first level, alpha / m), the
seed count that decides it on its own evidence. Printed by ``python -m pipeline plan`` and
written into claims.json by :mod:`pipeline.claims`; the claim kinds and alpha live here."""

from __future__ import annotations

import math
from typing import Any

from pipeline import exact_tests as inf

TESTED_KINDS = ("compare", "noninferior", "threshold", "trend")
ALPHA = 0.05


def fmt(x: Any) -> str:
    """A number as the ledger and the plan print it (4 significant digits; n/a, inf)."""
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.4g}" if isinstance(x, (int, float)) else str(x)


def in_scale(claim: dict, scale: str | None) -> bool:
    """Whether a claim is decided at ``scale`` (its ``scales``, or every scale)."""
    return not claim.get("scales") or scale in claim["scales"]


def power(kind: str, n: list[int], level: float, shift_sd: float = 1.0) -> float | None:
    """Power at a ``shift_sd``-SD effect for these seed counts at ``level`` (design number)."""
    if not n or min(n) == 0:
        return 0.0
    if kind in ("compare", "noninferior"):
        return inf.power_two_sample(n[0], n[1], level, shift_sd)
    if kind == "threshold":
        return inf.power_sign(n[0], level, shift_sd)
    if kind == "trend":
        return inf.power_ordered(tuple(n), level, shift_sd)
    return None


def _detectable(kind: str, n: list[int], level: float) -> float | None:
    """The effect (in SDs) these seed counts detect with 80 % power at ``level``."""
    if not n or min(n) == 0 or kind not in ("compare", "noninferior", "threshold"):
        return None
    if kind == "threshold":
        return inf.detectable_effect(inf.power_sign, n[0], level)
    return inf.detectable_effect(inf.power_two_sample, n[0], n[1], level)


def design(paper_cfg: dict, scale: str, *, alpha: float = ALPHA) -> list[dict]:
    """Per claim, from the config alone (seed counts of the runs at ``scale``): whether it can be
    decided there, and its power at a one-SD effect. Shown before anything runs."""
    exps = paper_cfg.get("experiments") or {}

    def n_runs(exp_id: str, method: str | None) -> int:
        sc = ((exps.get(exp_id) or {}).get("scales") or {}).get(scale) or {}
        run = sc.get("methods") or (exps.get(exp_id) or {}).get("methods") or []
        return int(sc.get("seeds", 0)) if method in run else 0

    rows, tested = [], []
    for claim in paper_cfg.get("claims") or []:
        kind = claim.get("kind")
        row = {"id": claim.get("id"), "kind": kind}
        rows.append(row)
        if kind not in TESTED_KINDS:
            row["status"] = "fact" if kind == "fact" else "unknown kind"
            continue
        if not in_scale(claim, scale):
            row["status"] = f"decided at {'/'.join(claim['scales'])} only"
            continue
        if kind == "trend":
            n = [
                min(n_runs(e, claim.get("method")), n_runs(e, claim.get("baseline")))
                for e in claim.get("experiments") or []
            ]
            min_p = inf.min_p_ordered(n)
        elif kind == "threshold":
            n = [n_runs(claim.get("experiment"), claim.get("method"))]
            min_p = inf.min_p_sign(n[0])
        else:
            n = [
                n_runs(claim.get("experiment"), claim.get("method")),
                n_runs(claim.get("experiment"), claim.get("baseline")),
            ]
            min_p = inf.min_p_two_sample(*n)
        row.update(n=n, min_p=min_p)
        if min_p > alpha:
            row["status"] = "not decidable"
            row["power_1sd"] = power(kind, n, alpha)
        else:
            tested.append(row)
    # beyond-paper claims (``extra``) form a Holm family of their own (pipeline.claims)
    extra = {c.get("id") for c in paper_cfg.get("claims") or [] if c.get("extra")}
    for family in ([r for r in tested if r["id"] not in extra], [r for r in tested if r["id"] in extra]):
        for row in family:
            level = alpha / max(len(family), 1)
            row["status"] = "decidable" if row["min_p"] <= level else "decidable late"
            if row["status"] == "decidable late":
                row["seeds_needed"] = seeds_needed(row["kind"], len(row["n"]), level)
            row["power_1sd"] = power(row["kind"], row["n"], level)
            row["detectable_sd"] = _detectable(row["kind"], row["n"], level)
            row["family_size"] = len(family)
            if row["id"] in extra:
                row["extra"] = True
    return rows


def seeds_needed(kind: str, groups: int, level: float, most: int = 64) -> int | None:
    """The smallest seed count per run set with which a claim's test can reach ``level`` on its
    own evidence (Holm's first level), or None beyond ``most``."""
    for n in range(2, most + 1):
        if kind == "threshold":
            min_p = inf.min_p_sign(n)
        elif kind == "trend":
            min_p = inf.min_p_ordered([n] * groups)
        else:
            min_p = inf.min_p_two_sample(n, n)
        if min_p <= level:
            return n
    return None


def design_line(row: dict, scale: str) -> str:
    n = row.get("n")
    ns = " vs ".join(map(str, n)) if n else ""
    if row.get("status") == "not decidable":
        return (
            f"{row['id']}: not decidable at {scale}: smallest p {fmt(row['min_p'])} at n = {ns} "
            f"(power at 1 SD {fmt(row.get('power_1sd'))})"
        )
    if row.get("status") in ("decidable", "decidable late"):
        det = row.get("detectable_sd")
        txt = (
            f"{row['id']}: decidable at {scale}: n = {ns}, power {fmt(row['power_1sd'])} at a 1-SD effect, "
            f"80 % power at {fmt(det) + ' SD' if det else ('n/a' if row['kind'] == 'trend' else '> 8 SD')} "
            f"(Holm's first level, alpha/{row['family_size']})"
        )
        if row["status"] == "decidable late":
            txt += (
                f"; smallest p {fmt(row['min_p'])} > alpha/{row['family_size']}: reproducible only once "
                f"other claims of the paper are ({row.get('seeds_needed')} seeds a run set decide it alone)"
            )
        return txt
    return f"{row['id']}: {row.get('status')}"


def budget_fraction(paper_cfg: dict, claim: dict, scale: str | None) -> dict[str, Any] | None:
    """The share of the paper-scale budget a verdict at ``scale`` rests on: training length
    (``iterations``: env steps or GFlowNet iterations, whichever the experiment counts) and
    network width (``hidden``, where both scales set it), the smallest over the claim's
    experiments. None where the config does not say (no paper scale)."""
    exps = paper_cfg.get("experiments") or {}
    fracs: dict[str, float] = {}
    for exp_id in claim.get("experiments") or [claim.get("experiment")]:
        sc = (exps.get(exp_id) or {}).get("scales") or {}
        here, paper = sc.get(scale) or {}, sc.get("paper") or {}
        if here.get("iterations") and paper.get("iterations"):
            f = float(here["iterations"]) / float(paper["iterations"])
            fracs["iterations"] = min(fracs.get("iterations", f), f)
        h_here = ((here.get("overrides") or {}).get("all") or {}).get("hidden")
        h_paper = ((paper.get("overrides") or {}).get("all") or {}).get("hidden")
        if h_here and h_paper:
            f = float(h_here) / float(h_paper)
            fracs["hidden"] = min(fracs.get("hidden", f), f)
    return fracs or None


def fraction_bucket(fraction: float | None) -> str:
    """The report's buckets of a verdict's training-length share of the paper's budget."""
    if fraction is None:
        return "unknown"
    if fraction >= 1.0:
        return "100 %"
    if fraction >= 0.1:
        return "10-100 %"
    if fraction >= 0.01:
        return "1-10 %"
    return "< 1 %"
