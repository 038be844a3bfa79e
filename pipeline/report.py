"""The reproduction report: one static, offline HTML file per scale (reports/<scale>/index.html).

Everything is inline — CSS in a <style> block, figures as base64 data URIs — so the file can be
mailed, archived or opened from a DVC checkout without a network. The body holds no wall-clock
time, so regenerating it from the same results gives the same bytes.
"""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any, Iterable

from pipeline.io import atomic_write_text
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

_VERDICT_TEXT = {"reproduced": "reproduced", "not_reproduced": "not reproduced", "inconclusive": "inconclusive",
                 "not_decidable": "not decidable", "fact": "fact (by construction)"}


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _num(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return str(x)


def _est(v: Any, ci: Any) -> str:
    lo, hi = (list(ci) + [None, None])[:2] if isinstance(ci, (list, tuple)) else (None, None)
    return f"{_num(v)} [{_num(lo)}, {_num(hi)}]"


def _badge(verdict: str) -> str:
    v = verdict if verdict in _VERDICT_TEXT else "inconclusive"
    return f'<span class="badge {v}">{_e(_VERDICT_TEXT[v])}</span>'


def key_numbers(claim: dict) -> str:
    """The numbers a verdict rests on, in one line of plain text: effect, CI, test, p, n."""
    n = claim.get("numbers") or {}
    if claim.get("kind") == "fact":
        vals = "; ".join(f"{m}: {', '.join(_num(v) for v in vs)}" for m, vs in (n.get("values") or {}).items())
        return f"{vals}" + (f" (ratio {_num(n.get('ratio'))})" if n.get("ratio") is not None else "")
    eff = n.get("effect") or {}
    parts = []
    if claim.get("kind") == "trend":
        parts.append("median gap per setting " + ", ".join(_num(g) for g in eff.get("estimate") or []))
    elif eff:
        alpha = n.get("alpha", 0.05)
        parts.append(f"{eff.get('name')} {_num(eff.get('estimate'))}, {1 - 2 * alpha:.0%} CI "
                     f"{_ci(eff.get('ci'))}")
    if n.get("margin") is not None:
        parts.append(f"margin {_num(n['margin'])}")
    if n.get("p_for") is not None:
        parts.append(f"{n.get('test')}: p = {_num(n.get('p_for'))}, adjusted {_num(n.get('p_for_adj'))} "
                     f"(m = {_num(n.get('family_size'))})")
    ns = n.get("n")
    if ns:
        parts.append("n = " + " vs ".join(_num(k) for k in ns))
    if n.get("power_1sd") is not None:
        parts.append(f"power at a 1-SD effect {_num(n['power_1sd'])}")
    return "; ".join(parts) or "—"


def _ci(ci: Any) -> str:
    lo, hi = (list(ci) + [None, None])[:2] if isinstance(ci, (list, tuple)) else (None, None)
    return f"[{'-inf' if lo is None else _num(lo)}, {'+inf' if hi is None else _num(hi)}]"


def _settings_table(rows: list[dict]) -> str:
    """Every resolved setting in which the two sides of a comparison differ, with provenance."""
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{_e(r.get('experiment', ''))}</td><td><code>{_e(r.get('setting', ''))}</code></td>"
        f"<td>{_e(r.get('method'))}<br><span class=rule>{_e(r.get('method_source', ''))}</span></td>"
        f"<td>{_e(r.get('baseline'))}<br><span class=rule>{_e(r.get('baseline_source', ''))}</span></td></tr>"
        for r in rows)
    return ("<details><summary>settings that differ between the two sides</summary><table class=settings>"
            "<tr><th>experiment</th><th>setting</th><th>method (source)</th><th>baseline (source)</th></tr>"
            f"{body}</table></details>")


def _list(items: Iterable[Any]) -> str:
    lis = []
    for it in items:
        if isinstance(it, dict):
            lis.append("; ".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in it.items()))
        else:
            lis.append(_e(it))
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
        name = f"{_e(exp_id)}: {_e((exp or {}).get('title', ''))}"
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
        f"<tr><td>{_e(it.get('option', ''))}</td><td>{_e(it.get('default', ''))}</td>"
        f"<td>{_e(it.get('source', ''))}</td></tr>" if isinstance(it, dict) else
        f"<tr><td colspan=3>{_e(it)}</td></tr>" for it in items)
    return ('<h3>Unverified settings</h3><p class="note">Details the paper leaves open, or where '
            "the paper and the authors' code disagree: each is a config option; the default used "
            "here is our best reading and may differ from what produced the paper's figures.</p>"
            f"<table><tr><th>option</th><th>default used</th><th>source / reasoning</th></tr>{rows}</table>")


def _claims_table(claims: list[dict], paper: str | None = None) -> str:
    head = ("<tr>" + ("<th>paper</th>" if paper is None else "")
            + "<th>claim</th><th>statement</th><th>verdict</th><th>numbers</th></tr>")
    rows = []
    for c in claims:
        first = f"<td>{_e(c.get('_paper', ''))}</td>" if paper is None else ""
        rows.append(f"<tr>{first}<td><code>{_e(c.get('id', ''))}</code></td><td>{_e(c.get('statement', ''))}</td>"
                    f"<td>{_badge(str(c.get('verdict', '')))}</td><td class=num>{_e(key_numbers(c))}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>" if rows else "<p>No claims.</p>"


def guard_text(claim: dict) -> str:
    """The guards' findings on one claim, in one line (pipeline/guards.py)."""
    g = claim.get("guards") or {}
    if g.get("unchecked"):
        return f"guards: unchecked ({g['unchecked']})"
    parts = []
    if g.get("fired"):
        parts.append("FIRED: " + "; ".join(g["fired"]))
    step0 = g.get("step0") or {}
    if step0:
        parts.append(f"on untrained agents: {step0.get('verdict')}"
                     + (" (holds by construction)" if step0.get("by_construction") else ""))
    learned = [f"{c['method']} {c['status']}" + (f" (p {_num(c.get('p'))})" if c.get("p") is not None else "")
               + (f", descriptively {c['descriptive']}" if c.get("descriptive") else "")
               for c in g.get("learned") or []]
    if learned:
        parts.append("learned? " + ", ".join(dict.fromkeys(learned)))
    if g.get("baseline_fails_declared"):
        parts.append(f"baseline failing is the paper's own finding: {g['baseline_fails_declared']}")
    return ("guards: " + " · ".join(parts)) if parts else ""


_VERDICT_COLOUR = {"reproduced": "#1a7f37", "not_reproduced": "#cf222e", "inconclusive": "#9a6700",
                   "not_decidable": "#6e7781", "fact": "#0969da"}


def oriented_effect(claim: dict) -> tuple[float, float | None, float | None] | None:
    """A tested claim's effect and CI turned so that > 0 is the claimed direction: the
    Hodges-Lehmann shift (plus the margin for 'not worse'), or the median minus the threshold;
    None where there is no single effect (trend claims, facts, no data)."""
    n = claim.get("numbers") or {}
    eff = n.get("effect") or {}
    est = eff.get("estimate")
    if claim.get("kind") not in ("compare", "noninferior", "threshold") or not isinstance(est, (int, float)):
        return None
    lo, hi = (list(eff.get("ci") or []) + [None, None])[:2]
    shift = -float(eff["threshold"]) if "threshold" in eff else float(n.get("margin") or 0.0)
    sign = 1.0 if n.get("higher_is_better", True) else -1.0
    vals = [None if v is None else sign * (float(v) + shift) for v in (est, lo, hi)]
    e, a, b = vals
    if sign < 0:
        a, b = b, a
    return e, a, b


def forest_svg(claims: list[dict]) -> str:
    """One row per tested claim: its effect and CI on the row's own scale, > 0 = the claimed
    direction, coloured by verdict; a guard that fired is marked. Rows differ in units, so each
    is scaled to its own largest |value|: the picture shows direction and certainty, the
    ledger the numbers."""
    rows = [(c, oe) for c in claims if (oe := oriented_effect(c)) is not None]
    if not rows:
        return ""
    width, label_w, row_h, pad = 760, 330, 18, 8
    plot_w = width - label_w - 2 * pad
    mid = label_w + pad + plot_w / 2
    height = row_h * len(rows) + 2 * pad + 14
    out = [f'<svg class=forest role="img" aria-label="forest plot of the claims\' effects" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}">',
           f'<line x1="{mid}" y1="{pad}" x2="{mid}" y2="{height - pad - 14}" stroke="#57606a" stroke-dasharray="3,3"/>',
           f'<text x="{mid}" y="{height - 4}" font-size="11" text-anchor="middle" fill="#57606a">'
           '0 (claimed direction →)</text>']
    for i, (c, (e, lo, hi)) in enumerate(rows):
        y = pad + i * row_h + row_h / 2
        scale = max(abs(v) for v in (e, lo, hi) if v is not None and v == v and abs(v) != float("inf")) or 1.0
        x = lambda v: mid + (plot_w / 2 - 6) * max(-1.0, min(1.0, v / scale))  # noqa: E731
        colour = _VERDICT_COLOUR.get(str(c.get("verdict")), "#9a6700")
        fired = bool((c.get("guards") or {}).get("fired"))
        label = ("⚠ " if fired else "") + str(c.get("id", ""))
        out.append(f'<text x="{label_w}" y="{y + 4}" font-size="11" text-anchor="end" '
                   f'fill="{"#9a3412" if fired else "#1d2125"}">{_e(label[:52])}</text>')
        a = x(lo) if lo is not None else label_w + pad
        b = x(hi) if hi is not None else width - pad
        out.append(f'<line x1="{a:.1f}" y1="{y}" x2="{b:.1f}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<circle cx="{x(e):.1f}" cy="{y}" r="4" fill="{colour}"><title>{_e(c.get("id"))}: '
                   f'{_e(c.get("verdict"))}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _ledger(claims: list[dict], procedure: dict | None = None, plumbing_only: bool = False) -> str:
    if not claims:
        return "<p>No claims configured.</p>"
    paper_claims = [c for c in claims if not c.get("extra")]
    extra = [c for c in claims if c.get("extra")]
    table = _ledger_table(paper_claims)
    if extra:
        table += ("<h4>Beyond the paper</h4><p class=rule>Tasks or comparisons the paper did not run: decided "
                  "in a Holm family of their own, not counted among the paper's claims.</p>" + _ledger_table(extra))
    head = ""
    if plumbing_only:
        head += ('<p class=plumbing><b>Plumbing check only.</b> Smoke runs are seconds long: these verdicts '
                 "show that the pipeline decides claims end to end, not whether the paper reproduces. "
                 "The guards are shown, not applied in earnest: runs this short are not expected to learn.</p>")
    if procedure:
        head += f"<p class=rule>Procedure: {_e(procedure.get('rule', ''))}</p>"
    return head + table


def _ledger_table(claims: list[dict]) -> str:
    out = []
    for c in claims:
        src = f" <span class=meta>({_e(c['source'])})</span>" if c.get("source") else ""
        exp = c.get("experiment") or " → ".join(c.get("experiments") or [])
        vs = f" vs <code>{_e(c['baseline'])}</code>" if c.get("baseline") else ""
        named = (f" Differs by design in: {_e(', '.join(c['differs_by']))}"
                 + (f" ({_e(c['differs_reason'])})" if c.get("differs_reason") else "") + "."
                 if c.get("differs_by") else "")
        if c.get("extra"):
            named += f" Beyond the paper: {_e(c.get('extra_reason', ''))}."
        meas = c.get("measured_differ") or []
        if meas:
            named += " Measured differences: " + _e("; ".join(
                f"{m['quantity']} {_num(m['method'])} vs {_num(m['baseline'])} ({m['experiment']})"
                + ("" if m.get("named") else " — NOT NAMED in differs_by") for m in meas)) + "."
        if c.get("env_at_scale"):
            named += " Runs here: " + _e("; ".join(f"{e} {kw}" for e, kw in c["env_at_scale"].items())) + "."
        frac = c.get("budget_fraction") or {}
        if frac:
            named += (" Rests on " + ", ".join(f"{100 * v:.3g} % of the paper scale's {k}" for k, v in frac.items())
                      + ".")
        gtxt = guard_text(c)
        fired = bool((c.get("guards") or {}).get("fired"))
        guard_html = (f"<br><span class='{'guard fired' if fired else 'guard'}'>{_e(gtxt)}</span>" if gtxt else "")
        out.append(
            f"<tr><td><code>{_e(c.get('id', ''))}</code><br>{_badge(str(c.get('verdict', '')))}</td>"
            f"<td>{_e(c.get('statement', ''))}{src}<br><span class=rule>{_e(c.get('kind', ''))}: "
            f"<code>{_e(c.get('method', ''))}</code>{vs}, experiment {_e(exp)}, metric {_e(c.get('metric', ''))}."
            f"{named}</span>{_settings_table(c.get('settings_differ') or [])}</td>"
            f"<td class=num>{_e(key_numbers(c))}<br><span class=rule>{_e(c.get('reason', ''))}</span>"
            f"{guard_html}</td></tr>")
    return ('<table class=ledger><colgroup><col class=c1><col class=c2><col class=c3></colgroup>'
            "<tr><th>claim / verdict</th><th>statement, comparison and settings</th>"
            "<th>effect, CI, test, adjusted p, n / reason</th></tr>" + "".join(out) + "</table>")


def _figures(cfg: dict, figures: list[Path]) -> str:
    titles = {str(f.get("id")): f.get("title", "") for f in cfg.get("figures") or []}
    rank = {fid: i for i, fid in enumerate(titles)}
    out = []
    # In the paper config's figure order, whatever order the caller globbed them in.
    for p in sorted((Path(f) for f in figures), key=lambda f: (rank.get(f.stem, len(rank)), f.name)):
        if p.suffix.lower() != ".png":
            continue
        cap = _e(titles.get(p.stem, p.stem))
        if not p.is_file():
            out.append(f"<p>Figure <code>{_e(p.name)}</code> is missing.</p>")
            continue
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        out.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{cap} (<code>{_e(p.name)}</code>)</figcaption></figure>")
    return f'<div class=figures>{"".join(out)}</div>' if out else "<p>No figures.</p>"


def _metrics_tables(cfg: dict, stats: dict) -> str:
    labels = {m: (c or {}).get("label", m) for m, c in (cfg.get("metrics") or {}).items()}
    exp_cfg = cfg.get("experiments") or {}
    out = []
    # stats.json is written with sorted keys; show experiments, metrics and methods in config order.
    for exp_id in ordered(exp_cfg, stats.get("experiments") or {}):
        exp = stats["experiments"][exp_id]
        title = (exp_cfg.get(exp_id) or {}).get("title", "")
        methods = ordered((exp_cfg.get(exp_id) or {}).get("methods") or [], exp.get("n_runs") or {})
        runs = ", ".join(f"{_e(m)}: {_e(exp['n_runs'][m])}" for m in methods)
        rows = []
        final = exp.get("final") or {}
        for metric in ordered(labels, final):
            per_method = final[metric] or {}
            for method in ordered(methods, per_method):
                e = per_method[method] or {}
                rows.append(f"<tr><td>{_e(labels.get(metric, metric))}</td><td>{_e(method)}</td>"
                            f"<td class=num>{_e(_est(e.get('iqm'), e.get('iqm_ci')))}</td>"
                            f"<td class=num>{_e(_est(e.get('mean'), e.get('mean_ci')))}</td>"
                            f"<td class=num>{_e(_num(e.get('n')))}</td></tr>")
        table = ("<table><tr><th>metric</th><th>method</th><th>IQM [CI]</th><th>mean [CI]</th><th>n</th></tr>"
                 + "".join(rows) + "</table>") if rows else "<p>No final metrics (no eval.json).</p>"
        out.append(f"<h4>{_e(exp_id)}{': ' + _e(title) if title else ''}</h4>"
                   f"<p class=meta>runs per method — {runs or 'none'}</p>{table}")
    return "".join(out) or "<p>No aggregated results.</p>"


def _paper_section(scale: str, p: dict) -> str:
    cfg, stats, claims = p.get("cfg") or {}, p.get("stats") or {}, p.get("claims") or []
    pid = str(cfg.get("paper", "paper"))
    settings = stats.get("settings") or {}
    conf = settings.get("confidence")
    conf_txt = f"{conf:.0%}" if isinstance(conf, (int, float)) else "n/a"
    setting_txt = (f"Intervals: {conf_txt} stratified-bootstrap CIs, {_e(settings.get('reps'))} resamples "
                   f"(curves {_e(settings.get('curve_reps'))}), random_state {_e(settings.get('random_state'))}"
                   if settings else "")
    run_dirs = p.get("run_dirs") or []
    dirs = (f"<details><summary>{len(run_dirs)} run directories</summary>"
            f"{_list(str(d) for d in run_dirs)}</details>") if run_dirs else ""
    return (
        f'<section id="paper-{_e(pid)}"><h2>{_e(cfg.get("title", pid))}</h2>'
        f"<p class=meta>paper <code>{_e(pid)}</code> · family {_e(cfg.get('family', ''))} · "
        f"source: {_e(cfg.get('source', ''))}</p>"
        f"<p>Runs at this scale: <b>{_e(p.get('n_runs', 0))}</b>. {setting_txt}</p>{dirs}"
        + (f"<h3>Effects at a glance</h3><p class=rule>Each tested claim's effect and interval on its own scale, "
           "right of the dashed line = the claimed direction, coloured by verdict; ⚠ = a guard fired.</p>"
           f"{forest}" if (forest := forest_svg(claims)) else "")
        + f"<h3>Claims ledger</h3>{_ledger(claims, p.get('procedure'), bool(p.get('plumbing_only')))}"
        f"<h3>Figures</h3>{_figures(cfg, p.get('figures') or [])}"
        f"<h3>Final metrics</h3>{_metrics_tables(cfg, stats)}"
        f"<h3>Deviations from the paper at this scale</h3>{_deviations(cfg, scale)}"
        f"{_unverified(cfg)}</section>")


def _fraction_table(claims: list[dict]) -> str:
    """Verdicts counted by the share of the paper scale's training length they rest on."""
    from pipeline.design import fraction_bucket

    buckets = ("< 1 %", "1-10 %", "10-100 %", "100 %", "unknown")
    counts = {b: {v: 0 for v in _VERDICT_TEXT} for b in buckets}
    for c in claims:
        if c.get("verdict") in _VERDICT_TEXT:
            counts[fraction_bucket((c.get("budget_fraction") or {}).get("iterations"))][c["verdict"]] += 1
    rows = "".join(f"<tr><td>{_e(b)}</td>" + "".join(f"<td class=num>{counts[b][v]}</td>" for v in _VERDICT_TEXT)
                   + "</tr>" for b in buckets if any(counts[b].values()))
    head = "".join(f"<th>{_e(t)}</th>" for t in _VERDICT_TEXT.values())
    return ("<p class=rule>What the verdicts rest on: the share of the paper scale's training length "
            "(env steps or iterations) each claim's runs had.</p>"
            f"<table><tr><th>share of the paper's budget</th>{head}</tr>{rows}</table>")


def _paper_tally(p: dict) -> str:
    """One line per paper: its verdict counts (beyond-paper claims apart) and the guards' findings."""
    claims = p.get("claims") or []
    pid = _e((p.get("cfg") or {}).get("paper", ""))
    own = [c for c in claims if not c.get("extra")]
    counts = " · ".join(f"{_badge(v)} {n}" for v in _VERDICT_TEXT
                        if (n := sum(c.get("verdict") == v for c in own)))
    extra = sum(bool(c.get("extra")) for c in claims)
    fired = sum(bool((c.get("guards") or {}).get("fired")) for c in claims)
    notes = []
    if extra:
        notes.append(f"{extra} beyond the paper")
    if fired:
        notes.append(f"guards fired on {fired}")
    return (f'<a href="#paper-{pid}"><b>{pid}</b></a>: {counts or "no claims"}'
            + (f" <span class=meta>({_e(', '.join(notes))})</span>" if notes else ""))


def render(scale: str, papers: list[dict]) -> str:
    """The report as an HTML string (see :func:`build`)."""
    all_claims = [{**c, "_paper": (p.get("cfg") or {}).get("paper", "")} for p in papers for c in p.get("claims") or []]
    counts = {v: sum(c.get("verdict") == v for c in all_claims) for v in _VERDICT_TEXT}
    tally = " · ".join(f"{_badge(v)} {counts[v]}" for v in _VERDICT_TEXT)
    per_paper = "".join(f"<li>{_paper_tally(p)}</li>" for p in papers)
    by_fraction = _fraction_table(all_claims)
    toc = " · ".join(f'<a href="#paper-{_e((p.get("cfg") or {}).get("paper", ""))}">'
                     f'{_e((p.get("cfg") or {}).get("paper", ""))}</a>' for p in papers)
    n_runs = sum(int(p.get("n_runs") or 0) for p in papers)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>rl-repro report — {_e(scale)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>rl-repro reproduction report</h1>"
        f"<p class=meta>scale <b>{_e(scale)}</b> · {len(papers)} paper(s) · {n_runs} run(s) · generated by "
        "rl-repro from the files in results/ (stats.json, claims.json, figures); the run manifests record "
        "versions, git commit and device.</p>"
        f"<p>Papers: {toc or 'none'}</p>"
        + ('<p class=plumbing><b>Smoke scale: plumbing check only.</b> Every verdict below comes from runs '
           "of seconds; it shows the pipeline works end to end, not whether a paper reproduces.</p>"
           if any(p.get("plumbing_only") for p in papers) else "")
        + f"<h2>Claims at a glance</h2><p>{tally}</p><ul class=tally>{per_paper}</ul>{by_fraction}"
        + f"{_claims_table(all_claims)}\n"
        + "\n".join(_paper_section(scale, p) for p in papers)
        + "\n</body></html>\n")


def build(scale: str, papers: list[dict], out_html: Path) -> Path:
    """Write the static offline report for ``scale`` to ``out_html`` and return its path.

    ``papers`` items: ``{"cfg", "stats", "claims", "figures": [png paths], "n_runs", "run_dirs"?,
    "procedure"?, "plumbing_only"?}`` (the last two from claims.json).
    """
    return atomic_write_text(out_html, render(scale, papers))
