"""Static SVG: line charts and the alert timeline, on one time axis.

Small and dependency-free. Every string written goes through :func:`esc`; numbers are
formatted by this module. Constant stretches of a series are reduced to their two ends,
so a gauge that holds its value for minutes costs two points.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from flmon.report.model import AlertSpan, Chart

PALETTE = ("#3274d9", "#56a64b", "#e0b400", "#a352cc", "#ff780a", "#8ab8ff", "#37872d",
           "#ce7e00", "#8f3bb8", "#fa6400", "#1f60c4", "#73bf69")
SEVERITY_COLORS = {"critical": "#d44a3a", "warning": "#ff9830", "info": "#5794f2"}
REFERENCE_COLOR = "#d44a3a"


def esc(text: object) -> str:
    """HTML/SVG text and attribute escaping (quotes included)."""
    return html.escape(str(text), quote=True)


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _num(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a == 0 or a >= 0.01:
        return f"{v:.4g}"
    return f"{v:.2e}"


def fmt_value(v: float | None, unit: str) -> str:
    """A value as the dashboards' unit shows it (``percentunit`` -> ``85.2%``)."""
    if v is None or not math.isfinite(v):
        return "no data"
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "bool_yes_no":
        return "yes" if v else "no"
    if unit == "s":
        if abs(v) < 1:
            return f"{v * 1000:.0f} ms"
        return f"{v:.1f} s" if abs(v) < 120 else f"{v / 60:.1f} min"
    if unit == "cps":
        return f"{_num(v)}/s"
    if unit == "Bps":
        for size, suffix in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")):
            if abs(v) >= size:
                return f"{v / size:.3g} {suffix}"
        return f"{v:.3g} B/s"
    return _num(v)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``lo..hi``."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks: list[float] = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400)


def time_ticks(t0: float, t1: float, count: int = 6) -> list[float]:
    """Tick times on round seconds/minutes/hours (UTC) within ``t0..t1``."""
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    return [float(t) for t in range(int(first), int(t1) + 1, step)]


def time_label(t: float, span: float) -> str:
    return time.strftime("%H:%M:%S" if span < 600 else "%H:%M", time.gmtime(t))


@dataclass(frozen=True)
class Axis:
    """The shared time axis: window and plot area in pixels."""

    t0: float
    t1: float
    left: float
    right: float

    def x(self, t: float) -> float:
        span = self.t1 - self.t0
        return self.left + (t - self.t0) / span * (self.right - self.left)


def _reduce(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop the inner points of runs of equal values."""
    out: list[tuple[float, float]] = []
    for i, p in enumerate(points):
        if 0 < i < len(points) - 1 and points[i - 1][1] == p[1] == points[i + 1][1]:
            continue
        out.append(p)
    return out


def _segments(points: Sequence[tuple[float, float]], gap: float) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = []
    for p in points:
        if segments and p[0] - segments[-1][-1][0] <= gap:
            segments[-1].append(p)
        else:
            segments.append([p])
    return segments


def _marker_lines(markers: Sequence[tuple[str, float]], axis: Axis, top: float,
                  bottom: float) -> list[str]:
    """Dotted vertical lines (run start and end, round starts); rounds get an ``rN`` tag
    when there are few enough to read."""
    out: list[str] = []
    rounds = sum(1 for label, _ in markers if label.startswith("round "))
    for label, t in markers:
        if not axis.t0 <= t <= axis.t1:
            continue
        x = axis.x(t)
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                   f'y2="{bottom}"><title>{esc(label)}</title></line>')
        if label.startswith("round ") and rounds <= 20:
            out.append(f'<text class="rlab" x="{x + 2:.1f}" y="{top + 8}">'
                       f'r{esc(label.removeprefix("round "))}</text>')
    return out


WIDTH, HEIGHT = 560, 200
_ML, _MR, _MT, _MB = 58, 14, 10, 24


def chart_svg(chart: Chart, window: tuple[float, float], step: float,
              markers: Sequence[tuple[str, float]] = ()) -> str:
    """One chart as an ``<svg>`` element (the caller shows "no data" for empty charts)."""
    axis = Axis(window[0], window[1], _ML, WIDTH - _MR)
    values = [v for line in chart.lines for _, v in line.points]
    refs = [v for _, v in chart.references]
    lo = min([*values, *refs]) if values or refs else 0.0
    hi = max([*values, *refs]) if values or refs else 1.0
    if chart.max is not None:
        lo, hi = min(0.0, lo), max(chart.max, hi)
    elif lo >= 0:
        lo = 0.0
    if hi - lo <= 0:
        hi = lo + (abs(lo) or 1.0)
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    y0, y1 = HEIGHT - _MB, _MT

    def y(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
           f'{HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
           f'aria-label="{esc(chart.title)}">']
    for tv in ticks:
        out.append(f'<line class="grid" x1="{_ML}" x2="{WIDTH - _MR}" y1="{y(tv):.1f}" '
                   f'y2="{y(tv):.1f}"/>')
        out.append(f'<text class="ylab" x="{_ML - 4}" y="{y(tv) + 3:.1f}">'
                   f'{esc(fmt_value(tv, chart.unit))}</text>')
    span = window[1] - window[0]
    for tt in time_ticks(*window):
        out.append(f'<line class="grid" x1="{axis.x(tt):.1f}" x2="{axis.x(tt):.1f}" '
                   f'y1="{y1}" y2="{y0}"/>')
        out.append(f'<text class="xlab" x="{axis.x(tt):.1f}" y="{HEIGHT - 8}">'
                   f'{esc(time_label(tt, span))}</text>')
    out += _marker_lines(markers, axis, y1, y0)
    for name, v in chart.references:
        out.append(f'<line class="ref" x1="{_ML}" x2="{WIDTH - _MR}" y1="{y(v):.1f}" '
                   f'y2="{y(v):.1f}" stroke="{REFERENCE_COLOR}"><title>{esc(name)} '
                   f'{esc(fmt_value(v, chart.unit))}</title></line>')
    for i, line in enumerate(chart.lines):
        c = color(i)
        for seg in _segments(line.points, 1.5 * step):
            pts = _reduce(seg)
            if len(pts) == 1:
                t, v = pts[0]
                out.append(f'<circle cx="{axis.x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{c}">'
                           f'<title>{esc(line.legend)}</title></circle>')
                continue
            d = " ".join(f"{'M' if k == 0 else 'L'}{axis.x(t):.1f},{y(v):.1f}"
                         for k, (t, v) in enumerate(pts))
            out.append(f'<path d="{d}" stroke="{c}"><title>{esc(line.legend)}</title></path>')
    out.append(f'<rect class="frame" x="{_ML}" y="{y1}" width="{WIDTH - _MR - _ML}" '
               f'height="{y0 - y1}"/>')
    out.append("</svg>")
    return "".join(out)


TIMELINE_WIDTH = 1140
_LANE_H, _TL_LEFT, _TL_RIGHT = 22, 330, 16


def timeline_svg(spans: Sequence[AlertSpan], window: tuple[float, float],
                 markers: Sequence[tuple[str, float]] = ()) -> str:
    """Alert lanes (one per alert and label set) over the window; firing bars by severity."""
    lanes: dict[tuple[str, str], list[AlertSpan]] = {}
    for s in spans:
        lanes.setdefault((s.alertname, s.subject), []).append(s)
    height = 30 + _LANE_H * len(lanes)
    axis = Axis(window[0], window[1], _TL_LEFT, TIMELINE_WIDTH - _TL_RIGHT)
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 '
           f'{TIMELINE_WIDTH} {height}" width="{TIMELINE_WIDTH}" height="{height}" role="img" '
           'aria-label="alert timeline">']
    bottom = height - 22
    span = window[1] - window[0]
    for tt in time_ticks(*window, count=10):
        out.append(f'<line class="grid" x1="{axis.x(tt):.1f}" x2="{axis.x(tt):.1f}" y1="4" '
                   f'y2="{bottom}"/>')
        out.append(f'<text class="xlab" x="{axis.x(tt):.1f}" y="{height - 8}">'
                   f'{esc(time_label(tt, span))}</text>')
    out += _marker_lines(markers, axis, 4, bottom)
    for i, ((name, subject), items) in enumerate(lanes.items()):
        top = 6 + i * _LANE_H
        label = f"{name} ({subject})" if subject else name
        out.append(f'<text class="lane" x="{_TL_LEFT - 6}" y="{top + 13}">{esc(label)}</text>')
        for s in items:
            x0 = axis.x(max(s.start, window[0]))
            x1 = max(axis.x(min(s.end, window[1])), x0 + 3)
            fill = SEVERITY_COLORS.get(s.severity, "#8e8e8e")
            state = "resolved" if s.resolved else "still firing at the end of the window"
            out.append(f'<rect class="bar" x="{x0:.1f}" y="{top + 2}" width="{x1 - x0:.1f}" '
                       f'height="{_LANE_H - 6}" fill="{fill}"><title>{esc(label)}: '
                       f'{esc(s.severity)}, {esc(state)}</title></rect>')
            if not s.resolved:
                out.append(f'<path class="open" d="M{x1:.1f},{top + 2} l7,8 l-7,8 z" '
                           f'fill="{fill}"/>')
    out.append(f'<line class="axis" x1="{_TL_LEFT}" x2="{TIMELINE_WIDTH - _TL_RIGHT}" '
               f'y1="{bottom}" y2="{bottom}"/>')
    out.append("</svg>")
    return "".join(out)
