"""pipeline.figures and pipeline.report, end to end from synthetic run dirs: aggregate ->
figures -> claims -> report, checking outputs exist, are stable, and the HTML is offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline import claims, figures, report, stats
from pipeline.layout import Layout

STEPS = np.arange(0, 101, 25)
PAPER = {
    "paper": "toy",
    "title": "Toy <paper> & co",
    "family": "gfn",
    "source": "arXiv 0000.00000",
    "metrics": {
        "exact_tv": {"label": "exact TV", "higher_is_better": False},
        "mean_reward": {"label": "reward", "higher_is_better": True},
    },
    "experiments": {
        "grid": {
            "title": "grid",
            "env": "hypergrid",
            "methods": ["tb", "db"],
            "scales": {"small": {"seeds": 6, "deviations": ["8x8 grid instead of 20^4"]}},
        }
    },
    "deviations": ["paper-level deviation"],
    "unverified": [{"option": "log_z_lr", "default": 0.1, "source": "not in the paper"}],
    "claims": [
        {
            "id": "tb-fits",
            "statement": "TB fits <well>",
            "source": "Fig. 2",
            "experiment": "grid",
            "metric": "exact_tv",
            "kind": "threshold",
            "method": "tb",
            "threshold": 0.25,
        },
        {
            "id": "tb-beats-db",
            "statement": "TB beats DB",
            "source": "Table 1",
            "experiment": "grid",
            "metric": "exact_tv",
            "kind": "compare",
            "method": "tb",
            "baseline": "db",
        },
        {
            "id": "db-fits",
            "statement": "DB fits",
            "source": "Fig. 2",
            "experiment": "grid",
            "metric": "exact_tv",
            "kind": "threshold",
            "method": "db",
            "threshold": 0.25,
        },
    ],
    "figures": [
        {
            "id": "tv_curve",
            "title": "TV vs step",
            "experiment": "grid",
            "metric": "exact_tv",
            "x": "step",
            "logy": True,
        },
        {
            "id": "absent",
            "title": "no such experiment",
            "experiment": "nope",
            "metric": "exact_tv",
            "x": "step",
            "logy": False,
        },
    ],
}


def make_runs(root: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    runs = []
    for method, floor in (("tb", 0.05), ("db", 0.5)):
        for seed in range(6):
            d = root / "results" / "small" / "toy" / "grid" / method / f"seed{seed}"
            d.mkdir(parents=True)
            tv = floor + 0.5 * np.exp(-STEPS / 30.0) + rng.uniform(0, 0.02, len(STEPS))
            rows = ["step,trajectories,exact_tv,loss"] + [
                f"{s},{s * 8},{v!r},{rng.random()!r}" for s, v in zip(STEPS, tv)
            ]
            (d / "curve.csv").write_text("\n".join(rows) + "\n")
            (d / "eval.json").write_text(
                json.dumps(
                    {
                        "metrics": {"exact_tv": float(tv[-1]), "mean_reward": 1.0},
                        "per_episode": {"reward": [1.0]},
                        "n_episodes": 1,
                    }
                )
            )
            runs.append({"experiment": "grid", "method": method, "seed": seed, "dir": d})
    return runs


@pytest.fixture(scope="module")
def pipeline_outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    runs = make_runs(root)
    res = root / "results" / "small" / "toy"
    stats.aggregate(PAPER, runs, res, reps=200, confidence=0.95, random_state=0, scale="small")
    figs = figures.draw(PAPER, res / "summary.csv", root / "reports" / "small" / "toy")
    ledger = claims.write(PAPER, res / "stats.json", res / "claims.json")
    papers = [
        {
            "cfg": PAPER,
            "stats": json.loads((res / "stats.json").read_text()),
            "claims": ledger,
            "figures": [p for p in figs if p.suffix == ".png"],
            "n_runs": len(runs),
            "run_dirs": [r["dir"] for r in runs],
        }
    ]
    html = report.build("small", papers, Layout(reports=root / "reports").report("small"))
    return {"root": root, "res": res, "figs": figs, "claims": ledger, "papers": papers, "html": html}


def test_figures_png_and_pdf(pipeline_outputs):
    figs = pipeline_outputs["figs"]
    names = sorted(p.name for p in figs)
    assert names == ["absent.pdf", "absent.png", "tv_curve.pdf", "tv_curve.png"]
    for p in figs:
        data = p.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG") if p.suffix == ".png" else data.startswith(b"%PDF")
    assert not list(figs[0].parent.glob("*.tmp"))  # atomic writes leave no temporaries


def test_figures_are_byte_stable(pipeline_outputs, tmp_path):
    again = figures.draw(PAPER, pipeline_outputs["res"] / "summary.csv", tmp_path)
    for old, new in zip(pipeline_outputs["figs"], again):
        assert old.read_bytes() == new.read_bytes(), old.name
    assert b"CreationDate" not in (tmp_path / "tv_curve.pdf").read_bytes()


def test_claim_verdicts_end_to_end(pipeline_outputs):
    verdicts = {c["id"]: c["verdict"] for c in pipeline_outputs["claims"]}
    assert verdicts == {"tb-fits": "reproduced", "tb-beats-db": "reproduced", "db-fits": "not_reproduced"}


def test_report_html(pipeline_outputs):
    html_path = pipeline_outputs["html"]
    assert html_path == pipeline_outputs["root"] / "reports" / "small" / "index.html"
    html = html_path.read_text(encoding="utf-8")
    for c in pipeline_outputs["claims"]:
        assert c["id"] in html
    assert "not reproduced" in html and 'class="badge reproduced"' in html
    assert "data:image/png;base64," in html
    # Offline: nothing fetched from the network, no external scripts or stylesheets.
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script[^>]*\bsrc=", html, re.I)
    assert not re.search(r"<link[^>]*\bhref=", html, re.I)
    # Escaped text, deviations and unverified options present.
    assert "Toy &lt;paper&gt; &amp; co" in html and "TB fits &lt;well&gt;" in html
    assert "8x8 grid instead of 20^4" in html and "paper-level deviation" in html
    assert "log_z_lr" in html
    assert "scale <b>small</b>" in html


def test_report_is_stable(pipeline_outputs, tmp_path):
    again = report.build("small", pipeline_outputs["papers"], tmp_path / "index.html")
    assert again.read_bytes() == pipeline_outputs["html"].read_bytes()


def test_sweep_figure_plots_the_final_metric_at_each_evaluation_setting(tmp_path):
    """A ``kind: sweep`` figure reads ``<metric>_p<NN>`` from stats.json: one point per setting
    and method (IQM, CI bars), x = NN / 100; other metrics that merely share the prefix are
    not points."""

    def entry(iqm):
        return {"iqm": iqm, "iqm_ci": [iqm - 0.1, iqm + 0.1], "n": 3}

    stats_doc = {
        "experiments": {
            "grid": {
                "final": {
                    "mean_reward_p00": {"qgfn": entry(1.0), "tb": {"iqm": None}},
                    "mean_reward_p90": {"qgfn": entry(2.0)},
                    "mean_reward_p50": {"qgfn": entry(1.5)},
                    "mean_reward_gain": {"qgfn": entry(1.0)},
                    "mean_reward": {"qgfn": entry(9.0)},
                }
            }
        }
    }
    pts = figures.sweep_points(stats_doc, "grid", "mean_reward")
    assert pts == {"qgfn": [(0.0, 1.0, 0.9, 1.1), (0.5, 1.5, 1.4, 1.6), (0.9, 2.0, 1.9, 2.1)]}
    spec = {"id": "sweep", "experiment": "grid", "metric": "mean_reward", "kind": "sweep"}
    fig = figures.draw_figure(PAPER, spec, figures.read_summary(tmp_path / "none.csv"), stats_doc)
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [0.0, 0.5, 0.9] and list(line.get_ydata()) == [1.0, 1.5, 2.0]
    (tmp_path / "stats.json").write_text(json.dumps(stats_doc))
    paper = {**PAPER, "figures": [spec]}
    out = figures.draw(paper, tmp_path / "none.csv", tmp_path / "figs", tmp_path / "stats.json")
    assert sorted(p.name for p in out) == ["sweep.pdf", "sweep.png"]
