"""The README's quick start goes through the Makefile: `make reproduce` prints the claims plan
(`python -m pipeline plan`), runs Snakemake and prints the report's path. SCALE and PAPERS must
reach both programs in their own syntax (Snakemake's `--config`, the pipeline's `--scale` /
`--papers`); `make reproduce SCALE=smoke` once failed before any job because the pipeline was
handed Snakemake's flag. Here Snakemake only plans (`SNAKE_ARGS=-n`), in a workspace copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, git_env, make_workspace

VENV = Path(sys.executable).parent.parent


@pytest.mark.skipif(
    shutil.which("make") is None or not (VENV / ".complete").exists(),
    reason="needs make and a venv built by `make venv`",
)
@pytest.mark.parametrize(
    "args, scale, papers",
    [
        (["SCALE=smoke", "PAPERS=egfn,rbs"], "smoke", ["egfn", "rbs"]),
        (["PAPERS=omnet"], "small", ["omnet"]),
    ],
)
def test_make_reproduce_passes_scale_and_papers_to_the_plan_snakemake_and_report(tmp_path, args, scale, papers):
    ws = make_workspace(tmp_path / "repo")
    for item in ("Makefile", "requirements.lock"):
        shutil.copy2(REPO / item, ws / item)
    proc = subprocess.run(
        ["make", "-s", "reproduce", f"VENV={VENV}", *args, "SNAKE_ARGS=-n"],
        cwd=ws,
        capture_output=True,
        text=True,
        env=git_env(),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    planned = [line.split(" (")[0] for line in out.splitlines() if line.endswith("claims decidable")]
    assert planned == papers and f"({scale}):" in out, out[:2000]
    # Snakemake planned the same selection: every run directory named is of those papers at that scale
    runs = {
        line.split(f"results/{scale}/")[1].split("/")[0]
        for line in out.splitlines()
        if f"results/{scale}/" in line and "/seed" in line
    } - {"_envs", "_tracking"}
    assert runs == set(papers), runs
    assert proc.stdout.rstrip().endswith(f"report: {ws / 'reports' / scale / 'index.html'}"), proc.stdout[-500:]
