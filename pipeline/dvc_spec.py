"""``dvc.yaml`` written from the run layout (pipeline/layout.py), not by hand: every configured
paper's ``stats.json`` at each scale as DVC metrics, and its ``summary.csv`` and figures at the
``small`` and ``paper`` scales as DVC plots. Snakemake runs the workflow; DVC only versions and
ships what it produced, so there are no DVC stages.

    python -m pipeline.dvc_spec          # rewrite dvc.yaml
    python -m pipeline.dvc_spec --check  # exit 1 if dvc.yaml is not what the layout gives
"""

from __future__ import annotations

import argparse
import sys

import yaml

from pipeline import REPO_ROOT
from pipeline.config import SCALES, Workflow, load_from_files
from pipeline.layout import Layout

HEADER = """\
# Written by `python -m pipeline.dvc_spec` from pipeline/layout.py and the configured papers;
# do not edit (tests/test_layout.py checks it). DVC versions and ships what Snakemake produced:
# `dvc metrics show`, `dvc plots show`.
"""
PLOT_SCALES = ("small", "paper")


def spec(workflow: Workflow) -> dict:
    """The dvc.yaml document: paths relative to the repository root."""
    paths = Layout(results=workflow.main["results_dir"], reports=workflow.main["reports_dir"], work=".")
    papers = list(workflow.main["papers"])
    metrics = [str(paths.stats(scale, paper)) for scale in SCALES for paper in papers]
    plots: list = []
    for scale in PLOT_SCALES:
        for paper in papers:
            plots.append({str(paths.summary(scale, paper)): {"x": "step", "y": "iqm", "template": "linear"}})
            plots += [
                str(paths.figure(scale, paper, fig["id"], "png")) for fig in workflow.papers[paper].get("figures") or []
            ]
    return {"metrics": metrics, "plots": plots}


def render(workflow: Workflow) -> str:
    return HEADER + yaml.safe_dump(spec(workflow), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    text = render(load_from_files())
    target = REPO_ROOT / "dvc.yaml"
    if args.check:
        if target.read_text(encoding="utf-8") != text:
            print(f"{target}: not what `python -m pipeline.dvc_spec` writes; rerun it", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
