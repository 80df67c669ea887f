"""The page renderer on hand-built reports: escaping, self-containment, "no data", SVG."""

from __future__ import annotations

from html.parser import HTMLParser

from flmon.report.model import AlertSpan, Chart, Line, Report, RunIdentity, Section, Stat
from flmon.report.page import render_html
from flmon.report.svg import chart_svg, fmt_value, nice_ticks, timeline_svg

HOSTILE = '<script>alert(1)</script>" onload="alert(2)'
T0 = 1_800_000_000.0


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def _report(client: str = "3", alert_client: str = "3") -> Report:
    ramp = tuple((T0 + t, 0.5 + t / 100) for t in range(0, 40))
    anomaly = Chart("Anomaly score per client", "none", "score", (
        Line(client, tuple((T0 + t, 36.0 if 10 <= t < 14 else 0.5) for t in range(40))),
        Line("1", tuple((T0 + t, 0.4) for t in range(40))),
    ), (("FLClientUpdateAnomaly", 10.0),))
    sections = (
        Section("Rounds", (Stat("Current round", "none", "round", (("round", 5.0),
                                                                    ("planned", 5.0))),),
                (Chart("Accuracy", "percentunit", "acc", (Line("training flmon", ramp),),
                       max=1.0),
                 Chart("Epsilon spent and budget", "none", "dp", ()))),
        Section("Security", (), (anomaly,)),
    )
    alerts = (AlertSpan("FLClientUpdateAnomaly", "warning",
                        {"alertname": "FLClientUpdateAnomaly", "client": alert_client},
                        T0 + 11, T0 + 20, True, "A client sent an anomalous model update"),)
    identity = RunIdentity("hospitals", "7310", client, "1.42.0", "0.1.0", T0, T0 + 39,
                           "completed", 5, 5)
    return Report(identity, (T0 - 1, T0 + 40), 1.0, sections, alerts, (), (
        f"Client {client}: anomaly score 36.", "Alerts fired: FLClientUpdateAnomaly."),
        "http://127.0.0.1:9090", T0 + 41)


def test_a_hostile_label_value_is_text_everywhere_it_appears() -> None:
    page = render_html(_report(client=HOSTILE, alert_client=HOSTILE))
    parsed = _parse(page)
    assert "<script" not in page.lower()
    assert not [t for t, _ in parsed.tags if t == "script"]
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    # Legend, lane label, alert table, identity and findings all show it as text.
    assert "".join(parsed.text).count("<script>alert(1)</script>") >= 5


def test_the_page_fetches_nothing() -> None:
    page = render_html(_report())
    parsed = _parse(page)
    tags = {t for t, _ in parsed.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}
    assert not [a for _, attrs in parsed.tags for a in attrs if a in ("src", "href", "srcset")]
    assert "url(" not in page and "@import" not in page
    csp = [attrs for t, attrs in parsed.tags if t == "meta"
           and attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp and (csp[0].get("content") or "").startswith("default-src 'none'")


def test_an_empty_signal_says_no_data_instead_of_drawing_axes() -> None:
    page = render_html(_report())
    start = page.index("Epsilon spent and budget")
    panel = page[start:page.index('<div class="panel">', start)]
    assert "no data" in panel
    assert "<svg" not in panel
    assert page.count('<svg class="chart"') == 2


def test_threshold_line_and_alert_bar_are_drawn() -> None:
    r = _report()
    anomaly = r.sections[1].charts[0]
    svg = chart_svg(anomaly, r.window, r.step)
    assert 'class="ref"' in svg and "FLClientUpdateAnomaly" in svg
    timeline = timeline_svg(r.alerts, r.window)
    assert timeline.count('class="bar"') == 1
    assert "FLClientUpdateAnomaly (client=3)" in timeline
    assert 'class="open"' not in timeline  # resolved: no "still firing" arrow


def test_constant_stretches_cost_two_points_and_gaps_break_the_line() -> None:
    flat = tuple((T0 + t, 1.0) for t in range(30))
    later = tuple((T0 + t, 2.0) for t in range(40, 50))
    chart = Chart("c", "none", "", (Line("a", flat + later),))
    svg = chart_svg(chart, (T0, T0 + 50), 1.0)
    d = svg.split('<path d="')[1].split('"')[0]
    assert d.count("M") == 1 and d.count("L") == 1
    assert svg.count("<path ") == 2  # the 10 s gap starts a second path


def test_units_format_like_the_dashboards() -> None:
    assert fmt_value(0.853, "percentunit") == "85.3%"
    assert fmt_value(0.25, "s") == "250 ms"
    assert fmt_value(300, "s") == "5.0 min"
    assert fmt_value(2500, "Bps") == "2.5 kB/s"
    assert fmt_value(1, "bool_yes_no") == "yes"
    assert fmt_value(None, "none") == "no data"
    assert fmt_value(float("nan"), "none") == "no data"


def test_ticks_cover_the_range_on_round_values() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(0, 36)
    assert ticks[0] == 0 and ticks[-1] <= 36 and all(t % 10 == 0 for t in ticks)
