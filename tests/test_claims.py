"""pipeline.claims: every verdict of each claim kind, from hand-built stats dicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline import claims, ledger, power_plan, report

CFG = {
    "paper": "toy",
    "metrics": {
        "tv": {"label": "TV", "higher_is_better": False},
        "reward": {"label": "reward", "higher_is_better": True},
        "acc": {"label": "accuracy", "higher_is_better": True, "cap": 1.0},
        "flops": {"label": "FLOPs", "higher_is_better": False, "deterministic": True},
    },
}
GOOD = [1.0, 1.1, 1.2, 1.3, 1.4]
BAD = [0.0, 0.1, 0.2, 0.3, 0.4]


def stats_with(
    values: dict[str, dict[str, list]], scale: str = "small", exp: str = "e", extra: dict | None = None
) -> dict:
    """A stats dict: ``values[metric][method]`` = per-seed final values of experiment ``exp``."""
    exps = {
        exp: {
            "final": {m: {k: {"values": v, "n": len(v)} for k, v in per.items()} for m, per in values.items()},
            "seeds": {k: list(range(len(v))) for per in values.values() for k, v in per.items()},
        }
    }
    exps.update(extra or {})
    return {"paper": "toy", "scale": scale, "settings": {"confidence": 0.95}, "experiments": exps}


def compare_claim(metric: str = "reward", kind: str = "compare", **kw) -> dict:
    return {
        "id": kw.pop("id", "cmp"),
        "statement": "a beats b",
        "source": "Table 1",
        "experiment": "e",
        "metric": metric,
        "kind": kind,
        "method": "a",
        "baseline": "b",
        **kw,
    }


def threshold_claim(metric: str, thr: float, **kw) -> dict:
    return {
        "id": kw.pop("id", "thr"),
        "statement": "s",
        "experiment": "e",
        "metric": metric,
        "kind": "threshold",
        "method": "a",
        "threshold": thr,
        **kw,
    }


def verdicts(cfg_claims: list[dict], stats: dict, **kw) -> list[dict]:
    out = claims.evaluate({**CFG, "claims": cfg_claims}, stats, **kw)
    for rec in out:
        assert rec["verdict"] in claims.VERDICTS and rec["reason"]
    return out


def verdict(claim: dict, stats: dict, **kw) -> dict:
    (out,) = verdicts([claim], stats, **kw)
    return out


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (GOOD, BAD, "reproduced"),  # complete separation: p = 1/252
        (BAD, GOOD, "not_reproduced"),  # the opposite test rejects
        ([0.1, 1.2, 0.3, 1.4, 0.5], [1.0, 0.2, 1.1, 0.4, 1.3], "inconclusive"),
    ],
)
def test_compare(a, b, expected):
    out = verdict(compare_claim(), stats_with({"reward": {"a": a, "b": b}}))
    assert out["verdict"] == expected
    n = out["numbers"]
    assert n["n"] == [5, 5] and n["family_size"] == 1
    if expected == "reproduced":
        assert n["p_for"] == pytest.approx(1 / 252) and n["p_for_adj"] == pytest.approx(1 / 252)
        assert n["effect"]["estimate"] == pytest.approx(1.0) and n["effect"]["ci"][0] > 0


def test_lower_is_better_is_respected():
    assert verdict(compare_claim("tv"), stats_with({"tv": {"a": BAD, "b": GOOD}}))["verdict"] == "reproduced"
    assert verdict(compare_claim("tv"), stats_with({"tv": {"a": GOOD, "b": BAD}}))["verdict"] == "not_reproduced"


def test_two_seeds_that_differ_by_a_hair_are_not_decidable():
    # the old rule called this reproduced (P = 1, CI [1, 1])
    out = verdict(compare_claim(), stats_with({"reward": {"a": [1.01, 1.02], "b": [1.0, 1.005]}}))
    assert out["verdict"] == "not_decidable" and "smallest attainable p-value is 0.1667" in out["reason"]
    assert out["numbers"]["power_1sd"] == 0.0


def test_three_seeds_are_decidable_alone_but_not_after_a_correction():
    sep = {"a": [1.0, 1.1, 1.2], "b": [0.0, 0.1, 0.2]}
    assert verdict(compare_claim(), stats_with({"reward": sep}))["verdict"] == "reproduced"  # p = 1/20
    two = verdicts([compare_claim(id="c1"), compare_claim(id="c2")], stats_with({"reward": sep}))
    assert [r["verdict"] for r in two] == ["inconclusive", "inconclusive"]
    assert two[0]["numbers"]["p_for_adj"] == pytest.approx(0.1)


def test_holm_across_claims():
    st = stats_with({"reward": {"a": GOOD, "b": BAD}, "tv": {"a": BAD, "b": GOOD}})
    recs = verdicts([compare_claim(id="c1"), compare_claim("tv", id="c2")], st)
    assert [r["verdict"] for r in recs] == ["reproduced", "reproduced"]
    assert recs[0]["numbers"]["p_for_adj"] == pytest.approx(2 / 252)
    bh = verdicts([compare_claim(id="c1"), compare_claim("tv", id="c2")], st, correction="bh")
    assert bh[0]["numbers"]["p_for_adj"] == pytest.approx(1 / 252)


def test_noninferior_margin():
    b = [1.0, 1.1, 1.2, 1.3, 1.4]
    within = [v - 0.05 for v in b]  # worse by 0.05, margin 0.5: clearly within
    far = [v - 2.0 for v in b]  # worse by 2: clearly beyond the margin
    c = compare_claim(kind="noninferior", margin=0.5)
    assert verdict(c, stats_with({"reward": {"a": within, "b": b}}))["verdict"] == "reproduced"
    assert verdict(c, stats_with({"reward": {"a": far, "b": b}}))["verdict"] == "not_reproduced"
    rel = compare_claim(kind="noninferior", margin_rel=0.5)  # 0.5 x median 1.2 = 0.6
    out = verdict(rel, stats_with({"reward": {"a": within, "b": b}}))
    assert out["numbers"]["margin"] == pytest.approx(0.6) and out["verdict"] == "reproduced"


def test_ties_at_a_cap_are_inconclusive():
    # over-sharp samplers score accuracy 1 like exact ones: "as accurate" on capped values says nothing
    c = compare_claim("acc", kind="noninferior", margin=0.05)
    out = verdict(c, stats_with({"acc": {"a": [1.0] * 5, "b": [1.0] * 5}}))
    assert out["verdict"] == "inconclusive" and "saturated" in out["reason"]
    out = verdict(compare_claim("acc"), stats_with({"acc": {"a": [1.0] * 5, "b": BAD}}))
    assert out["verdict"] == "inconclusive" and "cap" in out["reason"]
    # a claim-level cap per scale (modes on a grid with 2^D regions)
    modes = compare_claim("reward", cap={"small": 8})
    tie = stats_with({"reward": {"a": [8] * 5, "b": [8] * 5}})
    assert verdict(modes, tie)["verdict"] == "inconclusive"
    assert verdict(modes, stats_with({"reward": {"a": [8] * 5, "b": [5, 6, 5, 6, 7]}}))["verdict"] == "inconclusive"


def test_threshold_sign_test():
    c = threshold_claim("tv", 0.5)
    assert verdict(c, stats_with({"tv": {"a": BAD}}))["verdict"] == "reproduced"  # all 5 below
    assert verdict(c, stats_with({"tv": {"a": GOOD}}))["verdict"] == "not_reproduced"
    mixed = verdict(c, stats_with({"tv": {"a": [0.1, 0.2, 0.3, 0.6, 0.7]}}))
    assert mixed["verdict"] == "inconclusive" and mixed["numbers"]["p_for"] == pytest.approx(16 / 32)
    assert verdict(c, stats_with({"tv": {"a": [0.1, 0.2, 0.3]}}))["verdict"] == "not_decidable"  # 1/8


def test_fact_is_reported_not_tested():
    c = {
        "id": "f",
        "statement": "cheaper",
        "experiment": "e",
        "metric": "flops",
        "kind": "fact",
        "method": "a",
        "baseline": "b",
    }
    out = verdict(c, stats_with({"flops": {"a": [126.0] * 3, "b": [100.0] * 3}}))
    assert out["verdict"] == "fact" and out["numbers"]["holds"] is False
    assert "does not hold by construction" in out["reason"] and out["numbers"]["ratio"] == pytest.approx(1.26)
    assert verdict({**c, "scales": ["paper"]}, stats_with({"flops": {"a": [1.0]}}))["verdict"] == "inconclusive"
    # facts are not in the family: the other claim keeps its uncorrected level
    recs = verdicts(
        [c, compare_claim()], stats_with({"flops": {"a": [1.0], "b": [2.0]}, "reward": {"a": GOOD, "b": BAD}})
    )
    assert recs[0]["numbers"]["holds"] is True and recs[1]["numbers"]["family_size"] == 1


def test_trend_across_experiments():
    def exp(gap: float) -> dict:
        return {
            "final": {
                "reward": {
                    "a": {"values": [1.0 + gap + 0.01 * k for k in range(5)]},
                    "b": {"values": [1.0 + 0.01 * k for k in range(5)]},
                }
            },
            "seeds": {"a": list(range(5)), "b": list(range(5))},
        }

    st = {"scale": "small", "experiments": {"e1": exp(0.0), "e2": exp(0.5), "e3": exp(1.0)}}
    c = {
        "id": "t",
        "statement": "gap grows",
        "experiments": ["e1", "e2", "e3"],
        "metric": "reward",
        "kind": "trend",
        "method": "a",
        "baseline": "b",
    }
    out = verdict(c, st)
    assert out["verdict"] == "reproduced" and out["numbers"]["n"] == [5, 5, 5]
    assert out["numbers"]["gaps_median"] == pytest.approx([0.0, 0.5, 1.0])
    rev = verdict({**c, "experiments": ["e3", "e2", "e1"]}, st)
    assert rev["verdict"] == "not_reproduced"


def test_missing_data_is_inconclusive_and_stays_in_the_family():
    st = stats_with({"reward": {"a": GOOD, "b": BAD}})
    recs = verdicts([compare_claim(id="c1"), compare_claim(id="c2", baseline="zzz")], st)
    assert recs[1]["verdict"] == "inconclusive" and "need 2" in recs[1]["reason"]
    assert recs[0]["numbers"]["family_size"] == 2
    assert verdict({**compare_claim(), "experiment": "nope"}, st)["verdict"] == "inconclusive"
    assert verdict({**compare_claim(), "kind": "vibes"}, st)["verdict"] == "inconclusive"


def test_claim_restricted_to_scales_is_inconclusive_elsewhere_and_outside_the_family():
    c = {**compare_claim(id="c1"), "scales": ["paper"]}
    st = stats_with({"reward": {"a": GOOD, "b": BAD}})
    assert verdict(c, {**st, "scale": "paper"})["verdict"] == "reproduced"
    recs = verdicts([c, compare_claim(id="c2")], st)
    assert recs[0]["verdict"] == "inconclusive" and "scale paper only" in recs[0]["reason"]
    assert recs[1]["numbers"]["family_size"] == 1


def test_explanation_line_has_effect_ci_test_adjusted_p_and_n():
    out = verdict(compare_claim(), stats_with({"reward": {"a": GOOD, "b": BAD}}))
    line = ledger.key_numbers(out)
    for part in ("Hodges-Lehmann shift", "90% CI", "Mann-Whitney", "adjusted", "n = 5 vs 5", "power"):
        assert part in line, (part, line)
    assert "p 0.003968" in out["explanation"] and "n = 5 vs 5" in out["explanation"]
    assert out["reason"] == "adjusted p 0.003968 <= 0.05 in the claimed direction"


def test_design_before_running():
    cfg = {
        **CFG,
        "experiments": {
            "e": {
                "methods": ["a", "b"],
                "scales": {"small": {"seeds": 2}, "paper": {"seeds": 5, "methods": ["a", "b"]}},
            }
        },
        "claims": [compare_claim(), threshold_claim("tv", 0.5)],
    }
    small = power_plan.design(cfg, "small")
    assert [r["status"] for r in small] == ["not decidable", "not decidable"]
    assert "not decidable at small" in power_plan.design_line(small[0], "small")
    paper = power_plan.design(cfg, "paper")
    assert paper[0]["status"] == "decidable" and paper[0]["family_size"] == 2
    assert paper[1]["status"] == "decidable late"  # sign test at n = 5: 1/32 > 0.05 / 2
    assert paper[1]["seeds_needed"] == 6  # 1/64 <= 0.025 < 1/32
    assert "(6 seeds a run set decide it alone)" in power_plan.design_line(paper[1], "paper")
    assert 0 < paper[0]["power_1sd"] < 1


def test_smoke_verdicts_are_plumbing_only(tmp_path):
    stats_json = tmp_path / "stats.json"
    stats_json.write_text(json.dumps(stats_with({"reward": {"a": GOOD, "b": BAD}}, scale="smoke")))
    claims.write({**CFG, "claims": [compare_claim()]}, stats_json, tmp_path / "claims.json")
    doc = json.loads((tmp_path / "claims.json").read_text())
    assert doc["plumbing_only"] is True and doc["procedure"]["correction"] == "holm"
    html = report.render(
        "smoke",
        [
            {
                "cfg": {**CFG, "claims": [compare_claim()]},
                "stats": {},
                "claims": doc["claims"],
                "plumbing_only": True,
                "procedure": doc["procedure"],
            }
        ],
    )
    assert "plumbing check only" in html.lower()


def test_write(tmp_path):
    stats_json = tmp_path / "stats.json"
    stats_json.write_text(json.dumps(stats_with({"tv": {"a": BAD}, "reward": {"a": GOOD, "b": BAD}})))
    cfg = {**CFG, "claims": [threshold_claim("tv", 0.5), compare_claim()]}
    settings = {
        "cmp": [
            {
                "experiment": "e",
                "setting": "lr",
                "method": 1e-3,
                "method_source": "x",
                "baseline": 1e-4,
                "baseline_source": "y",
            }
        ]
    }
    out = claims.write(cfg, stats_json, tmp_path / "claims.json", settings=settings)
    doc = json.loads((tmp_path / "claims.json").read_text())
    assert doc["paper"] == "toy" and doc["scale"] == "small" and doc["plumbing_only"] is False
    assert [c["verdict"] for c in doc["claims"]] == ["reproduced", "reproduced"] == [c["verdict"] for c in out]
    assert doc["claims"][1]["settings_differ"][0]["setting"] == "lr"
    keys = {"id", "statement", "metric", "kind", "verdict", "numbers", "reason"}
    assert all(keys <= set(c) for c in doc["claims"])
    assert all(math.isfinite(c["numbers"]["p_for_adj"]) for c in doc["claims"])
    html = report.render("small", [{"cfg": cfg, "stats": {}, "claims": doc["claims"], "procedure": doc["procedure"]}])
    assert "settings that differ" in html and "Holm" in html


def test_every_paper_claim_can_be_reproduced_on_its_own_evidence_at_paper_scale():
    """At paper scale each tested claim's smallest attainable p-value passes Holm's first level
    (alpha / number of the paper's tested claims): otherwise it can only be reproduced when other
    claims are, and a paper whose claims all fail this can reproduce nothing at all."""
    import yaml

    late = []
    for path in sorted((Path(__file__).resolve().parents[1] / "config" / "papers").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        late += [
            f"{path.name}: {row['id']} needs {row['seeds_needed']} seeds"
            for row in power_plan.design(cfg, "paper")
            if row.get("status") == "decidable late"
        ]
    assert not late, late
