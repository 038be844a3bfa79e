"""The cost plan (pipeline/costs.py): work counted from the configs, time only from measurement,
and the README's table generated from the measured file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import methods
from pipeline import costs
from pipeline.config import expand_jobs, load_from_files, load_paper

REPO = Path(__file__).resolve().parent.parent


def test_planned_work_follows_each_family_s_update_rule():
    td3 = methods.load("td3").Config(iterations=10_000, start_steps=1000, utd=2)
    assert td3.planned_work() == {"env_steps": 10_000, "updates": 18_000}
    matd3 = methods.load("matd3").Config(iterations=10_000, start_steps=1000, train_interval=50, updates_per_train=5)
    assert matd3.planned_work() == {"env_steps": 10_000, "updates": 900}  # 180 rounds of 5
    tb = methods.load("tb").Config(iterations=100, train_steps=2, online_batch=16)
    assert tb.planned_work() == {"iterations": 100, "updates": 200, "trajectories": 1600}
    assert methods.load("vdn").Config(iterations=5000).planned_work() == {"env_steps": 5000}


def test_a_measurement_config_changes_only_the_run_length_and_what_would_dominate_it():
    td3 = methods.load("td3").Config()
    m = td3.measurement_config(3500)
    assert (m.iterations, m.start_steps, m.eval_episodes, m.buffer_size) == (3500, 1000, 1, 3500)
    assert m.eval_every > 10**9 and m.checkpoint_every > 10**9
    assert {k: v for k, v in m.to_dict().items() if v != td3.to_dict()[k]}.keys() <= {
        "iterations",
        "start_steps",
        "eval_episodes",
        "buffer_size",
        "eval_every",
        "checkpoint_every",
    }
    assert methods.load("td3").Config(start_steps=200).measurement_config(3500).start_steps == 200


def test_paper_cost_uses_measured_rates_only():
    wf = load_from_files(REPO / "config/config.yaml", {"scale": "smoke", "papers": ["egfn"]})
    cfg = wf.papers["egfn"]
    jobs = expand_jobs(cfg, "smoke")
    first = jobs[0]
    same_pair = [j for j in jobs if costs.pair_key(j) == costs.pair_key(first)]
    row = costs.paper_cost(cfg, "smoke", {"pairs": {costs.pair_key(first): {"s_per_iteration": 0.36}}})
    assert row["runs"] == len(jobs) and row["measured_runs"] == len(same_pair)
    assert abs(row["cpu_hours"] - 0.36 * first.iterations * len(same_pair) / 3600) < 1e-12
    assert row["work"]["iterations"] == sum(j.iterations for j in jobs)
    assert "not measured yet" in costs.cost_line(costs.paper_cost(cfg, "smoke", {}))
    assert f"{len(same_pair)} of {len(jobs)} runs measured" in costs.cost_line(row)


def test_seed_groups_are_counted_as_training_jobs():
    """OMNet's smoke trains sac and sac20 in groups of 2: 14 runs in 12 training jobs."""
    cfg = load_paper(REPO / "config/papers/omnet.yaml")
    row = costs.paper_cost(cfg, "smoke", {})
    assert (row["runs"], row["train_jobs"], row["seed_groups"]) == (14, 12, 2)
    assert "trained in 12 jobs: 2 seed groups" in costs.cost_line(row)


def test_the_readme_table_is_generated_from_the_measured_file():
    wf = load_from_files(REPO / "config/config.yaml", {"scale": "paper"})
    measured = costs.load_measured("paper", REPO)
    table = costs.cost_table([costs.paper_cost(c, "paper", measured) for c in wf.papers.values()], measured, "paper")
    text = (REPO / "README.md").read_text()
    start, end = text.index(costs.README_BEGIN) + len(costs.README_BEGIN), text.index(costs.README_END)
    assert text[start:end].strip() == table.strip(), "README's cost table is stale: run bench/cost_bench.py --readme"


def test_the_bench_measures_a_pair(tmp_path):
    spec = importlib.util.spec_from_file_location("cost_bench", REPO / "bench/cost_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    wf = load_from_files(REPO / "config/config.yaml", {"scale": "smoke", "papers": ["egfn"]})
    job = next(j for j in expand_jobs(wf.papers["egfn"], "smoke") if j.method == "tb")
    out = bench.measure_pair(job, tmp_path)
    # a GFlowNet loop asks should_stop once per iteration: timed between those questions
    assert out["timed"] == "per iteration" and out["iterations"] == [60] and out["s_per_iteration"] > 0
