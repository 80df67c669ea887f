"""Prometheus recording and alerting rules, built from the configuration.

Every rule selects the configured federation and the jobs of the ``fl_*`` series (the live
exporter's scrape job and the job the Pushgateway series were pushed under), so several
federations' rule files can be loaded into one Prometheus side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flmon import alerts
from flmon.alerts.declarations import DP_BUDGET_RATIO, dedupe, window_increase
from flmon.alerts.spec import Alert, Ctx, Severity, Source, runbook_url
from flmon.alerts.text import num, percent, seconds_text
from flmon.config import FlmonConfig

__all__ = ["DP_BUDGET_RATIO", "INHIBITIONS", "RECORDING_RULE_NAMES", "RUNBOOK_ANCHORS",
           "AlertRule", "RecordingRule", "alert_ctx", "alert_rules", "dedupe",
           "enabled_alerts", "percent", "prometheus_rule", "rule_groups", "seconds_text",
           "selector", "window_increase"]

RUNBOOK_ANCHORS: dict[str, str] = {a.name: a.anchor for a in alerts.ALERTS}
"""Section anchors in ``docs/runbooks.md`` (the alert name, lowercased)."""

CLIENTS_FAILED_RATIO = "federation:fl_clients_failed:ratio"
CLIENT_FAILURES_RATE = "federation_client:fl_client_failures:rate5m"
ROUNDS_RATE = "federation:fl_rounds_completed:rate5m"
UPDATES_RATE = "federation:fl_model_updates:rate5m"

RECORDING_RULE_NAMES: tuple[str, ...] = (
    DP_BUDGET_RATIO, CLIENTS_FAILED_RATIO, CLIENT_FAILURES_RATE, ROUNDS_RATE, UPDATES_RATE,
)

INHIBITIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = tuple(
    (a.name, i.target, i.equal) for a in alerts.ALERTS for i in a.inhibits)
"""(source, target, equal labels): while the source fires, the target is silenced."""


@dataclass(frozen=True)
class RecordingRule:
    """One recording rule."""

    record: str
    expr: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule with its labels and annotations."""

    alert: str
    expr: str
    for_: str
    severity: Severity
    team: str
    federation: str
    summary: str
    description: str
    runbook_url: str
    extra_labels: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return {"severity": self.severity, "team": self.team, "federation": self.federation,
                **self.extra_labels}

    @property
    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description,
                "runbook_url": self.runbook_url}

    def as_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, "expr": self.expr, "for": self.for_,
                "labels": self.labels, "annotations": self.annotations}


def alert_ctx(cfg: FlmonConfig, alert: Alert) -> Ctx:
    """What the declaration of ``alert`` is built from, for configuration ``cfg``."""
    sc = cfg.scrape
    settings = cfg.alerts.get(alert.name)
    live = Source(sc.live.job, sc.live.targets[0]) if sc.live.enabled else None
    pg = (Source(sc.pushgateway.pushed_job, sc.pushgateway.targets[0], sc.pushgateway.job)
          if sc.pushgateway.enabled else None)
    watch = Source(sc.watch.job, sc.watch.targets[0]) if sc.watch.enabled else None
    return Ctx(
        federation=cfg.federation.name, live=live, pushgateway=pg, watch=watch,
        stale_after=cfg.lifecycle.stale_after, severity=settings.severity, team=settings.team,
        for_=settings.for_, threshold_value=settings.threshold, window_value=settings.window,
        runbook_base=cfg.prometheus.runbook_url, dd_namespace=cfg.datadog.namespace,
        dd_live_endpoint=None if cfg.datadog.dogstatsd else cfg.datadog_live_endpoint,
        dd_watch_endpoints=dd_watch_endpoints(cfg),
        dd_pushgateway_endpoint=dd_pushgateway_endpoint(cfg))


def dd_pushgateway_endpoint(cfg: FlmonConfig) -> str | None:
    """The Pushgateway's endpoint in the Datadog Agent's check (``None`` without it)."""
    pg = cfg.scrape.pushgateway
    return pg.auth.metrics_url(pg.targets[0]) if pg.enabled else None


def dd_watch_endpoints(cfg: FlmonConfig) -> tuple[str, ...]:
    """``flmon watch``'s endpoints in the Datadog Agent's check (none without the watch)."""
    watch = cfg.scrape.watch
    if not watch.enabled:
        return ()
    return tuple(watch.auth.metrics_url(target) for target in watch.targets)


def selector(cfg: FlmonConfig, extra: str = "") -> str:
    """The label matchers of the ServerApp's ``fl_*`` series of this federation, in braces."""
    return alert_ctx(cfg, alerts.ALERTS[0]).sel(extra)


def watch_selector(cfg: FlmonConfig, extra: str = "") -> str:
    """The label matchers of ``flmon watch``'s series of this federation, in braces."""
    return alert_ctx(cfg, alerts.ALERTS[0]).watch_sel(extra)


def recording_rules(cfg: FlmonConfig) -> list[RecordingRule]:
    """Recording rules that make dashboards and alerts cheaper.

    Each reads both paths (live exporter and Pushgateway) and keeps one value per label
    set: gauges by ``max``, rates by ``max without (job, instance)`` before the sum.
    """
    s = selector(cfg)
    return [
        RecordingRule(
            DP_BUDGET_RATIO,
            f"max by (federation, run_id) (fl_dp_epsilon_spent{s})\n"
            f"  / on (federation, run_id)\n"
            f"(max by (federation, run_id) (fl_dp_epsilon_budget{s}) > 0)",
        ),
        RecordingRule(
            CLIENTS_FAILED_RATIO,
            f"max by (federation, run_id, phase) (fl_clients_failed{s})\n"
            f"  / on (federation, run_id, phase)\n"
            f"(max by (federation, run_id, phase) (fl_clients_selected{s}) > 0)",
        ),
        RecordingRule(
            CLIENT_FAILURES_RATE,
            f"sum by (federation, run_id, client) "
            f"({dedupe(f'rate(fl_client_failures_total{s}[5m])')})",
        ),
        RecordingRule(
            ROUNDS_RATE,
            f"sum by (federation, run_id) ({dedupe(f'rate(fl_rounds_completed_total{s}[5m])')})",
        ),
        RecordingRule(
            UPDATES_RATE,
            f"sum by (federation, run_id) ({dedupe(f'rate(fl_model_updates_total{s}[5m])')})",
        ),
    ]


def lifecycle_expr(alert: Alert, ctx: Ctx) -> str:
    """The alert's expression with the clause of its scope.

    ``in_progress``: only while the run is in progress (every path in use says so:
    ``min`` of ``fl_run_active``; with ``scrape.watch``, the SuperLink too, through the
    watch's ``fl_run_running``: a killed ServerApp's series still say active, the SuperLink
    says failed). ``run``: until ``lifecycle.stale_after`` after the run ended
    (``fl_run_end_timestamp_seconds``). ``federation``: as declared.
    """
    expr = alert.expr(ctx)
    s = ctx.sel()
    if alert.scope == "in_progress":
        gate = (f"(\n{expr}\n)\nand on (federation, run_id)\n"
                f"(min by (federation, run_id) (fl_run_active{s}) == 1)")
        if ctx.watch is None:
            return gate
        return (f"{gate}\nand on (federation, run_id)\n"
                f"(max by (federation, run_id) (fl_run_running{ctx.watch_sel()}) == 1)")
    if alert.scope == "run":
        return (f"(\n{expr}\n)\nunless on (federation, run_id)\n"
                f"((time() - max by (federation, run_id) (fl_run_end_timestamp_seconds{s} > 0))"
                f" > {num(ctx.stale_s)})")
    return expr


def enabled_alerts(cfg: FlmonConfig) -> list[Alert]:
    """The declarations rendered for ``cfg``: enabled, and their sources scraped."""
    out: list[Alert] = []
    for alert in alerts.ALERTS:
        if not cfg.alerts.get(alert.name).enabled:
            continue
        if alert.needs == "watch" and not cfg.scrape.watch.enabled:
            continue
        out.append(alert)
    return out


def alert_rules(cfg: FlmonConfig) -> list[AlertRule]:
    """Every enabled alert, in declaration order."""
    rules: list[AlertRule] = []
    for alert in enabled_alerts(cfg):
        ctx = alert_ctx(cfg, alert)
        rules.append(AlertRule(
            alert=alert.name, expr=lifecycle_expr(alert, ctx), for_=ctx.for_,
            severity=ctx.severity, team=ctx.team, federation=ctx.federation,
            summary=alert.summary, description=alert.description(ctx),
            runbook_url=runbook_url(ctx.runbook_base, alert.name),
        ))
    return rules


def group_names(cfg: FlmonConfig) -> tuple[str, str]:
    """The names of the recording group and of the alert group, in evaluation order."""
    fed = cfg.federation.name
    return f"flmon-{fed}-recording", f"flmon-{fed}-alerts"


def rule_groups(cfg: FlmonConfig) -> list[dict[str, Any]]:
    """The rule groups: recording rules first, then alerts."""
    recording, alerting = group_names(cfg)
    groups: list[dict[str, Any]] = [
        {"name": recording, "interval": cfg.prometheus.evaluation_interval,
         "rules": [r.as_dict() for r in recording_rules(cfg)]},
    ]
    alerts = alert_rules(cfg)
    if alerts:
        groups.append({"name": alerting,
                       "interval": cfg.prometheus.evaluation_interval,
                       "rules": [r.as_dict() for r in alerts]})
    return groups


def k8s_name(name: str) -> str:
    """A DNS-1123 name (``_`` becomes ``-``)."""
    return name.replace("_", "-")


def prometheus_rule(cfg: FlmonConfig) -> dict[str, Any]:
    """The same groups as a ``monitoring.coreos.com/v1`` ``PrometheusRule`` object."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"flmon-{k8s_name(cfg.federation.name)}",
            "labels": {
                "app.kubernetes.io/name": "flmon",
                "app.kubernetes.io/managed-by": "flmon-render",
                **dict(sorted(cfg.prometheus.rule_labels.items())),
            },
            "annotations": {"flmon.dev/generated": "generated by flmon render, do not edit"},
        },
        "spec": {"groups": rule_groups(cfg)},
    }
