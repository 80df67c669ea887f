"""Build a :class:`~flmon.report.model.Report` from Prometheus (and AlertManager).

The charts are the Grafana dashboards' panels (:func:`flmon.render.grafana.panels`, the
one list of their PromQL), evaluated as range queries over the run's window with the
dashboards' template variables filled in: ``$client`` is every client and
``$__rate_interval`` is computed as Grafana does (the larger of step plus scrape interval
and four scrape intervals). When the ``fl_*`` series carry a ``run_id`` label, every
query selecting them is narrowed to the run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass

from flmon.config import ConfigError, FlmonConfig, duration_seconds, parse_config
from flmon.render import grafana
from flmon.render import rules as r
from flmon.report.client import AlertmanagerClient, PrometheusClient, RangeSeries, ReportError
from flmon.report.model import (
    ActiveAlert,
    AlertSpan,
    Chart,
    Line,
    Report,
    RoundRow,
    RunIdentity,
    Section,
    Stat,
)

DEFAULT_LOOKBACK = 24 * 3600.0
"""How far back the run is looked for when ``--since`` is not given."""
MAX_POINTS = 500
"""Target points per series across the window (sets the query step)."""
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_LEGEND_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

SECTION_TITLES = {
    "overview": "Rounds, accuracy and participation",
    "clients": "Clients",
    "security": "Security and privacy",
}

EXTRA_PANELS: tuple[tuple[str, str, str, str, str], ...] = (
    # (metric, title, unit, expression with {fed}, legend): series of flmon watch and
    # flmon privacy-test, shown when present and not already on a dashboard.
    ("fl_superlink_up", "SuperLink up", "none", "max(fl_superlink_up{fed})", "up"),
    ("fl_supernodes", "SuperNodes by status", "none",
     "max by (status) (fl_supernodes{fed})", "{{status}}"),
    ("fl_runs", "Runs by status", "none", "max by (status) (fl_runs{fed})", "{{status}}"),
    ("fl_privacy_attack_auc", "Membership-inference attack AUC", "none",
     "max by (attack, dp) (fl_privacy_attack_auc{fed})", "{{attack}} dp={{dp}}"),
    ("fl_privacy_attack_advantage", "Membership-inference attack advantage", "none",
     "max by (attack, dp) (fl_privacy_attack_advantage{fed})", "{{attack}} dp={{dp}}"),
)


@dataclass(frozen=True)
class ReportRequest:
    """What ``flmon report`` was asked for."""

    prometheus: str
    alertmanager: str | None = None
    federation: str | None = None
    run: str | None = None
    since: float | None = None
    """Seconds before ``until`` the window starts; ``None``: at the run's start."""
    until: float | None = None
    """Unix time the window ends; ``None``: now."""
    config: FlmonConfig | None = None


@dataclass(frozen=True)
class _Window:
    start: float
    end: float
    step: int
    rate_interval: float
    run_sel: str | None
    """The selector narrowed to the run, when the series carry ``run_id``."""


def default_config(federation: str) -> FlmonConfig:
    """flmon's defaults for ``federation`` (jobs, thresholds), as ``flmon render`` uses."""
    try:
        return parse_config({
            "federation": {"name": federation},
            "slack": {"webhook_url_env": "FLMON_SLACK_WEBHOOK_URL",
                      "channels": {"critical": "#fl-critical", "warning": "#fl-alerts",
                                   "info": "#fl-info"}},
        }, "--federation")
    except ConfigError as exc:
        raise ReportError(f"--federation {federation!r}: {exc.problems[0][1]}") from None


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: ``{{label}}`` replaced by the label's value."""
    text = _LEGEND_RE.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()
    if text:
        return text
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"


def _step(window: float) -> int:
    return max(1, math.ceil(window / MAX_POINTS))


def _fmt_time(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


class _Collector:
    def __init__(self, req: ReportRequest) -> None:
        self.req = req
        self.prom = PrometheusClient(req.prometheus)
        self.until = req.until if req.until is not None else time.time()
        self.lookback = req.since if req.since is not None else DEFAULT_LOOKBACK
        if self.lookback <= 0:
            raise ReportError("--since must be a positive duration")
        if req.run is not None and not RUN_ID_RE.match(req.run):
            raise ReportError(f"--run {req.run!r}: a run id is letters, digits, '_', '.', "
                              "':' or '-'")
        self.cfg = self._config()
        self.fed = self.cfg.federation.name
        self.sel = r.selector(self.cfg)
        self.notes: list[str] = []

    # --- which federation, which run, which window ---------------------------------------

    def _config(self) -> FlmonConfig:
        cfg, fed = self.req.config, self.req.federation
        if cfg is not None:
            if fed is not None and fed != cfg.federation.name:
                raise ReportError(f"--federation {fed!r} differs from the configuration's "
                                  f"federation.name {cfg.federation.name!r}")
            return cfg
        if fed is None:
            found = sorted({labels.get("federation", "") for labels, _ in self.prom.query(
                f"count by (federation) (last_over_time(fl_run_info[{int(self.lookback)}s]))",
                self.until)} - {""})
            if not found:
                raise ReportError(f"no data: Prometheus at {self.prom.url} has no fl_run_info "
                                  f"series within {int(self.lookback)}s before the window's "
                                  "end (is flmon's exporter or Pushgateway scraped?)")
            if len(found) > 1:
                raise ReportError(f"several federations found ({', '.join(found)}); choose "
                                  "one with --federation")
            fed = found[0]
        return default_config(fed)

    def _runs(self) -> dict[str, tuple[float, float, dict[str, str]]]:
        """run id -> (first seen, last seen, info labels) within the lookback."""
        step = _step(self.lookback)
        # Evaluation times end exactly at ``until``, so the newest samples are seen.
        start = self.until - step * math.ceil(self.lookback / step)
        series = self.prom.query_range(
            "max by (run_id, strategy, flwr_version, flmon_version) "
            f"(last_over_time(fl_run_info{self.sel}[{step}s]))", start, self.until, step)
        runs: dict[str, tuple[float, float, dict[str, str]]] = {}
        for s in series:
            run_id = s.labels.get("run_id", "")
            if not s.points or not RUN_ID_RE.match(run_id):
                continue
            first, last = s.points[0][0], s.points[-1][0]
            if run_id in runs:
                first = min(first, runs[run_id][0])
                last = max(last, runs[run_id][1])
            runs[run_id] = (first, last, s.labels)
        return runs

    def _run_labelled(self, run_id: str, at: float) -> bool:
        """Whether ``fl_*`` series besides ``fl_run_info`` carry a ``run_id`` label."""
        inner = self.sel[1:-1]
        got = self.prom.query(
            f'count(last_over_time({{__name__=~"fl_.+",__name__!="fl_run_info",{inner},'
            f'run_id="{run_id}"}}[{int(self.lookback)}s]))', at)
        return bool(got and got[0][1] > 0)

    def _value_at(self, expr: str, at: float) -> float | None:
        got = self.prom.query(expr, at)
        values = [v for _, v in got if math.isfinite(v)]
        return max(values) if values else None

    # --- the report ----------------------------------------------------------------------

    def collect(self) -> Report:
        runs = self._runs()
        if not runs:
            raise ReportError(f"no data: no run of federation {self.fed!r} in Prometheus at "
                              f"{self.prom.url} within {int(self.lookback)}s before "
                              f"{_fmt_time(self.until)} UTC")
        if self.req.run is not None:
            if self.req.run not in runs:
                raise ReportError(f"no data for run {self.req.run!r} of federation "
                                  f"{self.fed!r}; runs seen: {', '.join(sorted(runs))}")
            run_id = self.req.run
        else:
            run_id = max(runs, key=lambda k: (runs[k][1], runs[k][0]))
        first, last, info = runs[run_id]
        labelled = self._run_labelled(run_id, last)
        run_sel = self.sel[:-1] + f',run_id="{run_id}"}}' if labelled else self.sel
        lb = f"[{_step(self.lookback)}s]"
        start = self._value_at(f"max(last_over_time(fl_run_start_timestamp_seconds{run_sel}{lb}))",
                               last)
        end = self._value_at(f"max(last_over_time(fl_run_end_timestamp_seconds{run_sel}{lb}))",
                             last)
        if start is not None and start <= 0:
            start = None
        if end is not None and (end <= 0 or (start is not None and end < start)):
            end = None
        scrape = self.prom.scrape_interval() or duration_seconds(self.cfg.scrape.interval)
        win = self._window(first, last, start, end, scrape, run_sel if labelled else None)
        if not labelled and len(runs) > 1:
            self.notes.append("The series carry no run_id label: charts show the federation "
                              "over the window, whichever run wrote them.")
        sections, current_round = self._sections(win)
        alerts = self._alert_spans(win.start, win.end, win.step)
        active = self._active_alerts() if self.req.alertmanager else None
        rounds = self._value_at(f"max(last_over_time(fl_rounds_completed_total{run_sel}{lb}))",
                                last)
        planned = self._value_at(f"max(last_over_time(fl_rounds_planned{run_sel}{lb}))", last)
        identity = RunIdentity(
            federation=self.fed, run_id=run_id, strategy=info.get("strategy"),
            flwr_version=info.get("flwr_version"), flmon_version=info.get("flmon_version"),
            start=start, end=end, result=self._result(run_sel, end, last, lb),
            rounds_completed=None if rounds is None else int(rounds),
            rounds_planned=None if planned is None else int(planned),
        )
        report = Report(identity, (win.start, win.end), win.step, tuple(sections),
                        tuple(alerts), None if active is None else tuple(active), (),
                        self.prom.url, time.time(), tuple(self.notes))
        rows = round_rows(sorted(current_round), sections,
                          end if end is not None else win.end, win.end)
        return dataclasses.replace(report, findings=findings(report), rounds=rows)

    def _window(self, first: float, last: float, start: float | None, end: float | None,
                scrape: float, run_sel: str | None) -> _Window:
        """The run's span (or ``--since``), padded, with evaluation times ending at its end."""
        if self.req.since is not None:
            w0, w1 = self.until - self.req.since, self.until
        else:
            t0 = start if start is not None else first
            t1 = end if end is not None else last
            pad = max(2 * scrape, 0.02 * (t1 - t0))
            w0 = t0 - pad
            # a little after the end: alerts resolve after the run
            w1 = min(self.until, max(t1 + max(120.0, 0.1 * (t1 - t0)), last))
        if w1 <= w0:
            raise ReportError("the window is empty: --until is before the run started")
        step = _step(w1 - w0)
        return _Window(w1 - step * math.ceil((w1 - w0) / step), w1, step,
                       max(step + scrape, 4 * scrape), run_sel)

    def _fill(self, expr: str, win: _Window) -> str:
        """A dashboard query with Grafana's variables filled in (and the run selected)."""
        expr = expr.replace("$__rate_interval", f"{math.ceil(win.rate_interval)}s")
        expr = expr.replace('client=~"$client"', 'client=~".*"')
        if win.run_sel is not None:
            expr = expr.replace(self.sel[:-1], win.run_sel[:-1])
        return expr

    def _sections(self, win: _Window) -> tuple[list[Section], list[tuple[float, float]]]:
        """Every dashboard's panels as stats and charts; and the Current round series."""

        def series(expr: str) -> list[RangeSeries]:
            return self.prom.query_range(self._fill(expr, win), win.start, win.end, win.step)

        sections: list[Section] = []
        used_exprs: list[str] = []
        current_round: list[tuple[float, float]] = []
        for name in grafana.DASHBOARDS:
            stats: list[Stat] = []
            charts: list[Chart] = []
            for panel in grafana.panels(self.cfg, name):
                used_exprs += [q.expr for q in panel.queries]
                if panel.kind == "stat":
                    values: list[tuple[str, float | None]] = []
                    for q in panel.queries:
                        result = series(q.expr)
                        if re.match(r"max\(fl_current_round\b", q.expr):
                            current_round = [p for s in result for p in s.points]
                        got = [s.points[-1] for s in result if s.points]
                        values.append((q.legend, max(got)[1] if got else None))
                    stats.append(Stat(panel.title, panel.unit, panel.description,
                                      tuple(values)))
                    continue
                lines = [Line(legend(q.legend, s.labels), s.points)
                         for q in panel.queries for s in series(q.expr)]
                charts.append(Chart(panel.title, panel.unit, panel.description,
                                    tuple(sorted(lines, key=lambda ln: ln.legend)),
                                    panel.lines, panel.max))
            sections.append(Section(SECTION_TITLES[name], tuple(stats), tuple(charts)))
        extra = self._extra_charts(used_exprs, win.start, win.end, win.step)
        if extra:
            sections.append(Section("Federation and privacy testing", (), tuple(extra)))
        return sections, current_round

    def _result(self, run_sel: str, end: float | None, last: float, lb: str) -> str:
        failures = self.prom.query(
            f"max by (error) (last_over_time(fl_run_failures_total{run_sel}{lb}))", last)
        errors = sorted(labels.get("error", "?") for labels, v in failures if v > 0)
        if errors:
            return f"failed ({', '.join(errors)})"
        if end is not None:
            return "completed"
        active = self._value_at(f"max(last_over_time(fl_run_active{run_sel}{lb}))", last)
        return "in progress" if active == 1 else "unknown (no end time recorded)"

    def _extra_charts(self, used: list[str], w0: float, w1: float, step: int) -> list[Chart]:
        fed = f'{{federation="{self.fed}"}}'
        charts: list[Chart] = []
        for metric, title, unit, expr, fmt in EXTRA_PANELS:
            if any(re.search(rf"\b{metric}\b", e) for e in used):
                continue  # on a dashboard already
            got = self.prom.query_range(expr.replace("{fed}", fed), w0, w1, step)
            lines = tuple(sorted((Line(legend(fmt, s.labels), s.points) for s in got
                                  if s.points), key=lambda ln: ln.legend))
            if lines:
                charts.append(Chart(title, unit, f"{metric} (flmon watch or privacy-test).",
                                    lines))
        return charts

    def _alert_spans(self, w0: float, w1: float, step: int) -> list[AlertSpan]:
        """Firing intervals per alert and label set; one problem seen through both metric
        paths (live exporter and Pushgateway: ``job`` differs) is one row."""
        got = self.prom.query_range(
            f'ALERTS{{alertstate="firing",federation="{self.fed}"}}', w0, w1, step)
        summaries = self.prom.alert_summaries()
        drop = {"__name__", "alertstate", "job", "instance"}
        merged: dict[tuple[tuple[str, str], ...], set[float]] = {}
        for s in got:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k not in drop))
            merged.setdefault(key, set()).update(t for t, _ in s.points)
        spans: list[AlertSpan] = []
        for key, stamps in merged.items():
            labels = dict(key)
            name = labels.get("alertname", "?")
            times = sorted(stamps)
            begin = 0
            for i, t in enumerate(times):
                if i + 1 < len(times) and times[i + 1] - t <= 1.5 * step:
                    continue
                still = t >= w1 - step / 2  # firing at the last evaluation
                spans.append(AlertSpan(name, labels.get("severity", "none"), labels,
                                       times[begin], w1 if still else min(w1, t + step),
                                       not still, summaries.get(name, "")))
                begin = i + 1
        return sorted(spans, key=lambda a: (a.start, a.alertname, a.subject))

    def _active_alerts(self) -> list[ActiveAlert]:
        assert self.req.alertmanager is not None
        am = AlertmanagerClient(self.req.alertmanager)
        out: list[ActiveAlert] = []
        for a in am.alerts():
            labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
            if labels.get("federation") != self.fed:
                continue
            status = a.get("status") or {}
            out.append(ActiveAlert(
                labels.get("alertname", "?"), labels.get("severity", "none"),
                str(status.get("state", "?")), labels, str(a.get("startsAt", "")),
                tuple(sorted(str(x.get("name", "")) for x in a.get("receivers") or [])),
                str((a.get("annotations") or {}).get("summary", "")),
            ))
        return sorted(out, key=lambda x: (x.starts_at, x.alertname))


def _value_in(lines: tuple[Line, ...], prefix: str, t0: float, t1: float) -> float | None:
    """The latest value within ``t0..t1`` of the lines whose legend starts with ``prefix``."""
    best: tuple[float, float] | None = None
    for line in lines:
        if line.legend.startswith(prefix):
            for t, v in line.points:
                if t0 <= t <= t1 and (best is None or t > best[0]):
                    best = (t, v)
    return None if best is None else best[1]


def round_rows(current: list[tuple[float, float]], sections: list[Section],
               run_end: float, window_end: float) -> tuple[RoundRow, ...]:
    """Rounds from the ``Current round`` series; accuracy from the Accuracy chart.

    A round ends where the series first shows the next round. Its figures are the latest
    at or before that evaluation: a round's aggregates are recorded before the next round
    starts, and the target that shows the next round shows them too. The last round's
    figures are the latest in the window.
    """
    starts: dict[int, float] = {}
    for t, v in current:
        n = int(v)
        if n >= 1 and n not in starts:
            starts[n] = t
    accuracy = next((c for s in sections for c in s.charts
                     if any(name == "FLLowTrainingAccuracy" for name, _ in c.references)),
                    None)
    lines = accuracy.lines if accuracy is not None else ()
    numbers = sorted(starts)
    rows: list[RoundRow] = []
    for k, n in enumerate(numbers):
        last = k + 1 == len(numbers)
        end = run_end if last else starts[numbers[k + 1]]
        t0, t1 = starts[n], window_end if last else end
        rows.append(RoundRow(n, t0, end, _value_in(lines, "training", t0, t1),
                             _value_in(lines, "evaluation", t0, t1),
                             _value_in(lines, "centralized", t0, t1)))
    return tuple(rows)


def findings(report: Report) -> tuple[str, ...]:
    """A few plain sentences: the anomalous clients, the alerts, failures."""
    out: list[str] = []
    for section in report.sections:
        for chart in section.charts:
            for name, threshold in chart.references:
                if name != "FLClientUpdateAnomaly":
                    continue
                for line in chart.lines:
                    peak = line.peak
                    if peak is not None and peak >= threshold:
                        at = next(t for t, v in line.points if v == peak)
                        out.append(f"Client {line.legend}: anomaly score {peak:.3g} at "
                                   f"{_fmt_time(at)} UTC (threshold {threshold:g}).")
    fired = sorted({a.alertname for a in report.alerts})
    unresolved = sorted({a.alertname for a in report.alerts if not a.resolved})
    if fired:
        out.append(f"Alerts fired: {', '.join(fired)}"
                   + (f"; still firing at the end: {', '.join(unresolved)}." if unresolved
                      else "; all resolved."))
    else:
        out.append("No alert fired in the window.")
    return tuple(out)


def collect(req: ReportRequest) -> Report:
    """Query Prometheus (and AlertManager) and return the report; :class:`ReportError`."""
    return _Collector(req).collect()
