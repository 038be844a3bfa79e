"""Draw a paper's figures from its summary.csv: IQM per method vs step with the bootstrap CI band.

Each entry of ``paper_cfg["figures"]`` (``id, title, experiment, metric, x, logy``) becomes
``<out_dir>/<id>.png`` and ``<out_dir>/<id>.pdf``. Files carry no timestamp or software-version
metadata, so redrawing the same data gives the same bytes and DVC/Snakemake see no change.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless (CI, SLURM nodes); set before anything imports pyplot

import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pipeline.atomic import atomic_write_bytes  # noqa: E402
from pipeline.layout import FIGURE_FORMATS, figure_name  # noqa: E402

# Metadata keys set to None are left out of the file (matplotlib would otherwise stamp its
# version and, for PDF, the creation time).
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}
_X_LABELS = {"step": "training step"}


def _render(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata=_METADATA[fmt], dpi=150 if fmt == "png" else None)
    return buf.getvalue()


def read_summary(summary_csv: Path) -> pd.DataFrame:
    cols = ["experiment", "method", "metric", "step", "iqm", "iqm_lo", "iqm_hi"]
    try:
        df = pd.read_csv(summary_csv, dtype={"experiment": str, "method": str, "metric": str})
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=cols)
    for c in ("step", "iqm", "iqm_lo", "iqm_hi"):
        df[c] = pd.to_numeric(df.get(c), errors="coerce")
    return df


SWEEP_SUFFIX = re.compile(r"_p(\d+)$")


def sweep_points(stats: dict, exp: str, metric: str) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per method, (setting, IQM, CI low, CI high) of the final metrics ``<metric>_p<NN>`` of
    experiment ``exp`` in stats.json (NN = 100 x the setting), sorted by setting."""
    final = ((stats.get("experiments") or {}).get(exp) or {}).get("final") or {}
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, per_method in final.items():
        m = SWEEP_SUFFIX.search(name)
        if not m or name[: m.start()] != metric:
            continue
        for method, st in per_method.items():
            if st.get("iqm") is None:
                continue
            lo, hi = (st.get("iqm_ci") or [None, None])[:2]
            nan = math.nan
            out.setdefault(method, []).append(
                (int(m.group(1)) / 100.0, st["iqm"], nan if lo is None else lo, nan if hi is None else hi)
            )
    return {k: sorted(v) for k, v in out.items()}


def draw_sweep(paper_cfg: dict, spec: dict, stats: dict) -> Figure:
    """A ``kind: sweep`` figure: the final metric against the evaluation setting, per method."""
    exp, metric = spec.get("experiment"), spec.get("metric")
    label = ((paper_cfg.get("metrics") or {}).get(metric) or {}).get("label", metric)
    points = sweep_points(stats, exp, metric)
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, (method, pts) in enumerate(sorted(points.items())):
        x, y, lo, hi = (list(c) for c in zip(*pts))
        err = [
            [max(v - a, 0) if a == a else 0 for v, a in zip(y, lo)],
            [max(b - v, 0) if b == b else 0 for v, b in zip(y, hi)],
        ]
        ax.errorbar(x, y, yerr=err, color=f"C{i % 10}", marker="o", capsize=3, linewidth=1.6, label=method)
    if points:
        ax.legend(loc="best", frameon=False, title="IQM over seeds, bars: bootstrap CI", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data at this scale", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(spec.get("xlabel") or "p at evaluation (same trained model)")
    ax.set_ylabel(str(label))
    ax.set_title(str(spec.get("title", spec.get("id", ""))), fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig


def draw_figure(paper_cfg: dict, spec: dict, summary: pd.DataFrame, stats: dict | None = None) -> Figure:
    """One figure (a matplotlib Figure, not yet saved) for one ``figures`` entry."""
    if spec.get("kind", "curve") == "sweep":
        return draw_sweep(paper_cfg, spec, stats or {})
    exp, metric = spec.get("experiment"), spec.get("metric")
    x = spec.get("x", "step")
    label = ((paper_cfg.get("metrics") or {}).get(metric) or {}).get("label", metric)
    methods = ((paper_cfg.get("experiments") or {}).get(exp) or {}).get("methods") or []
    rows = summary[(summary["experiment"] == exp) & (summary["metric"] == metric)]
    order = [m for m in methods if m in set(rows["method"])]
    order += sorted(set(rows["method"]) - set(order))

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for i, method in enumerate(order):
        d = rows[rows["method"] == method].sort_values("step")
        d = d[d["iqm"].notna()]
        if d.empty:
            continue
        color = f"C{i % 10}"
        n = pd.to_numeric(d.get("n_runs"), errors="coerce").max() if "n_runs" in d else math.nan
        name = f"{method} (n={int(n)})" if n == n else method  # n == n: not NaN
        ax.plot(d["step"], d["iqm"], color=color, label=name, linewidth=1.6)
        band = d[d["iqm_lo"].notna() & d["iqm_hi"].notna()]
        ax.fill_between(band["step"], band["iqm_lo"], band["iqm_hi"], color=color, alpha=0.2, linewidth=0)
        drawn += 1
    if spec.get("logy") and drawn and (rows["iqm"] > 0).any():
        ax.set_yscale("log")  # nonpositive values are masked, not an error
    if drawn:
        ax.legend(loc="best", frameon=False, title="IQM, band: bootstrap CI", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data at this scale", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(spec.get("xlabel") or _X_LABELS.get(x, x))
    ax.set_ylabel(str(label))
    ax.set_title(str(spec.get("title", spec.get("id", ""))), fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig


def save(
    paper_cfg: dict, spec: dict, summary: pd.DataFrame, paths: dict[str, Path], stats: dict | None = None
) -> list[Path]:
    """Draw one ``figures`` entry and write it to ``paths`` (format -> file, e.g. png, pdf)."""
    fig = draw_figure(paper_cfg, spec, summary, stats)
    return [atomic_write_bytes(path, _render(fig, fmt)) for fmt, path in paths.items()]


def read_stats(stats_json: Path | None) -> dict:
    """stats.json (final metrics per method), or {} where there is none yet."""
    try:
        return json.loads(Path(stats_json).read_text()) if stats_json else {}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def draw(paper_cfg: dict, summary_csv: Path, out_dir: Path, stats_json: Path | None = None) -> list[Path]:
    """Draw every figure of ``paper_cfg`` as PNG and PDF into ``out_dir``; return the paths.

    Curves are drawn against ``step`` (summary.csv's grid), sweeps from stats.json; a figure
    with no data still gets files (saying so), because the workflow declares them as outputs.
    """
    summary = read_summary(Path(summary_csv))
    stats = read_stats(stats_json)
    paths: list[Path] = []
    for spec in paper_cfg.get("figures") or []:
        paths += save(
            paper_cfg,
            spec,
            summary,
            {fmt: Path(out_dir) / figure_name(spec["id"], fmt) for fmt in FIGURE_FORMATS},
            stats,
        )
    return paths
