"""Comparison claims: the settings in which the two sides differ (with provenance), the check that
rejects an unnamed budget / update-ratio difference, and the claim-kind checks of the config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from pipeline import confounds
from pipeline import config as pc

OMNET = yaml.safe_load((REPO / "config/papers/omnet.yaml").read_text())
BN = yaml.safe_load((REPO / "config/papers/bn.yaml").read_text())


def write(tmp_path: Path, doc: dict) -> Path:
    d = tmp_path / "papers"
    d.mkdir(exist_ok=True)
    p = d / f"{doc['paper']}.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def claim_index(doc: dict, cid: str) -> int:
    return next(i for i, c in enumerate(doc["claims"]) if c["id"] == cid)


def test_update_ratio_difference_must_be_named(tmp_path):
    doc = copy.deepcopy(OMNET)
    i = claim_index(doc, "omnet-return-vs-sac")
    del doc["claims"][i]["differs_by"]
    with pytest.raises(pc.ConfigError) as e:
        pc.load_paper(write(tmp_path, doc))
    msg = str(e.value)
    assert f"omnet.yaml: claims[{i}] (omnet-return-vs-sac): omnet and sac differ in utd" in msg
    assert "differs_by" in msg
    pc.load_paper(write(tmp_path, copy.deepcopy(OMNET)))  # named: accepted


def test_same_utd_comparison_needs_no_name():
    i = claim_index(OMNET, "omnet-return-vs-sac-same-utd")
    rows = confounds.claim_differences(OMNET, OMNET["claims"][i], "small")
    assert "utd" not in {r["setting"] for r in rows}


def test_differences_carry_their_source():
    i = claim_index(OMNET, "omnet-return-vs-sac")
    rows = {r["setting"]: r for r in confounds.claim_differences(OMNET, OMNET["claims"][i], "small")}
    assert rows["utd"]["method"] == 5 and rows["utd"]["baseline"] == 1
    assert rows["utd"]["method_source"].startswith("experiments.mujoco.scales.small.overrides.omnet (REDQ/DroQ")
    assert rows["utd"]["baseline_source"] == "method default (methods.control.sac.Config)"


def test_bn_objectives_share_one_learning_rate():
    # the confound of the issue: BN at 1e-3 against FM at 1e-4
    for cid in ("bn-faster-than-fm-hga", "bn-faster-than-fm-tfbind8"):
        i = claim_index(BN, cid)
        for scale in ("small", "paper"):
            assert "lr" not in {r["setting"] for r in confounds.claim_differences(BN, BN["claims"][i], scale)}


@pytest.mark.parametrize(
    "case,mutate,field,message",
    [
        (
            "noninferior without margin",
            lambda d: d["claims"][2].pop("margin_rel"),
            "claims[2].margin",
            "exactly one of margin / margin_rel",
        ),
        (
            "noninferior with both margins",
            lambda d: d["claims"][2].update(margin=10.0),
            "claims[2].margin",
            "exactly one of margin / margin_rel",
        ),
        (
            "test on a deterministic metric",
            lambda d: d["claims"][4].update(kind="compare"),
            "claims[4].kind",
            "decided by construction",
        ),
        ("min_prob is gone", lambda d: d["claims"][0].update(min_prob=0.3), "claims.0.min_prob", "unknown field"),
        (
            "trend without experiments",
            lambda d: d["claims"][0].update(kind="trend"),
            "claims[0].experiments",
            "missing required field",
        ),
        (
            "differs_by names a non-budget setting",
            lambda d: d["claims"][0].update(differs_by=["utd", "lr"]),
            "claims[0].differs_by[1]",
            "is neither a budget",
        ),
        (
            "baseline equals method",
            lambda d: d["claims"][1].update(baseline="omnet"),
            "claims[1].baseline",
            "must differ from method",
        ),
        (
            "threshold claim with a baseline",
            lambda d: d["claims"][6].update(baseline="sac"),
            "claims[6].baseline",
            "not a field of kind threshold",
        ),
        (
            "fact with neither baseline nor threshold",
            lambda d: d["claims"][4].pop("baseline"),
            "claims[4].baseline",
            "exactly one of baseline / threshold",
        ),
    ],
)
def test_claim_kind_checks(tmp_path, case, mutate, field, message):
    doc = copy.deepcopy(OMNET)
    mutate(doc)
    with pytest.raises(pc.ConfigError) as e:
        pc.load_paper(write(tmp_path, doc))
    assert f"omnet.yaml: {field}: " in str(e.value) and message in str(e.value), str(e.value)


def test_trend_experiments_are_checked(tmp_path):
    doc = copy.deepcopy(BN)
    i = claim_index(doc, "bn-advantage-grows-with-action-space")
    doc["claims"][i]["experiments"][1] = "hg_nope"
    with pytest.raises(pc.ConfigError) as e:
        pc.load_paper(write(tmp_path, doc))
    assert f"claims[{i}].experiments[1]: unknown experiment 'hg_nope'" in str(e.value)


def test_settings_only_one_side_has_are_listed():
    """MAST's Soft Mellowmax has no dense counterpart: the settings table must still show it."""
    cfg = {"family": "marl", "experiments": {"e": {"methods": ["mast", "qmix_nops"], "scales": {"small": {}}}}}
    rows = confounds._differences(cfg, "e", "small", "mast", "qmix_nops")
    one_sided = [r for r in rows if r["baseline"] == "(no such setting)"]
    assert one_sided and all(r["baseline_source"] == "the method has no such setting" for r in one_sided)
