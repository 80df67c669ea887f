"""Checks every rendered file passes before anything is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from flmon.render import grafana, promql
from flmon.render.rules import RECORDING_RULE_NAMES
from flmon.render.templating import HEADER, YAML_HEADER


class RenderError(Exception):
    """Rendered output failed validation; nothing was written.

    Attributes
    ----------
    problems
        One line per problem, each naming the file.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("rendered output failed validation, nothing written:\n"
                         + "\n".join(f"  {p}" for p in problems))


def _rule_exprs(doc: Any) -> list[str]:
    groups = doc.get("groups", []) if isinstance(doc, dict) else []
    if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
        groups = doc.get("spec", {}).get("groups", [])
    return [rule["expr"] for g in groups for rule in g.get("rules", [])]


def _has_header(path: str, text: str, parsed: Any) -> bool:
    if path.endswith((".yaml", ".yml")):
        return text.startswith(YAML_HEADER)
    if path.endswith(".tmpl"):
        return text.startswith("{{/* " + HEADER)
    if path.endswith(".ndjson"):
        return all(HEADER in json.dumps(obj) for obj in parsed
                   if obj.get("type") != "index-pattern")
    return HEADER in json.dumps(parsed)


def kibana_problems(objects: list[dict[str, Any]]) -> list[str]:
    """References that name no object of the same file."""
    have = {(o["type"], o["id"]) for o in objects}
    problems = []
    for obj in objects:
        for ref in obj.get("references", []):
            if (ref["type"], ref["id"]) not in have:
                problems.append(f"{obj['type']} {obj['id']}: reference {ref['name']} to "
                                f"{ref['type']} {ref['id']} does not resolve")
        panels = obj.get("attributes", {}).get("panelsJSON")
        if panels:
            names = {r["name"] for r in obj.get("references", [])}
            for panel in json.loads(panels):
                if panel.get("panelRefName") not in names:
                    problems.append(f"{obj['id']}: panel {panel.get('panelIndex')} has no "
                                    "reference")
    return problems


def validate(files: Mapping[str, str]) -> None:
    """Parse every file, check headers, metric names and references; raise RenderError."""
    problems: list[str] = []
    for path, text in sorted(files.items()):
        parsed: Any = None
        try:
            if path.endswith((".yaml", ".yml")):
                parsed = yaml.safe_load(text)
            elif path.endswith(".json"):
                parsed = json.loads(text)
            elif path.endswith(".ndjson"):
                parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: does not parse: {exc}")
            continue
        if not _has_header(path, text, parsed):
            problems.append(f"{path}: lacks the generated-file header")
        exprs: list[str] = []
        if path.startswith("rules/flmon-"):
            exprs = _rule_exprs(parsed)
        elif path.startswith("dashboards/grafana/"):
            exprs = grafana.dashboard_exprs(parsed)
        for expr in exprs:
            unknown = promql.unknown_metrics(expr, RECORDING_RULE_NAMES)
            if unknown:
                problems.append(f"{path}: names metrics the catalog lacks: "
                                f"{', '.join(sorted(unknown))}")
        if path.endswith(".ndjson"):
            problems += [f"{path}: {p}" for p in kibana_problems(parsed)]
    if problems:
        raise RenderError(problems)
