"""pipeline.stats: rliable estimates on known arrays, the summary/stats file formats, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import stats

REPS = 300  # enough for stable percentile bounds on these tiny arrays, keeps the file fast

PAPER = {
    "paper": "toy",
    "metrics": {
        "exact_tv": {"label": "TV", "higher_is_better": False},
        "mean_reward": {"label": "reward", "higher_is_better": True},
    },
    "experiments": {"grid": {"title": "grid", "env": "hypergrid", "methods": ["good", "bad"]}},
}
STEPS = np.arange(0, 201, 50)


def write_run(
    root: Path,
    method: str,
    seed: int,
    tv: np.ndarray,
    reward: float,
    *,
    extra_cols: dict[str, np.ndarray] | None = None,
    evaluated: bool = True,
) -> dict:
    """A run dir with real curve.csv / eval.json files, as train + evaluate would leave it."""
    d = root / "results" / "small" / "toy" / "grid" / method / f"seed{seed}"
    d.mkdir(parents=True)
    cols = {"exact_tv": tv, "loss": tv * 2, **(extra_cols or {})}
    lines = [",".join(["step", "trajectories", *cols])]
    for i, s in enumerate(STEPS):
        vals = ("" if np.isnan(v[i]) else repr(float(v[i])) for v in cols.values())
        lines.append(",".join([str(s), str(s * 4), *vals]))
    (d / "curve.csv").write_text("\n".join(lines) + "\n")
    if evaluated:
        (d / "eval.json").write_text(
            json.dumps(
                {
                    "metrics": {"exact_tv": float(tv[-1]), "mean_reward": reward},
                    "per_episode": {"reward": [reward] * 3},
                    "n_episodes": 3,
                }
            )
        )
    return {"experiment": "grid", "method": method, "seed": seed, "dir": d}


def make_runs(root: Path, n_seeds: int = 4) -> list[dict]:
    """'good' has lower TV (better) but lower reward than 'bad' — directions must be respected."""
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(n_seeds):
        decay = np.exp(-STEPS / 100.0)
        runs.append(
            write_run(
                root, "good", seed, 0.1 + 0.5 * decay + rng.uniform(0, 0.01, len(STEPS)), 1.0 + rng.uniform(0, 0.1)
            )
        )
        runs.append(
            write_run(
                root, "bad", seed, 0.5 + 0.5 * decay + rng.uniform(0, 0.01, len(STEPS)), 2.0 + rng.uniform(0, 0.1)
            )
        )
    return runs


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- estimates


def test_iqm_and_mean_known_answers():
    values = [1, 2, 3, 4, 5, 6, 7, 100]
    est = stats.estimate(values, reps=REPS, confidence=0.95, seed=0)
    assert est["n"] == 8
    assert est["iqm"] == pytest.approx(np.mean([3, 4, 5, 6]))  # middle 50 %
    assert est["mean"] == pytest.approx(128 / 8)
    for key in ("iqm", "mean"):
        lo, hi = est[f"{key}_ci"]
        assert lo <= est[key] <= hi


def test_single_run_gives_degenerate_ci_and_nan_is_dropped():
    est = stats.estimate([0.3, float("nan"), None], reps=REPS, confidence=0.95, seed=0)
    assert est["n"] == 1 and est["iqm"] == est["mean"] == 0.3
    assert est["iqm_ci"] == [0.3, 0.3] and est["mean_ci"] == [0.3, 0.3]
    empty = stats.estimate([float("nan")], reps=REPS, confidence=0.95, seed=0)
    assert empty["n"] == 0 and empty["iqm"] is None and empty["iqm_ci"] == [None, None]


def test_same_seed_same_ci_and_global_rng_untouched():
    x = np.random.default_rng(1).normal(size=10)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = stats.estimate(x, reps=REPS, confidence=0.95, seed=7)
    b = stats.estimate(x, reps=REPS, confidence=0.95, seed=7)
    c = stats.estimate(x, reps=REPS, confidence=0.95, seed=8)
    assert a == b
    assert a["iqm_ci"] != c["iqm_ci"]  # the seed really drives rliable's resampling
    assert np.array_equal(np.random.get_state()[1], before)


def test_vectorised_curve_iqm_matches_rliable():
    _, metrics = stats._rliable()
    s = np.random.default_rng(2).normal(size=(7, 1, 5))
    out = stats._curve_func(s)
    for j in range(5):
        assert out[j] == pytest.approx(metrics.aggregate_iqm(s[..., j]))
        assert out[5 + j] == pytest.approx(metrics.aggregate_mean(s[..., j]))


def test_fast_iqm_equals_rliable_exactly():
    _, metrics = stats._rliable()
    rng = np.random.default_rng(4)
    for n in range(1, 12):
        s = rng.normal(size=(n, 1))
        assert stats.iqm(s) == metrics.aggregate_iqm(s)  # bit-for-bit, not approx
    m = rng.normal(size=(9, 6))
    assert np.array_equal(stats.iqm(m, axis=0), [metrics.aggregate_iqm(m[:, [j]]) for j in range(6)])


def test_fast_probability_of_improvement_matches_rliable():
    _, metrics = stats._rliable()
    rng = np.random.default_rng(3)
    for _ in range(50):  # small integer scores: many ties
        x = rng.integers(0, 4, size=(rng.integers(1, 7), 1)).astype(float)
        y = rng.integers(0, 4, size=(rng.integers(1, 7), 1)).astype(float)
        assert stats._poi(x, y)[0] == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)


def test_probability_of_improvement_dominance():
    a, b = [5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0]
    ab = stats.probability_of_improvement(a, b, reps=REPS, confidence=0.95, seed=0)
    assert ab["p"] == pytest.approx(1.0) and ab["ci"][0] == pytest.approx(1.0)
    ba = stats.probability_of_improvement(b, a, reps=REPS, confidence=0.95, seed=0)
    assert ba["p"] == pytest.approx(0.0)
    none = stats.probability_of_improvement(a, [], reps=REPS, confidence=0.95, seed=0)
    assert none["p"] is None and none["n"] == [4, 0]


def test_curve_estimates_handle_missing_runs():
    m = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, 6.0, np.nan]])
    out = stats.curve_estimates(m, reps=REPS, confidence=0.95, seed=0)
    assert list(out["n"]) == [3, 2, 0]
    assert out["mean"][0] == pytest.approx(3.0) and out["mean"][1] == pytest.approx(4.0)
    assert np.isnan(out["iqm"][2])


# ----------------------------------------------------------------------------- aggregate


def test_aggregate_formats_and_directions(tmp_path):
    runs = make_runs(tmp_path)
    out = tmp_path / "results" / "small" / "toy"
    stats.aggregate(PAPER, runs, out, reps=REPS, confidence=0.95, random_state=0, scale="small")

    rows = read_summary(out / "summary.csv")
    assert list(rows[0]) == stats.SUMMARY_COLUMNS
    # 2 methods x 2 curve metrics (exact_tv, loss; not step/trajectories) x 5 steps
    assert len(rows) == 2 * 2 * len(STEPS)
    assert {r["metric"] for r in rows} == {"exact_tv", "loss"}
    for r in rows:
        assert r["n_runs"] == "4"
        assert float(r["iqm_lo"]) <= float(r["iqm"]) <= float(r["iqm_hi"])

    doc = json.loads((out / "stats.json").read_text())
    assert doc["paper"] == "toy" and doc["scale"] == "small"
    exp = doc["experiments"]["grid"]
    assert exp["n_runs"] == {"good": 4, "bad": 4}
    assert exp["seeds"]["good"] == [0, 1, 2, 3]
    tv = exp["final"]["exact_tv"]["good"]
    assert len(tv["values"]) == 4 and tv["iqm_ci"][0] <= tv["iqm"] <= tv["iqm_ci"][1]
    poi = exp["prob_improvement"]
    # Lower TV is better: good > bad. Higher reward is better: bad > good.
    assert poi["exact_tv"]["good>bad"]["p"] == pytest.approx(1.0)
    assert poi["exact_tv"]["bad>good"]["p"] == pytest.approx(0.0)
    assert poi["mean_reward"]["bad>good"]["p"] == pytest.approx(1.0)
    assert poi["mean_reward"]["good>bad"]["ci"][1] == pytest.approx(0.0)


def test_aggregate_is_byte_identical_for_same_random_state(tmp_path):
    runs = make_runs(tmp_path)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, rs in ((a, 5), (b, 5), (c, 6)):
        stats.aggregate(PAPER, runs, d, reps=REPS, confidence=0.95, random_state=rs)
    for name in ("summary.csv", "stats.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "stats.json").read_bytes() != (c / "stats.json").read_bytes()


def test_aggregate_survives_nan_missing_eval_and_single_runs(tmp_path):
    nan = np.full(len(STEPS), np.nan)
    runs = [
        write_run(tmp_path, "good", 0, np.linspace(1, 0.1, len(STEPS)), float("nan"), extra_cols={"log_z": nan}),
        write_run(tmp_path, "good", 1, np.linspace(1, 0.2, len(STEPS)), 1.0, evaluated=False),
        write_run(tmp_path, "bad", 0, np.linspace(1, 0.5, len(STEPS)), 0.5),
    ]
    stats.aggregate(PAPER, runs, tmp_path / "out", reps=REPS, confidence=0.95, random_state=0, scale="small")
    text = (tmp_path / "out" / "stats.json").read_text()
    assert "NaN" not in text  # strict JSON
    exp = json.loads(text)["experiments"]["grid"]
    reward = exp["final"]["mean_reward"]["good"]
    assert reward["values"] == [None, None] and reward["n"] == 0 and reward["iqm"] is None
    tv = exp["final"]["exact_tv"]["good"]
    assert tv["n"] == 1 and tv["iqm_ci"] == [tv["iqm"], tv["iqm"]]
    assert exp["prob_improvement"]["mean_reward"]["good>bad"]["p"] is None
    rows = read_summary(tmp_path / "out" / "summary.csv")
    log_z = [r for r in rows if r["metric"] == "log_z"]
    assert log_z and all(r["iqm"] == "" for r in log_z)
    assert {r["n_runs"] for r in log_z if r["method"] == "good"} == {"0"}
