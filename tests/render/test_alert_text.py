"""What every alert says for the default configuration, written out by hand.

The promtool cases of ``flmon/alerts/`` build their expected annotations with the same
sentence builders as the rules' templates, so a sentence worded wrongly in both places
passes them. Here the input series, the labels and the full text Prometheus must send are
literals: the rules rendered from ``examples/flmon.yaml`` and from the built-in defaults
are run by ``promtool test rules`` against them. A figure printed wrongly (a percentage
x10, the threshold, the window, the run) fails.

The summaries and the runbook URL are in :data:`SUMMARIES` and :data:`RUNBOOK`: one small
table, so that a change of their style is one edit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon.alerts import quality, security
from flmon.config import parse_config
from flmon.render import render
from flmon.render.prometheus import RULES_PATH
from flmon.render.rules import RECORDING_RULE_NAMES

from .conftest import example_data, run_tool

SUMMARIES: dict[str, str] = {
    "FLLowTrainingAccuracy": "Training accuracy is low.",
    "FLModelAccuracyDropped": "Model accuracy dropped.",
    "FLNoModelUpdates": "No model updates while a run is in progress.",
    "FLClientDropout": "A client keeps failing.",
    "FLRoundStalled": "A round is stalled.",
    "FLClientUpdateAnomaly": "A client sent an anomalous model update.",
    "FLPrivacyBudgetNearlyExhausted": "Privacy budget nearly exhausted.",
    "FLPrivacyBudgetExhausted": "Privacy budget exhausted.",
    "FLTelemetryRejected": "Client telemetry was rejected.",
    "FLExporterDown": "Prometheus cannot scrape flmon's metrics.",
    "FLSuperLinkDown": "The SuperLink does not answer.",
    "FLNodeOffline": "A SuperNode is offline.",
    "FLRunFailed": "A run failed.",
    "FLPrivacyLeakage": "A membership-inference attack succeeds on the model updates.",
}
RUNBOOK = "https://github.com/flmon/flmon/blob/main/docs/runbooks.md"
"""``prometheus.runbook_url`` of the default configuration."""

PUSHED = {"job": "flmon", "instance": "127.0.0.1:9091", "federation": "default"}
LIVE = {"job": "flmon-exporter", "instance": "127.0.0.1:9464", "federation": "default"}
WATCH = {"job": "flmon-watch", "instance": "127.0.0.1:9465", "federation": "default"}
PG_UP = {"job": "flmon-pushgateway", "instance": "127.0.0.1:9091", "federation": "default"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def run(run_id: str, active: str = "1x60", end: str = "0x60",
        running: str = "1x60") -> list[dict[str, str]]:
    """A run reported through the Pushgateway (the live exporter is not scraped here), and
    the watch's word that the SuperLink has it in progress (``running``)."""
    labels = {**PUSHED, "run_id": run_id}
    return [series("fl_run_active", labels, active),
            series("fl_run_start_timestamp_seconds", labels, "0x60"),
            series("fl_run_end_timestamp_seconds", labels, end),
            series("fl_run_running", {**WATCH, "run_id": run_id}, running)]


def alert(name: str, labels: dict[str, str], description: str) -> dict[str, Any]:
    return {"exp_labels": labels,
            "exp_annotations": {"summary": SUMMARIES[name], "description": description,
                                "runbook_url": f"{RUNBOOK}#{name.lower()}"}}


def check(name: str, at: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": list(alerts)}


def case(name: str, inputs: list[dict[str, str]], *checks: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "interval": "1m", "input_series": inputs,
            "alert_rule_test": list(checks)}


def labels(severity: str, team: str, **more: str) -> dict[str, str]:
    return {"federation": "default", "severity": severity, "team": team, **more}


R12 = {**PUSHED, "run_id": "12"}
R13 = {**PUSHED, "run_id": "13"}

LOW = "FLLowTrainingAccuracy"
DROP = "FLModelAccuracyDropped"

BETWEEN_RUNS = ("the live exporter is gone; the Pushgateway still holds a crashed run's "
                "fl_run_active 1, but the watch sees no run running: no alert")
"""Quiet with ``scrape.watch``; without it the Pushgateway's word is all there is."""

KILLED = ("the ServerApp of run 12 was killed at 41m with a round in progress: the "
          "Pushgateway still says active, the watch no longer sees it running: "
          "FLRoundStalled resolves")
"""Resolved with ``scrape.watch``; without it the Pushgateway's word is all there is."""

STALLED_AT_43M = ("A round of run 12 of federation default has been in progress for 43m 0s, "
                  "longer than 30m.")

CASES: list[dict[str, Any]] = [
    case("two runs at once, both below the lines: each alert names its run",
         [*run("12"), *run("13"),
          series("fl_training_accuracy", R12, "0.72x20"),
          series("fl_training_accuracy", R13, "0.825x20")],
         check(LOW, "10m",
               alert(LOW, labels("warning", "ml", run_id="12"),
                     "Aggregated training accuracy of run 12 of federation default is 72%, "
                     "below the 85% line or not a valid ratio (NaN)."),
               alert(LOW, labels("warning", "ml", run_id="13"),
                     "Aggregated training accuracy of run 13 of federation default is 82.5%, "
                     "below the 85% line or not a valid ratio (NaN).")),
         check(DROP, "10m",
               alert(DROP, labels("critical", "ml", run_id="12"),
                     "Aggregated training accuracy of run 12 of federation default dropped "
                     "to 72%, below the critical 80% line or not a valid ratio (NaN): the "
                     "global model is not fit for use."))),
    case("a NaN aggregate",
         [*run("12"), series("fl_training_accuracy", R12, "NaN " * 20)],
         check(LOW, "10m",
               alert(LOW, labels("warning", "ml", run_id="12"),
                     "Aggregated training accuracy of run 12 of federation default is NaN%, "
                     "below the 85% line or not a valid ratio (NaN)."))),
    case("run 12 ended at 10m: its alert stays for stale_after (30m), then resolves",
         [*run("12", active="1x9 0x50", end="0x9 600x50"),
          series("fl_training_accuracy", R12, "0.5x59")],
         check(LOW, "38m",
               alert(LOW, labels("warning", "ml", run_id="12"),
                     "Aggregated training accuracy of run 12 of federation default is 50%, "
                     "below the 85% line or not a valid ratio (NaN).")),
         check(LOW, "42m")),
    case("run 12 has been in progress for 40m without a model update",
         [*run("12")],
         check("FLNoModelUpdates", "40m",
               alert("FLNoModelUpdates", labels("warning", "ml", run_id="12"),
                     "Run 12 of federation default is in progress but received no model "
                     "update from any client in the last 30m."))),
    case("site-a of run 12 fails once a minute",
         [*run("12"),
          series("fl_client_failures_total",
                 {**R12, "phase": "train", "client": "site-a", "error": "node_unavailable"},
                 "0+1x60"),
          series("fl_client_failures_created",
                 {**R12, "phase": "train", "client": "site-a", "error": "node_unavailable"},
                 "0x60")],
         check("FLClientDropout", "40m",
               alert("FLClientDropout", labels("warning", "platform", run_id="12",
                                               client="site-a"),
                     "Client site-a of federation default failed 30 times in the last 30m "
                     "(run 12, threshold 3): unreachable node, timeout or ClientApp error."))),
    case("a round of run 12 started at 0 and is still in progress at 40m",
         [*run("12"), series("fl_round_start_timestamp_seconds", R12, "0x60"),
          series("fl_round_in_progress", R12, "1x60")],
         check("FLRoundStalled", "40m",
               alert("FLRoundStalled", labels("warning", "platform", run_id="12"),
                     "A round of run 12 of federation default has been in progress for "
                     "40m 0s, longer than 30m."))),
    case("run 12 ended (fl_run_active 0) with its round in progress: FLRoundStalled resolves",
         [*run("12", active="1x40 0x19", end="0x40 2460x19", running="1x41 stale"),
          series("fl_round_start_timestamp_seconds", R12, "0x60"),
          series("fl_round_in_progress", R12, "1x60")],
         check("FLRoundStalled", "35m",
               alert("FLRoundStalled", labels("warning", "platform", run_id="12"),
                     "A round of run 12 of federation default has been in progress for "
                     "35m 0s, longer than 30m.")),
         check("FLRoundStalled", "43m")),
    case(KILLED,
         [*run("12", running="1x40 stale"),
          series("fl_round_start_timestamp_seconds", R12, "0x60"),
          series("fl_round_in_progress", R12, "1x60")],
         check("FLRoundStalled", "35m",
               alert("FLRoundStalled", labels("warning", "platform", run_id="12"),
                     "A round of run 12 of federation default has been in progress for "
                     "35m 0s, longer than 30m.")),
         check("FLRoundStalled", "43m")),
    case("site-b's update of run 12 scores 5.25",
         [*run("12"), series("fl_client_anomaly_score", {**R12, "client": "site-b"}, "5.25x20"),
          series("fl_client_anomaly_score", {**R12, "client": "site-a"}, "0.4x20")],
         check("FLClientUpdateAnomaly", "10m",
               alert("FLClientUpdateAnomaly", labels("warning", "security", run_id="12",
                                                     client="site-b"),
                     "Client site-b of federation default sent a model update with anomaly "
                     "score 5.25 (threshold 3.5, or flagged by the server in the last 30m; "
                     "run 12): possible poisoning or a broken client."))),
    case("run 12 spent 7 of its epsilon budget of 8",
         [*run("12"), series("fl_dp_epsilon_spent", R12, "7x20"),
          series("fl_dp_epsilon_budget", R12, "8x20")],
         check("FLPrivacyBudgetNearlyExhausted", "10m",
               alert("FLPrivacyBudgetNearlyExhausted",
                     labels("warning", "security", run_id="12"),
                     "Run 12 of federation default has spent 87.5% of its "
                     "differential-privacy epsilon budget (warning at 80%).")),
         check("FLPrivacyBudgetExhausted", "10m")),
    case("run 12 spent 10 of its epsilon budget of 8",
         [*run("12"), series("fl_dp_epsilon_spent", R12, "10x20"),
          series("fl_dp_epsilon_budget", R12, "8x20")],
         check("FLPrivacyBudgetExhausted", "10m",
               alert("FLPrivacyBudgetExhausted", labels("critical", "security", run_id="12"),
                     "Run 12 of federation default has spent 125% of its "
                     "differential-privacy epsilon budget: further rounds break the privacy "
                     "guarantee."))),
    case("run 12 rejects two non-finite telemetry records a minute",
         [*run("12"),
          series("fl_telemetry_rejected_total", {**R12, "reason": "non_finite"}, "0+2x60"),
          series("fl_telemetry_rejected_created", {**R12, "reason": "non_finite"}, "0x60")],
         check("FLTelemetryRejected", "20m",
               alert("FLTelemetryRejected", labels("warning", "security", run_id="12",
                                                   reason="non_finite"),
                     "Federation default rejected 30 client telemetry records or fields in "
                     "the last 15m (run 12, reason non_finite)."))),
    case("the Pushgateway is down",
         [series("up", PG_UP, "0x20")],
         check("FLExporterDown", "10m",
               alert("FLExporterDown", labels("critical", "platform", job="flmon-pushgateway",
                                              instance="127.0.0.1:9091"),
                     "Prometheus cannot scrape flmon-pushgateway (127.0.0.1:9091) of "
                     "federation default: alerts and dashboards of this federation are "
                     "blind."))),
    case("the live exporter is down while run 12 is in progress",
         [*run("12"), series("up", PG_UP, "1x20"), series("up", LIVE, "0x20"),
          series("fl_runs", {**WATCH, "status": "running"}, "1x20")],
         check("FLExporterDown", "10m",
               alert("FLExporterDown", labels("critical", "platform", job="flmon-exporter",
                                              instance="127.0.0.1:9464"),
                     "Prometheus cannot scrape flmon-exporter (127.0.0.1:9464) of "
                     "federation default: alerts and dashboards of this federation are "
                     "blind."))),
    case(BETWEEN_RUNS,
         [series("fl_run_active", R12, "1x20"), series("up", PG_UP, "1x20"),
          series("up", LIVE, "0x20"), series("fl_runs", {**WATCH, "status": "running"}, "0x20"),
          series("fl_runs", {**WATCH, "status": "completed"}, "3x20")],
         check("FLExporterDown", "10m")),
    case("the SuperLink does not answer the watch",
         [series("up", WATCH, "1x20"), series("fl_superlink_up", WATCH, "0x20")],
         check("FLSuperLinkDown", "5m",
               alert("FLSuperLinkDown", labels("critical", "platform"),
                     "The SuperLink of federation default does not answer flmon watch's "
                     "Control API polls: runs and nodes of this federation are not seen, and "
                     "no run can start."))),
    case("the watch cannot be scraped",
         [series("up", WATCH, "0x20")],
         check("FLSuperLinkDown", "5m",
               alert("FLSuperLinkDown", labels("critical", "platform"),
                     "Prometheus cannot scrape flmon watch (job flmon-watch) of federation "
                     "default: runs and nodes of this federation are not seen, and no run "
                     "can start."))),
    case("site-b is offline",
         [series("fl_supernode_online", {**WATCH, "client": "site-a"}, "1x20"),
          series("fl_supernode_online", {**WATCH, "client": "site-b"}, "1 0x19")],
         check("FLNodeOffline", "5m",
               alert("FLNodeOffline", labels("warning", "platform", client="site-b"),
                     "SuperNode site-b of federation default is offline: the SuperLink missed "
                     "its heartbeats. It takes no part in rounds until it is back (or is "
                     "unregistered)."))),
    case("a run failed at 10m, while a run completes every minute",
         [series("fl_runs_finished_total", {**WATCH, "result": "failed"}, "2x9 3x30"),
          series("fl_runs_finished_total", {**WATCH, "result": "completed"}, "5+1x40")],
         check("FLRunFailed", "15m",
               alert("FLRunFailed", labels("warning", "platform"),
                     "1 run(s) of federation default ended with the failed sub-status in the "
                     "last 15m: see `flwr ls` and the ServerApp's logs.")),
         check("FLRunFailed", "30m")),
    case("the attack reaches AUC 0.83 without DP, 0.55 with DP",
         [series("fl_privacy_attack_auc", {**PUSHED, "attack": "gradient_alignment",
                                           "dp": "off"}, "0.83x20"),
          series("fl_privacy_attack_auc", {**PUSHED, "attack": "gradient_alignment",
                                           "dp": "on"}, "0.55x20")],
         check("FLPrivacyLeakage", "5m",
               alert("FLPrivacyLeakage", labels("warning", "security",
                                                attack="gradient_alignment", dp="off"),
                     "The gradient_alignment membership-inference attack reaches ROC AUC 0.83 "
                     "on the model updates of federation default (DP off; alert above 0.6, "
                     "0.5 is chance): the updates reveal which records a client trained "
                     "on."))),
]

L12 = {**LIVE, "run_id": "12"}


def both(name: str, labels: dict[str, str], values: str) -> list[dict[str, str]]:
    """The same series on the live exporter and the Pushgateway (counted once)."""
    return [series(name, {**L12, **labels}, values), series(name, {**R12, **labels}, values)]


def sample(record: str, value: float, **more: str) -> dict[str, Any]:
    inner = ", ".join(f'{k}="{v}"' for k, v in {"federation": "default", **more}.items())
    return {"labels": f"{record}{{{inner}}}", "value": value}


RECORDED: dict[str, Any] = {
    "name": "the recording rules count a value carried by both paths once",
    "interval": "1m",
    "input_series": [
        *both("fl_dp_epsilon_spent", {}, "6x20"),
        *both("fl_dp_epsilon_budget", {}, "8x20"),
        series("fl_dp_epsilon_spent", {**R13}, "3x20"),
        series("fl_dp_epsilon_budget", {**R13}, "0x20"),  # unbounded: no ratio
        *both("fl_clients_failed", {"phase": "train"}, "1x20"),
        *both("fl_clients_selected", {"phase": "train"}, "4x20"),
        *both("fl_client_failures_total", {"client": "site-a", "phase": "train",
                                           "error": "timeout"}, "0+30x20"),
        *both("fl_client_failures_total", {"client": "site-a", "phase": "evaluate",
                                           "error": "node_unavailable"}, "0+30x20"),
        *both("fl_rounds_completed_total", {}, "0+6x20"),
        *both("fl_model_updates_total", {"client": "site-a"}, "0+30x20"),
        *both("fl_model_updates_total", {"client": "site-b"}, "0+90x20"),
    ],
    "promql_expr_test": [
        {"expr": "federation:fl_dp_epsilon_budget_used:ratio", "eval_time": "10m",
         "exp_samples": [sample("federation:fl_dp_epsilon_budget_used:ratio", 0.75,
                                run_id="12")]},
        {"expr": "federation:fl_clients_failed:ratio", "eval_time": "10m",
         "exp_samples": [sample("federation:fl_clients_failed:ratio", 0.25, run_id="12",
                                phase="train")]},
        {"expr": "federation_client:fl_client_failures:rate5m", "eval_time": "10m",
         "exp_samples": [sample("federation_client:fl_client_failures:rate5m", 1.0,
                                run_id="12", client="site-a")]},
        {"expr": "federation:fl_rounds_completed:rate5m", "eval_time": "10m",
         "exp_samples": [sample("federation:fl_rounds_completed:rate5m", 0.1, run_id="12")]},
        {"expr": "federation:fl_model_updates:rate5m", "eval_time": "10m",
         "exp_samples": [sample("federation:fl_model_updates:rate5m", 2.0, run_id="12")]},
    ],
}
"""The recording rules (dashboards read them, FLPrivacyBudget* alert on the first)."""

WATCH_ALERTS = ("FLSuperLinkDown", "FLNodeOffline", "FLRunFailed")
"""Rendered only with ``scrape.watch`` enabled (the example enables it, the defaults do not)."""

BUILT_IN_DEFAULTS: dict[str, Any] = {
    "federation": {"name": "default"},
    "slack": {"webhook_url_file": "/run/secrets/slack-webhook",
              "channels": {"critical": "#fl-critical", "warning": "#fl-alerts",
                           "info": "#fl-info"}},
}


def _without_watch(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cases with nothing expected of the alerts that read ``flmon watch``."""
    out = [{**t, "alert_rule_test": [{**c, "exp_alerts": []} if c["alertname"] in WATCH_ALERTS
                                     else c for c in t["alert_rule_test"]]} for t in cases]
    for t in out:
        if t["name"] == BETWEEN_RUNS:  # the Pushgateway's word is all there is: it fires
            t["alert_rule_test"] = [check("FLExporterDown", "10m", alert(
                "FLExporterDown", labels("critical", "platform", job="flmon-exporter",
                                         instance="127.0.0.1:9464"),
                "Prometheus cannot scrape flmon-exporter (127.0.0.1:9464) of federation "
                "default: alerts and dashboards of this federation are blind."))]
        if t["name"] == KILLED:  # nothing says the run is over: it keeps firing
            t["alert_rule_test"] = [*t["alert_rule_test"][:1], check(
                "FLRoundStalled", "43m", alert("FLRoundStalled", labels(
                    "warning", "platform", run_id="12"), STALLED_AT_43M))]
    return out


def _promtool_test(promtool: str, tmp_path: Path, data: dict[str, Any],
                   cases: list[dict[str, Any]] = CASES) -> str:
    """Render the rules of ``data``, run ``cases`` on them; promtool's output on failure."""
    rules = tmp_path / "flmon-rules.yaml"
    rules.write_text(render(parse_config(data), only=["prometheus"])[RULES_PATH],
                     encoding="utf-8")
    test = tmp_path / "literal.yaml"
    doc = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": [*cases, RECORDED]}
    test.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = run_tool(promtool, "test", "rules", str(test))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_every_alert_and_recording_rule_has_a_literal_case() -> None:
    checked = {c["alertname"] for t in CASES for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert checked == set(SUMMARIES)
    assert {t["expr"] for t in RECORDED["promql_expr_test"]} == set(RECORDING_RULE_NAMES)
    rendered = {r["alert"] for g in yaml.safe_load(
        render(parse_config(example_data()), only=["prometheus"])[RULES_PATH])["groups"]
        for r in g["rules"] if "alert" in r}
    assert rendered == set(SUMMARIES)


def test_the_example_configuration_says_these_words(promtool: str, tmp_path: Path) -> None:
    assert _promtool_test(promtool, tmp_path, example_data()) == ""


def test_the_built_in_defaults_say_the_same_words(promtool: str, tmp_path: Path) -> None:
    cfg = parse_config(BUILT_IN_DEFAULTS)
    assert cfg.scrape.watch.enabled  # the watch is scraped unless turned off
    assert _promtool_test(promtool, tmp_path, BUILT_IN_DEFAULTS) == ""


def test_the_defaults_without_the_watch_say_the_same_words(promtool: str,
                                                           tmp_path: Path) -> None:
    data = {**BUILT_IN_DEFAULTS, "scrape": {"watch": {"enabled": False}}}
    assert not parse_config(data).scrape.watch.enabled
    assert _promtool_test(promtool, tmp_path, data, _without_watch(CASES)) == ""


def test_a_percentage_printed_x10_fails(promtool: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def x10(value: float) -> str:
        return f"{value * 1000:.4g}%"

    for module in (quality, security):
        monkeypatch.setattr(module, "percent", x10)
    out = _promtool_test(promtool, tmp_path, example_data())
    assert "below the 850% line" in out
    assert "warning at 800%" in out
