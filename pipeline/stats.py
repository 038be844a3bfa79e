"""Aggregate run directories into IQM / mean estimates with stratified-bootstrap CIs (rliable).

Reads only the files of the run contract (``curve.csv``, ``eval.json``) and writes two files
into the paper's result directory:

* ``summary.csv`` — long format, one row per (experiment, method, curve metric, step):
  ``experiment,method,metric,step,n_runs,iqm,iqm_lo,iqm_hi,mean,mean_lo,mean_hi``
  (an empty cell is a missing estimate).
* ``stats.json`` — final metrics (from ``eval.json``) per experiment and method, with per-seed
  values, and the probability of improvement for every ordered method pair.

Score arrays follow rliable's convention ``(n_runs, n_tasks[, n_steps])`` with one task per
experiment, so the bootstrap resamples seeds. (rliable needs ``arch<8``, and arch 7.x does not
import under pandas 3: requirements.txt pins pandas 2.3.) One quirk of rliable 1.2.0 shapes this
module: ``StratifiedBootstrap.update_indices`` draws with ``np.random.choice`` — NumPy's *global*
RNG — so the ``random_state`` argument of ``get_interval_estimates`` has no effect on the
resampling (and arch 7 deprecates it). We seed the global RNG right before each call, with a
seed derived from ``random_state`` and the estimate's name, and restore the previous global
state afterwards. Deriving per estimate keeps each CI independent of which other methods or
metrics are present, and makes the output byte-identical for the same inputs.
"""

from __future__ import annotations

import csv
import io
import math
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from pipeline import layout
from pipeline.atomic import atomic_write_json, atomic_write_text
from pipeline.runfiles import ordered, read_curve, read_final_metrics, read_json, to_float

SUMMARY_COLUMNS = [
    "experiment",
    "method",
    "metric",
    "step",
    "n_runs",
    "iqm",
    "iqm_lo",
    "iqm_hi",
    "mean",
    "mean_lo",
    "mean_hi",
]
# Curve columns that are the x axis, not metrics.
CURVE_AXES = ("step", "trajectories")
# Bootstrap resamples per curve interval are capped: a paper has experiments x methods x metrics x
# ~100 steps intervals, and 500 resamples already give percentile bounds stable to ~1e-2 of the
# spread, which is plenty for a band in a figure. Final metrics (the claims) use the full `reps`.
CURVE_REPS_CAP = 500

_RLIABLE: tuple[Any, Any] | None = None


def _rliable() -> tuple[Any, Any]:
    """``(rliable.library, rliable.metrics)``, imported on first use (arch is slow to import)."""
    global _RLIABLE
    if _RLIABLE is None:
        from rliable import library, metrics

        _RLIABLE = (library, metrics)
    return _RLIABLE


# --------------------------------------------------------------------------- estimates


def derive_seed(random_state: int, *parts: str) -> int:
    """A seed for one estimate: stable across processes (crc32, not ``hash``) and < 2**32."""
    return (int(random_state) * 1_000_003 + zlib.crc32("|".join(parts).encode("utf-8"))) % 2**32


def _interval(
    scores: Any, func: Callable[..., np.ndarray], *, reps: int, confidence: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """rliable point estimate and percentile CI (2 x k) of ``func``, global RNG seeded (see top)."""
    library, _ = _rliable()
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        point, ci = library.get_interval_estimates(
            {"x": scores}, func, method="percentile", reps=int(reps), confidence_interval_size=float(confidence)
        )
    finally:
        np.random.set_state(saved)
    return np.atleast_1d(np.asarray(point["x"], dtype=float)), np.asarray(ci["x"], dtype=float).reshape(2, -1)


def _finite(values: Iterable[Any]) -> np.ndarray:
    arr = np.array([to_float(v) for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def estimate(values: Sequence[float], *, reps: int, confidence: float, seed: int) -> dict[str, Any]:
    """IQM and mean of per-run values with stratified-bootstrap CIs; non-finite values are dropped.

    Returns ``{"n", "iqm", "iqm_ci": [lo, hi], "mean", "mean_ci": [lo, hi]}``; with no finite
    value every estimate is ``None``; with one run the CI degenerates to the point.
    """
    x = _finite(values)
    if x.size == 0:
        return {"n": 0, "iqm": None, "iqm_ci": [None, None], "mean": None, "mean_ci": [None, None]}
    scores = x.reshape(-1, 1)  # (n_runs, n_tasks=1)
    func = lambda s: np.array([iqm(s), np.mean(s)])  # noqa: E731  (rliable's aggregate_iqm/_mean)
    if x.size == 1:
        point, ci = func(scores), np.vstack([func(scores), func(scores)])
    else:
        point, ci = _interval(scores, func, reps=reps, confidence=confidence, seed=seed)
    return {
        "n": int(x.size),
        "iqm": _clean(point[0]),
        "iqm_ci": [_clean(ci[0, 0]), _clean(ci[1, 0])],
        "mean": _clean(point[1]),
        "mean_ci": [_clean(ci[0, 1]), _clean(ci[1, 1])],
    }


def iqm(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """The 25 % trimmed mean, as ``scipy.stats.trim_mean(a, 0.25, axis)`` (what rliable's
    aggregate_iqm calls) computes it — same partition, same slice — without scipy's per-call
    argument handling, which is ~1 ms and dominates a 2,000-resample bootstrap (tests assert
    equality)."""
    a = np.asarray(a, dtype=float)
    if axis is None:
        a, axis = a.ravel(), 0
    n = a.shape[axis]
    lo = int(0.25 * n)
    hi = n - lo
    part = np.partition(a, (lo, hi - 1), axis)
    return np.mean(np.take(part, np.arange(lo, hi), axis=axis), axis=axis)


def _poi(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """P(X > Y) for one task, ties counted 1/2 — the Mann-Whitney U / (n_x n_y) that
    ``rliable.metrics.probability_of_improvement`` computes via scipy, ~15x faster per resample
    (tests assert equality)."""
    x, y = scores_x[:, 0][:, None], scores_y[:, 0][None, :]
    return np.array([np.mean((x > y) + 0.5 * (x == y))])


def probability_of_improvement(
    x: Sequence[float], y: Sequence[float], *, reps: int, confidence: float, seed: int
) -> dict[str, Any]:
    """P(X > Y) (higher is better) with a stratified independent-bootstrap CI over both run sets.

    Returns ``{"p", "ci": [lo, hi], "n": [n_x, n_y]}``; ``None`` estimates if a side is empty.
    """
    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return {"p": None, "ci": [None, None], "n": [int(a.size), int(b.size)]}
    sx, sy = a.reshape(-1, 1), b.reshape(-1, 1)
    if a.size == 1 and b.size == 1:
        point = _poi(sx, sy)
        ci = np.vstack([point, point])
    else:
        point, ci = _interval([sx, sy], _poi, reps=reps, confidence=confidence, seed=seed)
    return {"p": _clean(point[0]), "ci": [_clean(ci[0, 0]), _clean(ci[1, 0])], "n": [int(a.size), int(b.size)]}


def _curve_func(s: np.ndarray) -> np.ndarray:
    """Per-step IQM then per-step mean of an (n_runs, 1, n_steps) array. Equal to applying
    rliable's aggregate_iqm / aggregate_mean to every ``s[..., j]`` (scipy's trim_mean via
    :func:`iqm`), vectorised over steps so one bootstrap covers the whole curve."""
    flat = s.reshape(-1, s.shape[-1])
    return np.concatenate([iqm(flat, axis=0), flat.mean(axis=0)])


def curve_estimates(matrix: np.ndarray, *, reps: int, confidence: float, seed: int) -> dict[str, np.ndarray]:
    """Per-step IQM / mean and CIs of an (n_runs, n_steps) matrix.

    Steps where some runs are not finite use the finite runs only: steps are grouped by which
    runs are finite and each group is bootstrapped on its own (one rliable call per group).
    Returns arrays ``n, iqm, iqm_lo, iqm_hi, mean, mean_lo, mean_hi`` of length n_steps.
    """
    m = np.asarray(matrix, dtype=float)
    n_steps = m.shape[1]
    out = {k: np.full(n_steps, np.nan) for k in ("iqm", "iqm_lo", "iqm_hi", "mean", "mean_lo", "mean_hi")}
    out["n"] = np.zeros(n_steps, dtype=int)
    finite = np.isfinite(m)
    groups: dict[bytes, list[int]] = {}
    for j in range(n_steps):
        groups.setdefault(np.packbits(finite[:, j]).tobytes(), []).append(j)
    for key, steps in groups.items():
        rows = np.flatnonzero(finite[:, steps[0]])
        out["n"][steps] = rows.size
        if rows.size == 0:
            continue
        scores = m[np.ix_(rows, steps)][:, None, :]  # (n_runs, n_tasks=1, n_steps)
        if rows.size == 1:
            point = _curve_func(scores)
            ci = np.vstack([point, point])
        else:
            point, ci = _interval(
                scores, _curve_func, reps=reps, confidence=confidence, seed=(seed + zlib.crc32(key)) % 2**32
            )
        k = len(steps)
        out["iqm"][steps], out["mean"][steps] = point[:k], point[k:]
        out["iqm_lo"][steps], out["mean_lo"][steps] = ci[0, :k], ci[0, k:]
        out["iqm_hi"][steps], out["mean_hi"][steps] = ci[1, :k], ci[1, k:]
    return out


# --------------------------------------------------------------------------- reading runs


def _clean(v: Any) -> float | None:
    """JSON-safe float: non-finite -> None (json would otherwise write the invalid token NaN)."""
    f = to_float(v)
    return f if math.isfinite(f) else None


# --------------------------------------------------------------------------- aggregate


def compute(
    paper_cfg: dict, runs: list[dict], *, reps: int, confidence: float, random_state: int
) -> tuple[list[dict], dict]:
    """Summary rows and the stats dict (without paper/scale) for ``runs``; see :func:`aggregate`."""
    metric_cfg = paper_cfg.get("metrics") or {}
    exp_cfg = paper_cfg.get("experiments") or {}
    curve_reps = max(1, min(int(reps), CURVE_REPS_CAP))

    by_exp: dict[str, dict[str, list[dict]]] = {}
    for r in runs:
        by_exp.setdefault(str(r["experiment"]), {}).setdefault(str(r["method"]), []).append(r)

    rows: list[dict] = []
    experiments: dict[str, Any] = {}
    for exp in ordered(exp_cfg, by_exp):
        methods = ordered((exp_cfg.get(exp) or {}).get("methods") or [], by_exp[exp])
        loaded: dict[str, list[tuple[int, pd.DataFrame | None, dict | None]]] = {}
        for method in methods:
            items = sorted(by_exp[exp][method], key=lambda r: int(r["seed"]))
            loaded[method] = [
                (
                    int(r["seed"]),
                    read_curve(Path(r["dir"]) / layout.CURVE),
                    read_final_metrics(Path(r["dir"]) / layout.EVAL),
                )
                for r in items
            ]

        # Curves: metric columns in order of first appearance (runs are method- then seed-ordered).
        curve_metrics: list[str] = []
        for method in methods:
            for _, curve, _ in loaded[method]:
                if curve is not None:
                    curve_metrics += [c for c in curve.columns if c not in CURVE_AXES and c not in curve_metrics]
        for method in methods:
            curves = [c for _, c, _ in loaded[method] if c is not None]
            if not curves:
                continue
            steps = sorted(set().union(*(c.index for c in curves)))
            for metric in curve_metrics:
                mat = np.vstack(
                    [
                        c[metric].reindex(steps).to_numpy(dtype=float)
                        if metric in c.columns
                        else np.full(len(steps), np.nan)
                        for c in curves
                    ]
                )
                est = curve_estimates(
                    mat,
                    reps=curve_reps,
                    confidence=confidence,
                    seed=derive_seed(random_state, exp, method, metric, "curve"),
                )
                for j, step in enumerate(steps):
                    rows.append(
                        {
                            "experiment": exp,
                            "method": method,
                            "metric": metric,
                            "step": int(step),
                            "n_runs": int(est["n"][j]),
                            **{k: est[k][j] for k in SUMMARY_COLUMNS[5:]},
                        }
                    )

        # Final metrics from eval.json.
        names: set[str] = set()
        for method in methods:
            for _, _, final in loaded[method]:
                names |= set(final or {})
        final_metrics = ordered(metric_cfg, names)
        final: dict[str, Any] = {}
        for metric in final_metrics:
            final[metric] = {}
            for method in methods:
                values = [_clean((f or {}).get(metric)) for _, _, f in loaded[method]]
                est = estimate(
                    values,
                    reps=reps,
                    confidence=confidence,
                    seed=derive_seed(random_state, exp, method, metric, "final"),
                )
                final[metric][method] = {**est, "values": values}
        # What each run measured it did (manifest.json "budget", methods/common/budget.py), per
        # seed: the confound check compares the two sides of every claim on it.
        budget: dict[str, Any] = {}
        for method in methods:
            rows_b = [
                read_json(Path(r["dir"]) / layout.MANIFEST).get("budget") or {}
                for r in sorted(by_exp[exp][method], key=lambda r: int(r["seed"]))
            ]
            keys = [k for k in dict.fromkeys(k for b in rows_b for k in b)]
            if keys:
                budget[method] = {k: [b.get(k) for b in rows_b] for k in keys}
        # The same evaluation of each run's untrained (step-0) agent, per seed: what the claims'
        # guards compare against (pipeline/guards.py). No estimates: only the values are used.
        untrained: dict[str, Any] = {}
        for method in methods:
            before = [
                read_final_metrics(Path(r["dir"]) / layout.EVAL, untrained=True)
                for r in sorted(by_exp[exp][method], key=lambda r: int(r["seed"]))
            ]
            for metric in final_metrics:
                if any(b and metric in b for b in before):
                    untrained.setdefault(metric, {})[method] = {
                        "values": [_clean((b or {}).get(metric)) for b in before]
                    }

        # Probability of improvement, oriented so that "A>B" means A is better; only metrics
        # whose direction the paper config declares.
        poi: dict[str, Any] = {}
        for metric in final_metrics:
            if metric not in metric_cfg:
                continue
            sign = 1.0 if (metric_cfg[metric] or {}).get("higher_is_better", True) else -1.0
            poi[metric] = {}
            for i, a in enumerate(methods):
                for b in methods[i + 1 :]:
                    xa = [sign * v for v in final[metric][a]["values"] if v is not None]
                    xb = [sign * v for v in final[metric][b]["values"] if v is not None]
                    ab = probability_of_improvement(
                        xa,
                        xb,
                        reps=reps,
                        confidence=confidence,
                        seed=derive_seed(random_state, exp, metric, f"{a}>{b}", "poi"),
                    )
                    # P(B>A) = 1 - P(A>B) exactly (ties count 1/2), and its percentile CI mirrors.
                    lo, hi = ab["ci"]
                    ba = {
                        "p": None if ab["p"] is None else 1.0 - ab["p"],
                        "ci": [None if hi is None else 1.0 - hi, None if lo is None else 1.0 - lo],
                        "n": ab["n"][::-1],
                    }
                    poi[metric][f"{a}>{b}"], poi[metric][f"{b}>{a}"] = ab, ba

        experiments[exp] = {
            "n_runs": {m: len(loaded[m]) for m in methods},
            "seeds": {m: [s for s, _, _ in loaded[m]] for m in methods},
            "final": final,
            "untrained": untrained,
            "budget": budget,
            "prob_improvement": poi,
        }

    stats = {
        "experiments": experiments,
        "higher_is_better": {m: bool((c or {}).get("higher_is_better", True)) for m, c in metric_cfg.items()},
        "settings": {
            "reps": int(reps),
            "curve_reps": curve_reps,
            "confidence": float(confidence),
            "random_state": int(random_state),
            "ci": "percentile",
            "bootstrap": "stratified over runs (rliable 1.2)",
        },
    }
    return rows, stats


def _csv_cell(v: Any) -> str:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if math.isfinite(v) else ""  # repr: shortest round-trip, deterministic
    return str(v)


def summary_csv_text(rows: list[dict]) -> str:
    """The summary rows as CSV text (``SUMMARY_COLUMNS``; empty cell = missing estimate)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for row in rows:
        w.writerow([_csv_cell(row[c]) for c in SUMMARY_COLUMNS])
    return buf.getvalue()


def aggregate(
    paper_cfg: dict,
    runs: list[dict],
    out_dir: Path,
    *,
    reps: int,
    confidence: float,
    random_state: int,
    scale: str | None = None,
) -> None:
    """:func:`write` ``out_dir/summary.csv`` and ``out_dir/stats.json``."""
    out_dir = Path(out_dir)
    write(
        paper_cfg,
        runs,
        out_dir / layout.SUMMARY,
        out_dir / layout.STATS,
        reps=reps,
        confidence=confidence,
        random_state=random_state,
        scale=scale,
    )


def write(
    paper_cfg: dict,
    runs: list[dict],
    summary_csv: Path,
    stats_json: Path,
    *,
    reps: int,
    confidence: float,
    random_state: int,
    scale: str | None = None,
) -> None:
    """Write the summary CSV and the stats JSON of one paper's runs.

    ``runs`` items are ``{"experiment", "method", "seed", "dir"}``. ``scale`` is recorded in
    stats.json (the claims read it), and omitted if not given. Same inputs and ``random_state``
    give byte-identical files.
    """
    paper = str(paper_cfg.get("paper", ""))
    rows, stats = compute(paper_cfg, runs, reps=reps, confidence=confidence, random_state=random_state)
    head: dict[str, Any] = {"paper": paper}
    if scale is not None:
        head["scale"] = scale
    atomic_write_text(summary_csv, summary_csv_text(rows))
    atomic_write_json(stats_json, {**head, **stats})
