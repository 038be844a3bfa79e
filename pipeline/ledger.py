"""The claims ledger in HTML: one row per claim with its verdict, the comparison and settings it
rests on, the numbers (effect, CI, test, adjusted p, n) and the guards' findings; the forest plot of
the tested claims' effects; the short claims table. Used by the report (:mod:`pipeline.report`)."""

from __future__ import annotations

from html import escape
from typing import Any


VERDICT_TEXT = {
    "reproduced": "reproduced",
    "not_reproduced": "not reproduced",
    "inconclusive": "inconclusive",
    "not_decidable": "not decidable",
    "fact": "fact (by construction)",
}


def esc(x: Any) -> str:
    return escape(str(x), quote=True)


def num(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return str(x)


def badge(verdict: str) -> str:
    v = verdict if verdict in VERDICT_TEXT else "inconclusive"
    return f'<span class="badge {v}">{esc(VERDICT_TEXT[v])}</span>'


def key_numbers(claim: dict) -> str:
    """The numbers a verdict rests on, in one line of plain text: effect, CI, test, p, n."""
    n = claim.get("numbers") or {}
    if claim.get("kind") == "fact":
        vals = "; ".join(f"{m}: {', '.join(num(v) for v in vs)}" for m, vs in (n.get("values") or {}).items())
        return f"{vals}" + (f" (ratio {num(n.get('ratio'))})" if n.get("ratio") is not None else "")
    eff = n.get("effect") or {}
    parts = []
    if claim.get("kind") == "trend":
        parts.append("median gap per setting " + ", ".join(num(g) for g in eff.get("estimate") or []))
    elif eff:
        alpha = n.get("alpha", 0.05)
        parts.append(f"{eff.get('name')} {num(eff.get('estimate'))}, {1 - 2 * alpha:.0%} CI {ci_text(eff.get('ci'))}")
    if n.get("margin") is not None:
        parts.append(f"margin {num(n['margin'])}")
    if n.get("p_for") is not None:
        parts.append(
            f"{n.get('test')}: p = {num(n.get('p_for'))}, adjusted {num(n.get('p_for_adj'))} "
            f"(m = {num(n.get('family_size'))})"
        )
    ns = n.get("n")
    if ns:
        parts.append("n = " + " vs ".join(num(k) for k in ns))
    if n.get("power_1sd") is not None:
        parts.append(f"power at a 1-SD effect {num(n['power_1sd'])}")
    return "; ".join(parts) or "—"


def ci_text(ci: Any) -> str:
    lo, hi = (list(ci) + [None, None])[:2] if isinstance(ci, (list, tuple)) else (None, None)
    return f"[{'-inf' if lo is None else num(lo)}, {'+inf' if hi is None else num(hi)}]"


def settings_table(rows: list[dict]) -> str:
    """Every resolved setting in which the two sides of a comparison differ, with provenance."""
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{esc(r.get('experiment', ''))}</td><td><code>{esc(r.get('setting', ''))}</code></td>"
        f"<td>{esc(r.get('method'))}<br><span class=rule>{esc(r.get('method_source', ''))}</span></td>"
        f"<td>{esc(r.get('baseline'))}<br><span class=rule>{esc(r.get('baseline_source', ''))}</span></td></tr>"
        for r in rows
    )
    return (
        "<details><summary>settings that differ between the two sides</summary><table class=settings>"
        "<tr><th>experiment</th><th>setting</th><th>method (source)</th><th>baseline (source)</th></tr>"
        f"{body}</table></details>"
    )


def claims_table(claims: list[dict], paper: str | None = None) -> str:
    head = (
        "<tr>"
        + ("<th>paper</th>" if paper is None else "")
        + "<th>claim</th><th>statement</th><th>verdict</th><th>numbers</th></tr>"
    )
    rows = []
    for c in claims:
        first = f"<td>{esc(c.get('_paper', ''))}</td>" if paper is None else ""
        rows.append(
            f"<tr>{first}<td><code>{esc(c.get('id', ''))}</code></td><td>{esc(c.get('statement', ''))}</td>"
            f"<td>{badge(str(c.get('verdict', '')))}</td><td class=num>{esc(key_numbers(c))}</td></tr>"
        )
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
        parts.append(
            f"on untrained agents: {step0.get('verdict')}"
            + (" (holds by construction)" if step0.get("by_construction") else "")
        )
    learned = [
        f"{c['method']} {c['status']}"
        + (f" (p {num(c.get('p'))})" if c.get("p") is not None else "")
        + (f", descriptively {c['descriptive']}" if c.get("descriptive") else "")
        for c in g.get("learned") or []
    ]
    if learned:
        parts.append("learned? " + ", ".join(dict.fromkeys(learned)))
    if g.get("baseline_fails_declared"):
        parts.append(f"baseline failing is the paper's own finding: {g['baseline_fails_declared']}")
    return ("guards: " + " · ".join(parts)) if parts else ""


VERDICT_COLOUR = {
    "reproduced": "#1a7f37",
    "not_reproduced": "#cf222e",
    "inconclusive": "#9a6700",
    "not_decidable": "#6e7781",
    "fact": "#0969da",
}


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
    out = [
        f'<svg class=forest role="img" aria-label="forest plot of the claims\' effects" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f'<line x1="{mid}" y1="{pad}" x2="{mid}" y2="{height - pad - 14}" stroke="#57606a" stroke-dasharray="3,3"/>',
        f'<text x="{mid}" y="{height - 4}" font-size="11" text-anchor="middle" fill="#57606a">'
        "0 (claimed direction →)</text>",
    ]
    for i, (c, (e, lo, hi)) in enumerate(rows):
        y = pad + i * row_h + row_h / 2
        scale = max(abs(v) for v in (e, lo, hi) if v is not None and v == v and abs(v) != float("inf")) or 1.0
        x = lambda v: mid + (plot_w / 2 - 6) * max(-1.0, min(1.0, v / scale))  # noqa: E731
        colour = VERDICT_COLOUR.get(str(c.get("verdict")), "#9a6700")
        fired = bool((c.get("guards") or {}).get("fired"))
        label = ("⚠ " if fired else "") + str(c.get("id", ""))
        out.append(
            f'<text x="{label_w}" y="{y + 4}" font-size="11" text-anchor="end" '
            f'fill="{"#9a3412" if fired else "#1d2125"}">{esc(label[:52])}</text>'
        )
        a = x(lo) if lo is not None else label_w + pad
        b = x(hi) if hi is not None else width - pad
        out.append(f'<line x1="{a:.1f}" y1="{y}" x2="{b:.1f}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        out.append(
            f'<circle cx="{x(e):.1f}" cy="{y}" r="4" fill="{colour}"><title>{esc(c.get("id"))}: '
            f"{esc(c.get('verdict'))}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def ledger_html(claims: list[dict], procedure: dict | None = None, plumbing_only: bool = False) -> str:
    if not claims:
        return "<p>No claims configured.</p>"
    paper_claims = [c for c in claims if not c.get("extra")]
    extra = [c for c in claims if c.get("extra")]
    table = ledger_table(paper_claims)
    if extra:
        table += (
            "<h4>Beyond the paper</h4><p class=rule>Tasks or comparisons the paper did not run: decided "
            "in a Holm family of their own, not counted among the paper's claims.</p>" + ledger_table(extra)
        )
    head = ""
    if plumbing_only:
        head += (
            "<p class=plumbing><b>Plumbing check only.</b> Smoke runs are seconds long: these verdicts "
            "show that the pipeline decides claims end to end, not whether the paper reproduces. "
            "The guards are shown, not applied in earnest: runs this short are not expected to learn.</p>"
        )
    if procedure:
        head += f"<p class=rule>Procedure: {esc(procedure.get('rule', ''))}</p>"
    return head + table


def ledger_table(claims: list[dict]) -> str:
    out = []
    for c in claims:
        src = f" <span class=meta>({esc(c['source'])})</span>" if c.get("source") else ""
        exp = c.get("experiment") or " → ".join(c.get("experiments") or [])
        vs = f" vs <code>{esc(c['baseline'])}</code>" if c.get("baseline") else ""
        named = (
            f" Differs by design in: {esc(', '.join(c['differs_by']))}"
            + (f" ({esc(c['differs_reason'])})" if c.get("differs_reason") else "")
            + "."
            if c.get("differs_by")
            else ""
        )
        if c.get("extra"):
            named += f" Beyond the paper: {esc(c.get('extra_reason', ''))}."
        meas = c.get("measured_differ") or []
        if meas:
            named += (
                " Measured differences: "
                + esc(
                    "; ".join(
                        f"{m['quantity']} {num(m['method'])} vs {num(m['baseline'])} ({m['experiment']})"
                        + ("" if m.get("named") else " — NOT NAMED in differs_by")
                        for m in meas
                    )
                )
                + "."
            )
        if c.get("env_at_scale"):
            named += " Runs here: " + esc("; ".join(f"{e} {kw}" for e, kw in c["env_at_scale"].items())) + "."
        frac = c.get("budget_fraction") or {}
        if frac:
            named += (
                " Rests on " + ", ".join(f"{100 * v:.3g} % of the paper scale's {k}" for k, v in frac.items()) + "."
            )
        gtxt = guard_text(c)
        fired = bool((c.get("guards") or {}).get("fired"))
        guard_html = f"<br><span class='{'guard fired' if fired else 'guard'}'>{esc(gtxt)}</span>" if gtxt else ""
        out.append(
            f"<tr><td><code>{esc(c.get('id', ''))}</code><br>{badge(str(c.get('verdict', '')))}</td>"
            f"<td>{esc(c.get('statement', ''))}{src}<br><span class=rule>{esc(c.get('kind', ''))}: "
            f"<code>{esc(c.get('method', ''))}</code>{vs}, experiment {esc(exp)}, metric {esc(c.get('metric', ''))}."
            f"{named}</span>{settings_table(c.get('settings_differ') or [])}</td>"
            f"<td class=num>{esc(key_numbers(c))}<br><span class=rule>{esc(c.get('reason', ''))}</span>"
            f"{guard_html}</td></tr>"
        )
    return (
        "<table class=ledger><colgroup><col class=c1><col class=c2><col class=c3></colgroup>"
        "<tr><th>claim / verdict</th><th>statement, comparison and settings</th>"
        "<th>effect, CI, test, adjusted p, n / reason</th></tr>" + "".join(out) + "</table>"
    )
