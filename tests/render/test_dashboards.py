"""Grafana, Kibana, Datadog and Elasticsearch outputs: structure, references, models."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from datadog_api_client import Configuration
from datadog_api_client.model_utils import validate_and_convert_types
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor

from flmon import catalog
from flmon.config import ALERT_NAMES, parse_config
from flmon.render import render
from flmon.render.datadog import link_composite
from flmon.render.validate import kibana_problems

from .conftest import REPO, minimal_data, with_changes

GRAFANA_UNITS = {"percentunit", "s", "none", "short", "cps", "Bps", "bool_yes_no"}


def _grafana() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((REPO / "dashboards/grafana").glob("*.json"))}


def test_grafana_dashboards_structure() -> None:
    dashboards = _grafana()
    assert set(dashboards) == {"overview", "clients", "security"}
    uids = set()
    for name, doc in dashboards.items():
        assert doc["uid"] == f"flmon-default-{name}" and len(doc["uid"]) <= 40
        uids.add(doc["uid"])
        assert doc["title"].startswith("flmon / default / ")
        assert isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
        variables = {v["name"]: v for v in doc["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["datasource"]["current"]["value"] == "Prometheus"
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)) and len(ids) >= 8
        for panel in doc["panels"]:
            if panel["type"] == "row":  # a section header, no queries
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            unit = panel["fieldConfig"]["defaults"].get("unit")
            assert unit in GRAFANA_UNITS, f"{name}/{panel['title']}: unit {unit!r}"
            assert panel["targets"], panel["title"]
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                expr = target["expr"]
                if re.search(r"\b(rate|increase|irate)\(", expr) and "[" in expr:
                    windows = re.findall(r"\[([^\]]+)\]", expr)
                    if "increase(" not in expr or panel["type"] != "stat":
                        assert windows == ["$__rate_interval"] * len(windows), expr
                assert 'federation="default"' in expr or "federation:" in expr, expr
    assert len(uids) == 3


def test_grafana_units_match_the_catalog() -> None:
    for doc in _grafana().values():
        for panel in doc["panels"]:
            if panel["type"] == "row":
                continue
            unit = panel["fieldConfig"]["defaults"]["unit"]
            for target in panel["targets"]:
                names = re.findall(r"\b(fl_[a-z_]+)\{", target["expr"])
                for name in names:
                    base = name.removesuffix("_bucket")
                    if base.endswith("_created"):  # a counter's creation time
                        base = base.removesuffix("_created") + "_total"
                    spec = catalog.BY_NAME.get(base)
                    assert spec is not None, name
                    if spec.unit == "ratio" and panel["title"] != "Epsilon spent":
                        assert unit == "percentunit", panel["title"]
                    if spec.unit == "seconds" and "rate(" not in target["expr"] and (
                            "time() -" in target["expr"] or spec.type == "histogram"
                            or name.endswith("duration_seconds")):
                        assert unit == "s", panel["title"]


def test_kibana_saved_objects() -> None:
    lines = (REPO / "dashboards/kibana/flmon.ndjson").read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    types = [o["type"] for o in objects]
    assert types[0] == "index-pattern" and types.count("search") == 4
    assert "dashboard" in types and "visualization" in types
    view = objects[0]["attributes"]
    assert view == {"title": "flmon-logs-*", "name": "flmon logs (default)",
                    "timeFieldName": "@timestamp"}
    assert kibana_problems(objects) == []
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids))
    searches = {o["attributes"]["title"]: o for o in objects if o["type"] == "search"}
    errors = json.loads(searches["flmon / default / Errors"]["attributes"]
                        ["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert "log.level" in errors["query"]["query"]
    assert errors["indexRefName"] == "kibanaSavedObjectMeta.searchSourceJSON.index"
    security = searches["flmon / default / Security events"]["attributes"]
    source = json.loads(security["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"]["query"].startswith('(event.kind : "alert") and ')
    assert 'labels.federation : "default"' in source["query"]["query"]
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert len(panels) == 5
    refs = {r["name"]: r for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == set(refs)


def test_kibana_reference_check_catches_dangling_references() -> None:
    lines = (REPO / "dashboards/kibana/flmon.ndjson").read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    dashboard["references"][1]["id"] = "no-such-search"
    problems = kibana_problems(objects)
    assert len(problems) == 1 and "no-such-search" in problems[0]


def _deserialize(data: dict[str, Any], model: type[Any]) -> Any:
    obj = validate_and_convert_types(data, (model,), ["root"], True, True, Configuration())
    assert isinstance(obj, model)
    assert not obj._unparsed, f"{model.__name__} did not deserialize cleanly"
    return obj


def test_datadog_monitors_deserialize_and_query_the_right_metrics() -> None:
    paths = sorted((REPO / "datadog/monitors").glob("*.json"))
    assert {p.stem for p in paths} == set(ALERT_NAMES)
    parts = sorted((REPO / "datadog/monitors/parts").glob("*.json"))
    assert {p.stem for p in parts} == {"FLExporterDown.scrape", "FLExporterDown.run",
                                       "FLExporterDown.pushgateway", "FLSuperLinkDown.answer",
                                       "FLSuperLinkDown.scrape"}
    acc = ("max(last_5m):default_zero(max:flmon.fl_training_accuracy{federation:default} by "
           "{run_id}) * max:flmon.fl_training_accuracy_valid{federation:default} by {run_id} + "
           "max:flmon.fl_training_accuracy_valid{federation:default} by {run_id} - 1 < ")
    health = '"flmon.openmetrics.health".over("federation:default","endpoint:http://127.0.0.1'
    expected = {
        "FLLowTrainingAccuracy": acc + "0.85",
        "FLModelAccuracyDropped": acc + "0.8",
        "FLNoModelUpdates": "min(last_30m):max:flmon.fl_run_active{federation:default} by "
                            "{run_id} - default_zero(sum:flmon.fl_model_updates.count"
                            "{federation:default} by {run_id}) >= 1",
        "FLClientDropout": "flmon.fl_client_failures.count{federation:default} by {client}",
        "FLRoundStalled": "min(last_30m):max:flmon.fl_round_in_progress{federation:default} by "
                          "{run_id} - default_zero(sum:flmon.fl_rounds_completed.count"
                          "{federation:default} by {run_id}) >= 1",
        "FLClientUpdateAnomaly": "flmon.fl_client_anomaly_score{federation:default} by {client}",
        "FLPrivacyBudgetNearlyExhausted": "flmon.fl_dp_epsilon_budget{federation:default} >= 0.8",
        "FLPrivacyBudgetExhausted": "flmon.fl_dp_epsilon_budget{federation:default} >= 1",
        "FLTelemetryRejected": "flmon.fl_telemetry_rejected.count{federation:default}",
        "FLExporterDown": "(FLExporterDown.scrape && FLExporterDown.run) || "
                          "FLExporterDown.pushgateway",
        "FLExporterDown.scrape": health + ':9464/metrics").by("endpoint").last(20)',
        "FLExporterDown.pushgateway": health + ':9091/metrics").by("endpoint").last(20)',
        "FLExporterDown.run": "min(last_5m):sum:flmon.fl_runs{federation:default,"
                              "status:running} > 0",
        "FLSuperLinkDown": "FLSuperLinkDown.answer || FLSuperLinkDown.scrape",
        "FLSuperLinkDown.answer": "max(last_1m):max:flmon.fl_superlink_up{federation:default} "
                                  "< 1",
        "FLSuperLinkDown.scrape": health + ':9463/metrics").by("endpoint").last(4)',
        "FLNodeOffline": "min:flmon.fl_supernode_online{federation:default} by {client} < 1",
        "FLRunFailed": "flmon.fl_runs_finished.count{federation:default,result:failed}",
        "FLPrivacyLeakage": "flmon.fl_privacy_attack_auc{federation:default} by {attack,dp} "
                            "> 0.6",
    }
    for path in [*paths, *parts]:
        data = json.loads(path.read_text(encoding="utf-8"))
        monitor = _deserialize(data, Monitor)
        assert expected[path.stem] in monitor.query, monitor.query
        assert "federation:default" in monitor.tags
        assert "generated by flmon render" in monitor.message
        if path in paths:
            assert f"docs/runbooks.md#{path.stem.lower()}" in monitor.message
        else:  # a part notifies nobody: no handle, no runbook
            assert "@" not in monitor.message and "flmon_part:true" in monitor.tags
        for metric in re.findall(r"flmon\.(fl_[a-z_]+)", monitor.query):
            base = metric if metric in catalog.BY_NAME else f"{metric}_total"
            assert base in catalog.BY_NAME, metric


def test_composite_queries_link_to_the_parts_ids() -> None:
    data = json.loads((REPO / "datadog/monitors/FLExporterDown.json").read_text(encoding="utf-8"))
    ids = {"FLExporterDown.scrape": 11, "FLExporterDown.run": 12, "FLExporterDown.pushgateway": 13}
    assert link_composite(data["query"], ids) == "(11 && 12) || 13"
    with pytest.raises(KeyError, match=r"FLExporterDown\.pushgateway"):
        link_composite(data["query"], {"FLExporterDown.scrape": 11, "FLExporterDown.run": 12})


def test_without_the_watch_datadog_cannot_tell_a_run_is_in_progress() -> None:
    files = render(parse_config(with_changes(minimal_data(), scrape__pushgateway__enabled=False,
                                             scrape__watch__enabled=False)))
    assert "datadog/monitors/FLExporterDown.json" not in files  # it would page between runs
    conf = yaml.safe_load(files["datadog/conf.yaml"])
    assert [i["openmetrics_endpoint"] for i in conf["instances"]] == [
        "http://127.0.0.1:9464/metrics"]


def test_with_dogstatsd_the_check_collects_only_what_dogstatsd_does_not_send() -> None:
    files = render(parse_config(with_changes(minimal_data(), datadog__dogstatsd=True,
                                             scrape__watch__enabled=True)))
    conf = yaml.safe_load(files["datadog/conf.yaml"])
    instances = {i["openmetrics_endpoint"]: i["metrics"] for i in conf["instances"]}
    assert instances == {"http://127.0.0.1:9091/metrics": ["fl_privacy_attack_.+"],
                         "http://127.0.0.1:9463/metrics": ["fl_.+"]}
    # No live exporter in the check: the Pushgateway's scrape is the only exporter outage.
    monitor = json.loads(files["datadog/monitors/FLExporterDown.json"])
    assert monitor["type"] == "service check" and ":9091/metrics" in monitor["query"]


def test_datadog_model_check_can_fail() -> None:
    data = json.loads((REPO / "datadog/monitors/FLRoundStalled.json").read_text(encoding="utf-8"))
    data["type"] = "not a monitor type"
    with pytest.raises(AssertionError):
        _deserialize(data, Monitor)


def test_datadog_dashboard_and_check_config() -> None:
    doc = json.loads((REPO / "datadog/dashboard.json").read_text(encoding="utf-8"))
    dashboard = _deserialize(doc, Dashboard)
    assert len(dashboard.widgets) >= 8
    for widget in dashboard.widgets:
        assert type(widget.definition.get_oneof_instance()).__name__ == (
            "TimeseriesWidgetDefinition")
        for request in doc["widgets"][0]["definition"]["requests"]:
            assert request["q"].startswith("max:flmon.fl_")
    import yaml

    conf = yaml.safe_load((REPO / "datadog/conf.yaml").read_text(encoding="utf-8"))
    instance = conf["instances"][0]
    assert instance["openmetrics_endpoint"] == "http://127.0.0.1:9464/metrics"
    assert "prometheus_url" not in instance
    assert instance["namespace"] == "flmon"
    assert "federation:default" in instance["tags"]
    assert instance["exclude_metrics"] == ["_created$"]
    pushgateway = conf["instances"][1]  # privacy-test figures only: no series twice
    assert pushgateway["openmetrics_endpoint"] == "http://127.0.0.1:9091/metrics"
    assert pushgateway["metrics"] == ["fl_privacy_attack_.+"]
    watch = conf["instances"][2]  # flmon watch, scraped between runs too
    assert watch["openmetrics_endpoint"] == "http://127.0.0.1:9463/metrics"
    assert watch["namespace"] == "flmon" and "federation:default" in watch["tags"]
    titles = [w.definition.get_oneof_instance().title for w in dashboard.widgets]
    assert {"SuperLink up (0 or 1)", "Nodes by status", "Runs by status",
            "Privacy attack AUC (ratio 0..1)"} <= set(titles)


def test_datadog_namespace_comes_from_the_config() -> None:
    files = render(parse_config(with_changes(minimal_data(), datadog__namespace="hospital",
                                             datadog__tags=["env:prod"])))
    monitor = json.loads(files["datadog/monitors/FLClientDropout.json"])
    assert monitor["query"].startswith(
        "sum(last_30m):sum:hospital.fl_client_failures.count{federation:hospitals_eu}")
    assert "env:prod" in monitor["tags"]


def test_elasticsearch_template_and_policy() -> None:
    template = json.loads((REPO / "elasticsearch/index-template.json").read_text(encoding="utf-8"))
    assert template["index_patterns"] == ["flmon-logs-*"]
    props = template["template"]["mappings"]["properties"]
    assert props["@timestamp"] == {"type": "date"}
    assert props["labels"]["properties"]["run_id"]["type"] == "keyword"
    assert props["labels"]["properties"]["round"]["type"] == "keyword"  # ECS: labels are keywords
    assert props["labels"]["properties"]["node_id"]["type"] == "keyword"
    assert props["event"]["properties"]["action"]["type"] == "keyword"
    assert props["event"]["properties"]["kind"]["type"] == "keyword"
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert template["template"]["settings"]["index"]["lifecycle"]["name"] == "flmon-logs"
    policy = json.loads((REPO / "elasticsearch/ilm-policy.json").read_text(encoding="utf-8"))
    phases = policy["policy"]["phases"]
    assert phases["hot"]["actions"]["rollover"]["max_age"] == "7d"
    assert phases["delete"]["min_age"] == "30d"
    assert "generated by flmon render" in template["_meta"]["description"]


def _no_constants(constant: str) -> Any:
    raise ValueError(f"non-standard JSON constant {constant}")


def test_every_json_output_is_strict_json() -> None:
    paths = [p for top in ("dashboards", "datadog", "elasticsearch")
             for p in (REPO / top).glob("**/*.json")]
    assert len(paths) >= 15
    for path in paths:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constants)
