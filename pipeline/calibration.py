"""Calibration of the claims procedure by simulation, through the code that decides real claims.

Synthetic per-seed values (method and baseline from one distribution = a null case, or the method
shifted = a true effect) go through :func:`pipeline.claims.evaluate` exactly as aggregated runs do.
The share of "reproduced" verdicts under the null is the false-positive rate, to be held at or
below ``alpha``; under a one-SD shift it is the power. ``python -m pipeline calibrate`` prints both
for the seed counts the paper configs use; tests/test_calibration.py asserts them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline import claims, power_plan

Sampler = Callable[[np.random.Generator, int], np.ndarray]

DISTRIBUTIONS: dict[str, Sampler] = {
    "normal": lambda rng, n: rng.standard_normal(n),
    # heavy right tail (returns of a few lucky seeds)
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    # discrete with many ties (modes found)
    "poisson": lambda rng, n: rng.poisson(2.0, n).astype(float),
}
METRICS = {"m": {"label": "m", "higher_is_better": True}}


def _stats(values: dict[str, dict[str, list[float]]]) -> dict:
    """A stats dict for experiments ``{exp: {method: values}}`` (the aggregate's shape)."""
    return {
        "scale": "small",
        "experiments": {
            exp: {
                "final": {"m": {k: {"values": list(map(float, v)), "n": len(v)} for k, v in per.items()}},
                "seeds": {k: list(range(len(v))) for k, v in per.items()},
            }
            for exp, per in values.items()
        },
    }


def compare_claim(kind: str = "compare", **kw: object) -> dict:
    return {
        "id": "c",
        "statement": "s",
        "experiment": "e",
        "metric": "m",
        "kind": kind,
        "method": "a",
        "baseline": "b",
        **kw,
    }


def threshold_claim(threshold: float) -> dict:
    return {
        "id": "t",
        "statement": "s",
        "experiment": "e",
        "metric": "m",
        "kind": "threshold",
        "method": "a",
        "threshold": threshold,
    }


def reproduced_rate(
    kind: str,
    n: tuple[int, ...],
    sampler: Sampler,
    *,
    shift: float = 0.0,
    sims: int = 2000,
    alpha: float = claims.ALPHA,
    margin: float = 0.0,
    seed: int = 0,
) -> float:
    """Share of 'reproduced' verdicts of one claim over ``sims`` synthetic data sets.

    ``compare``: method = sampler + shift, baseline = sampler. ``noninferior``: the same with a
    margin; shift = -margin is the boundary of the null. ``threshold``: values = sampler + shift
    against the sampler's median (estimated once by a large draw)."""
    rng = np.random.default_rng(seed)
    if kind == "threshold":
        med = float(np.median(sampler(np.random.default_rng(12345), 200_001)))
        claim = threshold_claim(med)
    elif kind == "noninferior":
        claim = compare_claim("noninferior", margin=margin)
    else:
        claim = compare_claim()
    cfg = {"paper": "sim", "metrics": METRICS, "claims": [claim]}
    hits = 0
    for _ in range(sims):
        if kind == "threshold":
            vals = {"e": {"a": sampler(rng, n[0]) + shift}}
        else:
            vals = {"e": {"a": sampler(rng, n[0]) + shift, "b": sampler(rng, n[1])}}
        (rec,) = claims.evaluate(cfg, _stats(vals), alpha=alpha)
        hits += rec["verdict"] == "reproduced"
    return hits / sims


def family_error_rate(
    m: int, n: int, *, sims: int = 1000, alpha: float = claims.ALPHA, correction: str = claims.CORRECTION, seed: int = 1
) -> float:
    """Probability that any of ``m`` null compare claims (independent experiments) of one
    paper is called reproduced — the family-wise error rate the correction controls."""
    rng = np.random.default_rng(seed)
    cfg = {
        "paper": "sim",
        "metrics": METRICS,
        "claims": [{**compare_claim(), "id": f"c{i}", "experiment": f"e{i}"} for i in range(m)],
    }
    hits = 0
    for _ in range(sims):
        vals = {f"e{i}": {"a": rng.standard_normal(n), "b": rng.standard_normal(n)} for i in range(m)}
        recs = claims.evaluate(cfg, _stats(vals), alpha=alpha, correction=correction)
        hits += any(r["verdict"] == "reproduced" for r in recs)
    return hits / sims


def old_rule_rate(n: int, *, sims: int = 2000, reps: int = 500, confidence: float = 0.95, seed: int = 2) -> float:
    """The procedure this replaced (percentile-bootstrap CI of P(method > baseline) entirely
    above 0.5), under the null: the harness must flag it."""
    rng = np.random.default_rng(seed)
    lo_q = (1 - confidence) / 2
    hits = 0
    for _ in range(sims):
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        xi = x[rng.integers(0, n, (reps, n))]
        yi = y[rng.integers(0, n, (reps, n))]
        d = xi[:, :, None] - yi[:, None, :]
        poi = np.mean((d > 0) + 0.5 * (d == 0), axis=(1, 2))
        hits += np.quantile(poi, lo_q) > 0.5
    return hits / sims


def configured_seed_counts(papers: dict[str, dict], scales: tuple[str, ...] = ("small", "paper")) -> dict:
    """``{"compare": {(n1, n2), ...}, "threshold": {(n,), ...}}`` over the decidable claims."""
    out: dict[str, set] = {"compare": set(), "threshold": set()}
    for cfg in papers.values():
        for scale in scales:
            for row in power_plan.design(cfg, scale):
                if not str(row.get("status", "")).startswith("decidable"):
                    continue
                if row["kind"] in ("compare", "noninferior"):
                    out["compare"].add(tuple(row["n"]))
                elif row["kind"] == "threshold":
                    out["threshold"].add(tuple(row["n"]))
    return out


def table(papers: dict[str, dict], sims: int = 2000) -> list[dict]:
    """Per configured seed count: false-positive rate under the null (normal) and power at a
    one-SD shift, both through claims.evaluate (one claim, no correction: the per-claim rate)."""
    rows = []
    counts = configured_seed_counts(papers)
    for kind in ("compare", "threshold"):
        for n in sorted(counts[kind]):
            rows.append(
                {
                    "kind": kind,
                    "n": list(n),
                    "false_reproduced": reproduced_rate(kind, n, DISTRIBUTIONS["normal"], sims=sims),
                    "power_1sd": reproduced_rate(kind, n, DISTRIBUTIONS["normal"], shift=1.0, sims=sims),
                }
            )
    return rows
