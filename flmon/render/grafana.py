"""Grafana dashboards: federation overview, clients, security and privacy.

Every panel reads a ``datasource`` template variable, has a unit and explicit thresholds,
and queries only catalog metrics or flmon's recording rules; rate queries use
``$__rate_interval``. An alert's threshold is drawn on its panel (a dashed line in the
alert's severity colour; on a stat panel, the value's colour). The layout has no holes:
stat panels fill whole rows, time series go two to a row (the last of an odd run spans the
width), a titled row header above each section of a dashboard of several, so Grafana's
vertical compaction moves nothing. Uids are stable
(``flmon-<federation>-<name>``), so links and Slack messages keep working.

The JSON follows Grafana's own types (``@grafana/schema``: the dashboard, the stat and
time-series panel configurations) at the ``schemaVersion`` current Grafana writes; the
render tests validate every dashboard against a JSON Schema generated from that package
(``hack/grafana/``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flmon.config import FlmonConfig
from flmon.render import rules as r
from flmon.render.templating import HEADER, dump_json

SCHEMA_VERSION = 42
"""The dashboard schema version Grafana 12.2+ and 13 write (``defaultDashboard`` of
``@grafana/schema`` 13): an older one is migrated on every load."""
DASHBOARDS: tuple[str, ...] = ("overview", "clients", "security")
_DS = {"type": "prometheus", "uid": "${datasource}"}
_SEVERITY_COLORS = {"critical": "red", "warning": "orange", "info": "blue"}
NEUTRAL = "blue"
"""The colour of a value that is neither good nor bad (a round number, a count)."""
_TITLES = {
    "overview": "Federation overview",
    "clients": "Clients",
    "security": "Security and privacy",
}


def dashboard_uid(cfg: FlmonConfig, name: str) -> str:
    """Stable uid of dashboard ``name`` (at most 40 characters)."""
    return f"flmon-{cfg.federation.name}-{name}"[:40]


@dataclass(frozen=True)
class Query:
    """One panel query."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Step:
    """One threshold step: from ``value`` up (``None``: the base, from minus infinity) the
    value is drawn in ``color`` (a Grafana colour name)."""

    value: float | None
    color: str


@dataclass(frozen=True)
class Panel:
    """One panel: a stat (small) or a time series (wide).

    ``lines`` are reference lines (an alert's name and threshold): a time series draws each
    as a dashed threshold line in ``line_colors`` (the alert's severity colour), and
    ``flmon report`` draws them on its chart. ``steps`` are a stat panel's thresholds
    (required: Grafana's default turns any value from 80 up red).
    """

    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str
    kind: str = "timeseries"
    max: float | None = None
    lines: tuple[tuple[str, float], ...] = ()
    steps: tuple[Step, ...] = ()
    line_colors: tuple[str, ...] = ()


def _steps(*steps: tuple[float | None, str]) -> tuple[Step, ...]:
    """Threshold steps sorted by value, the base first; of two at one value the later wins
    (so a stricter alert's colour overrides a milder one at the same threshold)."""
    base = [Step(None, c) for v, c in steps if v is None][-1:]
    by_value: dict[float, str] = {}
    for value, color in steps:
        if value is not None:
            by_value[value] = color
    return (*base, *(Step(v, by_value[v]) for v in sorted(by_value)))


def _alert_line(cfg: FlmonConfig, name: str, default: float = 0.0) -> tuple[str, float] | None:
    """``(name, threshold)`` of an enabled alert, or ``None`` when it is disabled."""
    alert = cfg.alerts.get(name)
    if not alert.enabled:
        return None
    return name, alert.threshold if alert.threshold is not None else default


def _color(cfg: FlmonConfig, name: str) -> str:
    return _SEVERITY_COLORS[cfg.alerts.get(name).severity]


def _lines(cfg: FlmonConfig, *names: str) -> dict[str, Any]:
    """``lines`` and ``line_colors`` of a panel drawing the thresholds of alerts ``names``."""
    found = [(line, _color(cfg, line[0])) for name in names
             if (line := _alert_line(cfg, name)) is not None]
    return {"lines": tuple(line for line, _ in found),
            "line_colors": tuple(color for _, color in found)}


def _count_above(threshold: float) -> float:
    """The first whole count above ``threshold`` (an alert on "more than N" events)."""
    return float(math.floor(threshold) + 1) if threshold >= 0 else 0.0


def _below(cfg: FlmonConfig, *names: str) -> tuple[Step, ...]:
    """Steps of a value whose alerts ``names`` fire below their thresholds: each band in
    the colour of the alert that fires there, green above the highest enabled one."""
    found = sorted((line[1], _color(cfg, line[0])) for name in names
                   if (line := _alert_line(cfg, name)) is not None)
    if not found:
        return _steps((None, NEUTRAL))
    colors = [c for _, c in found] + ["green"]
    return _steps((None, colors[0]), *((v, colors[i + 1]) for i, (v, _) in enumerate(found)))


def _above(cfg: FlmonConfig, *alerts: tuple[str, float]) -> tuple[Step, ...]:
    """Steps of a value whose alerts fire from the given values up: green below, then each
    enabled alert's colour from its value."""
    return _steps((None, "green"), *((value, _color(cfg, name)) for name, value in alerts
                                     if cfg.alerts.get(name).enabled))


def _threshold(cfg: FlmonConfig, name: str, default: float) -> float:
    value = cfg.alerts.get(name).threshold
    return value if value is not None else default


def _accuracy_description(lines: tuple[tuple[str, float], ...]) -> str:
    if not lines:
        return "Aggregated accuracy per round."
    drawn = " and ".join(f"{r.percent(v)} ({n})" for n, v in lines)
    return f"Aggregated accuracy per round; the dashed lines are the alert thresholds {drawn}."


def panels(cfg: FlmonConfig, name: str) -> list[Panel]:
    """The panels of dashboard ``name`` (one of :data:`DASHBOARDS`), in layout order.

    The one list of the dashboards' queries: the Grafana JSON and ``flmon report`` are
    both drawn from it.
    """
    s = r.selector(cfg)
    sc = r.selector(cfg, 'client=~"$client"')
    fed = f'{{federation="{cfg.federation.name}"}}'
    ri = "$__rate_interval"
    d = r.dedupe  # both paths carry the same series: one value per label set
    neutral = _steps((None, NEUTRAL))
    accuracy_lines = _lines(cfg, "FLLowTrainingAccuracy", "FLModelAccuracyDropped")
    if name == "overview":
        return [*_federation_row(cfg),
            Panel("Run active", "bool_yes_no", (Query(f"max(fl_run_active{s})", "active"),),
                  "1 while a run is in progress.", "stat", 1.0,
                  steps=_steps((None, "text"), (1, "green"))),
            Panel("Current round", "none", (Query(f"max(fl_current_round{s})", "round"),
                                            Query(f"max(fl_rounds_planned{s})", "planned")),
                  "Round in progress or last completed, and rounds planned.", "stat",
                  steps=neutral),
            Panel("Training accuracy", "percentunit",
                  (Query(f"max(fl_training_accuracy{s})", "accuracy"),),
                  "Aggregated training accuracy of the last round.", "stat", 1.0,
                  steps=_below(cfg, "FLModelAccuracyDropped", "FLLowTrainingAccuracy")),
            Panel("Nodes connected", "none", (Query(f"max(fl_nodes_connected{s})", "nodes"),),
                  "Nodes the SuperLink reported as connected.", "stat", steps=neutral),
            Panel("Accuracy", "percentunit",
                  (Query(f"max by (run_id) (fl_training_accuracy{s})", "training run {{run_id}}"),
                   Query(f"max by (run_id) (fl_evaluation_accuracy{s})",
                         "evaluation run {{run_id}}"),
                   Query(f"max by (run_id) (fl_centralized_accuracy{s})",
                         "centralized run {{run_id}}")),
                  _accuracy_description(accuracy_lines["lines"]), max=1.0, **accuracy_lines),
            Panel("Loss", "none",
                  (Query(f"max by (run_id) (fl_training_loss{s})", "training run {{run_id}}"),
                   Query(f"max by (run_id) (fl_evaluation_loss{s})", "evaluation run {{run_id}}"),
                   Query(f"max by (run_id) (fl_centralized_loss{s})",
                         "centralized run {{run_id}}")),
                  "Aggregated loss per round."),
            Panel("Rounds per hour", "short",
                  (Query(f"sum by (run_id) ({d(f'rate(fl_rounds_completed_total{s}[{ri}])')})"
                         " * 3600", "run {{run_id}}"),),
                  "Rounds completed per hour."),
            Panel("Round duration", "s",
                  (Query("histogram_quantile(0.5, sum by (le) "
                         f"({d(f'rate(fl_round_duration_seconds_bucket{s}[{ri}])')}))", "p50"),
                   Query("histogram_quantile(0.9, sum by (le) "
                         f"({d(f'rate(fl_round_duration_seconds_bucket{s}[{ri}])')}))", "p90"),
                   Query(f"max by (phase) (fl_round_phase_duration_seconds{s})",
                         "last {{phase}} phase")),
                  "Wall time of rounds and of the last round's phases."),
            Panel("Clients per phase", "none",
                  (Query(f"max by (phase) (fl_clients_selected{s})", "selected {{phase}}"),
                   Query(f"max by (phase) (fl_clients_replied{s})", "replied {{phase}}"),
                   Query(f"max by (phase) (fl_clients_failed{s})", "failed {{phase}}")),
                  "Clients sampled, replying and failing in the last round's phases."),
            Panel("Failed client ratio", "percentunit",
                  (Query(f"max by (phase) ({r.CLIENTS_FAILED_RATIO}{fed})", "{{phase}}"),),
                  "Share of the sampled clients that failed (recording rule).", max=1.0),
            Panel("Model updates per second", "cps",
                  (Query(f"sum by (run_id) ({d(f'rate(fl_model_updates_total{s}[{ri}])')})",
                         "run {{run_id}}"),),
                  "Model updates passed to aggregation."),
            Panel("Aggregation failures and quarantined replies", "cps",
                  (Query("sum by (phase) "
                         f"({d(f'rate(fl_aggregation_failures_total{s}[{ri}])')})",
                         "aggregation failed {{phase}}"),
                   Query("sum by (phase, reason) "
                         f"({d(f'rate(fl_replies_quarantined_total{s}[{ri}])')})",
                         "quarantined {{phase}} {{reason}}")),
                  "Phases whose aggregation failed, and replies set aside before it."),
        ]
    if name == "clients":
        return [
            Panel("Clients tracked", "none", (Query(f"max(fl_clients_tracked{s})", "tracked"),),
                  "Clients with their own label value.", "stat", steps=neutral),
            Panel("Clients folded into _other", "none",
                  (Query(f"max(fl_clients_folded_total{s})", "folded"),),
                  "Distinct clients beyond the cardinality cap (orange: the cap is reached).",
                  "stat", steps=_steps((None, "green"), (1, "orange"))),
            Panel("Client failures per second", "cps",
                  (Query("sum by (client, error) "
                         f"({d(f'rate(fl_client_failures_total{sc}[{ri}])')})\n"
                         "or\nsum by (client) "
                         f"({d(f'rate(fl_client_replies_total{sc}[{ri}])')}) * 0",
                         "{{client}} {{error}}"),),
                  "Failures by client and Flower error code (0 for clients without "
                  "failures: error codes appear with their first failure)."),
            Panel("Seconds since last reply", "s",
                  (Query(f"time() - max by (client) (fl_client_last_seen_timestamp_seconds{sc})",
                         "{{client}}"),),
                  "Time since each client last replied."),
            Panel("Client training accuracy", "percentunit",
                  (Query(f"max by (client) (fl_client_training_accuracy{sc})", "{{client}}"),),
                  "Training accuracy each client reported.", max=1.0),
            Panel("Client evaluation accuracy", "percentunit",
                  (Query(f"max by (client) (fl_client_evaluation_accuracy{sc})", "{{client}}"),),
                  "Evaluation accuracy each client reported.", max=1.0),
            Panel("Client training loss", "none",
                  (Query(f"max by (client) (fl_client_training_loss{sc})", "{{client}}"),),
                  "Training loss each client reported."),
            Panel("ClientApp time per message", "s",
                  (Query(f"max by (client, phase) (fl_client_fit_duration_seconds{sc})",
                         "{{client}} {{phase}}"),),
                  "Time each ClientApp spent on its last message."),
            Panel("Examples per second", "cps",
                  (Query(f"sum by (client) ({d(f'rate(fl_client_examples_total{sc}[{ri}])')})",
                         "{{client}}"),),
                  "Examples clients reported (num-examples)."),
            Panel("Bytes received per second", "Bps",
                  (Query(f"sum by (client) ({d(f'rate(fl_bytes_received_total{sc}[{ri}])')})",
                         "{{client}}"),
                   Query(f"sum({d(f'rate(fl_bytes_sent_total{s}[{ri}])')})",
                         "sent to clients")),
                  "Array bytes exchanged with clients."),
            Panel("Local epochs", "none",
                  (Query(f"max by (client) (fl_client_local_epochs{sc})", "{{client}}"),),
                  "Local epochs each client ran in the last round."),
            Panel("ClientApp errors per second", "cps",
                  (Query(f"sum by (client) ({d(f'rate(fl_client_errors_total{sc}[{ri}])')})",
                         "{{client}}"),),
                  "Errors the ClientApps reported in telemetry."),
        ]
    return [
        Panel("Privacy attack AUC", "percentunit",
              (Query(f"max by (attack, dp) (fl_privacy_attack_auc{fed})",
                     "{{attack}} DP {{dp}}"),),
              "ROC AUC of the membership-inference attack of the last privacy test (0.5 is "
              f"chance; alert above "
              f"{_threshold(cfg, 'FLPrivacyLeakage', 0):g}).", "stat", 1.0,
              steps=_above(cfg, ("FLPrivacyLeakage", _threshold(cfg, "FLPrivacyLeakage", 0)))),
        Panel("Privacy budget used", "percentunit",
              (Query(f"max({r.DP_BUDGET_RATIO}{fed})", "used"),),
              "Share of the epsilon budget spent (recording rule).", "stat", 1.0,
              steps=_above(cfg, ("FLPrivacyBudgetNearlyExhausted",
                                 _threshold(cfg, "FLPrivacyBudgetNearlyExhausted", 1.0)),
                           ("FLPrivacyBudgetExhausted", 1.0))),
        Panel("Epsilon spent", "none", (Query(f"max(fl_dp_epsilon_spent{s})", "spent"),),
              "Differential-privacy epsilon spent so far.", "stat", steps=neutral),
        Panel("Anomalous updates (window)", "none",
              (Query("sum(" + d(r.window_increase(
                  "fl_anomalous_updates_total", s,
                  cfg.alerts.get("FLClientUpdateAnomaly").window or "30m")) + ")", "updates"),),
              "Updates flagged by the server in the alert's window.", "stat",
              steps=_above(cfg, ("FLClientUpdateAnomaly", 1.0))),
        Panel("Telemetry rejected (window)", "none",
              (Query("sum(" + d(r.window_increase(
                  "fl_telemetry_rejected_total", s,
                  cfg.alerts.get("FLTelemetryRejected").window or "15m")) + ")", "records"),),
              "Client telemetry records or fields rejected in the alert's window.", "stat",
              steps=_above(cfg, ("FLTelemetryRejected", _count_above(
                  _threshold(cfg, "FLTelemetryRejected", 0))))),
        Panel("Anomaly score per client", "none",
              (Query(f"max by (client) (fl_client_anomaly_score{sc})", "{{client}}"),),
              "Robust z-score of each client's update norm (the dashed line: the alert "
              f"threshold {_threshold(cfg, 'FLClientUpdateAnomaly', 0):g}).",
              **_lines(cfg, "FLClientUpdateAnomaly")),
        Panel("Update norm per client", "none",
              (Query(f"max by (client) (fl_client_update_norm{sc})", "{{client}}"),
               Query(f"max(fl_update_norm_median{s})", "median")),
              "L2 norm of each client's update and the round's median."),
        Panel("Cosine similarity to the mean update", "none",
              (Query(f"max by (client) (fl_client_update_cosine_similarity{sc})",
                     "{{client}}"),),
              "Similarity of each client's update to the round's mean update (-1..1)."),
        Panel("Anomalous updates per second", "cps",
              (Query(f"sum by (client) ({d(f'rate(fl_anomalous_updates_total{sc}[{ri}])')})",
                     "{{client}}"),),
              "Updates whose anomaly score crossed the server's threshold."),
        Panel("Epsilon spent and budget", "none",
              (Query(f"max(fl_dp_epsilon_spent{s})", "spent"),
               Query(f"max(fl_dp_epsilon_budget{s})", "budget"),
               Query(f"max by (client) (fl_client_dp_epsilon{sc})", "local {{client}}")),
              "Central and local differential-privacy epsilon."),
        Panel("DP noise and clipping", "none",
              (Query(f"max(fl_dp_noise_multiplier{s})", "noise multiplier"),
               Query(f"max(fl_dp_clipping_norm{s})", "clipping norm"),
               Query(f"max(fl_dp_delta{s})", "delta")),
              "Settings of the DP strategy."),
        Panel("Telemetry rejected per second", "cps",
              (Query(f"sum by (reason) ({d(f'rate(fl_telemetry_rejected_total{s}[{ri}])')})",
                     "{{reason}}"),),
              "Client telemetry dropped as malformed, by reason."),
        Panel("Security events and quarantined replies per second", "cps",
              (Query(f"sum by (kind) ({d(f'rate(fl_security_events_total{s}[{ri}])')})",
                     "{{kind}}"),
               Query(f"sum by (reason) ({d(f'rate(fl_replies_quarantined_total{s}[{ri}])')})",
                     "quarantined {{reason}}")),
              "Security events logged by flmon and replies set aside before aggregation."),
    ]


def _federation_row(cfg: FlmonConfig) -> list[Panel]:
    """The federation row: SuperLink, nodes and runs as ``flmon watch`` sees them (between
    runs too), at the top of the overview."""
    if not cfg.scrape.watch.enabled:
        return []
    w = r.watch_selector(cfg)
    online = r.watch_selector(cfg, 'status="online"')
    running = r.watch_selector(cfg, 'status="running"')
    failed = r.watch_selector(cfg, 'result="failed"')
    return [
        Panel("SuperLink up", "bool_yes_no",
              (Query(f"max(fl_superlink_up{w})", "up"),),
              "1 when flmon watch's last Control API poll of the SuperLink succeeded.", "stat",
              1.0, steps=_steps((None, _color(cfg, "FLSuperLinkDown")), (1, "green"))),
        Panel("Nodes online", "none",
              (Query(f"max(fl_supernodes{online})",
                     "online"),),
              "SuperNodes the SuperLink reports online (red: none).", "stat",
              steps=_steps((None, "red"), (1, "green"))),
        Panel("Runs running", "none",
              (Query(f"max(fl_runs{running})",
                     "running"),),
              "Runs in progress on the SuperLink.", "stat", steps=_steps((None, NEUTRAL))),
        Panel("Runs failed (24h)", "none",
              (Query("max(increase(fl_runs_finished_total"
                     f"{failed}[24h]))", "failed"),),
              "Runs that ended with the failed sub-status in the last 24 hours.", "stat",
              steps=_above(cfg, ("FLRunFailed", 1.0))),
        Panel("Nodes by status", "none",
              (Query(f"max by (status) (fl_supernodes{w})", "{{status}}"),),
              "SuperNodes per status: registered, online, offline, unregistered."),
        Panel("Runs by status", "none",
              (Query(f"max by (status) (fl_runs{w})", "{{status}}"),),
              "Runs per status: pending, starting, running, completed, failed, stopped."),
        Panel("Node liveness", "bool_yes_no",
              (Query(f"max by (client) (fl_supernode_online{w})", "{{client}}"),),
              "1 while the node is online, 0 while offline (FLNodeOffline).", max=1.0),
    ]


def _thresholds(panel: Panel) -> dict[str, Any]:
    if panel.kind == "stat":
        if not panel.steps:
            raise ValueError(f"stat panel {panel.title!r} has no thresholds")
        steps = panel.steps
    else:  # the series keep their palette colours; the steps are the lines drawn
        steps = _steps((None, "green"), *((v, c) for (_, v), c in
                                          zip(panel.lines, panel.line_colors, strict=True)))
    return {"mode": "absolute",
            "steps": [{"color": step.color, "value": step.value} for step in steps]}


_STAT_OPTIONS: dict[str, Any] = {
    "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
    "percentChangeColorMode": "standard", "showPercentChange": False, "textMode": "auto",
    "wideLayout": True,
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
}
_SERIES_CUSTOM: dict[str, Any] = {
    "drawStyle": "line", "lineInterpolation": "linear", "lineWidth": 1, "fillOpacity": 10,
    "gradientMode": "none", "showPoints": "never", "pointSize": 5, "spanNulls": False,
    "insertNulls": False, "axisPlacement": "auto", "axisLabel": "", "axisBorderShow": False,
    "axisCenteredZero": False, "axisColorMode": "text", "barAlignment": 0,
    "scaleDistribution": {"type": "linear"}, "stacking": {"group": "A", "mode": "none"},
    "hideFrom": {"legend": False, "tooltip": False, "viz": False},
}


def _panel_json(panel: Panel, pid: int, grid: dict[str, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    if panel.max is not None:
        defaults["min"] = 0
        defaults["max"] = panel.max
    options: dict[str, Any]
    if panel.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
        options = {**_STAT_OPTIONS,
                   "textMode": "value_and_name" if len(panel.queries) > 1 else "auto"}
    elif panel.kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {**_SERIES_CUSTOM, "thresholdsStyle": {
            "mode": "dashed" if panel.lines else "off"}}
        options = {"legend": {"displayMode": "table", "placement": "bottom",
                              "showLegend": True, "calcs": ["lastNotNull", "max"]},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
    else:
        raise ValueError(f"panel {panel.title!r}: unknown kind {panel.kind!r}")
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(_DS),
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": dict(_DS), "expr": q.expr,
             "legendFormat": q.legend, "range": True, "instant": False}
            for i, q in enumerate(panel.queries)
        ],
    }


GRID_COLUMNS = 24
STAT_HEIGHT = 4
SERIES_HEIGHT = 8
STATS_PER_ROW = 4
SERIES_PER_ROW = 2


def _widths(count: int, per_row: int) -> list[list[int]]:
    """Widths of ``count`` panels in rows of at most ``per_row``, every row the full grid
    width (rows as even as they can be; the first panels of a row take the remainder)."""
    rows = -(-count // per_row)
    out: list[list[int]] = []
    left = count
    for row in range(rows):
        n = -(-left // (rows - row))
        base, extra = divmod(GRID_COLUMNS, n)
        out.append([base + (1 if i < extra else 0) for i in range(n)])
        left -= n
    return out


def layout(kinds: list[str]) -> list[dict[str, int]]:
    """Grid positions of panels of ``kinds`` (``"stat"`` or other), in order.

    Each run of consecutive stat panels fills whole rows (at most four to a row, 4 high),
    each run of other panels goes two to a row (8 high; an odd last one spans the width):
    every row is as wide as the grid and of one height, so there is no hole for Grafana's
    vertical compaction to close and nothing it moves.
    """
    out: list[dict[str, int]] = []
    y = i = 0
    while i < len(kinds):
        stat = kinds[i] == "stat"
        j = i
        while j < len(kinds) and (kinds[j] == "stat") == stat:
            j += 1
        height = STAT_HEIGHT if stat else SERIES_HEIGHT
        for row in _widths(j - i, STATS_PER_ROW if stat else SERIES_PER_ROW):
            x = 0
            for w in row:
                out.append({"h": height, "w": w, "x": x, "y": y})
                x += w
            y += height
        i = j
    return out


FEDERATION_ROW = "Federation: SuperLink, nodes and runs (flmon watch)"
RUN_ROW = "Run"


def sections(cfg: FlmonConfig, name: str) -> list[tuple[str | None, list[Panel]]]:
    """The panels of dashboard ``name`` by section: ``(row title, panels)``, the title
    ``None`` for a dashboard of one section (drawn without a row)."""
    every = panels(cfg, name)
    federation = len(_federation_row(cfg)) if name == "overview" else 0
    if not federation:
        return [(None, every)]
    return [(FEDERATION_ROW, every[:federation]), (RUN_ROW, every[federation:])]


def _layout(groups: list[tuple[str | None, list[Panel]]]) -> list[dict[str, Any]]:
    """Panel JSON of every section: a row header (1 high, the grid's width) above each
    titled section, its panels laid out by :func:`layout` beneath it."""
    out: list[dict[str, Any]] = []
    y = 0
    for title, group in groups:
        if title is not None:
            out.append({"id": len(out) + 1, "type": "row", "title": title, "collapsed": False,
                        "panels": [], "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y}})
            y += 1
        grids = layout([p.kind for p in group])
        for panel, grid in zip(group, grids, strict=True):
            out.append(_panel_json(panel, len(out) + 1, {**grid, "y": grid["y"] + y}))
        y += max((g["y"] + g["h"] for g in grids), default=0)
    return out


def _templating(cfg: FlmonConfig, name: str) -> list[dict[str, Any]]:
    ds = cfg.grafana.datasource
    variables: list[dict[str, Any]] = [{
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {"selected": True, "text": ds, "value": ds},
        "hide": 0, "refresh": 1, "regex": "", "options": [], "includeAll": False,
        "multi": False,
    }]
    if name in ("clients", "security"):
        variables.append({
            "name": "client", "label": "Client", "type": "query",
            "datasource": dict(_DS),
            "query": {"query": client_variable_query(cfg), "refId": "clients"},
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "includeAll": True, "allValue": ".*", "multi": True, "hide": 0, "refresh": 2,
            "regex": "", "sort": 1, "options": [],
        })
    return variables


def client_variable_query(cfg: FlmonConfig) -> str:
    """The ``client`` variable's ``label_values`` query."""
    return f"label_values(fl_client_replies_total{r.selector(cfg)}, client)"


def dashboard(cfg: FlmonConfig, name: str) -> dict[str, Any]:
    """The dashboard ``name`` (one of :data:`DASHBOARDS`)."""
    fed = cfg.federation.name
    return {
        "description": f"{HEADER}. {_TITLES[name]} of federation {fed}.",
        "uid": dashboard_uid(cfg, name),
        "title": f"flmon / {fed} / {_TITLES[name]}",
        "tags": ["flmon", "federated-learning", fed],
        "id": None,
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": cfg.grafana.refresh,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [
            {"title": _TITLES[other], "type": "link", "icon": "dashboard",
             "url": f"/d/{dashboard_uid(cfg, other)}", "keepTime": True,
             "includeVars": True, "targetBlank": False, "asDropdown": False, "tags": [],
             "tooltip": ""}
            for other in DASHBOARDS if other != name
        ],
        "templating": {"list": _templating(cfg, name)},
        "panels": _layout(sections(cfg, name)),
    }


def render_grafana(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the Grafana dashboards."""
    return {f"dashboards/grafana/{name}.json": dump_json(dashboard(cfg, name))
            for name in DASHBOARDS}


def dashboard_exprs(doc: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard document (panel targets)."""
    return [t["expr"] for p in doc.get("panels", []) for t in p.get("targets", [])]
