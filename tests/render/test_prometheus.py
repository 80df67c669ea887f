"""Rules, PrometheusRule, promtool tests and prometheus.yml, checked by promtool."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon import catalog
from flmon.alerts import exprs as alert_exprs
from flmon.config import ALERT_NAMES, load_config, parse_config
from flmon.render import RenderError, grafana, promql, render, rules
from flmon.render.validate import validate as validate_files

from .conftest import (
    EXAMPLE,
    REPO,
    demo_data,
    example_data,
    minimal_data,
    run_tool,
    with_changes,
)

DASHBOARD_VARS = {"$__rate_interval": "5m", "$client": ".*"}


def _all_rules(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules_file(promtool: str) -> None:
    result = run_tool(promtool, "check", "rules", str(REPO / "rules/flmon-rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 19 rules found" in result.stdout


def test_promtool_checks_the_prometheusrule_spec(promtool: str, tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "rules/flmon-prometheusrule.yaml").read_text(encoding="utf-8"))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"] == "flmon-default"
    plain = tmp_path / "spec.yaml"
    plain.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}), encoding="utf-8")
    result = run_tool(promtool, "check", "rules", str(plain))
    assert result.returncode == 0, result.stdout + result.stderr
    rules_doc = yaml.safe_load((REPO / "rules/flmon-rules.yaml").read_text(encoding="utf-8"))
    assert doc["spec"]["groups"] == rules_doc["groups"]


def test_every_alert_has_labels_annotations_and_a_runbook_section() -> None:
    runbooks = (REPO / "docs/runbooks.md").read_text(encoding="utf-8")
    alerts = [r for r in _all_rules(REPO / "rules/flmon-rules.yaml") if "alert" in r]
    assert [a["alert"] for a in alerts] == list(ALERT_NAMES)
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["labels"]["federation"] == "default"
        assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}
        assert "{{" not in alert["annotations"]["summary"]
        assert "federation default" in alert["annotations"]["description"].lower()
        assert "{{" in alert["annotations"]["description"]
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"## {alert['alert']}\n" in runbooks and anchor == alert["alert"].lower()
    per_client = {a["alert"] for a in alerts if "$labels.client" in a["annotations"]["description"]}
    assert per_client == {"FLClientDropout", "FLClientUpdateAnomaly", "FLNodeOffline"}


def test_seed_thresholds_and_severities() -> None:
    by_name = {r["alert"]: r for r in _all_rules(REPO / "rules/flmon-rules.yaml") if "alert" in r}
    low, drop = by_name["FLLowTrainingAccuracy"], by_name["FLModelAccuracyDropped"]
    assert "fl_training_accuracy" in low["expr"] and "< 0.85" in low["expr"]
    assert low["for"] == "5m" and low["labels"]["severity"] == "warning"
    assert "< 0.8\n" in drop["expr"] and drop["for"] == "5m"
    assert drop["labels"]["severity"] == "critical"
    assert by_name["FLPrivacyBudgetExhausted"]["labels"]["severity"] == "critical"


def test_promtool_unit_tests_pass(promtool: str) -> None:
    tests = sorted((REPO / "rules/tests").glob("*.yaml"))
    assert {t.stem for t in tests} == set(ALERT_NAMES)
    result = run_tool(promtool, "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_evaluate_recording_rules_before_the_alerts_reading_them() -> None:
    # promtool orders groups by Go map iteration when no order is given: an alert reading
    # a recorded series then lags one step now and then, and a boundary case fails at random.
    data = with_changes(minimal_data(), federation__name="clinics_north")
    files = render(parse_config(data))
    groups = [g["name"] for g in yaml.safe_load(files["rules/flmon-rules.yaml"])["groups"]]
    assert groups == ["flmon-clinics_north-recording", "flmon-clinics_north-alerts"]
    names = [n for n in files if n.startswith("rules/tests/")]
    assert names
    for name in names:
        assert yaml.safe_load(files[name])["group_eval_order"] == groups, name


def test_each_alert_has_firing_and_quiet_cases_with_labels_and_annotations() -> None:
    for path in sorted((REPO / "rules/tests").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        checks = [c for t in doc["tests"] for c in t["alert_rule_test"]]
        assert all(c["alertname"] == path.stem for c in checks)
        firing = [a for c in checks for a in c["exp_alerts"]]
        assert firing, f"{path.name}: no firing case"
        assert any(c["exp_alerts"] == [] for c in checks), f"{path.name}: no quiet case"
        for alert in firing:
            assert alert["exp_labels"]["severity"]
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}


def test_demo_config_with_short_durations_passes_its_own_tests(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(demo_data())
    text = (out / "rules/flmon-rules.yaml").read_text(encoding="utf-8")
    assert "for: 30s" in text and "[2m]" in text
    result = run_tool(promtool, "test", "rules", *map(str, sorted(out.glob("rules/tests/*.yaml"))))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", [
    {"scrape__pushgateway__enabled": False},
    {"scrape__live__enabled": False},
])
def test_single_source_configs_pass_their_own_tests(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path],
        variant: dict[str, Any]) -> None:
    out = render_dir(with_changes(minimal_data(), **variant))
    result = run_tool(promtool, "test", "rules", *map(str, sorted(out.glob("rules/tests/*.yaml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_tests_fail_against_rules_with_a_wrong_threshold(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    right = render_dir(example_data())
    wrong = render_dir(with_changes(example_data(),
                                    alerts__FLLowTrainingAccuracy__threshold=0.5,
                                    alerts__FLModelAccuracyDropped__threshold=0.4))
    # the rules of the wrong config, the tests of the right one
    (right / "rules/flmon-rules.yaml").write_bytes((wrong / "rules/flmon-rules.yaml").read_bytes())
    result = run_tool(promtool, "test", "rules",
                      str(right / "rules/tests/FLLowTrainingAccuracy.yaml"))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_tests_fail_when_the_nan_guard_is_missing(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(example_data())
    path = out / "rules/flmon-rules.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "FLModelAccuracyDropped":  # keep only `< 0.8`
                rule["expr"] = re.sub(r"\nor\nfl_training_accuracy\{[^}]*\} != "
                                      r"fl_training_accuracy\{[^}]*\}", "", rule["expr"])
                assert "!=" not in rule["expr"]
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = run_tool(promtool, "test", "rules",
                      str(out / "rules/tests/FLModelAccuracyDropped.yaml"))
    assert result.returncode != 0
    assert "NaN" in result.stdout + result.stderr


def test_prometheus_yml(promtool: str) -> None:
    path = REPO / "prometheus/prometheus.yml"
    result = run_tool(promtool, "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert set(jobs) == {"flmon-exporter", "flmon-pushgateway", "flmon-watch"}
    assert jobs["flmon-pushgateway"]["honor_labels"] is True
    assert "honor_labels" not in jobs["flmon-exporter"]
    for job in jobs.values():
        assert job["static_configs"][0]["labels"] == {"federation": "default"}
        for target in job["static_configs"][0]["targets"]:
            assert target.startswith("127.0.0.1:")
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"]
    assert doc["rule_files"] == ["../rules/flmon-rules.yaml"]


def _every_expr() -> list[tuple[str, str]]:
    exprs = [("rules/flmon-rules.yaml", r["expr"])
             for r in _all_rules(REPO / "rules/flmon-rules.yaml")]
    for path in sorted((REPO / "dashboards/grafana").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        exprs += [(path.name, e) for e in grafana.dashboard_exprs(doc)]
        for var in doc["templating"]["list"]:
            if var["type"] == "query":
                inner = var["query"]["query"]
                assert inner.startswith("label_values(") and inner.endswith(", client)")
                exprs.append((path.name, inner.removeprefix("label_values(")
                              .removesuffix(", client)")))
    return exprs


def _promtool_parse(promtool: str, tmp_path: Path, exprs: list[str]) -> Any:
    doc = {"groups": [{"name": "parse", "rules": [
        {"record": f"flmon_parse_check_{i}", "expr": _substitute(e)}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "parse.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return run_tool(promtool, "check", "rules", str(path))


def _substitute(expr: str) -> str:
    for var, value in DASHBOARD_VARS.items():
        expr = expr.replace(var, value)
    return expr


def test_every_promql_expression_parses(promtool: str, tmp_path: Path) -> None:
    exprs = [e for _, e in _every_expr()]
    assert len(exprs) > 60
    result = _promtool_parse(promtool, tmp_path, exprs)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = _promtool_parse(promtool, tmp_path, [*exprs, "sum(rate(fl_model_updates_total[5m])"])
    assert broken.returncode != 0


def test_every_promql_expression_names_only_catalog_metrics() -> None:
    known = catalog.sample_names() | set(rules.RECORDING_RULE_NAMES)
    seen: set[str] = set()
    for where, expr in _every_expr():
        names = promql.metric_names(_substitute(expr))
        assert names, f"{where}: no metric in {expr}"
        unknown = names - known - promql.PROMETHEUS_SERIES
        assert not unknown, f"{where}: {unknown}"
        seen |= names
    for name in ("fl_training_accuracy", "fl_model_updates_total", "fl_client_failures_total",
                 "fl_round_in_progress", "fl_client_anomaly_score", "fl_dp_epsilon_spent",
                 "fl_telemetry_rejected_total", "up"):
        assert name in seen


def test_metric_name_check_catches_unknown_names() -> None:
    assert promql.unknown_metrics('rate(fl_made_up_total{job="x"}[5m])') == {"fl_made_up_total"}
    assert promql.unknown_metrics(
        'sum by (client) (fl_training_acuracy) / on (job) group_left (x) up') == {
        "fl_training_acuracy"}
    assert promql.unknown_metrics(
        'histogram_quantile(0.9, sum by (le) (rate(fl_round_duration_seconds_bucket[5m])))'
        ' > bool 1e3 and fl_run_active offset 5m') == set()
    files = render(load_config(EXAMPLE))
    broken = dict(files)
    broken["rules/flmon-rules.yaml"] = files["rules/flmon-rules.yaml"].replace(
        "fl_training_accuracy{", "fl_training_acc{", 1)
    with pytest.raises(RenderError, match="fl_training_acc"):
        validate_files(broken)


def test_unknown_metric_in_a_renderer_writes_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from flmon.cli.main import main

    original = rules.recording_rules

    def with_bad_rule(cfg: Any) -> list[rules.RecordingRule]:
        return [*original(cfg), rules.RecordingRule("flmon:bad", "sum(fl_not_in_catalog)")]

    monkeypatch.setattr(rules, "recording_rules", with_bad_rule)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    code = main(["render", "--config", str(EXAMPLE), "--out", str(out)])
    assert code == 2
    assert "fl_not_in_catalog" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_first_increment_of_a_new_counter_series_counts(
        promtool: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = render(parse_config(example_data()))
    monkeypatch.setattr(alert_exprs, "window_increase",
                        lambda metric, sel, window: f"increase({metric}{sel}[{window}])")
    naive = render(parse_config(example_data()))
    assert naive["rules/flmon-rules.yaml"] != files["rules/flmon-rules.yaml"]
    (tmp_path / "tests").mkdir()
    (tmp_path / "flmon-rules.yaml").write_text(naive["rules/flmon-rules.yaml"],
                                               encoding="utf-8")
    for name in ("FLTelemetryRejected", "FLClientDropout"):
        test = tmp_path / "tests" / f"{name}.yaml"
        test.write_text(files[f"rules/tests/{name}.yaml"], encoding="utf-8")
        result = run_tool(promtool, "test", "rules", str(test))
        assert result.returncode != 0, name
        assert "new" in result.stdout + result.stderr


def test_prometheusrule_name_is_dns_1123() -> None:
    files = render(parse_config(minimal_data()))
    doc = yaml.safe_load(files["rules/flmon-prometheusrule.yaml"])
    assert doc["metadata"]["name"] == "flmon-hospitals-eu"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


EDGE_CONFIGS: dict[str, dict[str, Any]] = {
    "lowest thresholds, short windows": {
        "alerts__FLLowTrainingAccuracy": {"threshold": 0.0, "for": "0m"},
        "alerts__FLModelAccuracyDropped": {"threshold": 0.0, "for": "90s"},
        "alerts__FLClientDropout": {"threshold": 1, "window": "5m", "for": "0m"},
        "alerts__FLRoundStalled": {"threshold": 59},
        "alerts__FLClientUpdateAnomaly": {"threshold": 0},
        "alerts__FLPrivacyBudgetNearlyExhausted": {"threshold": 0.0},
        "alerts__FLTelemetryRejected": {"threshold": 0, "window": "1m"},
    },
    "highest thresholds, long durations": {
        "alerts__FLLowTrainingAccuracy": {"threshold": 1.0, "for": "1h"},
        "alerts__FLModelAccuracyDropped": {"threshold": 1.0},
        "alerts__FLClientDropout": {"threshold": 50, "window": "10m"},
        "alerts__FLRoundStalled": {"threshold": 7200, "for": "15m"},
        "alerts__FLClientUpdateAnomaly": {"threshold": 100, "for": "2m"},
        "alerts__FLPrivacyBudgetNearlyExhausted": {"threshold": 1.0},
        "alerts__FLTelemetryRejected": {"threshold": 25.5, "window": "5m"},
        "alerts__FLNoModelUpdates": {"window": "1h", "for": "10m"},
    },
    "sub-minute durations and windows, as demos use": {
        "alerts__FLLowTrainingAccuracy": {"for": "5s"},
        "alerts__FLModelAccuracyDropped": {"for": "5s"},
        "alerts__FLNoModelUpdates": {"for": "10s", "window": "2m"},
        "alerts__FLClientDropout": {"for": "0s", "threshold": 1, "window": "1m"},
        "alerts__FLRoundStalled": {"for": "0s", "threshold": 60},
        "alerts__FLClientUpdateAnomaly": {"for": "0s", "threshold": 20, "window": "30s"},
        "alerts__FLTelemetryRejected": {"for": "0s", "window": "1m"},
        "alerts__FLExporterDown": {"for": "30s"},
    },
    "fractional values, other severities, some alerts off": {
        "alerts__FLLowTrainingAccuracy": {"threshold": 0.333},
        "alerts__FLModelAccuracyDropped": {"threshold": 0.1234},
        "alerts__FLRoundStalled": {"threshold": 100.5},
        "alerts__FLClientUpdateAnomaly": {"threshold": 2.25, "severity": "critical"},
        "alerts__FLPrivacyBudgetNearlyExhausted": {"threshold": 0.3},
        "alerts__FLExporterDown": {"severity": "info", "for": "0m"},
        "alerts__FLNoModelUpdates": {"enabled": False},
    },
}


@pytest.mark.parametrize("changes", list(EDGE_CONFIGS.values()), ids=list(EDGE_CONFIGS))
def test_edge_configs_pass_their_own_tests(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path],
        changes: dict[str, Any]) -> None:
    out = render_dir(with_changes(minimal_data(), **changes))
    tests = sorted(out.glob("rules/tests/*.yaml"))
    enabled = {name for name in ALERT_NAMES
               if changes.get(f"alerts__{name}", {}).get("enabled", True)}
    assert {t.stem for t in tests} == enabled
    result = run_tool(promtool, "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


# --- one problem, one alert; the run's life ------------------------------------------

# (what the rules lose, how, the alerts whose promtool cases must then fail)
MUTATIONS: dict[str, tuple[Callable[[str], str], set[str]]] = {
    "rules keep the job label (one alert per path)": (
        lambda text: text.replace("max without (job, instance)", "max without (instance)"),
        {"FLClientDropout", "FLLowTrainingAccuracy", "FLModelAccuracyDropped",
         "FLRoundStalled", "FLTelemetryRejected"}),
    "alerts of an ended run never go stale": (
        lambda text: re.sub(r"\n *unless on \(federation, run_id\)\n *\(\(time\(\) - max by "
                            r"\(federation, run_id\) \(fl_run_end_timestamp_seconds\{[^}]*\} > "
                            r"0\)\) > 1800\)", "", text),
        {"FLClientUpdateAnomaly", "FLLowTrainingAccuracy", "FLModelAccuracyDropped",
         "FLPrivacyBudgetExhausted"}),
    "alerts about a run in progress outlive the run": (
        lambda text: re.sub(r"\n *and on \(federation, run_id\)\n *\(min by \(federation, "
                            r"run_id\) \(fl_run_active\{[^}]*\}\) == 1\)", "", text),
        {"FLClientDropout", "FLNoModelUpdates", "FLRoundStalled"}),
    "alerts about a run in progress ignore the SuperLink (a killed ServerApp)": (
        lambda text: re.sub(r"\n *and on \(federation, run_id\)\n *\(max by \(federation, "
                            r"run_id\) \(fl_run_running\{[^}]*\}\) == 1\)", "", text),
        {"FLClientDropout", "FLNoModelUpdates", "FLRoundStalled"}),
    "new series counted by 'unless offset' (history after a restart)": (
        lambda text: re.sub(r"and \(time\(\) - (\w+)_created(\{[^}]*\})\) < \d+\)",
                            lambda m: f"unless {m.group(1)}_total{m.group(2)} offset 30m)", text),
        {"FLClientDropout", "FLTelemetryRejected"}),
    "FLNoModelUpdates without a whole window observed": (
        lambda text: text.replace(" offset 30m) == 1", ") == 1"), {"FLNoModelUpdates"}),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_promtool_cases_catch_rules_that_double_or_outlive_a_problem(
        promtool: str, tmp_path: Path, name: str) -> None:
    mutate, must_fail = MUTATIONS[name]
    files = render(load_config(EXAMPLE))
    (tmp_path / "tests").mkdir()
    text = files["rules/flmon-rules.yaml"]
    mutated = mutate(text)
    assert mutated != text
    (tmp_path / "flmon-rules.yaml").write_text(mutated, encoding="utf-8")
    failed = set()
    for alert in ALERT_NAMES:
        test = tmp_path / "tests" / f"{alert}.yaml"
        test.write_text(files[f"rules/tests/{alert}.yaml"], encoding="utf-8")
        if run_tool(promtool, "test", "rules", str(test)).returncode != 0:
            failed.add(alert)
    assert failed == must_fail


def test_a_config_unlike_the_example_passes_its_own_tests(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(with_changes(
        minimal_data(),
        scrape__live__job="fl-live", scrape__live__targets=["10.0.0.5:9000"],
        scrape__pushgateway__enabled=False,
        scrape__watch__enabled=True, scrape__watch__job="fl-superlink-watch",
        scrape__watch__targets=["10.0.0.6:9100"],
        lifecycle__stale_after="10m",
    ))
    rules_text = (out / "rules/flmon-rules.yaml").read_text(encoding="utf-8")
    assert 'job="fl-live",federation="hospitals_eu"' in rules_text
    assert 'job="fl-superlink-watch",federation="hospitals_eu"' in rules_text
    assert "flmon-pushgateway" not in rules_text and 'job="flmon"' not in rules_text
    doc = yaml.safe_load((out / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
    assert [j["job_name"] for j in doc["scrape_configs"]] == ["fl-live", "fl-superlink-watch"]
    result = run_tool(promtool, "check", "config", str(out / "prometheus/prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    tests = sorted(out.glob("rules/tests/*.yaml"))
    assert {t.stem for t in tests} == set(ALERT_NAMES)
    result = run_tool(promtool, "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_watch_its_alerts_are_not_rendered(
        render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(with_changes(minimal_data(), scrape__watch__enabled=False))
    names = {r.get("alert") for r in _all_rules(out / "rules/flmon-rules.yaml")} - {None}
    assert names == set(ALERT_NAMES) - {"FLSuperLinkDown", "FLNodeOffline",
                                               "FLRunFailed"}
    doc = yaml.safe_load((out / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
    assert [j["job_name"] for j in doc["scrape_configs"]] == ["flmon-exporter",
                                                             "flmon-pushgateway"]


def test_every_declared_alert_has_a_runbook_whose_first_query_names_catalog_metrics() -> None:
    text = (REPO / "docs/runbooks.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (FL\w+)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    assert list(sections) == list(ALERT_NAMES)
    for name, body in sections.items():
        queries = re.findall(r"```promql\n(.*?)```", body, re.S)
        assert queries, f"{name}: no first query"
        for line in queries[0].strip().splitlines():
            assert promql.metric_names(line), f"{name}: {line}"
            assert not promql.unknown_metrics(line, rules.RECORDING_RULE_NAMES), (name, line)
