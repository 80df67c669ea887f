"""Prometheus outputs: rules file, PrometheusRule object, rule tests, ``prometheus.yml``."""

from __future__ import annotations

from flmon.config import FlmonConfig
from flmon.render.rules import prometheus_rule, rule_groups
from flmon.render.ruletests import rule_tests
from flmon.render.templating import dump_yaml, render_template

RULES_PATH = "rules/flmon-rules.yaml"


def prometheus_yml(cfg: FlmonConfig) -> str:
    """The scrape and alerting configuration."""
    sc = cfg.scrape
    return render_template(
        "prometheus/prometheus.yml",
        federation=cfg.federation.name,
        scrape_interval=sc.interval,
        evaluation_interval=cfg.prometheus.evaluation_interval,
        rule_files=cfg.prometheus.rule_files,
        alertmanager_targets=cfg.alertmanager.targets,
        live_enabled=sc.live.enabled,
        live_job=sc.live.job,
        live_targets=sc.live.targets,
        live_auth=sc.live.auth.scrape_fields(),
        pushgateway_enabled=sc.pushgateway.enabled,
        pushgateway_job=sc.pushgateway.job,
        pushed_job=sc.pushgateway.pushed_job,
        pushgateway_targets=sc.pushgateway.targets,
        pushgateway_auth=sc.pushgateway.auth.scrape_fields(),
        watch_enabled=sc.watch.enabled,
        watch_job=sc.watch.job,
        watch_targets=sc.watch.targets,
        watch_auth=sc.watch.auth.scrape_fields(),
    )


def render_prometheus(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the Prometheus outputs."""
    out = {
        RULES_PATH: dump_yaml({"groups": rule_groups(cfg)}),
        "rules/flmon-prometheusrule.yaml": dump_yaml(prometheus_rule(cfg)),
        "prometheus/prometheus.yml": prometheus_yml(cfg),
    }
    for name, doc in rule_tests(cfg).items():
        out[f"rules/tests/{name}.yaml"] = dump_yaml(doc)
    return out
