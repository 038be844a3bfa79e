"""The reproduction report: one static, offline HTML file per scale (reports/<scale>/index.html).

Everything is inline — CSS in a <style> block, figures as base64 data URIs — so the file can be
mailed, archived or opened from a DVC checkout without a network. The body holds no wall-clock
time, so regenerating it from the same results gives the same bytes.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Iterable

from pipeline.atomic import atomic_write_text
from pipeline.ledger import VERDICT_TEXT, badge, claims_table, esc, forest_svg, ledger_html, num
from pipeline.runfiles import ordered

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;
     padding:0 1rem;color:#1d2125;line-height:1.45}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin-top:1.6rem} .meta{color:#57606a;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem;max-width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .55rem;text-align:left;vertical-align:top;
      overflow-wrap:break-word}
th{background:#f6f8fa} td.num{font-variant-numeric:tabular-nums}
table.ledger{width:100%;table-layout:fixed} table.ledger col.c1{width:17%} table.ledger col.c3{width:38%}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.8rem;font-size:.8rem;font-weight:600;
       white-space:nowrap;color:#fff}
.reproduced{background:#1a7f37} .not_reproduced{background:#cf222e} .inconclusive{background:#9a6700}
.not_decidable{background:#6e7781} .fact{background:#0969da}
table.settings{font-size:.8rem;margin:.3rem 0} .plumbing{background:#ffebe9;border:1px solid #cf222e;
       padding:.5rem .8rem;border-radius:.3rem}
.rule{color:#57606a;font-size:.85rem}
.guard{color:#57606a;font-size:.8rem}.guard.fired{color:#9a3412;font-weight:600}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1rem}
figure{margin:0} figure img{width:100%;height:auto;border:1px solid #d0d7de}
figcaption{font-size:.85rem;color:#57606a}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;border-radius:.3rem}
"""


def _est(v: Any, ci: Any) -> str:
    lo, hi = (list(ci) + [None, None])[:2] if isinstance(ci, (list, tuple)) else (None, None)
    return f"{num(v)} [{num(lo)}, {num(hi)}]"


def _list(items: Iterable[Any]) -> str:
    lis = []
    for it in items:
        if isinstance(it, dict):
            lis.append("; ".join(f"<b>{esc(k)}</b>: {esc(v)}" for k, v in it.items()))
        else:
            lis.append(esc(it))
    return "<ul>" + "".join(f"<li>{x}</li>" for x in lis) + "</ul>" if lis else ""


def _as_items(value: Any, scale: str) -> list[Any]:
    """A paper-level deviations/substitutes entry: a list, a {scale: list} map, or a {name: text} map."""
    if value is None:
        return []
    if isinstance(value, dict):
        if scale in value:
            return _as_items(value[scale], scale)
        return [{k: v} for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _deviations(cfg: dict, scale: str) -> str:
    parts = []
    for key, title in (("deviations", "Paper-wide"), ("substitutes", "Substitutes")):
        items = _as_items(cfg.get(key), scale)
        if items:
            parts.append(f"<p><b>{title}</b></p>{_list(items)}")
    for exp_id, exp in (cfg.get("experiments") or {}).items():
        sc = ((exp or {}).get("scales") or {}).get(scale)
        name = f"{esc(exp_id)}: {esc((exp or {}).get('title', ''))}"
        if sc is None:
            parts.append(f"<p><b>{name}</b></p><ul><li>not run at this scale</li></ul>")
        elif sc.get("deviations"):
            parts.append(f"<p><b>{name}</b></p>{_list(sc['deviations'])}")
    return "".join(parts) or "<p>None recorded.</p>"


def _unverified(cfg: dict) -> str:
    items = cfg.get("unverified") or []
    if not items:
        return ""
    rows = "".join(
        f"<tr><td>{esc(it.get('option', ''))}</td><td>{esc(it.get('default', ''))}</td>"
        f"<td>{esc(it.get('source', ''))}</td></tr>"
        if isinstance(it, dict)
        else f"<tr><td colspan=3>{esc(it)}</td></tr>"
        for it in items
    )
    return (
        '<h3>Unverified settings</h3><p class="note">Details the paper leaves open, or where '
        "the paper and the authors' code disagree: each is a config option; the default used "
        "here is our best reading and may differ from what produced the paper's figures.</p>"
        f"<table><tr><th>option</th><th>default used</th><th>source / reasoning</th></tr>{rows}</table>"
    )


def _figures(cfg: dict, figures: list[Path]) -> str:
    titles = {str(f.get("id")): f.get("title", "") for f in cfg.get("figures") or []}
    rank = {fid: i for i, fid in enumerate(titles)}
    out = []
    # In the paper config's figure order, whatever order the caller globbed them in.
    for p in sorted((Path(f) for f in figures), key=lambda f: (rank.get(f.stem, len(rank)), f.name)):
        if p.suffix.lower() != ".png":
            continue
        cap = esc(titles.get(p.stem, p.stem))
        if not p.is_file():
            out.append(f"<p>Figure <code>{esc(p.name)}</code> is missing.</p>")
            continue
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        out.append(
            f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
            f"<figcaption>{cap} (<code>{esc(p.name)}</code>)</figcaption></figure>"
        )
    return f"<div class=figures>{''.join(out)}</div>" if out else "<p>No figures.</p>"


def _metrics_tables(cfg: dict, stats: dict) -> str:
    labels = {m: (c or {}).get("label", m) for m, c in (cfg.get("metrics") or {}).items()}
    exp_cfg = cfg.get("experiments") or {}
    out = []
    # stats.json is written with sorted keys; show experiments, metrics and methods in config order.
    for exp_id in ordered(exp_cfg, stats.get("experiments") or {}):
        exp = stats["experiments"][exp_id]
        title = (exp_cfg.get(exp_id) or {}).get("title", "")
        methods = ordered((exp_cfg.get(exp_id) or {}).get("methods") or [], exp.get("n_runs") or {})
        runs = ", ".join(f"{esc(m)}: {esc(exp['n_runs'][m])}" for m in methods)
        rows = []
        final = exp.get("final") or {}
        for metric in ordered(labels, final):
            per_method = final[metric] or {}
            for method in ordered(methods, per_method):
                e = per_method[method] or {}
                rows.append(
                    f"<tr><td>{esc(labels.get(metric, metric))}</td><td>{esc(method)}</td>"
                    f"<td class=num>{esc(_est(e.get('iqm'), e.get('iqm_ci')))}</td>"
                    f"<td class=num>{esc(_est(e.get('mean'), e.get('mean_ci')))}</td>"
                    f"<td class=num>{esc(num(e.get('n')))}</td></tr>"
                )
        table = (
            (
                "<table><tr><th>metric</th><th>method</th><th>IQM [CI]</th><th>mean [CI]</th><th>n</th></tr>"
                + "".join(rows)
                + "</table>"
            )
            if rows
            else "<p>No final metrics (no eval.json).</p>"
        )
        out.append(
            f"<h4>{esc(exp_id)}{': ' + esc(title) if title else ''}</h4>"
            f"<p class=meta>runs per method — {runs or 'none'}</p>{table}"
        )
    return "".join(out) or "<p>No aggregated results.</p>"


def _paper_section(scale: str, p: dict) -> str:
    cfg, stats, claims = p.get("cfg") or {}, p.get("stats") or {}, p.get("claims") or []
    pid = str(cfg.get("paper", "paper"))
    settings = stats.get("settings") or {}
    conf = settings.get("confidence")
    conf_txt = f"{conf:.0%}" if isinstance(conf, (int, float)) else "n/a"
    setting_txt = (
        f"Intervals: {conf_txt} stratified-bootstrap CIs, {esc(settings.get('reps'))} resamples "
        f"(curves {esc(settings.get('curve_reps'))}), random_state {esc(settings.get('random_state'))}"
        if settings
        else ""
    )
    run_dirs = p.get("run_dirs") or []
    dirs = (
        (f"<details><summary>{len(run_dirs)} run directories</summary>{_list(str(d) for d in run_dirs)}</details>")
        if run_dirs
        else ""
    )
    return (
        f'<section id="paper-{esc(pid)}"><h2>{esc(cfg.get("title", pid))}</h2>'
        f"<p class=meta>paper <code>{esc(pid)}</code> · family {esc(cfg.get('family', ''))} · "
        f"source: {esc(cfg.get('source', ''))}</p>"
        f"<p>Runs at this scale: <b>{esc(p.get('n_runs', 0))}</b>. {setting_txt}</p>{dirs}"
        + (
            f"<h3>Effects at a glance</h3><p class=rule>Each tested claim's effect and interval on its own scale, "
            "right of the dashed line = the claimed direction, coloured by verdict; ⚠ = a guard fired.</p>"
            f"{forest}"
            if (forest := forest_svg(claims))
            else ""
        )
        + f"<h3>Claims ledger</h3>{ledger_html(claims, p.get('procedure'), bool(p.get('plumbing_only')))}"
        f"<h3>Figures</h3>{_figures(cfg, p.get('figures') or [])}"
        f"<h3>Final metrics</h3>{_metrics_tables(cfg, stats)}"
        f"<h3>Deviations from the paper at this scale</h3>{_deviations(cfg, scale)}"
        f"{_unverified(cfg)}</section>"
    )


def _fraction_table(claims: list[dict]) -> str:
    """Verdicts counted by the share of the paper scale's training length they rest on."""
    from pipeline.power_plan import fraction_bucket

    buckets = ("< 1 %", "1-10 %", "10-100 %", "100 %", "unknown")
    counts = {b: {v: 0 for v in VERDICT_TEXT} for b in buckets}
    for c in claims:
        if c.get("verdict") in VERDICT_TEXT:
            counts[fraction_bucket((c.get("budget_fraction") or {}).get("iterations"))][c["verdict"]] += 1
    rows = "".join(
        f"<tr><td>{esc(b)}</td>" + "".join(f"<td class=num>{counts[b][v]}</td>" for v in VERDICT_TEXT) + "</tr>"
        for b in buckets
        if any(counts[b].values())
    )
    head = "".join(f"<th>{esc(t)}</th>" for t in VERDICT_TEXT.values())
    return (
        "<p class=rule>What the verdicts rest on: the share of the paper scale's training length "
        "(env steps or iterations) each claim's runs had.</p>"
        f"<table><tr><th>share of the paper's budget</th>{head}</tr>{rows}</table>"
    )


def _paper_tally(p: dict) -> str:
    """One line per paper: its verdict counts (beyond-paper claims apart) and the guards' findings."""
    claims = p.get("claims") or []
    pid = esc((p.get("cfg") or {}).get("paper", ""))
    own = [c for c in claims if not c.get("extra")]
    counts = " · ".join(f"{badge(v)} {n}" for v in VERDICT_TEXT if (n := sum(c.get("verdict") == v for c in own)))
    extra = sum(bool(c.get("extra")) for c in claims)
    fired = sum(bool((c.get("guards") or {}).get("fired")) for c in claims)
    notes = []
    if extra:
        notes.append(f"{extra} beyond the paper")
    if fired:
        notes.append(f"guards fired on {fired}")
    return f'<a href="#paper-{pid}"><b>{pid}</b></a>: {counts or "no claims"}' + (
        f" <span class=meta>({esc(', '.join(notes))})</span>" if notes else ""
    )


def render(scale: str, papers: list[dict]) -> str:
    """The report as an HTML string (see :func:`build`)."""
    all_claims = [{**c, "_paper": (p.get("cfg") or {}).get("paper", "")} for p in papers for c in p.get("claims") or []]
    counts = {v: sum(c.get("verdict") == v for c in all_claims) for v in VERDICT_TEXT}
    tally = " · ".join(f"{badge(v)} {counts[v]}" for v in VERDICT_TEXT)
    per_paper = "".join(f"<li>{_paper_tally(p)}</li>" for p in papers)
    by_fraction = _fraction_table(all_claims)
    toc = " · ".join(
        f'<a href="#paper-{esc((p.get("cfg") or {}).get("paper", ""))}">'
        f"{esc((p.get('cfg') or {}).get('paper', ''))}</a>"
        for p in papers
    )
    n_runs = sum(int(p.get("n_runs") or 0) for p in papers)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>rl-repro report — {esc(scale)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>rl-repro reproduction report</h1>"
        f"<p class=meta>scale <b>{esc(scale)}</b> · {len(papers)} paper(s) · {n_runs} run(s) · generated by "
        "rl-repro from the files in results/ (stats.json, claims.json, figures); the run manifests record "
        "versions, git commit and device.</p>"
        f"<p>Papers: {toc or 'none'}</p>"
        + (
            "<p class=plumbing><b>Smoke scale: plumbing check only.</b> Every verdict below comes from runs "
            "of seconds; it shows the pipeline works end to end, not whether a paper reproduces.</p>"
            if any(p.get("plumbing_only") for p in papers)
            else ""
        )
        + f"<h2>Claims at a glance</h2><p>{tally}</p><ul class=tally>{per_paper}</ul>{by_fraction}"
        + f"{claims_table(all_claims)}\n"
        + "\n".join(_paper_section(scale, p) for p in papers)
        + "\n</body></html>\n"
    )


def build(scale: str, papers: list[dict], out_html: Path) -> Path:
    """Write the static offline report for ``scale`` to ``out_html`` and return its path.

    ``papers`` items: ``{"cfg", "stats", "claims", "figures": [png paths], "n_runs", "run_dirs"?,
    "procedure"?, "plumbing_only"?}`` (the last two from claims.json).
    """
    return atomic_write_text(out_html, render(scale, papers))
