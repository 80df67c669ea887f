"""The pieces every rule is built from, with literal expected text.

Numbers as the rules write them, the label matchers, the windowed counter expression, the
rule groups and the ``PrometheusRule`` object of the default configuration.
"""

from __future__ import annotations

import pytest

from flmon import alerts
from flmon.alerts.exprs import dedupe, window_increase
from flmon.alerts.spec import duration_seconds, runbook_anchor
from flmon.alerts.text import num, percent, seconds_text
from flmon.config import parse_config
from flmon.render.rules import (
    alert_ctx,
    alert_rules,
    prometheus_rule,
    rule_groups,
    selector,
    watch_selector,
)

from .conftest import example_data, minimal_data, with_changes


@pytest.mark.parametrize(("value", "text"), [
    (3, "3"), (3.0, "3"), (0.85, "0.85"), (25.5, "25.5"), (0, "0"), (1e6, "1e+06")])
def test_num(value: float, text: str) -> None:
    assert num(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.85, "85%"), (0.8, "80%"), (0.125, "12.5%"), (1, "100%"), (0.6, "60%"),
    (0.0001, "0.01%"), (0.9995, "99.95%"), (0.99999, "100%")])
def test_percent(value: float, text: str) -> None:
    assert percent(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (1800, "30m"), (60, "1m"), (3600, "1h"), (7200, "2h"), (5400, "90m"), (86400, "1d"),
    (172800, "2d"), (90000, "25h"), (90, "90s"), (1, "1s"), (59, "59s"), (1.5, "1.5s"),
    (0, "0s"), (-60, "-60s"), (1e7, "10000000s")])
def test_seconds_text(value: float, text: str) -> None:
    assert seconds_text(value) == text


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800.0), ("1h30m", 5400.0),
                                               ("250ms", 0.25), ("0m", 0.0)])
def test_duration_seconds(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["30", "m", "1.5h", "30 m", "-5m", "30M", "5m "])
def test_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a Prometheus duration such as 30s, 5m"):
        duration_seconds(text)


def test_runbook_anchor_is_the_name_lowercased() -> None:
    assert runbook_anchor("FLNodeOffline") == "flnodeoffline"


def test_dedupe_and_window_increase() -> None:
    assert dedupe("rate(x[5m])") == "max without (job, instance) (rate(x[5m]))"
    assert window_increase("fl_runs_finished_total", '{job="w"}', "15m") == (
        '(fl_runs_finished_total{job="w"} and (time() - fl_runs_finished_created{job="w"})'
        ' < 900)\nor\nincrease(fl_runs_finished_total{job="w"}[15m])')
    assert window_increase("fl_x_total", "{}", "1h30m").startswith(
        "(fl_x_total{} and (time() - fl_x_created{}) < 5400)\n")


def test_selectors_of_the_default_configuration() -> None:
    cfg = parse_config(example_data())
    assert selector(cfg) == '{job=~"flmon-exporter|flmon",federation="default"}'
    assert selector(cfg, 'client="a"') == (
        '{job=~"flmon-exporter|flmon",federation="default",client="a"}')
    assert watch_selector(cfg) == '{job="flmon-watch",federation="default"}'
    assert watch_selector(cfg, 'status="online"') == (
        '{job="flmon-watch",federation="default",status="online"}')
    live_only = parse_config(with_changes(minimal_data(), scrape__pushgateway={"enabled": False}))
    assert selector(live_only) == '{job="flmon-exporter",federation="hospitals_eu"}'
    pushed_only = parse_config(with_changes(minimal_data(), scrape__live={"enabled": False}))
    assert selector(pushed_only) == '{job="flmon",federation="hospitals_eu"}'
    own_job = parse_config(with_changes(example_data(), scrape__watch__job="fl-watch"))
    assert watch_selector(own_job, 'result="failed"') == (
        '{job="fl-watch",federation="default",result="failed"}')
    # without scrape.watch the dashboards' watch panels read the default job
    no_watch = parse_config(with_changes(minimal_data(), scrape__watch__enabled=False))
    assert not no_watch.scrape.watch.enabled
    assert watch_selector(no_watch) == (
        '{job="flmon-watch",federation="hospitals_eu"}')


def test_rule_groups_and_the_prometheusrule_object() -> None:
    cfg = parse_config(with_changes(minimal_data(), prometheus__rule_labels={
        "release": "kps", "app": "x"}, prometheus__runbook_url="https://wiki.example.org/fl"))
    groups = rule_groups(cfg)
    assert [(g["name"], g["interval"]) for g in groups] == [
        ("flmon-hospitals_eu-recording", "15s"), ("flmon-hospitals_eu-alerts", "15s")]
    assert [r["record"] for r in groups[0]["rules"]] == [
        "federation:fl_dp_epsilon_budget_used:ratio", "federation:fl_clients_failed:ratio",
        "federation_client:fl_client_failures:rate5m", "federation:fl_rounds_completed:rate5m",
        "federation:fl_model_updates:rate5m"]
    first = groups[1]["rules"][0]
    assert list(first) == ["alert", "expr", "for", "labels", "annotations"]
    assert (first["alert"], first["for"]) == ("FLLowTrainingAccuracy", "5m")
    assert first["labels"] == {"severity": "warning", "team": "ml", "federation": "hospitals_eu"}
    assert list(first["annotations"]) == ["summary", "description", "runbook_url"]
    assert first["annotations"]["runbook_url"] == (
        "https://wiki.example.org/fl#fllowtrainingaccuracy")

    obj = prometheus_rule(cfg)
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["kind"] == "PrometheusRule"
    assert obj["metadata"] == {
        "name": "flmon-hospitals-eu",
        "labels": {"app.kubernetes.io/name": "flmon",
                   "app.kubernetes.io/managed-by": "flmon-render", "app": "x", "release": "kps"},
        "annotations": {"flmon.dev/generated": "generated by flmon render, do not edit"},
    }
    assert list(obj["metadata"]["labels"])[2:] == ["app", "release"]
    assert obj["spec"] == {"groups": groups}


def test_with_every_alert_disabled_only_the_recording_rules_remain() -> None:
    data = minimal_data()
    data["alerts"] = {name: {"enabled": False} for name in (
        "FLLowTrainingAccuracy", "FLModelAccuracyDropped", "FLNoModelUpdates",
        "FLClientDropout", "FLRoundStalled", "FLClientUpdateAnomaly",
        "FLPrivacyBudgetNearlyExhausted", "FLPrivacyBudgetExhausted", "FLTelemetryRejected",
        "FLExporterDown", "FLSuperLinkDown", "FLNodeOffline", "FLRunFailed",
        "FLPrivacyLeakage")}
    groups = rule_groups(parse_config(data))
    assert [g["name"] for g in groups] == ["flmon-hospitals_eu-recording"]


def test_disabled_alerts_leave_the_others_in_order() -> None:
    cfg = parse_config(with_changes(example_data(), alerts__FLRoundStalled={"enabled": False},
                                    alerts__FLExporterDown={"enabled": False}))
    assert [r.alert for r in alert_rules(cfg)] == [
        "FLLowTrainingAccuracy", "FLModelAccuracyDropped", "FLNoModelUpdates",
        "FLClientDropout", "FLClientUpdateAnomaly", "FLPrivacyBudgetNearlyExhausted",
        "FLPrivacyBudgetExhausted", "FLTelemetryRejected", "FLSuperLinkDown",
        "FLNodeOffline", "FLRunFailed", "FLPrivacyLeakage"]


def test_an_alerts_context_carries_the_datadog_namespace() -> None:
    cfg = parse_config(with_changes(example_data(), datadog__namespace="fl_prod"))
    node = alerts.get("FLNodeOffline")
    assert node.monitor(alert_ctx(cfg, node)).query == (
        "max(last_1m):min:fl_prod.fl_supernode_online{federation:default} by {client} < 1")


def test_a_live_exporter_alone_is_down_when_it_is_not_up_or_absent() -> None:
    cfg = parse_config(with_changes(minimal_data(), scrape__pushgateway={"enabled": False},
                                    scrape__watch__enabled=False))
    (rule,) = [r for r in alert_rules(cfg) if r.alert == "FLExporterDown"]
    assert rule.expr == ('up{job="flmon-exporter",federation="hospitals_eu"} == 0\nor\n'
                         'absent(up{job="flmon-exporter",federation="hospitals_eu"})')


def test_with_the_watch_a_live_exporter_is_down_only_while_a_run_is_running() -> None:
    cfg = parse_config(with_changes(minimal_data(), scrape__pushgateway={"enabled": False}))
    (rule,) = [r for r in alert_rules(cfg) if r.alert == "FLExporterDown"]
    assert rule.expr == (
        '(up{job="flmon-exporter",federation="hospitals_eu"} == 0 and on (federation) '
        '(sum by (federation) (fl_runs{job="flmon-watch",federation="hospitals_eu",'
        'status="running"}) > 0))')


def test_the_federation_selector_of_any_job() -> None:
    ctx = alert_ctx(parse_config(example_data()), alerts.get("FLPrivacyLeakage"))
    assert ctx.fed_sel() == '{federation="default"}'
    assert ctx.fed_sel('dp="on"') == '{federation="default",dp="on"}'
