"""Prometheus recording and alerting rules, built from the configuration.

Every rule selects the configured federation and the jobs of the ``fl_*`` series (the live
exporter's scrape job and the job the Pushgateway series were pushed under), so several
federations' rule files can be loaded into one Prometheus side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flmon.config import FlmonConfig, Severity, duration_seconds

RUNBOOK_ANCHORS: dict[str, str] = {
    "FLLowTrainingAccuracy": "fllowtrainingaccuracy",
    "FLModelAccuracyDropped": "flmodelaccuracydropped",
    "FLNoModelUpdates": "flnomodelupdates",
    "FLClientDropout": "flclientdropout",
    "FLRoundStalled": "flroundstalled",
    "FLClientUpdateAnomaly": "flclientupdateanomaly",
    "FLPrivacyBudgetNearlyExhausted": "flprivacybudgetnearlyexhausted",
    "FLPrivacyBudgetExhausted": "flprivacybudgetexhausted",
    "FLTelemetryRejected": "fltelemetryrejected",
    "FLExporterDown": "flexporterdown",
}
"""Section anchors in ``docs/runbooks.md`` (GitHub-style: the heading, lowercased)."""

DP_BUDGET_RATIO = "federation:fl_dp_epsilon_budget_used:ratio"
CLIENTS_FAILED_RATIO = "federation:fl_clients_failed:ratio"
CLIENT_FAILURES_RATE = "federation_client:fl_client_failures:rate5m"
ROUNDS_RATE = "federation:fl_rounds_completed:rate5m"
UPDATES_RATE = "federation:fl_model_updates:rate5m"

RECORDING_RULE_NAMES: tuple[str, ...] = (
    DP_BUDGET_RATIO, CLIENTS_FAILED_RATIO, CLIENT_FAILURES_RATE, ROUNDS_RATE, UPDATES_RATE,
)

INHIBITIONS: tuple[tuple[str, str], ...] = (
    ("FLModelAccuracyDropped", "FLLowTrainingAccuracy"),
    ("FLPrivacyBudgetExhausted", "FLPrivacyBudgetNearlyExhausted"),
)
"""(source, target) pairs: while the source fires, the target is silenced."""


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


def _matcher_list(cfg: FlmonConfig, jobs: tuple[str, ...] | None = None) -> str:
    jobs = cfg.scrape.metric_jobs if jobs is None else jobs
    job = f'job="{jobs[0]}"' if len(jobs) == 1 else f'job=~"{"|".join(jobs)}"'
    return f'{job},federation="{cfg.federation.name}"'


def selector(cfg: FlmonConfig, extra: str = "") -> str:
    """The label matchers of the ``fl_*`` series of this federation, in braces."""
    inner = _matcher_list(cfg)
    return "{" + inner + (f",{extra}" if extra else "") + "}"


def percent(value: float) -> str:
    """``0.85`` -> ``85%`` (as Prometheus' humanizePercentage writes round values)."""
    return f"{value * 100:.4g}%"


def seconds_text(value: float) -> str:
    """A duration in seconds as a Prometheus duration string (``1800`` -> ``30m``)."""
    v = int(value)
    if v != value or v <= 0:
        return f"{value:g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if v % size == 0:
            return f"{v // size}{unit}"
    return f"{v}s"


def window_increase(metric: str, sel: str, window: str) -> str:
    """How much counter ``metric`` grew within ``window``, counting new series too.

    ``increase()`` needs two samples of a series, so the first increment of a labelled
    counter child (created at its first ``inc()``, as flmon's per-client and per-reason
    children are) is lost. A series that did not exist ``window`` ago started from 0
    within the window: its current value is its increase.
    """
    return (f"({metric}{sel} unless {metric}{sel} offset {window})\n"
            f"or\n"
            f"increase({metric}{sel}[{window}])")


def recording_rules(cfg: FlmonConfig) -> list[RecordingRule]:
    """Recording rules that make dashboards and alerts cheaper."""
    s = selector(cfg)
    return [
        RecordingRule(
            DP_BUDGET_RATIO,
            f"max by (federation, job) (fl_dp_epsilon_spent{s})\n"
            f"  / on (federation, job)\n"
            f"(max by (federation, job) (fl_dp_epsilon_budget{s}) > 0)",
        ),
        RecordingRule(
            CLIENTS_FAILED_RATIO,
            f"sum by (federation, job, phase) (fl_clients_failed{s})\n"
            f"  / on (federation, job, phase)\n"
            f"(sum by (federation, job, phase) (fl_clients_selected{s}) > 0)",
        ),
        RecordingRule(
            CLIENT_FAILURES_RATE,
            f"sum by (federation, job, client) (rate(fl_client_failures_total{s}[5m]))",
        ),
        RecordingRule(
            ROUNDS_RATE,
            f"sum by (federation, job) (rate(fl_rounds_completed_total{s}[5m]))",
        ),
        RecordingRule(
            UPDATES_RATE,
            f"sum by (federation, job) (rate(fl_model_updates_total{s}[5m]))",
        ),
    ]


def _exporter_down_expr(cfg: FlmonConfig) -> str:
    fed = cfg.federation.name
    live, pg = cfg.scrape.live, cfg.scrape.pushgateway
    parts: list[str] = []
    if pg.enabled:
        up_pg = f'up{{job="{pg.job}",federation="{fed}"}}'
        parts += [f"{up_pg} == 0", f"absent({up_pg})"]
    if live.enabled:
        up_live = f'up{{job="{live.job}",federation="{fed}"}}'
        if pg.enabled:
            # Between runs the ServerApp (and its exporter) is gone: only a run in progress,
            # as the Pushgateway reports it, makes a missing live exporter an outage.
            active = (f'max by (federation) (fl_run_active{{job="{pg.pushed_job}",'
                      f'federation="{fed}"}}) == 1')
            parts.append(f"({up_live} == 0 and on (federation) ({active}))")
        else:
            parts += [f"{up_live} == 0", f"absent({up_live})"]
    return "\nor\n".join(parts)


def alert_rules(cfg: FlmonConfig) -> list[AlertRule]:
    """Every enabled alert, in a fixed order."""
    fed = cfg.federation.name
    s = selector(cfg)
    a = cfg.alerts
    base = cfg.prometheus.runbook_url

    def threshold(name: str) -> float:
        value = a.get(name).threshold
        assert value is not None  # the schema requires it for this alert
        return value

    def window(name: str) -> str:
        value = a.get(name).window
        assert value is not None  # the schema requires it for this alert
        return value

    def num(value: float) -> str:
        return f"{value:g}"

    acc = f"fl_training_accuracy{s}"
    low, drop = threshold("FLLowTrainingAccuracy"), threshold("FLModelAccuracyDropped")
    dropout_t, dropout_w = threshold("FLClientDropout"), window("FLClientDropout")
    stall_t = threshold("FLRoundStalled")
    anomaly_t, anomaly_w = threshold("FLClientUpdateAnomaly"), window("FLClientUpdateAnomaly")
    near_t = threshold("FLPrivacyBudgetNearlyExhausted")
    rej_t, rej_w = threshold("FLTelemetryRejected"), window("FLTelemetryRejected")
    upd_w = window("FLNoModelUpdates")
    dp = f'{DP_BUDGET_RATIO}{{federation="{fed}"}}'
    by_client = "max by (federation, job, client)"

    specs: dict[str, tuple[str, str, str]] = {
        "FLLowTrainingAccuracy": (
            f"{acc} < {num(low)}\nor\n{acc} != {acc}\nor\n{acc} > 1",
            "Training accuracy is low",
            f"Aggregated training accuracy of federation {fed} is "
            f"{{{{ $value | humanizePercentage }}}} ({{{{ $labels.job }}}}), below the "
            f"{percent(low)} line or not a valid ratio (NaN).",
        ),
        "FLModelAccuracyDropped": (
            f"{acc} < {num(drop)}\nor\n{acc} != {acc}\nor\n{acc} > 1",
            "Model accuracy dropped",
            f"Aggregated training accuracy of federation {fed} dropped to "
            f"{{{{ $value | humanizePercentage }}}} ({{{{ $labels.job }}}}), below the "
            f"critical {percent(drop)} line or not a valid ratio (NaN): the global model is "
            f"not fit for use.",
        ),
        "FLNoModelUpdates": (
            f"max by (federation, job) (fl_run_active{s}) == 1\n"
            f"and on (federation, job)\n"
            f"(time() - max by (federation, job) (fl_run_start_timestamp_seconds{s}) "
            f"> {num(duration_seconds(upd_w))})\n"
            f"unless on (federation, job)\n"
            f"(sum by (federation, job) (\n"
            f"{window_increase('fl_model_updates_total', s, upd_w)}\n"
            f") > 0)",
            "No model updates while a run is in progress",
            f"Federation {fed} has a run in progress ({{{{ $labels.job }}}}) but received no "
            f"model update from any client in the last {upd_w}.",
        ),
        "FLClientDropout": (
            f"sum by (federation, job, client) (\n"
            f"{window_increase('fl_client_failures_total', s, dropout_w)}\n"
            f") >= {num(dropout_t)}",
            "A client keeps failing",
            f"Client {{{{ $labels.client }}}} of federation {fed} failed "
            f'{{{{ $value | printf "%.0f" }}}} times in the last {dropout_w} '
            f"(threshold {num(dropout_t)}): unreachable node, timeout or ClientApp error.",
        ),
        "FLRoundStalled": (
            f"(time() - fl_round_start_timestamp_seconds{s}) > {num(stall_t)}\n"
            f"and\n"
            f"fl_round_in_progress{s} == 1",
            "A round is stalled",
            f"A round of federation {fed} has been in progress for "
            f"{{{{ $value | humanizeDuration }}}} ({{{{ $labels.job }}}}), longer than "
            f"{seconds_text(stall_t)}.",
        ),
        "FLClientUpdateAnomaly": (
            f"{by_client} (fl_client_anomaly_score{s}) > {num(anomaly_t)}\n"
            f"or\n"
            f"{by_client} (fl_client_anomaly_score{s})\n"
            f"and on (federation, job, client)\n"
            f"(sum by (federation, job, client) (\n"
            f"{window_increase('fl_anomalous_updates_total', s, anomaly_w)}\n"
            f") > 0)",
            "A client sent an anomalous model update",
            f"Client {{{{ $labels.client }}}} of federation {fed} sent a model update with "
            f'anomaly score {{{{ $value | printf "%.2f" }}}} (threshold {num(anomaly_t)}, or '
            f"flagged by the server in the last {anomaly_w}): possible poisoning or a broken "
            f"client.",
        ),
        "FLPrivacyBudgetNearlyExhausted": (
            f"{dp} >= {num(near_t)}",
            "Privacy budget nearly exhausted",
            f"Federation {fed} has spent {{{{ $value | humanizePercentage }}}} of its "
            f"differential-privacy epsilon budget ({{{{ $labels.job }}}}; warning at "
            f"{percent(near_t)}).",
        ),
        "FLPrivacyBudgetExhausted": (
            f"{dp} >= 1\nor\n{dp} != {dp}\nor\n"
            f"max by (federation, job) (fl_dp_budget_exhausted{s}) == 1",
            "Privacy budget exhausted",
            f"Federation {fed} has spent {{{{ $value | humanizePercentage }}}} of its "
            f"differential-privacy epsilon budget ({{{{ $labels.job }}}}): further rounds "
            f"break the privacy guarantee.",
        ),
        "FLTelemetryRejected": (
            f"sum by (federation, job, reason) (\n"
            f"{window_increase('fl_telemetry_rejected_total', s, rej_w)}\n"
            f") > {num(rej_t)}",
            "Client telemetry was rejected",
            f"Federation {fed} rejected {{{{ $value | printf \"%.0f\" }}}} client telemetry "
            f"records or fields in the last {rej_w} (reason {{{{ $labels.reason }}}}).",
        ),
        "FLExporterDown": (
            _exporter_down_expr(cfg),
            "flmon metrics cannot be scraped",
            f"Prometheus cannot scrape {{{{ $labels.job }}}}{{{{ with $labels.instance }}}} "
            f"({{{{ . }}}}){{{{ end }}}} of "
            f"federation {fed}: alerts and dashboards of this federation are blind.",
        ),
    }
    rules: list[AlertRule] = []
    for name in a.enabled():
        expr, summary, description = specs[name]
        settings = a.get(name)
        rules.append(AlertRule(
            alert=name, expr=expr, for_=settings.for_, severity=settings.severity,
            team=settings.team, federation=fed, summary=summary, description=description,
            runbook_url=f"{base}#{RUNBOOK_ANCHORS[name]}",
        ))
    return rules


def rule_groups(cfg: FlmonConfig) -> list[dict[str, Any]]:
    """The rule groups: recording rules first, then alerts."""
    fed = cfg.federation.name
    groups: list[dict[str, Any]] = [
        {"name": f"flmon-{fed}-recording", "interval": cfg.prometheus.evaluation_interval,
         "rules": [r.as_dict() for r in recording_rules(cfg)]},
    ]
    alerts = alert_rules(cfg)
    if alerts:
        groups.append({"name": f"flmon-{fed}-alerts",
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
