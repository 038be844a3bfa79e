"""Exact small-sample tests behind the claims ledger (pipeline/claims.py).

A claim is decided on the per-seed final values of a metric. With 3-10 seeds a side, a
percentile bootstrap collapses (two seeds that differ by 0.01 give P(better) = 1 with CI [1, 1]),
so verdicts come from tests whose error rate holds at any n:

* ``mann_whitney`` — the exact permutation distribution of the Mann–Whitney U statistic
  (ties count 1/2), one-sided. Without ties the null distribution is counted exactly
  (:func:`u_null_counts`); with ties every relabelling of the pooled values is enumerated, or,
  above ``MAX_ENUMERATION`` relabellings, a seeded Monte-Carlo permutation test with the
  (b + 1) / (N + 1) p-value, which is valid too.
* ``hodges_lehmann`` — the shift estimate (median of all pairwise differences) with the
  distribution-free CI that inverts the same test (unbounded when n is too small to bound it).
* ``sign_test`` / ``median_ci`` — one-sample: is the median beyond a threshold; the CI from
  order statistics.
* ``jonckheere`` — ordered alternative over several groups (a gap that grows across settings),
  seeded Monte-Carlo permutation.
* ``holm`` / ``benjamini_hochberg`` — adjusted p-values across a paper's claims.
* ``power_*`` / ``min_p_*`` — the design numbers: the smallest p-value n seeds can give, and the
  power at a shift of one standard deviation (normal data), so a claim that n seeds cannot decide
  says so before anything runs.

All functions are pure and deterministic (Monte-Carlo parts use a fixed seed).
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Sequence

import numpy as np

MAX_ENUMERATION = 200_000  # relabellings enumerated exactly; above: Monte-Carlo
MC_PERMUTATIONS = 20_000
MC_SEED = 20260
# Values closer than this (relative) are one tie: the same metric computed twice can differ in
# the last bits, and such a difference is not evidence.
TIE_RTOL = 1e-9


def _arr(values: Sequence[float]) -> np.ndarray:
    a = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return a[np.isfinite(a)]


def _snap(pooled: np.ndarray) -> np.ndarray:
    """Values within ``TIE_RTOL`` of each other made equal (sorted run-wise)."""
    out = pooled.copy()
    order = np.argsort(pooled, kind="mergesort")
    for prev, cur in zip(order[:-1], order[1:]):
        a, b = out[prev], out[cur]
        if abs(b - a) <= TIE_RTOL * max(1.0, abs(a), abs(b)):
            out[cur] = a
    return out


# ------------------------------------------------------------------ Mann–Whitney, exact
@lru_cache(maxsize=None)
def u_null_counts(n1: int, n2: int) -> tuple[float, ...]:
    """Number of labellings giving U = 0 .. n1*n2 (no ties): counts[u], total C(n1+n2, n1).

    Recurrence on the largest pooled value: it belongs to sample 1 (adds n2 to U) or to
    sample 2 (adds nothing)."""
    # table[m][n] = counts for sizes (m, n); built row by row
    prev_row: list[np.ndarray] = [np.ones(1) for _ in range(n2 + 1)]  # m = 0: U = 0 only
    for m in range(1, n1 + 1):
        row = [np.ones(1)]  # n = 0: U = 0 only
        for n in range(1, n2 + 1):
            c = np.zeros(m * n + 1)
            a = prev_row[n]  # (m-1, n): largest in sample 1 -> U += n
            c[n : n + a.size] += a
            b = row[n - 1]  # (m, n-1): largest in sample 2
            c[: b.size] += b
            row.append(c)
        prev_row = row
    return tuple(prev_row[n2].tolist()) if n1 > 0 else (1.0,)


def u_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """#(x_i > y_j) + 0.5 #(x_i == y_j)."""
    d = x[:, None] - y[None, :]
    return float(np.sum(d > 0) + 0.5 * np.sum(d == 0))


def _u_upper_tail_exact(n1: int, n2: int, u_obs: float) -> float:
    counts = np.asarray(u_null_counts(n1, n2))
    # U is an integer without ties; allow a hair of float slack
    return float(counts[int(math.ceil(u_obs - 1e-9)) :].sum() / counts.sum())


def _relabellings(n1: int, n2: int) -> int:
    return math.comb(n1 + n2, n1)


def _u_all_labellings(pooled: np.ndarray, n1: int) -> np.ndarray:
    """U of sample 1 for every choice of n1 of the pooled values (midranks handle ties)."""
    ranks = _midranks(pooled)
    idx = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(pooled.size), n1)), dtype=np.int64
    ).reshape(-1, n1)
    return ranks[idx].sum(1) - n1 * (n1 + 1) / 2.0


def _midranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size, dtype=float)
    sorted_a = a[order]
    i = 0
    while i < a.size:
        j = i
        while j + 1 < a.size and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def mann_whitney(x: Sequence[float], y: Sequence[float], shift: float = 0.0) -> dict:
    """One-sided exact test of H0: x + shift is not stochastically larger than y.

    Returns ``{"p", "u", "n": [n1, n2], "method"}`` with p = P(U >= U_obs) under random
    relabelling of the pooled values; ``p`` is None if a side is empty."""
    a, b = _arr(x) + shift, _arr(y)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return {"p": None, "u": None, "n": [int(n1), int(n2)], "method": "none"}
    pooled = _snap(np.concatenate([a, b]))
    a, b = pooled[:n1], pooled[n1:]
    u = u_statistic(a, b)
    if np.unique(pooled).size == pooled.size:
        p, method = _u_upper_tail_exact(n1, n2, u), "exact"
    elif _relabellings(n1, n2) <= MAX_ENUMERATION:
        us = _u_all_labellings(pooled, n1)
        p, method = float(np.mean(us >= u - 1e-9)), "exact (ties enumerated)"
    else:
        rng = np.random.default_rng(MC_SEED)
        ranks = _midranks(pooled)
        perms = np.argsort(rng.random((MC_PERMUTATIONS, pooled.size)), axis=1)[:, :n1]
        us = ranks[perms].sum(1) - n1 * (n1 + 1) / 2.0
        p = float((np.sum(us >= u - 1e-9) + 1) / (MC_PERMUTATIONS + 1))
        method = f"Monte-Carlo permutation ({MC_PERMUTATIONS})"
    return {"p": min(1.0, p), "u": u, "n": [int(n1), int(n2)], "method": method}


def _critical_count(n1: int, n2: int, level: float) -> int | None:
    """Largest c with P(U <= c - 1) <= level (no ties); None if even c = 1 exceeds it."""
    counts = np.asarray(u_null_counts(n1, n2))
    cdf = np.cumsum(counts) / counts.sum()
    ok = np.flatnonzero(cdf <= level + 1e-12)
    return None if ok.size == 0 else int(ok[-1]) + 1


def hodges_lehmann(x: Sequence[float], y: Sequence[float], confidence: float) -> dict:
    """Shift estimate median(x_i - y_j) and its two-sided ``confidence`` CI from the exact
    Mann–Whitney distribution (Lehmann 1963). A bound n seeds cannot give is None."""
    a, b = _arr(x), _arr(y)
    if a.size == 0 or b.size == 0:
        return {"estimate": None, "ci": [None, None]}
    d = np.sort((a[:, None] - b[None, :]).ravel())
    c = _critical_count(a.size, b.size, (1.0 - confidence) / 2.0)
    lo = None if c is None else float(d[c - 1])
    hi = None if c is None else float(d[d.size - c])
    return {"estimate": float(np.median(d)), "ci": [lo, hi]}


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float | None:
    """P(X > Y) + P(X = Y)/2 — rliable's probability of improvement, the effect the tests rank."""
    a, b = _arr(x), _arr(y)
    if a.size == 0 or b.size == 0:
        return None
    return u_statistic(a, b) / (a.size * b.size)


def min_p_two_sample(n1: int, n2: int) -> float:
    """The smallest one-sided p-value ``mann_whitney`` can return with these sample sizes."""
    return 1.0 / _relabellings(n1, n2) if n1 and n2 else 1.0


# ------------------------------------------------------------------ one sample: sign test
def _binom_upper(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k)."""
    return sum(math.comb(n, i) for i in range(max(k, 0), n + 1)) / 2.0**n


def sign_test(values: Sequence[float], threshold: float) -> dict:
    """One-sided exact sign test of H0: median <= threshold (values equal to it are dropped).

    Returns ``{"p", "above", "below", "n"}``."""
    a = _arr(values)
    diff = a - threshold
    tie = np.abs(diff) <= TIE_RTOL * np.maximum(1.0, np.abs(a))
    above, below = int(np.sum((diff > 0) & ~tie)), int(np.sum((diff < 0) & ~tie))
    n = above + below
    p = _binom_upper(n, above) if n else 1.0
    return {"p": p, "above": above, "below": below, "n": int(a.size)}


def median(values: Sequence[float]) -> float | None:
    """The plain median of the numeric entries (None where there are none)."""
    xs = sorted(float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    if not xs:
        return None
    k = len(xs) // 2
    return xs[k] if len(xs) % 2 else 0.5 * (xs[k - 1] + xs[k])


def median_ci(values: Sequence[float], confidence: float) -> dict:
    """Median and its distribution-free order-statistic CI (None where n cannot bound it)."""
    a = np.sort(_arr(values))
    n = a.size
    if n == 0:
        return {"estimate": None, "ci": [None, None]}
    level = (1.0 - confidence) / 2.0
    # largest k with P(Binom(n, 1/2) <= k - 1) <= level: CI = [a_(k), a_(n-k+1)]
    k = 0
    for cand in range(1, n + 1):
        if 1.0 - _binom_upper(n, cand) <= level + 1e-12:
            k = cand
    lo, hi = (None, None) if k == 0 else (float(a[k - 1]), float(a[n - k]))
    return {"estimate": float(np.median(a)), "ci": [lo, hi]}


def min_p_sign(n: int) -> float:
    return 0.5**n if n else 1.0


# ------------------------------------------------------------------ ordered alternative
def _jt_statistic(groups: list[np.ndarray]) -> float:
    return sum(u_statistic(groups[j], groups[i]) for i in range(len(groups)) for j in range(i + 1, len(groups)))


def jonckheere(groups: Sequence[Sequence[float]], permutations: int = MC_PERMUTATIONS) -> dict:
    """Jonckheere–Terpstra test of H0: all groups alike, against values that increase with the
    group order; seeded Monte-Carlo permutation p-value (b + 1) / (N + 1).

    Returns ``{"p", "statistic", "n": [sizes]}``."""
    gs = [_arr(g) for g in groups]
    sizes = [g.size for g in gs]
    if len(gs) < 2 or min(sizes) == 0:
        return {"p": None, "statistic": None, "n": sizes}
    pooled = _snap(np.concatenate(gs))
    bounds = np.cumsum([0] + sizes)
    obs = _jt_statistic([pooled[bounds[i] : bounds[i + 1]] for i in range(len(gs))])
    rng = np.random.default_rng(MC_SEED)
    ranks = _midranks(pooled)
    perms = np.argsort(rng.random((permutations, pooled.size)), axis=1)
    r = ranks[perms]
    stat = np.zeros(permutations)
    for i in range(len(gs)):
        for j in range(i + 1, len(gs)):
            gi = r[:, bounds[i] : bounds[i + 1]]
            gj = r[:, bounds[j] : bounds[j + 1]]
            d = gj[:, :, None] - gi[:, None, :]
            stat += np.sum(d > 0, axis=(1, 2)) + 0.5 * np.sum(d == 0, axis=(1, 2))
    p = float((np.sum(stat >= obs - 1e-9) + 1) / (permutations + 1))
    return {"p": p, "statistic": obs, "n": sizes}


def min_p_ordered(sizes: Sequence[int], permutations: int = MC_PERMUTATIONS) -> float:
    """Smallest p ``jonckheere`` can return: one over the number of distinct labellings,
    floored by the Monte-Carlo resolution."""
    if not sizes or min(sizes) == 0:
        return 1.0
    total = math.factorial(sum(sizes))
    for s in sizes:
        total //= math.factorial(s)
    return max(1.0 / total, 1.0 / (permutations + 1))


# ------------------------------------------------------------------ multiplicity
def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error rate, any dependence)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: (pvalues[i], i))):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg step-up adjusted p-values (false discovery rate)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 1.0
    for rank, i in reversed(list(enumerate(sorted(idx, key=lambda i: (pvalues[i], i)), start=1))):
        running = min(running, m * float(pvalues[i]) / rank)
        out[i] = min(1.0, running)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": lambda p: list(p)}


# ------------------------------------------------------------------ design: power
POWER_SIMULATIONS = 4000


@lru_cache(maxsize=None)
def power_two_sample(n1: int, n2: int, level: float, shift_sd: float = 1.0) -> float:
    """Power of the one-sided exact Mann–Whitney test at ``level`` when the method is better
    by ``shift_sd`` standard deviations (normal data; simulated with a fixed seed)."""
    if not n1 or not n2:
        return 0.0
    counts = np.asarray(u_null_counts(n1, n2))
    tail = np.cumsum(counts[::-1])[::-1] / counts.sum()  # P(U >= u)
    ok = np.flatnonzero(tail <= level + 1e-12)
    if ok.size == 0:
        return 0.0
    u_crit = int(ok[0])
    rng = np.random.default_rng(MC_SEED)
    x = rng.standard_normal((POWER_SIMULATIONS, n1)) + shift_sd
    y = rng.standard_normal((POWER_SIMULATIONS, n2))
    u = np.sum(x[:, :, None] > y[:, None, :], axis=(1, 2))
    return float(np.mean(u >= u_crit))


@lru_cache(maxsize=None)
def power_sign(n: int, level: float, shift_sd: float = 1.0) -> float:
    """Power of the one-sided sign test when the true median is ``shift_sd`` SDs beyond the
    threshold (normal data): exact binomial."""
    if n == 0:
        return 0.0
    q = 0.5 * (1.0 + math.erf(shift_sd / math.sqrt(2.0)))  # P(X > threshold)
    k_crit = next((k for k in range(n + 1) if _binom_upper(n, k) <= level + 1e-12), None)
    if k_crit is None:
        return 0.0
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k_crit, n + 1))


@lru_cache(maxsize=None)
def power_ordered(
    sizes: tuple[int, ...], level: float, shift_sd: float = 1.0, simulations: int = 300, permutations: int = 2000
) -> float:
    """Power of :func:`jonckheere` when consecutive groups differ by ``shift_sd`` SDs (normal
    data); a coarse simulation (the design table needs one digit)."""
    if len(sizes) < 2 or min(sizes) == 0:
        return 0.0
    rng = np.random.default_rng(MC_SEED + 1)
    hits = 0
    for _ in range(simulations):
        groups = [rng.standard_normal(s) + i * shift_sd for i, s in enumerate(sizes)]
        p = jonckheere(groups, permutations=permutations)["p"]
        hits += p is not None and p <= level
    return hits / simulations


def detectable_effect(power_fn, *args: object, target: float = 0.8, max_sd: float = 8.0) -> float | None:
    """Smallest shift (in SDs, to 0.05) at which ``power_fn(*args, shift_sd)`` reaches ``target``;
    None if not even ``max_sd`` does."""
    if power_fn(*args, max_sd) < target:
        return None
    lo, hi = 0.0, max_sd
    while hi - lo > 0.05:
        mid = round((lo + hi) / 2, 4)
        if power_fn(*args, mid) >= target:
            hi = mid
        else:
            lo = mid
    return round(hi, 2)
