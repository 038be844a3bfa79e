"""Seeds trained together (issue 26): the group loop (methods/control/group_loop.py) against
each seed's single-seed run, its exact resume from a mid-episode checkpoint, and how the
pipeline plans groups (pipeline/config.py) and runs a group job (pipeline/run.py)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import methods
from methods.common.runapi import MemoryRun, MemoryRunGroup, Preempted
from pipeline import layout
from pipeline.config import ConfigError, expand_jobs, seed_chunks
from pipeline.paper_checks import check_paper
from pipeline.groups import adopt_group_member, execute_group
from pipeline.run import execute_train

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]


def _cfg(method: str = "td3", **kw):
    base = dict(
        env_kwargs={"suite": "gym", "task": "InvertedPendulum-v5"},
        iterations=400,
        eval_every=200,
        checkpoint_every=150,
        start_steps=100,
        hidden=32,
        batch=32,
        eval_episodes=1,
    )
    return methods.load(method).Config(**{**base, **kw})


def _curve(run_dir: Path) -> list[dict]:
    """curve.csv without its wall-clock columns (updates per second)."""
    with open(run_dir / "curve.csv", newline="") as f:
        return _without_timing(list(csv.DictReader(f)))


def _without_timing(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


@pytest.mark.parametrize("method", ["td3", "td3_ln", "sac", "sac20"])
def test_a_group_follows_each_seeds_single_seed_run(method):
    """Seed i of a group of 3 ends where its own run ends, to float rounding: the same
    episodes, evaluations and budget, parameters within 1e-5 after 300 updates (SAC-20 at UTD 3)."""
    cfg = _cfg(method, **({"utd": 3} if method == "sac20" else {}))
    module = methods.load(method)
    singles = []
    for s in SEEDS:
        run = MemoryRun(s)
        module.train(cfg, run)
        singles.append(run)
    group = MemoryRunGroup(SEEDS)
    methods.group_trainer(method).train_group(cfg, group)
    for alone, grouped in zip(singles, group.runs):
        assert [r["step"] for r in alone.rows] == [r["step"] for r in grouped.rows]
        for a, b in zip(_without_timing(alone.rows), _without_timing(grouped.rows)):
            assert a.keys() == b.keys()
            assert np.allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4, atol=1e-5, equal_nan=True)
        for part in ("actor", "critic"):
            for k, v in alone.model[part].items():
                assert torch.allclose(v, grouped.model[part][k], atol=1e-5), (part, k)
        # the step-0 models are the single runs' exactly: same initial draws
        for k, v in alone.untrained["actor"].items():
            assert torch.equal(v, grouped.untrained["actor"][k])
        want = {k: v for k, v in alone.budget.items() if "flops" not in k}
        assert want == {k: v for k, v in grouped.budget.items() if "flops" not in k}
        assert grouped.budget["flops_per_step"] == pytest.approx(alone.budget["flops_per_step"], rel=1e-6)


def test_a_group_resumes_exactly_from_a_mid_episode_checkpoint():
    """Stopped after its first checkpoint (step 150: InvertedPendulum episodes end at different
    steps per seed, so some env is mid-episode), the resumed group ends bit-identical."""
    cfg = _cfg()
    td3 = methods.group_trainer("td3")
    whole = MemoryRunGroup(SEEDS)
    td3.train_group(cfg, whole)
    stopped = MemoryRunGroup(SEEDS, stop_after_checkpoints=1)
    with pytest.raises(Preempted, match="env step 150"):
        td3.train_group(cfg, stopped)
    assert any(len(s["episode_actions"]) > 0 for s in stopped.checkpoint["state"]["seeds"])
    stopped._stop_after = None
    td3.train_group(cfg, stopped)
    assert stopped.resumed_from == 150
    for a, b in zip(whole.runs, stopped.runs):
        assert _without_timing(a.rows) == _without_timing(b.rows)
        for part in ("actor", "critic"):
            assert all(torch.equal(v, b.model[part][k]) for k, v in a.model[part].items())
        assert a.budget == b.budget


def test_a_replay_that_misses_the_saved_observation_is_refused():
    cfg = _cfg()
    td3 = methods.group_trainer("td3")
    group = MemoryRunGroup(SEEDS, stop_after_checkpoints=1)
    with pytest.raises(Preempted):
        td3.train_group(cfg, group)
    group.checkpoint["state"]["seeds"][1]["obs"] = group.checkpoint["state"]["seeds"][1]["obs"] + 1.0
    group._stop_after = None
    with pytest.raises(RuntimeError, match="seed 1: replaying"):
        td3.train_group(cfg, group)


def test_seeds_are_grouped_by_index():
    assert seed_chunks(5, 2) == [(0, 1), (2, 3), (4,)]
    assert seed_chunks(3, 8) == [(0, 1, 2)]
    assert seed_chunks(4, 1) == [(0,), (1,), (2,), (3,)]


def _ne_doc(tmp_path: Path, **smoke) -> Path:
    doc = yaml.safe_load((REPO / "config/papers/ne.yaml").read_text())
    doc["experiments"]["mujoco"]["scales"]["smoke"].update(smoke)
    path = tmp_path / "ne.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_only_methods_that_can_train_together_are_grouped(tmp_path):
    """seed_batch applies to td3 and td3_ln (methods.GROUP_TRAINERS); NE and the TD3
    variants with hooks keep one seed a job. Adding a seed touches only the last group."""
    doc = check_paper(_ne_doc(tmp_path, seeds=5, seed_batch=2))
    jobs = [j for j in expand_jobs(doc, "smoke") if j.experiment == "mujoco"]
    groups = {(j.method, j.seed): j.seed_group for j in jobs}
    assert groups[("td3", 0)] == groups[("td3", 1)] == (0, 1)
    assert groups[("td3_ln", 3)] == (2, 3) and groups[("td3_ln", 4)] == ()
    assert all(g == () for (m, _), g in groups.items() if m not in ("td3", "td3_ln"))
    # a grouped run's config names its group; a lone run's config is what it was before groups
    by_key = {(j.method, j.seed): j for j in jobs}
    assert by_key[("td3", 0)].resolved()["seed_group"] == [0, 1]
    assert "seed_group" not in by_key[("td3", 4)].resolved()
    assert "seed_group" not in by_key[("ne", 0)].resolved()

    more = check_paper(_ne_doc(tmp_path, seeds=6, seed_batch=2))
    hashes = {(j.method, j.seed): j.config_hash() for j in expand_jobs(more, "smoke") if j.experiment == "mujoco"}
    changed = {key for key, job in by_key.items() if hashes[key] != job.config_hash()}
    assert changed == {("td3", 4), ("td3_ln", 4)}  # seed 4 now trains beside the new seed 5


def test_a_batch_no_method_can_use_is_an_error(tmp_path):
    path = _ne_doc(tmp_path, seed_batch=2, methods=["ne", "td3_reset"])
    with pytest.raises(ConfigError, match=r"experiments\.mujoco\.scales\.smoke\.seed_batch.*those that can: .*td3"):
        check_paper(path)


def test_a_group_job_writes_ordinary_runs_and_resumes_exactly(tmp_path):
    """execute_group writes each member's run files under the run contract into the group's
    directory; a SIGTERM-style stop leaves one checkpoint and exit 75, and the retry ends
    byte-identical; each seed's train job then takes its files (hard links)."""
    doc = check_paper(_ne_doc(tmp_path, seed_batch=2, iterations=600, checkpoint_every=150))
    members = tuple(j for j in expand_jobs(doc, "smoke") if j.experiment == "mujoco" and j.method == "td3")
    from pipeline.config import GroupJob

    group = GroupJob(members)
    assert group.key == layout.group_key("smoke", "ne", "mujoco", "td3", 0, 1) == members[0].group_key
    paths = layout.Layout(results=tmp_path / "results", work=tmp_path / "work")
    out, ckpt = paths.run_dir(group.key), paths.checkpoint_dir(group.key)
    assert execute_group(group, group_dir=out, ckpt_dir=ckpt, device="cpu", code_hash="c") == 0
    first = {s: _curve(out / f"seed{s}") for s in (0, 1)}
    manifest = json.loads((out / "seed1" / "manifest.json").read_text())
    assert manifest["seed_group"] == group.key and manifest["seed_group_seeds"] == [0, 1]
    assert yaml.safe_load((out / "seed1" / "config.yaml").read_text()) == members[1].resolved()

    import pipeline.groups as run_module

    stops = []
    real = run_module.FileRunGroup.should_stop

    def stop_once(self):  # the flag SIGTERM sets, raised at env step 450 (past the warm-up)
        stops.append(1)
        return len(stops) >= 450 or real(self)

    for f in out.rglob("*.*"):
        f.unlink()
    run_module.FileRunGroup.should_stop = stop_once
    try:
        assert execute_group(group, group_dir=out, ckpt_dir=ckpt, device="cpu", code_hash="c") == 75
    finally:
        run_module.FileRunGroup.should_stop = real
    assert (ckpt / layout.CHECKPOINT).exists() and not (out / "manifest.json").exists()
    assert execute_group(group, group_dir=out, ckpt_dir=ckpt, device="cpu", code_hash="c") == 0
    assert {s: _curve(out / f"seed{s}") for s in (0, 1)} == first
    assert json.loads((out / "seed0" / "manifest.json").read_text())["resumed_from"] > 0
    assert not (ckpt / layout.CHECKPOINT).exists()

    run_dir = paths.run_dir(members[0].key)
    assert adopt_group_member(members[0], out / "seed0", run_dir) == 0
    assert _curve(run_dir) == first[0]
    assert (run_dir / "model.pt").stat().st_ino == (out / "seed0" / "model.pt").stat().st_ino
    with pytest.raises(RuntimeError, match="another config"):
        adopt_group_member(dataclasses.replace(members[0], iterations=601), out / "seed0", run_dir)


def test_a_lone_seed_trains_as_before(tmp_path):
    """k = 1 is today's path: a run outside any group has no seed_group and trains alone."""
    doc = check_paper(_ne_doc(tmp_path, seeds=3, seed_batch=2, iterations=400, eval_every=200))
    lone = next(j for j in expand_jobs(doc, "smoke") if j.method == "td3" and j.seed == 2)
    assert lone.seed_group == ()
    paths = layout.Layout(results=tmp_path / "results", work=tmp_path / "work")
    rc = execute_train(lone, run_dir=paths.run_dir(lone.key), ckpt_dir=paths.checkpoint_dir(lone.key), device="cpu")
    assert rc == 0 and "seed_group" not in json.loads((paths.run_file(lone.key, "manifest.json")).read_text())
