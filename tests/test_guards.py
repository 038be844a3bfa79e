"""pipeline.guards: the checks on every claim — each side of a comparison learned (final vs the
same seeds' untrained agents) and no claim holds by construction (the claims once more on
untrained values) — and beyond-paper claims kept out of the paper's Holm family."""

from __future__ import annotations

from pipeline import claims, guards, power_plan

CFG = {
    "paper": "toy",
    "metrics": {
        "reward": {"label": "reward", "higher_is_better": True},
        "diversity": {"label": "diversity", "higher_is_better": True, "learning_metric": "reward"},
        "flops": {"label": "FLOPs ratio", "higher_is_better": False},
    },
}
TRAINED = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
UNTRAINED = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def stats(final: dict, untrained: dict, scale: str = "small") -> dict:
    """``final[metric][method]`` / ``untrained[metric][method]``: per-seed values of experiment e."""
    block = lambda d: {m: {k: {"values": v} for k, v in per.items()} for m, per in d.items()}  # noqa: E731
    seeds = {k: list(range(len(v))) for per in final.values() for k, v in per.items()}
    return {
        "paper": "toy",
        "scale": scale,
        "experiments": {"e": {"final": block(final), "untrained": block(untrained), "seeds": seeds}},
    }


def compare(**kw) -> dict:
    return {
        "id": kw.pop("id", "cmp"),
        "statement": "a beats b",
        "source": "Table 1",
        "experiment": "e",
        "metric": kw.pop("metric", "reward"),
        "kind": "compare",
        "method": "a",
        "baseline": "b",
        **kw,
    }


def run(claim_list: list[dict], st: dict) -> list[dict]:
    return claims.evaluate({**CFG, "claims": claim_list}, st)


def test_learned_final_against_untrained():
    st = stats({"reward": {"a": TRAINED, "b": UNTRAINED}}, {"reward": {"a": UNTRAINED, "b": UNTRAINED}})
    assert guards.learned(CFG, st, "e", "reward", "a", 0.05)["status"] == guards.LEARNED
    assert guards.learned(CFG, st, "e", "reward", "b", 0.05)["status"] == guards.NOT_LEARNED
    # 2 seeds a side: the smallest attainable p is 1/6 > alpha, so nothing is decided
    two = stats({"reward": {"a": [1.0, 2.0]}}, {"reward": {"a": [0.0, 0.0]}})
    check = guards.learned(CFG, two, "e", "reward", "a", 0.05)
    assert check["status"] == guards.CANNOT_TELL and check["descriptive"] == "improved"
    flat = stats({"reward": {"a": [0.0, 0.0]}}, {"reward": {"a": [0.0, 0.0]}})
    assert guards.learned(CFG, flat, "e", "reward", "a", 0.05)["descriptive"] == "no improvement"
    # lower is better: a fall is learning
    low = stats({"flops": {"a": UNTRAINED}}, {"flops": {"a": TRAINED}})
    assert guards.learned(CFG, low, "e", "flops", "a", 0.05)["status"] == guards.LEARNED


def test_a_baseline_that_did_not_learn_makes_the_comparison_inconclusive():
    """QGFN's TB with a frozen log Z: the method beats a baseline still at its untrained level."""
    st = stats({"reward": {"a": TRAINED, "b": UNTRAINED}}, {"reward": {"a": UNTRAINED, "b": UNTRAINED}})
    (plain,) = claims.evaluate({**CFG, "claims": [compare()]}, st, guard=False)
    assert plain["verdict"] == "reproduced"
    (rec,) = run([compare()], st)
    assert rec["verdict"] == "inconclusive" and rec["verdict_before_guards"] == "reproduced"
    assert rec["reason"].startswith("baseline did not learn")
    # ... unless the paper itself reports the baseline failing there
    (declared,) = run([compare(baseline_fails="RBS Table 2: GC-GFN 0 % on sparse goals")], st)
    assert declared["verdict"] == "reproduced" and declared["guards"]["baseline_fails_declared"]
    # ... at the scales where the paper ran the task at that size, and only there
    paper_only = compare(baseline_fails="RBS: baselines fail on 128x128", baseline_fails_scales=["paper"])
    (small,) = run([paper_only], st)
    assert small["verdict"] == "inconclusive" and "baseline_fails_declared" not in small["guards"]
    (at_paper,) = run([paper_only], {**st, "scale": "paper"})
    assert at_paper["verdict"] == "reproduced" and at_paper["guards"]["baseline_fails_declared"]


def test_learning_is_judged_on_the_declared_learning_metric():
    """Diversity is highest before training: a diversity claim asks the reward whether a side learned."""
    final = {"reward": {"a": TRAINED, "b": TRAINED}, "diversity": {"a": TRAINED, "b": UNTRAINED}}
    before = {"reward": {"a": UNTRAINED, "b": UNTRAINED}, "diversity": {"a": TRAINED, "b": TRAINED}}
    (rec,) = run([compare(metric="diversity")], stats(final, before))
    checks = rec["guards"]["learned"]
    assert {c["metric"] for c in checks} == {"reward"} and all(c["status"] == guards.LEARNED for c in checks)
    assert rec["verdict"] == "reproduced"


def test_a_claim_that_holds_on_untrained_agents_is_flagged_and_not_reproduced():
    """Kaleidoscope's FLOPs: the masks prune from initialisation, so step 0 already passes."""
    thr = {
        "id": "fewer-flops",
        "statement": "s",
        "experiment": "e",
        "metric": "flops",
        "kind": "threshold",
        "method": "a",
        "threshold": 1.0,
    }
    st = stats(
        {"flops": {"a": [0.5, 0.52, 0.55, 0.57, 0.6, 0.62]}},
        {"flops": {"a": [0.99, 0.991, 0.992, 0.993, 0.994, 0.995]}},
    )
    (rec,) = run([thr], st)
    assert rec["guards"]["step0"]["by_construction"] is True
    assert rec["verdict"] == "inconclusive" and "by construction" in rec["reason"]
    # the same claim against a threshold the untrained agents do not pass stands
    (fine,) = run([{**thr, "threshold": 0.7}], st)
    assert fine["verdict"] == "reproduced" and not fine["guards"]["step0"]["by_construction"]
    fact = {
        "id": "f",
        "statement": "s",
        "experiment": "e",
        "metric": "flops",
        "kind": "fact",
        "method": "a",
        "threshold": 1.0,
    }
    (f,) = run([fact], st)
    assert f["verdict"] == "fact" and f["guards"]["step0"]["by_construction"] is True
    assert guards.summary([rec, fine, f])["by_construction"] == 2


def test_runs_without_untrained_evaluations_are_reported_unchecked():
    st = stats({"reward": {"a": TRAINED, "b": UNTRAINED}}, {})
    for e in st["experiments"].values():
        e.pop("untrained")
    (rec,) = run([compare()], st)
    assert rec["verdict"] == "reproduced" and "unchecked" in rec["guards"]


def test_extra_claims_are_a_family_of_their_own():
    """A beyond-paper claim neither spends nor gains from the paper's Holm budget."""
    st = stats(
        {"reward": {"a": TRAINED, "b": UNTRAINED, "c": UNTRAINED}},
        {"reward": {"a": UNTRAINED, "b": [-1.0] * 6, "c": [-1.0] * 6}},
    )
    cl = [
        compare(id="p1"),
        compare(id="p2", baseline="c"),
        compare(id="x1", extra=True, extra_reason="Tag: a task the paper did not run"),
    ]
    cfg = {**CFG, "claims": cl, "experiments": {"e": {"methods": ["a", "b", "c"], "scales": {"small": {"seeds": 6}}}}}
    recs = claims.evaluate(cfg, st)
    sizes = {r["id"]: r["numbers"]["family_size"] for r in recs}
    assert sizes == {"p1": 2, "p2": 2, "x1": 1}
    assert recs[2]["extra"] is True
    rows = {r["id"]: r for r in power_plan.design(cfg, "small")}
    assert rows["p1"]["family_size"] == 2 and rows["x1"]["family_size"] == 1 and rows["x1"]["extra"]


def test_oriented_effect_points_the_claimed_direction_right():
    from pipeline import ledger

    lower = {
        "kind": "compare",
        "numbers": {"higher_is_better": False, "effect": {"estimate": -2.0, "ci": [-3.0, -1.0]}},
    }
    assert ledger.oriented_effect(lower) == (2.0, 1.0, 3.0)
    thr = {
        "kind": "threshold",
        "numbers": {"higher_is_better": False, "effect": {"estimate": 0.99, "ci": [0.98, 1.0], "threshold": 1.0}},
    }
    e, lo, hi = ledger.oriented_effect(thr)
    assert (round(e, 6), round(lo, 6), round(hi, 6)) == (0.01, 0.0, 0.02)
    ni = {
        "kind": "noninferior",
        "numbers": {"higher_is_better": True, "margin": 0.5, "effect": {"estimate": -0.2, "ci": [-0.4, 0.1]}},
    }
    assert ledger.oriented_effect(ni) == (0.3, 0.09999999999999998, 0.6)
    assert ledger.oriented_effect({"kind": "trend", "numbers": {}}) is None


def test_forest_plot_has_a_row_per_tested_claim_and_marks_fired_guards():
    from pipeline import ledger

    st = stats({"reward": {"a": TRAINED, "b": UNTRAINED}}, {"reward": {"a": UNTRAINED, "b": UNTRAINED}})
    recs = run([compare(id="fired-one"), compare(id="plain", baseline="a", method="a")], st)
    svg = ledger.forest_svg(recs)
    assert svg.startswith("<svg") and svg.count("<circle") == 2
    assert "⚠ fired-one" in svg and "⚠ plain" not in svg


def test_budget_fraction_from_the_scales():
    cfg = {
        "experiments": {
            "e": {
                "scales": {
                    "small": {"iterations": 600, "overrides": {"all": {"hidden": 256}}},
                    "paper": {"iterations": 50000, "overrides": {"all": {"hidden": 1024}}},
                }
            }
        }
    }
    frac = power_plan.budget_fraction(cfg, {"experiment": "e"}, "small")
    assert frac == {"iterations": 0.012, "hidden": 0.25}
    assert power_plan.fraction_bucket(frac["iterations"]) == "1-10 %"
    assert power_plan.budget_fraction(cfg, {"experiment": "e"}, "paper") == {"iterations": 1.0, "hidden": 1.0}


def test_noninferior_margin_as_a_share_of_what_the_baseline_learned():
    """MAST's '<3 %' on MPE returns (negative, arbitrary offset): 3 % of the dense side's gain
    over its untrained runs, not of its raw value (3 % of -90 would be a margin of 2.7)."""
    dense = [-90.0 + 0.01 * i for i in range(6)]
    untrained = [-100.0 + 0.01 * i for i in range(6)]
    claim = {
        "id": "ni",
        "statement": "s",
        "experiment": "e",
        "metric": "reward",
        "kind": "noninferior",
        "method": "a",
        "baseline": "b",
        "margin_rel": 0.03,
        "margin_basis": "learning",
    }
    near = stats({"reward": {"a": [v - 0.2 for v in dense], "b": dense}}, {"reward": {"a": untrained, "b": untrained}})
    (rec,) = run([claim], near)
    assert abs(rec["numbers"]["margin"] - 0.3) < 1e-9 and rec["verdict"] == "reproduced"
    far = stats({"reward": {"a": [v - 1.0 for v in dense], "b": dense}}, {"reward": {"a": untrained, "b": untrained}})
    (rec,) = run([claim], far)
    assert rec["verdict"] == "not_reproduced"
    # the value basis calls a 1.0 shortfall 'within 3 %' (margin 2.7) — and holds even for
    # untrained agents, which the by-construction guard catches
    (old,) = run([{**claim, "margin_basis": "value"}], far)
    assert old["verdict_before_guards"] == "reproduced" and old["guards"]["step0"]["by_construction"]


def test_findings_lines_name_what_fired():
    st = stats({"reward": {"a": TRAINED, "b": UNTRAINED}}, {"reward": {"a": UNTRAINED, "b": UNTRAINED}})
    (rec,) = run([compare()], st)
    lines = guards.findings(rec)
    assert lines and lines[0].startswith("FIRED baseline did not learn")
