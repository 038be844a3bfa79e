"""pipeline/layout.py is the one owner of the run-directory layout: the rules and the command
line get every path from it, and no other pipeline module spells a layout file name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO
from pipeline import layout
from pipeline.config import RunJob
from pipeline.layout import Layout

NAMES = set(layout.RUN_FILES) | {
    layout.CHECKPOINT,
    layout.ENV_INFO,
    layout.SUMMARY,
    layout.STATS,
    layout.CLAIMS,
    layout.REPORT,
    layout.ENVS_DIR,
    layout.TRACKING_DIR,
    layout.RUN_KEY_TAG,
}


def test_patterns_and_values_agree():
    """A rule's pattern with its wildcards filled in is the path the command line uses."""
    job = RunJob(
        scale="small",
        paper="egfn",
        experiment="hypergrid",
        method="tb",
        seed=3,
        env="hypergrid",
        env_kwargs={},
        iterations=1,
        eval_every=1,
        checkpoint_every=1,
        runtime_min=1,
        hparams={},
    )
    wildcards = dict(scale="small", paper="egfn", experiment="hypergrid", method="tb", seed=3)
    pattern = layout.run_key(*(f"{{{k}}}" for k in wildcards))
    assert pattern.format(**wildcards) == job.key == "small/egfn/hypergrid/tb/seed3"
    paths = Layout(results="res", reports="rep", work="w")
    assert str(paths.run_file(job.key, layout.CURVE)) == "res/small/egfn/hypergrid/tb/seed3/curve.csv"
    assert str(paths.checkpoint_dir(job.key)) == "w/ckpt/small/egfn/hypergrid/tb/seed3"
    assert str(paths.env_info("small", "hg-1")) == "res/small/_envs/hg-1/info.json"
    assert str(paths.stats("small", "egfn")) == "res/small/egfn/stats.json"
    assert str(paths.figure("small", "egfn", "tv", "pdf")) == "rep/small/egfn/tv.pdf"
    assert str(paths.report("small")) == "rep/small/index.html"
    assert str(paths.run_log("train", *wildcards.values())) == "logs/small/train/egfn/hypergrid/tb/seed3.log"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def test_no_other_module_spells_a_layout_name():
    offenders = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        if path.name == "layout.py":
            continue
        for line, text in _string_constants(path):
            if text in NAMES or re.search(r"seed\{", text):
                offenders.append(f"{path.name}:{line}: {text!r}")
    for path in sorted((REPO / "pipeline/rules").glob("*.smk")) + [REPO / "Snakefile"]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0].replace("config/config.yaml", "")  # the top-level config
            if any(f'"{n}"' in code or f"/{n}" in code for n in NAMES) or "seed{" in code:
                offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert offenders == []


def test_dvc_yaml_is_what_the_layout_gives():
    """dvc.yaml is generated from pipeline/layout.py and the configured papers, not spelled by
    hand: every paper's stats.json at each scale, its summary and figures at small and paper."""
    from pipeline import dvc_spec
    from pipeline.config import load_from_files

    wf = load_from_files()
    assert (REPO / "dvc.yaml").read_text(encoding="utf-8") == dvc_spec.render(wf), (
        "dvc.yaml is stale: run `python -m pipeline.dvc_spec`"
    )
    doc = dvc_spec.spec(wf)
    paths = Layout(results="results", reports="reports", work=".")
    for paper in wf.main["papers"]:
        assert str(paths.stats("paper", paper)) in doc["metrics"]
        for fig in wf.papers[paper].get("figures") or []:
            assert str(paths.figure("small", paper, fig["id"])) in doc["plots"]
