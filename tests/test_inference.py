"""pipeline.exact_tests: the exact tests behind the claims ledger, on cases computed by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as ss

from pipeline import exact_tests as inf


def test_u_null_distribution_by_hand():
    # 2 vs 2: the 6 labellings give U = 0, 1, 2, 2, 3, 4
    assert inf.u_null_counts(2, 2) == (1.0, 1.0, 2.0, 1.0, 1.0)
    counts = np.asarray(inf.u_null_counts(5, 4))
    assert counts.sum() == math.comb(9, 5) and np.all(counts == counts[::-1])  # symmetric


@pytest.mark.parametrize("n1,n2", [(3, 3), (5, 5), (4, 7), (8, 8)])
def test_mann_whitney_equals_scipy_exact_without_ties(n1, n2):
    rng = np.random.default_rng(n1 * 10 + n2)
    for _ in range(5):
        x, y = rng.normal(size=n1) + 0.7, rng.normal(size=n2)
        ours = inf.mann_whitney(x, y)
        ref = ss.mannwhitneyu(x, y, alternative="greater", method="exact").pvalue
        assert ours["method"] == "exact" and ours["p"] == pytest.approx(ref, rel=1e-12)


def test_mann_whitney_with_ties_enumerates_every_relabelling():
    x, y = [1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 2.0, 0.0]
    pooled = np.array(x + y)
    u_obs = inf.u_statistic(np.array(x), np.array(y))
    us = [inf.u_statistic(pooled[list(c)], np.delete(pooled, list(c))) for c in itertools.combinations(range(8), 4)]
    expected = np.mean(np.array(us) >= u_obs - 1e-12)
    out = inf.mann_whitney(x, y)
    assert out["method"].startswith("exact (ties") and out["p"] == pytest.approx(expected)


def test_all_tied_gives_p_one():
    assert inf.mann_whitney([8, 8, 8], [8, 8, 8])["p"] == 1.0


def test_values_equal_to_rounding_are_one_tie():
    a = [0.1 + 0.2, 0.5]
    b = [0.3, 0.5]
    assert inf.mann_whitney(a, b)["u"] == 2.0  # two ties, not one win


def test_shift_is_a_margin():
    # x is worse than y by 0.5; with a margin of 1, x + 1 lies above every y: "not worse by more than 1"
    y = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    x = y - 0.5
    assert inf.mann_whitney(x, y)["p"] == 1.0
    assert inf.mann_whitney(x, y, shift=1.0)["p"] == pytest.approx(1 / math.comb(10, 5))


def test_two_seeds_that_differ_by_a_hair_cannot_be_significant():
    # the case: 2 seeds each, method 0.01 above -> the smallest p-value is 1/6
    out = inf.mann_whitney([1.01, 1.02], [1.0, 1.01 - 1e-3])
    assert out["p"] == pytest.approx(1 / 6)
    assert inf.min_p_two_sample(2, 2) == pytest.approx(1 / 6)


def test_hodges_lehmann_estimate_and_ci_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.1, 0.2, 0.3, 0.4]
    d = sorted(a - b for a in x for b in y)
    hl = inf.hodges_lehmann(x, y, confidence=0.90)
    assert hl["estimate"] == pytest.approx(np.median(d))
    # 5 vs 5, level 0.05 per side: P(U <= 4) = 12/252 <= 0.05 < P(U <= 5) = 19/252 -> c = 5
    counts = np.asarray(inf.u_null_counts(5, 5))
    assert counts[:5].sum() / 252 <= 0.05 < counts[:6].sum() / 252
    assert hl["ci"] == [pytest.approx(d[4]), pytest.approx(d[-5])]


def test_hodges_lehmann_ci_unbounded_when_n_cannot_bound_it():
    assert inf.hodges_lehmann([1.0, 2.0], [0.0, 0.5], confidence=0.90)["ci"] == [None, None]


def test_ci_excludes_zero_exactly_when_the_test_rejects():
    rng = np.random.default_rng(3)
    for _ in range(200):
        x, y = rng.normal(size=6) + rng.uniform(0, 2), rng.normal(size=6)
        rejects = inf.mann_whitney(x, y)["p"] <= 0.05
        lo = inf.hodges_lehmann(x, y, confidence=0.90)["ci"][0]
        assert rejects == (lo is not None and lo > 0)


def test_sign_test_and_median_ci_by_hand():
    assert inf.sign_test([0.2, 0.3, 0.4, 0.5, 0.6], 0.1)["p"] == pytest.approx(1 / 32)
    # 4 above, 1 below: P(Bin(5,1/2) >= 4) = 6/32
    assert inf.sign_test([0.2, 0.3, 0.4, 0.5, 0.0], 0.1)["p"] == pytest.approx(6 / 32)
    # a value equal to the threshold is dropped
    assert inf.sign_test([0.1, 0.3, 0.4], 0.1)["above"] == 2
    # n = 9 at 90 %: P(Bin(9,1/2) <= 1) = 10/512 <= 0.05 < P(<= 2) = 46/512 -> [x_(2), x_(8)]
    med = inf.median_ci(list(range(1, 10)), confidence=0.90)
    assert med == {"estimate": 5.0, "ci": [2.0, 8.0]}
    assert inf.median_ci([1.0, 2.0, 3.0], confidence=0.90)["ci"] == [None, None]


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, None]
    # Holm: sorted 0.01*3, 0.03*2, 0.04*1 -> 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert inf.holm(p) == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06), None]
    # BH: 0.04*3/3 = 0.04, 0.03*3/2 = 0.045 -> min with the larger rank's 0.04; 0.01*3 = 0.03
    assert inf.benjamini_hochberg(p) == [pytest.approx(0.03), pytest.approx(0.04), pytest.approx(0.04), None]


def test_jonckheere_orders():
    rng = np.random.default_rng(0)
    up = [rng.normal(size=5) + 2 * k for k in range(3)]
    assert inf.jonckheere(up)["p"] < 0.01
    assert inf.jonckheere(up[::-1])["p"] > 0.9
    # two groups: the same one-sided test as Mann-Whitney (Monte-Carlo vs exact)
    a, b = rng.normal(size=5), rng.normal(size=5) + 0.8
    assert inf.jonckheere([a, b])["p"] == pytest.approx(inf.mann_whitney(b, a)["p"], abs=0.01)


def test_power_numbers():
    # sign test: exact binomial; n = 5 at 0.05 needs all 5 above: P = Phi(1)^5
    q = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    assert inf.power_sign(5, 0.05) == pytest.approx(q**5)
    assert inf.power_sign(3, 0.05) == 0.0  # 1/8 > 0.05: never rejects
    # Mann-Whitney at 1 SD, n = 10 vs 10, one-sided 0.05: close to the t-test's 0.69
    assert 0.6 < inf.power_two_sample(10, 10, 0.05) < 0.72
    assert inf.power_two_sample(3, 3, 0.01) == 0.0
    assert inf.detectable_effect(inf.power_two_sample, 10, 10, 0.05) == pytest.approx(1.2, abs=0.2)
