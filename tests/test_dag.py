"""The tiny end-to-end DAG (smoke scale) and the rerun semantics of README.md (Where things live)."""

import contextlib
import csv
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import git_env, make_workspace, planned_jobs, snakemake
from pipeline.claims import VERDICTS

RUN = "results/smoke/egfn/hypergrid/{method}/seed{seed}"

# the session fixture runs the whole smoke DAG (~150 short jobs, each paying the torch import)
# inside the first test that asks for it
pytestmark = pytest.mark.timeout(1500)


def _finite(v):
    return float(v) if v is not None and math.isfinite(float(v)) else None


def test_smoke_dag_end_to_end(smoke_workspace):
    ws = smoke_workspace
    for method in ("tb", "db", "egfn"):
        for seed in (0, 1):
            d = ws / RUN.format(method=method, seed=seed)
            for f in ("config.yaml", "manifest.json", "curve.csv", "model.pt", "eval.json"):
                assert (d / f).stat().st_size > 0, d / f
            manifest = json.loads((d / "manifest.json").read_text())
            assert manifest["device"] == "cpu" and manifest["git_sha"] != "unknown"
    paper = yaml.safe_load((ws / "config/papers/egfn.yaml").read_text())

    # stats.json holds the numbers of the run files it names, seed by seed
    stats = json.loads((ws / "results/smoke/egfn/stats.json").read_text())
    assert stats["paper"] == "egfn" and stats["scale"] == "smoke"
    assert set(stats["experiments"]) == set(paper["experiments"])
    evals = {}
    for exp_id, exp in stats["experiments"].items():
        smoke = paper["experiments"][exp_id]["scales"]["smoke"]
        methods = smoke.get("methods") or paper["experiments"][exp_id]["methods"]
        assert sorted(exp["seeds"]) == sorted(methods)  # stats.json keys are sorted
        for method in methods:
            assert exp["seeds"][method] == list(range(smoke["seeds"]))
            for seed in exp["seeds"][method]:
                run = ws / f"results/smoke/egfn/{exp_id}/{method}/seed{seed}"
                evals[exp_id, method, seed] = json.loads((run / "eval.json").read_text())["metrics"]
        for metric, per_method in exp["final"].items():
            for method, est in per_method.items():
                on_disk = [_finite(evals[exp_id, method, s].get(metric)) for s in exp["seeds"][method]]
                assert est["values"] == on_disk, (exp_id, metric, method)
    # summary.csv: per curve step and metric, n_runs and the mean of the seeds' finite values
    curves = {}
    for seed in (0, 1):
        with open(ws / RUN.format(method="db", seed=seed) / "curve.csv", newline="") as fh:
            curves[seed] = {int(r["step"]): r for r in csv.DictReader(fh)}
    with open(ws / "results/smoke/egfn/summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if (r["experiment"], r["method"]) == ("hypergrid", "db")]
    assert rows and {int(r["step"]) for r in rows} == set(curves[0]) | set(curves[1])
    for r in rows:
        finite = [v for c in curves.values() if (v := _finite(c[int(r["step"])][r["metric"]])) is not None]
        assert int(r["n_runs"]) == len(finite), r
        if finite:
            assert float(r["mean"]) == pytest.approx(statistics.fmean(finite)), r

    # claims.json: every configured claim, in order, decided from those numbers; at smoke scale
    # a plumbing check whose compare claims say why they cannot be decided
    doc = json.loads((ws / "results/smoke/egfn/claims.json").read_text())
    assert doc["paper"] == "egfn" and doc["scale"] == "smoke" and doc["plumbing_only"] is True
    claims = doc["claims"]
    assert [c["id"] for c in claims] == [c["id"] for c in paper["claims"]]
    for claim, cfg in zip(claims, paper["claims"]):
        assert claim["verdict"] in VERDICTS and claim["kind"] == cfg["kind"] and claim["reason"], claim
        if cfg["kind"] not in ("compare", "threshold"):
            continue
        sides = [cfg["method"]] + ([cfg["baseline"]] if "baseline" in cfg else [])
        seeds = stats["experiments"][cfg["experiment"]]["seeds"]
        values = {
            m: [v for s in seeds[m] if (v := _finite(evals[cfg["experiment"], m, s].get(cfg["metric"]))) is not None]
            for m in sides
        }
        assert claim["numbers"]["n"] == [len(values[m]) for m in sides], claim["id"]
        if cfg["kind"] == "threshold":
            assert claim["numbers"]["effect"]["estimate"] == pytest.approx(statistics.median(values[cfg["method"]]))
        else:
            # 2 smoke seeds a side cannot decide an exact test (smallest p = 1/6): said, not pretended
            assert claim["verdict"] == "not_decidable", claim
            assert claim["reason"].startswith("not decidable at smoke: with n = 2 vs 2"), claim["reason"]
            for m in sides:
                assert claim["numbers"]["median"][m] == pytest.approx(statistics.median(values[m]))

    html = (ws / "reports/smoke/index.html").read_text()
    assert "plumbing check only" in html.lower()
    assert all(c["id"] in html for c in claims)
    assert (ws / "reports/smoke/egfn/tv_curve.png").exists()
    registered = json.loads((ws / "results/smoke/_tracking/registered.json").read_text())
    assert "smoke/egfn/hypergrid/db/seed0" in registered["runs"]
    assert (ws / "mlflow.db").exists()


def test_guards_run_on_every_papers_smoke_claims(smoke_workspace):
    """Issue 23: every run is also evaluated untrained (step 0) and every paper's claims carry
    both guards' findings, shown in the report."""
    ws = smoke_workspace
    evals = sorted((ws / "results/smoke").glob("*/*/*/seed*/eval.json"))
    assert evals
    for path in evals:
        doc = json.loads(path.read_text())
        assert doc.get("untrained", {}).get("metrics"), path
    docs = sorted((ws / "results/smoke").glob("*/claims.json"))
    assert len(docs) == len(list((ws / "config/papers").glob("*.yaml")))
    for path in docs:
        doc = json.loads(path.read_text())
        assert set(doc["guards"]) >= {"by_construction", "baseline_did_not_learn"}, path
        for claim in doc["claims"]:
            g = claim["guards"]
            assert "unchecked" not in g, (path, claim["id"])
            assert "step0" in g, claim["id"]
            if claim["kind"] in ("compare", "noninferior", "trend"):
                assert g["learned"] and all(c["status"] for c in g["learned"]), claim["id"]
    html = (ws / "reports/smoke/index.html").read_text()
    assert "guards: " in html and "on untrained agents" in html


def test_second_dry_run_has_nothing_to_do(smoke_workspace):
    assert planned_jobs(smoke_workspace, "--config", "scale=smoke") == []


def test_selecting_one_paper_reruns_nothing_a_shared_env_feeds(smoke_workspace):
    """Kaleidoscope and MAST share MPE envs (Tag) at smoke. After the DAG of every paper, a run
    of one paper plans no setup, training or evaluation: a shared env's setup command must not
    depend on the papers selected (it did: `--papers` in its command re-ran it, and with it
    every other paper's runs on that env). Only the selection's report and tracking redo."""
    for paper in ("mast", "kaleidoscope"):
        jobs = planned_jobs(smoke_workspace, "--config", "scale=smoke", f"papers=[{paper}]")
        assert not [j for j in jobs if j[0] in ("setup_env", "train", "evaluate", "aggregate")], (paper, jobs)


@contextlib.contextmanager
def edited(path: Path):
    """Append a comment to a source file for the duration of the block."""
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        yield
    finally:
        path.write_text(original)


def test_editing_tb_loss_reruns_only_its_users(smoke_workspace):
    """TB runs, EGFN runs (egfn.py imports the TB module; its no-mutation ablation imports
    egfn.py) and QGFN runs (its GFlowNet half is a TB learner) rerun; DB runs do not."""
    ws = smoke_workspace
    with edited(ws / "methods/gfn/tb.py"):
        jobs = planned_jobs(ws, "--config", "scale=smoke")
    users = {"tb", "egfn", "egfn_no_mutation", "qgfn", "qgfn_quantile", "qgfn_of_max"}
    trained = {(w["method"], w["seed"]) for r, w in jobs if r == "train"}
    assert trained == {(m, s) for m in users for s in ("0", "1")}
    assert {w["method"] for r, w in jobs if r == "evaluate"} == users
    assert "setup_env" not in {r for r, _ in jobs}
    assert planned_jobs(ws, "--config", "scale=smoke") == []


def test_editing_core_reruns_both_methods(smoke_workspace):
    with edited(smoke_workspace / "methods/gfn/core.py"):
        jobs = planned_jobs(smoke_workspace, "--config", "scale=smoke")
    import methods
    import pipeline.config as pc

    # every GFlowNet method reruns; the control methods, and the goal-conditioned GFlowNets
    # (methods/gfn/goal/ has a core of its own), do not import the GFlowNet core
    every = {
        j.method
        for j in pc.load_from_files(smoke_workspace / "config/config.yaml", {"scale": "smoke"}, smoke_workspace).jobs()
        if methods.module_name(j.method).startswith("methods.gfn.")
        and not methods.module_name(j.method).startswith("methods.gfn.goal.")
    }
    assert {w["method"] for r, w in jobs if r == "train"} == every >= {"tb", "db", "egfn", "rpe", "qgfn"}


def test_adding_a_seed_adds_only_that_seed(smoke_workspace):
    ws = smoke_workspace
    p = ws / "config/papers/egfn.yaml"
    original = p.read_text()
    try:
        doc = yaml.safe_load(original)
        doc["experiments"]["hypergrid"]["scales"]["smoke"]["seeds"] = 3
        p.write_text(yaml.safe_dump(doc))
        jobs = planned_jobs(ws, "--config", "scale=smoke")
        new = {("tb", "2"), ("db", "2"), ("egfn", "2"), ("egfn_no_mutation", "2")}
        assert {(w["method"], w["seed"]) for r, w in jobs if r == "train"} == new
        assert {(w["method"], w["seed"]) for r, w in jobs if r == "evaluate"} == new
        rules = {r for r, _ in jobs}
        assert rules <= {"train", "evaluate", "aggregate", "figures", "claims", "report", "register", "all"}
    finally:
        p.write_text(original)


def test_ne_td3_seeds_train_in_groups(smoke_workspace):
    """NE's smoke sets seed_batch: 2 on its MuJoCo experiment: td3 and td3_ln train their two seeds
    in one group job each; every seed's run directory is ordinary and names its group; the
    methods that cannot train together (NE, Reset, ReDo, PI) ran one seed a job."""
    ws = smoke_workspace
    groups = ws / "results/smoke/ne/_groups/mujoco"
    assert sorted(p.name for p in groups.iterdir()) == ["td3", "td3_ln"]
    for method in ("td3", "td3_ln"):
        group = groups / method / "seeds0-1"
        assert json.loads((group / "manifest.json").read_text())["seeds"] == [0, 1]
        for seed in (0, 1):
            run = ws / f"results/smoke/ne/mujoco/{method}/seed{seed}"
            assert all((run / f).stat().st_size > 0 for f in ("config.yaml", "curve.csv", "model.pt", "eval.json"))
            assert json.loads((run / "manifest.json").read_text())["seed_group"].endswith(f"mujoco/{method}/seeds0-1")
            assert yaml.safe_load((run / "config.yaml").read_text())["seed_group"] == [0, 1]
    lone = yaml.safe_load((ws / "results/smoke/ne/mujoco/ne/seed0/config.yaml").read_text())
    assert "seed_group" not in lone


def test_adding_a_seed_beside_full_groups_adds_only_that_seed(smoke_workspace):
    """Seeds are grouped by index (0-1, 2-3, ...): a third seed falls in a group of its own, so it
    trains alone and the full groups rerun nothing."""
    ws = smoke_workspace
    p = ws / "config/papers/ne.yaml"
    original = p.read_text()
    try:
        doc = yaml.safe_load(original)
        doc["experiments"]["mujoco"]["scales"]["smoke"]["seeds"] = 3
        p.write_text(yaml.safe_dump(doc))
        jobs = planned_jobs(ws, "--config", "scale=smoke", "papers=[ne]")
    finally:
        p.write_text(original)
    mujoco = {"ne", "td3", "td3_reset", "td3_redo", "td3_pi", "td3_ln"}
    trained = {(w["method"], w["seed"]) for r, w in jobs if r == "train"}
    assert trained == {(m, "2") for m in mujoco}
    assert "train_group" not in {r for r, _ in jobs}


def test_editing_the_group_loop_reruns_the_groups_and_their_seeds(smoke_workspace):
    ws = smoke_workspace
    with edited(ws / "methods/control/group_loop.py"):
        jobs = planned_jobs(ws, "--config", "scale=smoke", "papers=[ne]")
    groups = {(w["method"], w["first"], w["last"]) for r, w in jobs if r == "train_group"}
    assert groups == {("td3", "0", "1"), ("td3_ln", "0", "1")}
    # the grouped seeds take the new files; td3's lone runs (the cycle experiment) and every
    # method built on TD3 do not hold the group loop
    trained = {(w["experiment"], w["method"], w["seed"]) for r, w in jobs if r == "train"}
    assert trained == {("mujoco", m, s) for m in ("td3", "td3_ln") for s in ("0", "1")}


VPDD_SMOKE = {"vpdd", "vpdd_no_human", "mt_diffusion_policy"}


def _vpdd_runs(jobs: list[tuple[str, dict]], rule: str) -> set[tuple[str, str]]:
    return {(w["method"], w["seed"]) for r, w in jobs if r == rule and w.get("paper") == "vpdd"}


def _stage_jobs(jobs: list[tuple[str, dict]]) -> list[str]:
    return sorted(w["stage_id"].split("-")[0] for r, w in jobs if r == "stage")


def test_vpdd_stages_are_shared_by_the_runs_that_read_them(smoke_workspace):
    """One tokenizer for every method and seed; one pre-trained video model per (pre-training
    setting, seed): VPDD's and the 'w/o human data' ablation's, two seeds each; the no-pre-training
    baseline reads the tokenizer alone. Every run's config names the stages it read."""
    stages = smoke_workspace / "results/smoke/vpdd/_stages"
    names = sorted(p.name.split("-")[0] for p in stages.iterdir())
    assert names == ["pretrain"] * 4 + ["tokenizer"]
    for method in VPDD_SMOKE:
        for seed in (0, 1):
            run = smoke_workspace / f"results/smoke/vpdd/metaworld/{method}/seed{seed}"
            read = yaml.safe_load((run / "config.yaml").read_text())["stages"]
            assert set(read) == ({"tokenizer"} if method == "mt_diffusion_policy" else {"tokenizer", "pretrain"})
            assert all((stages / i / "model.pt").is_file() for i in read.values())


def test_editing_vpdds_action_model_reruns_fine_tuning_and_evaluation_only(smoke_workspace):
    ws = smoke_workspace
    with edited(ws / "methods/video/action_model.py"):
        jobs = planned_jobs(ws, "--config", "scale=smoke")
    every = {(m, s) for m in VPDD_SMOKE for s in ("0", "1")}
    assert _vpdd_runs(jobs, "train") == every == _vpdd_runs(jobs, "evaluate")
    assert not {r for r, _ in jobs} & {"stage", "setup_env"}
    assert {w["paper"] for r, w in jobs if r == "train"} == {"vpdd"}


def test_editing_vpdds_fine_tuning_config_reruns_fine_tuning_and_evaluation_only(smoke_workspace):
    ws = smoke_workspace
    p = ws / "config/papers/vpdd.yaml"
    original = p.read_text()
    try:
        doc = yaml.safe_load(original)
        doc["experiments"]["metaworld"]["scales"]["smoke"]["overrides"]["all"]["batch"] = 6
        p.write_text(yaml.safe_dump(doc))
        jobs = planned_jobs(ws, "--config", "scale=smoke")
    finally:
        p.write_text(original)
    assert _vpdd_runs(jobs, "train") == {(m, s) for m in VPDD_SMOKE for s in ("0", "1")}
    assert not {r for r, _ in jobs} & {"stage", "setup_env"}


def test_editing_vpdds_tokenizer_reruns_everything_downstream_of_it(smoke_workspace):
    ws = smoke_workspace
    with edited(ws / "methods/video/tokenizer.py"):
        jobs = planned_jobs(ws, "--config", "scale=smoke")
    assert _stage_jobs(jobs) == ["pretrain"] * 4 + ["tokenizer"]
    assert _vpdd_runs(jobs, "train") == {(m, s) for m in VPDD_SMOKE for s in ("0", "1")}
    assert "setup_env" not in {r for r, _ in jobs}
    assert {w["paper"] for r, w in jobs if r == "train"} == {"vpdd"}


def test_adding_a_vpdd_seed_adds_only_its_stages_and_runs(smoke_workspace):
    ws = smoke_workspace
    p = ws / "config/papers/vpdd.yaml"
    original = p.read_text()
    try:
        doc = yaml.safe_load(original)
        doc["experiments"]["metaworld"]["scales"]["smoke"]["seeds"] = 3
        p.write_text(yaml.safe_dump(doc))
        jobs = planned_jobs(ws, "--config", "scale=smoke")
    finally:
        p.write_text(original)
    assert _stage_jobs(jobs) == ["pretrain", "pretrain"]  # seed 2 of VPDD and of its ablation; no tokenizer
    assert _vpdd_runs(jobs, "train") == {(m, "2") for m in VPDD_SMOKE} == _vpdd_runs(jobs, "evaluate")


def test_lint_is_clean(smoke_workspace):
    proc = snakemake(smoke_workspace, "--lint", "--config", "scale=smoke", check=False)
    out = proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in out, out


def test_slurm_profile_resolves_train_resources(smoke_workspace):
    out = snakemake(
        smoke_workspace, "-n", "--workflow-profile", "profiles/slurm", "--config", "scale=paper", "--forceall"
    ).stdout
    blocks = out.split("\n\n")
    train = [
        b
        for b in blocks
        if re.search(r"^\s*rule train:", b, re.M) and "paper=egfn," in b and "experiment=hypergrid," in b
    ]
    setup = [b for b in blocks if re.search(r"^\s*rule setup_env:", b, re.M)]
    assert train and setup
    for b in train:
        res = re.search(r"resources: (.*)", b).group(1)
        assert "gpu=1" in res and "cpus_per_gpu=4" in res and "slurm_partition=gpu" in res
        assert "slurm_account=CHANGE_ME_account" in res and "mem_mb=16000" in res
        paper = yaml.safe_load((smoke_workspace / "config/papers/egfn.yaml").read_text())
        runtime = paper["experiments"]["hypergrid"]["scales"]["paper"]["runtime_min"]
        assert f"runtime={runtime}" in res  # runtime_min x attempt 1
        assert "cpus_per_task" not in res
    res = re.search(r"resources: (.*)", setup[0]).group(1)
    assert "slurm_partition=cpu" in res and "gpu=" not in res
    # a stage (VPDD's tokenizer and video pre-training) is a GPU job of its own, timed like its runs
    stages = [b for b in blocks if re.search(r"^\s*rule stage:", b, re.M)]
    assert stages
    vpdd = yaml.safe_load((smoke_workspace / "config/papers/vpdd.yaml").read_text())
    for b in stages:
        res = re.search(r"resources: (.*)", b).group(1)
        assert "gpu=1" in res and "slurm_partition=gpu" in res and "mem_mb=16000" in res
        assert f"runtime={vpdd['experiments']['metaworld']['scales']['paper']['runtime_min']}" in res


def _train_cmd(ws: Path, seed: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "--scale",
        "smoke",
        "train",
        "--paper",
        "egfn",
        "--experiment",
        "hypergrid",
        "--method",
        "db",
        "--seed",
        str(seed),
        "--threads",
        "1",
    ]


def _set_smoke(ws: Path, **scale_kw) -> None:
    p = ws / "config/papers/egfn.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["experiments"]["hypergrid"]["scales"]["smoke"].update(scale_kw)
    p.write_text(yaml.safe_dump(doc))


def test_determinism_and_sigterm_resume(tmp_path):
    """Same seed twice -> byte-identical curve.csv; SIGTERM checkpoints and exits non-zero,
    and the resumed run ends byte-identical to one never interrupted."""
    ws = make_workspace(tmp_path / "repo")
    _set_smoke(ws, iterations=400, eval_every=50, checkpoint_every=10)
    # only the EGFN envs: the one run trained here needs its hypergrid, not the 39 envs of all papers
    snakemake(ws, "--cores", "1", "--config", "scale=smoke", "papers=[egfn]", "--until", "setup_env")
    run_dir = ws / "results/smoke/egfn/hypergrid/db/seed0"
    subprocess.run(_train_cmd(ws, 0), cwd=ws, check=True, capture_output=True)
    first = (run_dir / "curve.csv").read_bytes()
    (run_dir / "curve.csv").unlink()
    subprocess.run(_train_cmd(ws, 0), cwd=ws, check=True, capture_output=True)
    assert (run_dir / "curve.csv").read_bytes() == first

    ckpt = ws / "work/ckpt/smoke/egfn/hypergrid/db/seed0/latest.pt"
    for f in run_dir.iterdir():
        f.unlink()
    proc = subprocess.Popen(_train_cmd(ws, 0), cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err.decode()[-2000:]
    assert ckpt.exists() and not (run_dir / "curve.csv").exists()
    res = subprocess.run(_train_cmd(ws, 0), cwd=ws, check=True, capture_output=True, text=True)
    assert "resuming" in res.stderr
    assert (run_dir / "curve.csv").read_bytes() == first
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["resumed_from"] is not None and manifest["resumed_from"] > 0
    assert not ckpt.exists()  # cleared after success


def test_a_stage_resumes_exactly_after_sigterm(tmp_path):
    """A stage job (VPDD's tokenizer) under SIGTERM checkpoints and exits 75 like a run; the retry
    resumes and ends with the curve and model of a stage never interrupted."""
    import torch

    from pipeline.config import load_from_files

    ws = make_workspace(tmp_path / "repo")
    p = ws / "config/papers/vpdd.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["experiments"]["metaworld"]["scales"]["smoke"]["overrides"]["all"].update(
        tokenizer_steps=120, tokenizer_checkpoint_every=5
    )
    p.write_text(yaml.safe_dump(doc))
    snakemake(ws, "--cores", "1", "--config", "scale=smoke", "papers=[vpdd]", "--until", "setup_env")
    wf = load_from_files(ws / "config/config.yaml", {"scale": "smoke", "papers": ["vpdd"]}, ws)
    stage = next(j for j in wf.stage_jobs("vpdd").values() if j.name == "tokenizer")
    cmd = [sys.executable, "-m", "pipeline", "--scale", "smoke", "--papers", "vpdd", "stage"]
    cmd += ["--paper", "vpdd", "--stage-id", stage.stage_id, "--threads", "1"]
    out = ws / "results" / stage.key
    subprocess.run(cmd, cwd=ws, check=True, capture_output=True)
    curve = (out / "curve.csv").read_bytes()
    model = torch.load(out / "model.pt", weights_only=False)
    for f in out.iterdir():
        f.unlink()

    ckpt = ws / "work/ckpt" / stage.key / "latest.pt"
    proc = subprocess.Popen(cmd, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err.decode()[-2000:]
    assert ckpt.exists() and not (out / "model.pt").exists()
    res = subprocess.run(cmd, cwd=ws, check=True, capture_output=True, text=True)
    assert "resuming" in res.stderr
    assert (out / "curve.csv").read_bytes() == curve
    resumed = torch.load(out / "model.pt", weights_only=False)
    assert all(torch.equal(model["state"][k], resumed["state"][k]) for k in model["state"])
    assert (model["demo_tokens"] == resumed["demo_tokens"]).all()
    assert json.loads((out / "manifest.json").read_text())["resumed_from"] > 0


def _untimed_curve(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time_")} for row in csv.DictReader(f)]


def test_a_seed_group_resumes_exactly_after_sigterm(tmp_path):
    """A seed-group job (NE's td3, 2 seeds) under SIGTERM checkpoints every seed at one step and
    exits 75; the retry resumes all of them and ends with the curves and models of a group never
    interrupted."""
    import torch

    ws = make_workspace(tmp_path / "repo")
    p = ws / "config/papers/ne.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["experiments"]["mujoco"]["scales"]["smoke"]["checkpoint_every"] = 20
    p.write_text(yaml.safe_dump(doc))
    snakemake(ws, "--cores", "1", "--config", "scale=smoke", "papers=[ne]", "--until", "setup_env")
    cmd = [sys.executable, "-m", "pipeline", "--scale", "smoke", "--papers", "ne", "train-group", "--paper", "ne"]
    cmd += ["--experiment", "mujoco", "--method", "td3", "--first", "0", "--last", "1", "--threads", "1"]
    out = ws / "results/smoke/ne/_groups/mujoco/td3/seeds0-1"
    subprocess.run(cmd, cwd=ws, check=True, capture_output=True)
    curves = [_untimed_curve(out / f"seed{s}/curve.csv") for s in (0, 1)]
    models = [torch.load(out / f"seed{s}/model.pt", weights_only=False) for s in (0, 1)]
    for f in sorted(out.rglob("*.*"), reverse=True):
        f.unlink()

    ckpt = ws / "work/ckpt/smoke/ne/_groups/mujoco/td3/seeds0-1/latest.pt"
    proc = subprocess.Popen(cmd, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # into the updates, past the warm-up's first checkpoints
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err.decode()[-2000:]
    assert ckpt.exists() and not (out / "manifest.json").exists()
    res = subprocess.run(cmd, cwd=ws, check=True, capture_output=True, text=True)
    assert "resuming" in res.stderr
    for s in (0, 1):
        assert _untimed_curve(out / f"seed{s}/curve.csv") == curves[s]
        resumed = torch.load(out / f"seed{s}/model.pt", weights_only=False)
        assert all(torch.equal(v, resumed["actor"][k]) for k, v in models[s]["actor"].items())
        assert json.loads((out / f"seed{s}/manifest.json").read_text())["resumed_from"] > 0
    assert not ckpt.exists()


def test_snapshot_clone_restore_has_nothing_to_do(smoke_workspace, tmp_path):
    """make snapshot -> fresh clone -> make restore -> `snakemake -n` has nothing to do.
    (Runs last: it adds DVC files to the shared workspace.)"""
    ws = smoke_workspace
    remote = tmp_path / "dvc-remote"
    env = git_env()
    env["RLREPRO_DVC_REMOTE"] = str(remote)
    snap = subprocess.run(
        [sys.executable, "-m", "pipeline", "--scale", "smoke", "snapshot"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    assert snap.returncode == 0, snap.stderr[-3000:]
    assert (ws / "results.dvc").exists() and (ws / "reports/smoke.dvc").exists()
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "snapshot"], cwd=ws, check=True, env=env)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ws), str(clone)], check=True, env=env)
    assert not (clone / "results").exists()
    res = subprocess.run(
        [sys.executable, "-m", "pipeline", "--scale", "smoke", "restore"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    a = ws / "results/smoke/egfn/hypergrid/db/seed0/curve.csv"
    b = clone / "results/smoke/egfn/hypergrid/db/seed0/curve.csv"
    assert a.read_bytes() == b.read_bytes()
    assert (clone / "reports/smoke/index.html").exists()
    assert planned_jobs(clone, "--config", "scale=smoke") == []


def test_a_paper_named_only_on_the_command_line_sets_up_its_envs(tmp_path):
    """`--config papers=[qgfn]` where config.yaml does not list qgfn: every stage's command line
    must carry the selected papers (setup once looked its env key up in config.yaml's papers)."""
    from pipeline import config as pconfig

    ws = make_workspace(tmp_path / "repo")
    cfg = ws / "config/config.yaml"
    cfg.write_text(re.sub(r"(?m)^papers: .*$", "papers: [egfn]", cfg.read_text()))
    subprocess.run(["git", "commit", "-qam", "egfn only"], cwd=ws, env=git_env(), check=True)
    wf = pconfig.load_from_files(ws / "config/config.yaml", {"papers": ["qgfn"], "scale": "smoke"}, root=ws)
    key = next(k for k, (name, _) in wf.envs().items() if name == "bitseq")
    snakemake(ws, f"results/smoke/_envs/{key}/info.json", "--cores", "1", "--config", "scale=smoke", "papers=[qgfn]")
    assert (ws / f"results/smoke/_envs/{key}/info.json").is_file()
