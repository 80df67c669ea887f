"""The report as one self-contained HTML page: inline CSS, static inline SVG, no script.

Nothing is fetched when the page is opened (system fonts, no images or links to load),
and a Content-Security-Policy of ``default-src 'none'`` says so to the browser as well.
Every label value is escaped (:func:`flmon.report.svg.esc`): a client label comes from
a federation member and is treated as hostile.
"""

from __future__ import annotations

import time

from flmon import __version__
from flmon.report.model import Chart, Report, Section, Stat
from flmon.report.svg import SEVERITY_COLORS, chart_svg, color, esc, fmt_value, timeline_svg

CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#fff;--card:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:24px 28px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:14px;margin:0 0 2px}
.sub{color:var(--muted);margin:0 0 14px}
dl.id{display:grid;grid-template-columns:repeat(5,minmax(150px,1fr));gap:8px 16px;margin:0;
padding:12px 14px;background:var(--card);border:1px solid var(--line);border-radius:6px}
dl.id div{min-width:0}dt{color:var(--muted);font-size:12px}
dd{margin:0;font-weight:600;overflow-wrap:anywhere}
ul.findings{margin:12px 0 0;padding-left:20px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px;align-items:flex-start}
.panel.rounds{flex:1 1 520px}.panel.rounds th{white-space:nowrap}
.stat{min-width:170px;padding:8px 12px;border:1px solid var(--line);border-radius:6px;
background:var(--card)}.stat .v{font-size:20px;font-weight:600}
.stat .l{color:var(--muted);font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(580px,1fr));gap:14px}
.panel{border:1px solid var(--line);border-radius:6px;padding:10px 10px 6px;min-width:0}
.panel p.d{color:var(--muted);font-size:12px;margin:0 0 6px}
.nodata{height:80px;display:flex;align-items:center;justify-content:center;color:var(--muted);
background:var(--card);border-radius:4px;font-style:italic}
svg{display:block;max-width:100%;height:auto;font-size:10px}
svg .grid{stroke:#eaeef2;stroke-width:1}svg .frame{fill:none;stroke:var(--line)}
svg path{fill:none;stroke-width:1.6;stroke-linejoin:round}svg path.open{stroke:none}
svg .ref{stroke-dasharray:5 4;stroke-width:1.2}svg .marker{stroke:#8c959f;stroke-dasharray:2 3}
svg .ylab{text-anchor:end;fill:var(--muted)}svg .xlab{text-anchor:middle;fill:var(--muted)}
svg .lane{text-anchor:end;fill:var(--fg);font-size:11px}
svg .axis{stroke:var(--line)}svg .rlab{fill:#8c959f;font-size:9px}
table{border-collapse:collapse;width:100%;font-size:12px}
td,th{text-align:left;padding:2px 8px 2px 0;vertical-align:top;overflow-wrap:anywhere}
th{color:var(--muted);font-weight:normal}
table.legend td.n{text-align:right;white-space:nowrap}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.sw.ref{height:0;border-top:2px dashed #d44a3a;border-radius:0;vertical-align:middle}
.sev{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px}
footer{margin-top:28px;color:var(--muted);font-size:12px}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _clock(t: float) -> str:
    """Time of day (UTC): the tables sit under a header that gives the date."""
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _identity(report: Report) -> str:
    i = report.identity
    rounds = "-" if i.rounds_completed is None else (
        f"{i.rounds_completed}" + (f" of {i.rounds_planned}" if i.rounds_planned else ""))
    length = _duration(i.end - i.start) if i.start is not None and i.end is not None else "-"
    items = [
        ("Federation", i.federation), ("Run id", i.run_id or "-"),
        ("Strategy", i.strategy or "-"), ("Flower", i.flwr_version or "-"),
        ("flmon", i.flmon_version or "-"), ("Start", _when(i.start)), ("End", _when(i.end)),
        ("Duration", length), ("Rounds completed", rounds), ("Result", i.result),
    ]
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in items)
    return f'<dl class="id">{cells}</dl>'


def _stat(stat: Stat) -> str:
    values = " / ".join(fmt_value(v, stat.unit) for _, v in stat.values)
    legends = " / ".join(legend for legend, _ in stat.values)
    which = f" ({esc(legends)})" if len(stat.values) > 1 else ""
    return (f'<div class="stat" title="{esc(stat.description)}"><div class="v">{esc(values)}'
            f'</div><div class="l"><span>{esc(stat.title)}</span>{which}</div></div>')


def _rounds(report: Report) -> str:
    if not report.rounds:
        return ""
    rows = "".join(
        f"<tr><td>{r.number}</td><td>{esc(_clock(r.start))}</td>"
        f"<td>{esc(_duration(r.end - r.start) if r.end is not None else '-')}</td>"
        f"<td>{esc(fmt_value(r.training_accuracy, 'percentunit'))}</td>"
        f"<td>{esc(fmt_value(r.evaluation_accuracy, 'percentunit'))}</td>"
        f"<td>{esc(fmt_value(r.centralized_accuracy, 'percentunit'))}</td></tr>"
        for r in report.rounds)
    return ('<div class="panel rounds"><h3>Rounds</h3><p class="d">From the Current round '
            "panel's series; accuracy as the Accuracy panel showed it at the round's end."
            "</p><table><tr><th>round</th><th>started (UTC)</th><th>took</th><th>training acc"
            "</th><th>evaluation acc</th><th>centralized acc</th></tr>"
            f"{rows}</table></div>")


def _markers(report: Report) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = [(f"round {r.number}", r.start) for r in report.rounds]
    if report.identity.start is not None:
        out.append(("run start", report.identity.start))
    if report.identity.end is not None:
        out.append(("run end", report.identity.end))
    return out


def _chart(chart: Chart, report: Report) -> str:
    head = (f'<h3>{esc(chart.title)}</h3><p class="d">{esc(chart.description)}</p>')
    if chart.empty:
        return f'<div class="panel">{head}<div class="nodata">no data</div></div>'
    rows = "".join(
        f'<tr><td><span class="sw" style="background:{color(k)}"></span>{esc(line.legend)}'
        f'</td><td class="n">{esc(fmt_value(line.last, chart.unit))}</td>'
        f'<td class="n">{esc(fmt_value(line.peak, chart.unit))}</td></tr>'
        for k, line in enumerate(chart.lines) if line.points) + "".join(
        f'<tr><td><span class="sw ref"></span>{esc(name)} threshold</td>'
        f'<td class="n">{esc(fmt_value(v, chart.unit))}</td><td></td></tr>'
        for name, v in chart.references)
    legend = (f'<table class="legend"><tr><th>series</th><th class="n">last</th>'
              f'<th class="n">max</th></tr>{rows}</table>')
    svg = chart_svg(chart, report.window, report.step, _markers(report))
    return f'<div class="panel">{head}{svg}{legend}</div>'


def _section(section: Section, report: Report, first: bool) -> str:
    stats = "".join(_stat(s) for s in section.stats)
    if first:
        stats += _rounds(report)
    charts = "".join(_chart(c, report) for c in section.charts)
    return (f"<section><h2>{esc(section.title)}</h2>"
            + (f'<div class="stats">{stats}</div>' if stats else "")
            + f'<div class="grid">{charts}</div></section>')


def _sev(severity: str) -> str:
    fill = SEVERITY_COLORS.get(severity, "#8e8e8e")
    return f'<span class="sev" style="background:{fill}">{esc(severity)}</span>'


def _alerts(report: Report) -> str:
    out = ['<section id="alerts"><h2>Alert timeline</h2>',
           '<p class="sub">Prometheus\' <code>ALERTS</code> series (firing) over the same '
           'window as the charts.</p>']
    if not report.alerts:
        out.append('<div class="nodata">no alert fired in this window</div>')
    else:
        out.append(timeline_svg(report.alerts, report.window, _markers(report)))
        rows = "".join(
            f"<tr><td>{esc(a.alertname)}</td><td>{_sev(a.severity)}</td>"
            f"<td>{esc(a.subject or '-')}</td><td>{esc(_clock(a.start))}</td>"
            f"<td>{esc(_clock(a.end) if a.resolved else 'still firing')}</td>"
            f"<td>{esc(_duration(a.end - a.start))}</td><td>{esc(a.summary)}</td></tr>"
            for a in report.alerts)
        out.append("<table><tr><th>alert</th><th>severity</th><th>labels</th>"
                   "<th>fired (UTC)</th><th>resolved</th><th>for</th><th>summary</th></tr>"
                   f"{rows}</table>")
    if report.active_alerts is not None:
        out.append("<h3 style='margin-top:16px'>AlertManager at report time</h3>")
        if not report.active_alerts:
            out.append('<p class="sub">no alert of this federation held by AlertManager</p>')
        else:
            rows = "".join(
                f"<tr><td>{esc(a.alertname)}</td><td>{_sev(a.severity)}</td>"
                f"<td>{esc(a.state)}</td><td>{esc(a.starts_at)}</td>"
                f"<td>{esc(', '.join(a.receivers) or '-')}</td><td>{esc(a.summary)}</td></tr>"
                for a in report.active_alerts)
            out.append("<table><tr><th>alert</th><th>severity</th><th>state</th>"
                       f"<th>since</th><th>receivers</th><th>summary</th></tr>{rows}</table>")
    out.append("</section>")
    return "".join(out)


def render_html(report: Report) -> str:
    """The whole page."""
    i = report.identity
    title = f"flmon report: {i.federation} run {i.run_id or '-'}"
    findings = "".join(f"<li>{esc(f)}</li>" for f in report.findings)
    notes = "".join(f"<li>{esc(n)}</li>" for n in report.notes)
    w0, w1 = report.window
    body = [
        f"<header><h1>{esc(title)}</h1>",
        f'<p class="sub">Window {esc(_when(w0))} to {esc(_when(w1))} '
        f"({esc(_duration(w1 - w0))}, one point every {report.step:g} s). The charts are "
        "the flmon Grafana dashboards' panels, drawn from the same queries.</p>",
        _identity(report),
        f'<ul class="findings">{findings}{notes}</ul></header>',
        *(_section(s, report, k == 0) for k, s in enumerate(report.sections)),
        _alerts(report),
        f"<footer>Generated {esc(_when(report.generated_at))} by flmon {esc(__version__)} "
        f"from Prometheus at {esc(report.prometheus_url)}.</footer>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body) + "</body></html>\n"
    )
