"""Measured budgets (methods/common/budget.py, pipeline/confounds.py): each run counts what it
did, and a comparison whose two sides did different amounts is caught unless the claim names
the difference — the check that would have caught RBS's 512 trajectories per gradient step
against GC-GFN's 256 (issue 23)."""

from __future__ import annotations

import pytest
import torch

from methods.common.budget import BudgetMeter
from methods.common.runapi import MemoryRun
from methods.gfn import tb
from methods.gfn.goal import gc_db, rbs
from pipeline import confounds
from resume import preempted_then_resumed


def test_meter_counts_and_summarises():
    m = BudgetMeter(unit="trajectories")
    for n in (16, 16, 32):
        m.step(n)
    m.collected += 48
    s = m.summary()
    assert (s["gradient_steps"], s["samples"], s["samples_per_step"], s["collected"]) == (3, 64, 64 / 3, 48)
    again = BudgetMeter()
    again.load_state_dict(m.state_dict())
    assert again.summary() == s


def test_paired_replay_doubles_what_rbs_consumes_per_step():
    """Same batch_size in both configs; RBS's paired replay hands the loss twice the rows, which
    the measured budget shows, and GC-GFN's rows_like_paired (the default) matches."""
    torch.set_num_threads(1)
    got = {}
    for name, module, kw in (
        ("rbs", rbs, {}),
        ("gc_db", gc_db, {"rows_like_paired": False}),
        ("gc_db_matched", gc_db, {}),
    ):
        cfg = module.Config(
            env="goal_grid", env_kwargs={"height": 5}, iterations=6, eval_every=6, hidden=16, batch_size=8, **kw
        )
        run = MemoryRun(seed=0)
        module.train(cfg, run)
        got[name] = run.budget
    assert got["gc_db"]["samples_per_step"] == 8 and got["rbs"]["samples_per_step"] == 16
    assert got["gc_db_matched"]["samples_per_step"] == 16
    assert got["rbs"]["gradient_steps"] == got["gc_db"]["gradient_steps"] == 6
    # synthetic trajectories take no environment steps: both collected the same
    assert got["rbs"]["collected"] == got["gc_db"]["collected"]


def test_gfn_budget_resumes_exactly():
    cfg = tb.Config(
        env_kwargs=dict(ndim=2, height=4), iterations=20, eval_every=10, checkpoint_every=5, hidden=16, replay_batch=4
    )
    ref = MemoryRun(seed=1)
    tb.train(cfg, ref)
    run, _ = preempted_then_resumed(tb.train, cfg, seed=1)
    assert run.budget == ref.budget
    assert ref.budget["gradient_steps"] == 20 and ref.budget["samples"] == 20 * (cfg.online_batch + 4)


def _stats(rbs_rows: int, gc_rows: int) -> dict:
    side = lambda rows: {  # noqa: E731
        "unit": ["trajectories"] * 3,
        "gradient_steps": [100] * 3,
        "samples_per_step": [float(rows)] * 3,
        "samples": [100 * rows] * 3,
    }
    return {"experiments": {"grid": {"budget": {"rbs": side(rbs_rows), "gc_db": side(gc_rows)}}}}


CLAIM = {
    "id": "rbs-beats-gc",
    "kind": "compare",
    "experiment": "grid",
    "method": "rbs",
    "baseline": "gc_db",
    "metric": "success_rate",
    "statement": "s",
}


def test_an_unnamed_measured_difference_is_a_problem():
    cfg = {"claims": [CLAIM]}
    rows = confounds.measured_differences(_stats(512, 256), CLAIM)
    assert {r["quantity"] for r in rows} == {"samples_per_step", "samples"} and not any(r["named"] for r in rows)
    problems = confounds.measured_problems(cfg, _stats(512, 256))
    assert problems and problems[0][0] == "claims[0] (rbs-beats-gc).differs_by"
    assert "512" in problems[0][1] and "256" in problems[0][1]
    # equal budgets: nothing; a named difference: reported, not a problem
    assert confounds.measured_problems(cfg, _stats(256, 256)) == []
    named = {**CLAIM, "differs_by": ["samples_per_step", "samples"]}
    assert confounds.measured_problems({"claims": [named]}, _stats(512, 256)) == []
    assert all(r["named"] for r in confounds.measured_differences(_stats(512, 256), named))


@pytest.mark.parametrize("setting,quantity", [("batch_size", "samples_per_step"), ("utd", "gradient_steps")])
def test_a_named_setting_explains_the_measured_differences_it_causes(setting, quantity):
    claim = {**CLAIM, "differs_by": [setting]}
    stats = _stats(256, 256)
    stats["experiments"]["grid"]["budget"]["rbs"][quantity] = [999] * 3
    (row,) = confounds.measured_differences(stats, claim)
    assert row["quantity"] == quantity and row["named"]


def test_flops_of_sampled_steps_are_counted_by_hand():
    """Linear(10 -> 4) on a batch of 8 rows, inputs without gradient: the forward addmm is
    2*8*10*4 = 640 FLOPs and the weight gradient's mm as many; the input gradient is never formed."""
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(10, 4), torch.randn(8, 10)
    meter = BudgetMeter(unit="transitions")
    for _ in range(130):
        with meter.measure_flops():
            layer(x).square().sum().backward()
        meter.step(8)
    s = meter.summary()
    # steps 0, 1, 128 and 129 are sampled: the first two of every FLOP_SAMPLE_EVERY (128)
    assert meter.steps_sampled == 4
    assert s["flops_per_step"] == 1280.0 and s["train_flops"] == 1280.0 * 130


def test_a_wider_network_shows_in_the_measured_flops():
    """Two TB runs that differ only in width: same samples, different compute — caught as an
    unnamed flops_per_step / train_flops difference; the same width: no difference."""
    torch.set_num_threads(1)
    budgets = {}
    for name, hidden in (("narrow", 16), ("wide", 64), ("narrow_again", 16)):
        cfg = tb.Config(env_kwargs=dict(ndim=2, height=4), iterations=4, eval_every=4, hidden=hidden)
        run = MemoryRun(seed=0)
        tb.train(cfg, run)
        budgets[name] = {k: [v] for k, v in run.budget.items()}
    assert budgets["wide"]["flops_per_step"][0] > 4 * budgets["narrow"]["flops_per_step"][0]
    stats = {"experiments": {"grid": {"budget": budgets}}}
    claim = {**CLAIM, "method": "wide", "baseline": "narrow"}
    rows = confounds.measured_differences(stats, claim)
    assert {r["quantity"] for r in rows} == {"flops_per_step", "train_flops"} and not any(r["named"] for r in rows)
    assert confounds.measured_differences(stats, {**claim, "method": "narrow_again"}) == []
    named = confounds.measured_differences(stats, {**claim, "differs_by": ["flops_per_step"]})
    assert named and all(r["named"] for r in named)


def test_flops_within_the_estimates_noise_are_not_a_difference():
    stats = _stats(256, 256)
    for method, flops in (("rbs", 1.08e9), ("gc_db", 1.0e9)):
        stats["experiments"]["grid"]["budget"][method].update(flops_per_step=[flops] * 3, train_flops=[100 * flops] * 3)
    assert confounds.measured_differences(stats, CLAIM) == []
    stats["experiments"]["grid"]["budget"]["rbs"].update(flops_per_step=[2e9] * 3, train_flops=[2e11] * 3)
    rows = confounds.measured_differences(stats, {**CLAIM, "differs_by": ["samples_per_step"]})
    assert {r["quantity"] for r in rows} == {"flops_per_step", "train_flops"} and all(r["named"] for r in rows)


def test_a_methods_declared_design_difference_names_it_for_every_claim():
    """The paper's method_differs names a measured quantity for every claim the method is a side
    of (QGFN's Q network doubles a step's FLOPs against any GFlowNet-only baseline); validation
    rejects a method it does not run and a name that is not a measured quantity."""
    from pipeline import claims as pclaims

    stats = _stats(256, 256)
    stats["experiments"]["grid"]["budget"]["rbs"].update(flops_per_step=[2e9] * 3, train_flops=[2e11] * 3)
    stats["experiments"]["grid"]["budget"]["gc_db"].update(flops_per_step=[1e9] * 3, train_flops=[1e11] * 3)
    declared = {"rbs": {"differs_by": ["flops_per_step"], "reason": "synthetic trajectories are longer"}}
    assert not any(r["named"] for r in confounds.measured_differences(stats, CLAIM))
    rows = confounds.measured_differences(stats, CLAIM, declared)
    assert {r["quantity"] for r in rows} == {"flops_per_step", "train_flops"} and all(r["named"] for r in rows)
    cfg = {"claims": [CLAIM], "method_differs": declared}
    assert confounds.measured_problems(cfg, stats) == []
    # the claim's record carries the reason beside its own differs_by
    (rec,) = pclaims.evaluate({**cfg, "metrics": {}, "experiments": {}}, {**stats, "scale": None}, guard=False)
    assert rec["differs_by"] == ["flops_per_step"] and "rbs: synthetic trajectories are longer" in rec["differs_reason"]


def test_method_differs_is_checked(tmp_path):
    from conftest import REPO
    from pipeline.config_base import ConfigError
    from pipeline.paper_checks import check_paper

    text = (REPO / "config/papers/qgfn.yaml").read_text()
    bad = tmp_path / "qgfn.yaml"
    bad.write_text(text.replace("  qgfn_of_max: *qgfn_compute", "  nope: *qgfn_compute"))
    with pytest.raises(ConfigError, match=r"method_differs\.nope: not a method"):
        check_paper(bad)
    declared = '    differs_by: [flops_per_step]\n    reason: "QGFN'
    bad.write_text(text.replace(declared, declared.replace("[flops_per_step]", "[lr]")))
    with pytest.raises(ConfigError, match=r"method_differs\.qgfn\.differs_by\[0\]: 'lr' is not a measured quantity"):
        check_paper(bad)
