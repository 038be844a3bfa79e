"""The claims procedure holds its stated error rate: null cases simulated at the seed counts the
paper configs use, through claims.evaluate (and once through aggregate + claims.write on disk).

It cannot pass by accident: the same harness flags the procedure this replaced, and the new one
must keep power at large effects (a rule that never says "reproduced" fails)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline import calibration as cal
from pipeline import claims, exact_tests, stats
from pipeline.config import load_from_files

ALPHA = claims.ALPHA
SIMS = 2000
# Monte-Carlo slack: 2.5 standard errors of a rate of alpha over SIMS draws (~0.012)
SLACK = 2.5 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)


@pytest.fixture(scope="module")
def seed_counts() -> dict:
    papers = {}
    for scale in ("small", "paper"):
        papers.update(load_from_files(overrides={"scale": scale}).papers)
    counts = cal.configured_seed_counts(papers)
    assert counts["compare"] and counts["threshold"]
    # also the smallest decidable design, where the old rule failed worst
    counts["compare"] |= {(3, 3)}
    return counts


def test_exact_size_at_most_alpha(seed_counts):
    """Without ties the rejection rate under the null is computable exactly: P(U >= u_crit)."""
    for n1, n2 in seed_counts["compare"]:
        counts = np.asarray(exact_tests.u_null_counts(n1, n2))
        tail = np.cumsum(counts[::-1])[::-1] / counts.sum()
        size = tail[tail <= ALPHA + 1e-12].max(initial=0.0)
        assert size <= ALPHA, (n1, n2, size)


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_false_reproduced_rate_compare(seed_counts, dist):
    for n in sorted(seed_counts["compare"]):
        rate = cal.reproduced_rate("compare", n, cal.DISTRIBUTIONS[dist], sims=SIMS)
        assert rate <= ALPHA + SLACK, (n, dist, rate)


def test_false_reproduced_rate_with_ties():
    # discrete values (modes found): the exact test enumerates relabellings of tied values
    for n in [(3, 3), (5, 5), (6, 6)]:
        rate = cal.reproduced_rate("compare", n, cal.DISTRIBUTIONS["poisson"], sims=600)
        assert rate <= ALPHA + 2.5 * math.sqrt(ALPHA * (1 - ALPHA) / 600), (n, rate)


def test_false_reproduced_rate_threshold(seed_counts):
    for n in sorted(seed_counts["threshold"]):
        for dist in ("normal", "lognormal"):
            rate = cal.reproduced_rate("threshold", n, cal.DISTRIBUTIONS[dist], sims=SIMS)
            assert rate <= ALPHA + SLACK, (n, dist, rate)


def test_false_reproduced_rate_noninferior_at_the_margin():
    # the null's boundary: the method is worse by exactly the margin
    for n in [(5, 5), (8, 8)]:
        rate = cal.reproduced_rate("noninferior", n, cal.DISTRIBUTIONS["normal"], shift=-0.5, margin=0.5, sims=SIMS)
        assert rate <= ALPHA + SLACK, (n, rate)


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_family_wise_error_under_the_global_null(correction):
    rate = cal.family_error_rate(10, 5, sims=1000, correction=correction)
    assert rate <= ALPHA + 2.5 * math.sqrt(ALPHA * (1 - ALPHA) / 1000), rate
    # without a correction ten null claims give a false "reproduced" far more often
    assert cal.family_error_rate(10, 5, sims=1000, correction="none") > 3 * ALPHA


def test_harness_flags_the_replaced_rule():
    # the percentile bootstrap of P(better) called ~12 % of null cases reproduced at n = 3
    assert cal.old_rule_rate(3, sims=1500) > ALPHA + 0.03
    assert cal.old_rule_rate(5, sims=1500) > ALPHA


def test_power_reported_and_not_vanishing(seed_counts):
    """Power at a 1-SD shift through claims.evaluate matches the design number; at a 3-SD shift
    even the smallest configured design decides most of the time."""
    for n in [(5, 5), (8, 8), (10, 10)]:
        sim = cal.reproduced_rate("compare", n, cal.DISTRIBUTIONS["normal"], shift=1.0, sims=1000)
        assert sim == pytest.approx(exact_tests.power_two_sample(*n, ALPHA), abs=0.05), n
    smallest = min(seed_counts["compare"] - {(3, 3)})
    assert cal.reproduced_rate("compare", smallest, cal.DISTRIBUTIONS["normal"], shift=3.0, sims=500) > 0.8


def test_disk_path_gives_the_same_verdicts(tmp_path):
    """aggregate (reading eval.json files) + claims.write decide exactly as the in-memory harness."""
    rng = np.random.default_rng(7)
    paper = {
        "paper": "sim",
        "metrics": cal.METRICS,
        "experiments": {"e": {"env": "hypergrid", "methods": ["a", "b"]}},
        "claims": [cal.compare_claim()],
    }
    for case in range(4):
        vals = {"a": rng.standard_normal(5) + case, "b": rng.standard_normal(5)}
        runs = []
        for method, vs in vals.items():
            for seed, v in enumerate(vs):
                d = tmp_path / f"c{case}" / "results" / "small" / "sim" / "e" / method / f"seed{seed}"
                d.mkdir(parents=True)
                (d / "curve.csv").write_text(f"step,m\n0,{v!r}\n")
                (d / "eval.json").write_text(json.dumps({"metrics": {"m": float(v)}}))
                runs.append({"experiment": "e", "method": method, "seed": seed, "dir": d})
        out = tmp_path / f"c{case}" / "results" / "small" / "sim"
        stats.aggregate(paper, runs, out, reps=50, confidence=0.95, random_state=0)
        on_disk = claims.write(paper, out / "stats.json", out / "claims.json")
        (in_memory,) = claims.evaluate(paper, cal._stats({"e": vals}))
        assert on_disk[0]["verdict"] == in_memory["verdict"]
        assert on_disk[0]["numbers"]["p_for"] == pytest.approx(in_memory["numbers"]["p_for"])


def test_calibration_table_runs():
    rows = cal.table(
        {
            "toy": {
                "metrics": cal.METRICS,
                "experiments": {"e": {"methods": ["a", "b"], "scales": {"small": {"seeds": 5}, "paper": {"seeds": 5}}}},
                "claims": [cal.compare_claim()],
            }
        },
        sims=200,
    )
    assert rows == [
        {
            "kind": "compare",
            "n": [5, 5],
            "false_reproduced": rows[0]["false_reproduced"],
            "power_1sd": rows[0]["power_1sd"],
        }
    ]
    assert rows[0]["false_reproduced"] <= 0.1 and rows[0]["power_1sd"] > 0.2
    assert Path(cal.__file__).exists()
