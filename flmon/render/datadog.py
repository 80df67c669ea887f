"""Datadog outputs: the Agent's OpenMetrics check, one monitor per alert, a dashboard.

Datadog names the metrics of the OpenMetrics check (latest mode) ``<namespace>.<name>``;
counters lose ``_total`` and gain ``.count``. Monitor JSON cannot hold comments: the
generated-file note ends each monitor's message and is the dashboard's description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flmon import alerts
from flmon.alerts.spec import Monitor, dd_name
from flmon.config import FlmonConfig, ScrapeAuth
from flmon.render.rules import (
    AlertRule,
    alert_ctx,
    alert_rules,
    dd_pushgateway_endpoint,
    dd_watch_endpoints,
)
from flmon.render.templating import HEADER, dump_json, render_template

_PRIORITY = {"critical": 1, "warning": 3, "info": 5}


def dd_metric(cfg: FlmonConfig, name: str, part: str = "") -> str:
    """The Datadog name of catalog metric ``name`` (``part``: bucket/sum/count of histograms)."""
    return dd_name(cfg.datadog.namespace, name, part)


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


def _options(monitor: Monitor) -> dict[str, Any]:
    thresholds: dict[str, float] = {"critical": monitor.critical}
    if monitor.ok is not None:
        thresholds["ok"] = monitor.ok
    options: dict[str, Any] = {} if monitor.type == "composite" else {"thresholds": thresholds}
    return {
        **options,
        "notify_no_data": False,
        "notify_audit": False,
        "include_tags": True,
        "require_full_window": monitor.require_full_window,
        "renotify_interval": 240,
    }


def _tags(cfg: FlmonConfig, rule: AlertRule, *extra: str) -> list[str]:
    return sorted({f"federation:{cfg.federation.name}", f"severity:{rule.severity}",
                   f"team:{rule.team}", f"alertname:{rule.alert.lower()}",
                   "managed_by:flmon", *cfg.datadog.tags, *extra})


def _part_message(rule: AlertRule, part: str) -> str:
    return (f"Part `{part}` of the composite monitor {rule.alert}: it notifies nobody on its "
            f"own; {rule.alert} does.\n\n({HEADER})")


def monitors(cfg: FlmonConfig) -> dict[str, dict[str, Any]]:
    """``{file stem: monitor}``: one monitor per enabled alert that Datadog can watch, and
    the parts of its composite monitors as ``<alert>.<part>``."""
    fed = cfg.federation.name
    out: dict[str, dict[str, Any]] = {}
    for rule in alert_rules(cfg):
        monitor = alerts.get(rule.alert).monitor(alert_ctx(cfg, alerts.get(rule.alert)))
        if monitor is None:
            continue
        for part, sub in monitor.parts:
            out[f"{rule.alert}.{part}"] = {
                "name": f"[flmon] {rule.alert} ({fed}): part {part}",
                "type": sub.type,
                "query": sub.query,
                "message": _part_message(rule, part),
                "tags": _tags(cfg, rule, "flmon_part:true"),
                "priority": _PRIORITY[rule.severity],
                "options": _options(sub),
            }
        out[rule.alert] = {
            "name": f"[flmon] {rule.alert} ({fed})",
            "type": monitor.type,
            "query": monitor.query,
            "message": _message(cfg, rule),
            "tags": _tags(cfg, rule),
            "priority": _PRIORITY[rule.severity],
            "options": _options(monitor),
        }
    return out


_PART_RE = re.compile(r"\b(FL[A-Za-z]+\.[a-z_]+)\b")


def composite_parts(query: str) -> list[str]:
    """The part names (``FLExporterDown.scrape``) a rendered composite query refers to."""
    return _PART_RE.findall(query)


def link_composite(query: str, ids: Mapping[str, int]) -> str:
    """A rendered composite ``query`` with each part name replaced by its monitor id.

    Create the parts first (``POST /api/v1/monitor`` of each ``<alert>.<part>.json``),
    then the composite with the query this returns. A part without an id is an error.
    """
    missing = [name for name in composite_parts(query) if name not in ids]
    if missing:
        raise KeyError(f"no monitor id for part(s) {', '.join(missing)}")
    return _PART_RE.sub(lambda m: str(ids[m.group(1)]), query)


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


def secret_handle(path: str) -> str:
    """The Agent's secret handle of a file: ``ENC[file@<path>]``.

    The Agent resolves it when it loads the check, with the helper its images ship
    (``secret_backend_command: /readsecret_multiple_providers.sh``), so the rendered file
    names the secret's file and never holds the secret.
    """
    return f"ENC[file@{path}]"


def check_auth(auth: ScrapeAuth) -> dict[str, Any]:
    """The TLS and authentication options of an OpenMetrics check instance that reach a
    target the way Prometheus' scrape of it does (``ScrapeAuth.scrape_fields``).

    The names are those of the Agent's HTTP wrapper (``datadog_checks.base.utils.http``):
    ``tls_verify``/``tls_ca_cert``/``tls_cert``/``tls_private_key``, ``username`` and
    ``password`` (a secret handle of ``password_file``), and for a bearer token
    ``auth_token`` with a ``file`` reader and an ``Authorization`` header writer. Empty for
    plain HTTP.
    """
    options: dict[str, Any] = {}
    if auth.scheme == "https":
        options["tls_verify"] = True
        if auth.ca_file is not None:
            options["tls_ca_cert"] = auth.ca_file
        if auth.cert_file is not None and auth.key_file is not None:
            options["tls_cert"] = auth.cert_file
            options["tls_private_key"] = auth.key_file
    if auth.username is not None and auth.password_file is not None:
        options["auth_type"] = "basic"
        options["username"] = auth.username
        options["password"] = secret_handle(auth.password_file)
    if auth.bearer_token_file is not None:
        options["auth_token"] = {
            "reader": {"type": "file", "path": auth.bearer_token_file},
            "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"},
        }
    return options


def render_datadog(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the Datadog outputs."""
    sc = cfg.scrape
    auths = {"live": check_auth(sc.live.auth), "pushgateway": check_auth(sc.pushgateway.auth),
             "watch": check_auth(sc.watch.auth)}
    used = [] if cfg.datadog.dogstatsd else [auths["live"]]
    if sc.pushgateway.enabled:
        used.append(auths["pushgateway"])
    if sc.watch.enabled:
        used.append(auths["watch"])
    out = {
        "datadog/conf.yaml": render_template(
            "datadog/conf.yaml", federation=cfg.federation.name,
            endpoint=cfg.datadog_live_endpoint, namespace=cfg.datadog.namespace,
            live=not cfg.datadog.dogstatsd, watch_endpoints=dd_watch_endpoints(cfg),
            pushgateway=dd_pushgateway_endpoint(cfg), auth=auths,
            secrets=any("password" in a for a in used),
            tags=sorted({f"federation:{cfg.federation.name}", *cfg.datadog.tags})),
        "datadog/dashboard.json": dump_json(dashboard(cfg)),
    }
    for name, monitor in monitors(cfg).items():
        folder = "datadog/monitors/parts" if "." in name else "datadog/monitors"
        out[f"{folder}/{name}.json"] = dump_json(monitor)
    return out
