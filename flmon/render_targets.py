"""The targets of ``flmon render``: the one list of them, with what each writes.

:mod:`flmon.render` renders them and the ``flmon render`` command lists them in its help
and its ``--only`` check. This module imports nothing, so the command line can build its
parser without loading the renderers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HELM_FILES", "RENDER_TARGETS", "TARGET_NAMES", "RenderTarget", "target_of",
           "targets_help"]


@dataclass(frozen=True)
class RenderTarget:
    """One output group: its name, the path prefixes it owns, its files as help lines."""

    name: str
    prefixes: tuple[str, ...]
    files: tuple[str, ...]


HELM_FILES = "helm/flmon/files"

RENDER_TARGETS: tuple[RenderTarget, ...] = (
    RenderTarget("prometheus", ("rules/", "prometheus/"), (
        "rules/flmon-rules.yaml, rules/flmon-prometheusrule.yaml, rules/tests/*.yaml,",
        "prometheus/prometheus.yml")),
    RenderTarget("alertmanager", ("alertmanager/",), (
        "alertmanager/alertmanager.yml, alertmanager/slack.tmpl",)),
    RenderTarget("grafana", ("dashboards/grafana/",), (
        "dashboards/grafana/{overview,clients,security}.json",)),
    RenderTarget("kibana", ("dashboards/kibana/",), ("dashboards/kibana/flmon.ndjson",)),
    RenderTarget("datadog", ("datadog/",), (
        "datadog/conf.yaml, datadog/monitors/*.json, datadog/dashboard.json",)),
    RenderTarget("elasticsearch", ("elasticsearch/",), (
        "elasticsearch/index-template.json, elasticsearch/ilm-policy.json",)),
    RenderTarget("helm", (f"{HELM_FILES}/",), (
        f"{HELM_FILES}/: copies of the rules, Grafana dashboards and",
        "AlertManager files for the Helm chart")),
)
"""Every target, in rendering order; ``helm`` copies other targets' files into the chart."""

TARGET_NAMES: tuple[str, ...] = tuple(t.name for t in RENDER_TARGETS)


def target_of(rel: str) -> str:
    """The target a rendered path belongs to."""
    for target in RENDER_TARGETS:
        if rel.startswith(target.prefixes):
            return target.name
    raise ValueError(f"no target renders {rel}")


def targets_help() -> str:
    """The ``targets (--only):`` block of ``flmon render --help``."""
    width = max(len(name) for name in TARGET_NAMES)
    lines = ["targets (--only):"]
    for target in RENDER_TARGETS:
        first, *rest = target.files
        lines.append(f"  {target.name.ljust(width)}  {first}")
        lines.extend(f"  {'':{width}}  {line}" for line in rest)
    return "\n".join(lines) + "\n"
