"""Datadog outputs: the Agent's OpenMetrics check, one monitor per alert, a dashboard.

Datadog names the metrics of the OpenMetrics check (latest mode) ``<namespace>.<name>``;
counters lose ``_total`` and gain ``.count``. Monitor JSON cannot hold comments: the
generated-file note ends each monitor's message and is the dashboard's description.
"""

from __future__ import annotations

from typing import Any

from flmon import alerts, catalog
from flmon.config import FlmonConfig, duration_seconds
from flmon.render.rules import AlertRule, alert_ctx, alert_rules
from flmon.render.templating import HEADER, dump_json, render_template

_WINDOWS: tuple[tuple[int, str], ...] = (
    (60, "1m"), (300, "5m"), (600, "10m"), (900, "15m"), (1800, "30m"), (3600, "1h"),
    (7200, "2h"), (14400, "4h"), (86400, "1d"), (172800, "2d"), (604800, "1w"),
)
_PRIORITY = {"critical": 1, "warning": 3, "info": 5}


def dd_metric(cfg: FlmonConfig, name: str, part: str = "") -> str:
    """The Datadog name of catalog metric ``name`` (``part``: bucket/sum/count of histograms)."""
    spec = catalog.get(name)
    ns = cfg.datadog.namespace
    if spec.type == "counter":
        return f"{ns}.{name.removesuffix('_total')}.count"
    if spec.type == "histogram":
        return f"{ns}.{name}.{part or 'count'}"
    return f"{ns}.{name}"


def dd_window(duration: str, minimum: int = 300) -> str:
    """The smallest Datadog evaluation window of at least ``duration`` (and ``minimum`` s)."""
    seconds = max(duration_seconds(duration), minimum)
    for size, text in _WINDOWS:
        if size >= seconds:
            return text
    return _WINDOWS[-1][1]


def _message(cfg: FlmonConfig, rule: AlertRule) -> str:
    per_client = alerts.get(rule.alert).per_client
    who = " (client {{client.name}})" if per_client else ""
    what = rule.summary.removesuffix(".")  # the summary is a sentence (mixtool's style)
    lines = [
        f"{{{{#is_alert}}}}{what} in federation {cfg.federation.name}{who}."
        f"{{{{/is_alert}}}}",
        f"{{{{#is_recovery}}}}Recovered: {what} in federation "
        f"{cfg.federation.name}{who}.{{{{/is_recovery}}}}",
        "",
        f"Severity: {rule.severity}. Team: {rule.team}. Value: {{{{value}}}}.",
        f"Runbook: {rule.runbook_url}",
    ]
    if cfg.datadog.notify:
        lines += ["", " ".join(cfg.datadog.notify)]
    lines += ["", f"({HEADER})"]
    return "\n".join(lines)


def monitors(cfg: FlmonConfig) -> dict[str, dict[str, Any]]:
    """``{alert name: monitor}`` for every enabled alert."""
    fed = cfg.federation.name
    out: dict[str, dict[str, Any]] = {}
    for rule in alert_rules(cfg):
        monitor = alerts.get(rule.alert).monitor(alert_ctx(cfg, alerts.get(rule.alert)))
        kind, query, critical = monitor.type, monitor.query, monitor.critical
        options: dict[str, Any] = {
            "thresholds": {"critical": critical},
            "notify_no_data": False,
            "notify_audit": False,
            "include_tags": True,
            "require_full_window": False,
            "renotify_interval": 240,
        }
        if kind == "service check":
            options["thresholds"] = {"critical": 1, "warning": 1, "ok": 1}
        out[rule.alert] = {
            "name": f"[flmon] {rule.alert} ({fed})",
            "type": kind,
            "query": query,
            "message": _message(cfg, rule),
            "tags": sorted({f"federation:{fed}", f"severity:{rule.severity}",
                            f"team:{rule.team}", f"alertname:{rule.alert.lower()}",
                            "managed_by:flmon", *cfg.datadog.tags}),
            "priority": _PRIORITY[rule.severity],
            "options": options,
        }
    return out


def _widget(title: str, queries: list[str], unit_note: str = "") -> dict[str, Any]:
    return {"definition": {
        "type": "timeseries",
        "title": title + (f" ({unit_note})" if unit_note else ""),
        "show_legend": True,
        "requests": [{"q": q, "display_type": "line"} for q in queries],
    }}


def dashboard(cfg: FlmonConfig) -> dict[str, Any]:
    """The Datadog dashboard (``POST /api/v1/dashboard``)."""
    fed = cfg.federation.name
    t = "{$federation}"

    def m(name: str, part: str = "") -> str:
        return dd_metric(cfg, name, part)

    widgets = [
        _widget("Training and evaluation accuracy",
                [f"max:{m('fl_training_accuracy')}{t}", f"max:{m('fl_evaluation_accuracy')}{t}"],
                "ratio 0..1"),
        _widget("Training and evaluation loss",
                [f"max:{m('fl_training_loss')}{t}", f"max:{m('fl_evaluation_loss')}{t}"]),
        _widget("Current round and rounds completed",
                [f"max:{m('fl_current_round')}{t}",
                 f"sum:{m('fl_rounds_completed_total')}{t}.as_count()"]),
        _widget("Clients selected, replied, failed",
                [f"max:{m('fl_clients_selected')}{t} by {{phase}}",
                 f"max:{m('fl_clients_replied')}{t} by {{phase}}",
                 f"max:{m('fl_clients_failed')}{t} by {{phase}}"]),
        _widget("Client failures", [f"sum:{m('fl_client_failures_total')}{t} by "
                                    "{client}.as_count()"]),
        _widget("Model updates", [f"sum:{m('fl_model_updates_total')}{t}.as_count()"]),
        _widget("Anomaly score per client",
                [f"max:{m('fl_client_anomaly_score')}{t} by {{client}}"]),
        _widget("Epsilon spent and budget",
                [f"max:{m('fl_dp_epsilon_spent')}{t}", f"max:{m('fl_dp_epsilon_budget')}{t}"]),
        _widget("Telemetry rejected",
                [f"sum:{m('fl_telemetry_rejected_total')}{t} by {{reason}}.as_count()"]),
        _widget("Round duration",
                [f"sum:{m('fl_round_duration_seconds', 'sum')}{t}.as_count() / "
                 f"sum:{m('fl_round_duration_seconds', 'count')}{t}.as_count()"], "seconds"),
    ]
    if cfg.scrape.watch.enabled:  # flmon watch: the federation between runs too
        widgets = [
            _widget("SuperLink up", [f"max:{m('fl_superlink_up')}{t}"], "0 or 1"),
            _widget("Nodes by status", [f"max:{m('fl_supernodes')}{t} by {{status}}"]),
            _widget("Node liveness", [f"min:{m('fl_supernode_online')}{t} by {{client}}"],
                    "0 or 1"),
            _widget("Runs by status", [f"max:{m('fl_runs')}{t} by {{status}}"]),
            *widgets,
        ]
    widgets.append(_widget("Privacy attack AUC",
                           [f"max:{m('fl_privacy_attack_auc')}{t} by {{attack,dp}}"],
                           "ratio 0..1"))
    return {
        "description": f"{HEADER}. Federation {fed}.",
        "title": f"flmon / {fed}",
        "layout_type": "ordered",
        "reflow_type": "auto",
        "notify_list": [],
        "template_variables": [{"name": "federation", "prefix": "federation",
                                "available_values": [], "default": fed}],
        "widgets": widgets,
    }


def _watch_endpoints(cfg: FlmonConfig) -> list[str]:
    watch = cfg.scrape.watch
    if not watch.enabled:
        return []
    return [f"{watch.auth.scheme}://{target}/metrics" for target in watch.targets]


def render_datadog(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the Datadog outputs."""
    out = {
        "datadog/conf.yaml": render_template(
            "datadog/conf.yaml", federation=cfg.federation.name,
            endpoint=cfg.datadog.openmetrics_endpoint, namespace=cfg.datadog.namespace,
            watch_endpoints=_watch_endpoints(cfg),
            tags=sorted({f"federation:{cfg.federation.name}", *cfg.datadog.tags})),
        "datadog/dashboard.json": dump_json(dashboard(cfg)),
    }
    for name, monitor in monitors(cfg).items():
        out[f"datadog/monitors/{name}.json"] = dump_json(monitor)
    return out
