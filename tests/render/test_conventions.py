"""The rendered alerts follow the monitoring-mixins conventions, as mixtool lints them.

mixtool (github.com/monitoring-mixins/mixtool, ``pkg/mixer/lint.go``,
``lintPrometheusAlertsGuidelines``) checks every alerting rule with three regular
expressions; they are written here as mixtool writes them (RE2, the same meaning in
Python's ``re`` for these patterns), and the checker is first held to mixtool's own test
table (``pkg/mixer/lint_test.go``) so that it says what mixtool says.

Also here: every ``runbook_url`` is absolute and ends in its alert's anchor, and every
AlertManager inhibition can match a pair of the alerts flmon renders.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from flmon import urls
from flmon.config import ALERT_NAMES, ConfigError, parse_config

from .conftest import REPO, minimal_data, with_changes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# --- mixtool's lint, rule for rule ---------------------------------------------------

CAMEL_CASE = re.compile(r"^([A-Z]+[a-z0-9]+)+$")
GO_TEMPLATE = re.compile(r"\{\{.+}\}")
SENTENCE = re.compile(r"^[A-Z].+\.$")


def mixtool_lint(rule: Mapping[str, Any]) -> list[str]:
    """The ``[rule-name]`` of every mixtool guideline ``rule`` breaks (none: it passes)."""
    name = str(rule.get("alert", ""))
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    errors: list[str] = []
    if not CAMEL_CASE.search(name):
        errors.append("alert-name-camelcase")
    if labels.get("severity") not in ("warning", "critical", "info"):
        errors.append("alert-severity-rule")
    if "description" not in annotations:
        errors.append("alert-description-missing-rule")
    elif not GO_TEMPLATE.search(annotations["description"]):
        errors.append("alert-description-templating")
    if "summary" not in annotations:
        errors.append("alert-summary-missing-rule")
    else:
        if GO_TEMPLATE.search(annotations["summary"]):
            errors.append("alert-summary-templating")
        if not SENTENCE.search(annotations["summary"]):
            errors.append("alert-summary-style")
    return errors


_GOOD = {"alert": "TestAlert", "labels": {"severity": "warning"},
         "annotations": {"description": "{{ $labels.instance }} has been unready for more "
                                        "than 15 minutes.",
                         "summary": "Instance is not ready."}}


def _changed(**changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": _GOOD["alert"], "labels": dict(_GOOD["labels"]),
                            "annotations": dict(_GOOD["annotations"])}
    for key, value in changes.items():
        part, _, field = key.partition("__")
        if value is None:
            rule[part].pop(field)
        elif field:
            rule[part][field] = value
        else:
            rule[part] = value
    return rule


@pytest.mark.parametrize(("rule", "expected"), [
    # mixtool's lint_test.go table
    (_GOOD, []),
    (_changed(alert="SNMPDown", annotations__summary="SNMP is down."), []),
    (_changed(alert="testAlert"), ["alert-name-camelcase"]),
    (_changed(alert="test_Alert"), ["alert-name-camelcase"]),
    (_changed(alert="test Alert"), ["alert-name-camelcase"]),
    (_changed(labels__severity="disaster"), ["alert-severity-rule"]),
    (_changed(labels__severity=None), ["alert-severity-rule"]),
    (_changed(annotations__description=None), ["alert-description-missing-rule"]),
    (_changed(annotations__summary="Instance {{ $labels.instance}} is not ready."),
     ["alert-summary-templating"]),
    (_changed(annotations__summary="Instance is not ready"), ["alert-summary-style"]),
    (_changed(annotations__summary=None), ["alert-summary-missing-rule"]),
    (_changed(annotations__description="Instance has been unready for more than 15 minutes."),
     ["alert-description-templating"]),
    # flmon's own former summaries
    (_changed(annotations__summary="flmon metrics cannot be scraped"), ["alert-summary-style"]),
    (_changed(annotations__summary="A round is stalled"), ["alert-summary-style"]),
    (_changed(alert="FLSuperLinkDown"), []),
])
def test_the_checker_says_what_mixtool_says(rule: Mapping[str, Any],
                                            expected: list[str]) -> None:
    assert mixtool_lint(rule) == expected


def _alert_rules(doc: Any) -> Iterator[dict[str, Any]]:
    if doc.get("kind") == "PrometheusRule":
        doc = doc["spec"]
    for group in doc["groups"]:
        yield from (r for r in group["rules"] if "alert" in r)


RULE_FILES = ("rules/flmon-rules.yaml", "rules/flmon-prometheusrule.yaml",
              "helm/flmon/files/rules/flmon-rules.yaml")


@pytest.mark.parametrize("path", RULE_FILES)
def test_every_committed_alert_passes_mixtools_lint(path: str) -> None:
    doc = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    rules = list(_alert_rules(doc))
    assert {r["alert"] for r in rules} == set(ALERT_NAMES)
    problems = {r["alert"]: mixtool_lint(r) for r in rules}
    assert problems == {name: [] for name in problems}


def test_every_alert_of_a_minimal_config_passes_mixtools_lint(
        render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(with_changes(minimal_data(), scrape__watch__enabled=True))
    doc = yaml.safe_load((out / "rules/flmon-rules.yaml").read_text(encoding="utf-8"))
    rules = list(_alert_rules(doc))
    assert {r["alert"] for r in rules} == set(ALERT_NAMES)
    assert {r["alert"]: mixtool_lint(r) for r in rules} == {r["alert"]: [] for r in rules}


# --- runbook links -------------------------------------------------------------------


def test_the_default_runbooks_are_the_published_ones_named_in_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["urls"]["Runbooks"] == urls.RUNBOOKS_URL
    assert project["urls"]["Homepage"] == urls.HOMEPAGE
    assert project["urls"]["Documentation"] == urls.DOCUMENTATION
    cfg = parse_config(minimal_data())
    assert cfg.prometheus.runbook_url == urls.RUNBOOKS_URL
    assert urls.RUNBOOKS_URL.startswith("https://") and urls.RUNBOOKS_URL.endswith(
        "/docs/runbooks.md")


@pytest.mark.parametrize("path", [*RULE_FILES, *sorted(
    str(p.relative_to(REPO)) for p in (REPO / "rules/tests").glob("*.yaml"))])
def test_every_runbook_url_is_absolute_and_ends_in_its_alerts_anchor(path: str) -> None:
    base = parse_config(yaml.safe_load((REPO / "examples/flmon.yaml").read_text(
        encoding="utf-8"))).prometheus.runbook_url
    doc = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    if "tests" in doc:  # promtool cases: the annotations each expected alert carries
        pairs = [(t["alertname"], a["exp_annotations"]["runbook_url"])
                 for case in doc["tests"] for t in case["alert_rule_test"]
                 for a in t["exp_alerts"]]
    else:
        pairs = [(r["alert"], r["annotations"]["runbook_url"]) for r in _alert_rules(doc)]
    assert pairs
    for name, url in pairs:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc, url
        assert url == f"{base}#{name.lower()}"


def test_the_runbook_page_has_a_heading_for_every_anchor() -> None:
    text = (REPO / "docs/runbooks.md").read_text(encoding="utf-8")
    # GitHub's anchor of "## FLNodeOffline" is "#flnodeoffline"
    anchors = {h.strip().lower() for h in re.findall(r"^## (.+)$", text, re.M)}
    assert {n.lower() for n in ALERT_NAMES} <= anchors


@pytest.mark.parametrize("value", [
    "docs/runbooks.md", "/docs/runbooks.md", "ftp://example.org/runbooks",
    "https://example.org/runbooks.md#top", "https://example.org/runbooks?x=1",
    "https://", "https:///runbooks.md", "javascript:alert(1)", "https://exa mple.org/",
    'https://example.org/"{{ .x }}"', "",
])
def test_a_runbook_base_that_is_no_absolute_http_url_is_refused_naming_the_field(
        value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(minimal_data(), prometheus__runbook_url=value))
    paths = [path for path, _ in err.value.problems]
    assert paths == ["prometheus.runbook_url"], err.value.problems
    assert "absolute http(s) URL" in str(err.value)


@pytest.mark.parametrize("value", [
    "https://runbooks.example.org", "http://127.0.0.1:8080/fl/runbooks.md",
    "https://wiki.example.org/Federated-Learning/Runbooks",
])
def test_an_absolute_http_url_is_the_base_of_every_link(
        value: str, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(with_changes(minimal_data(), prometheus__runbook_url=value))
    doc = yaml.safe_load((out / "rules/flmon-rules.yaml").read_text(encoding="utf-8"))
    assert {r["annotations"]["runbook_url"] for r in _alert_rules(doc)} == {
        f"{value}#{r['alert'].lower()}" for r in _alert_rules(doc)}


def test_slack_messages_link_their_title_and_a_line_to_the_runbook() -> None:
    doc = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text(encoding="utf-8"))
    for receiver in doc["receivers"]:
        for slack in receiver["slack_configs"]:
            assert slack["title_link"] == '{{ template "flmon.slack.titlelink" . }}'
    tmpl = (REPO / "alertmanager/slack.tmpl").read_text(encoding="utf-8")
    assert '{{ define "flmon.slack.titlelink" -}}' in tmpl
    assert "<{{ .Annotations.runbook_url }}|what to do>" in tmpl


# --- inhibitions ---------------------------------------------------------------------

_MATCHER = re.compile(r'^([a-zA-Z_][a-zA-Z0-9_]*)(=|!=|=~|!~)"((?:[^"\\]|\\.)*)"$')


def _matches(matchers: list[str], labels: Mapping[str, str]) -> bool:
    for text in matchers:
        m = _MATCHER.fullmatch(text)
        assert m, f"unsupported matcher {text!r}"
        name, op, value = m.groups()
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None,
              "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def can_match(rule: Mapping[str, Any], alerts: list[dict[str, str]]) -> bool:
    """Whether ``rule`` inhibits some alert of ``alerts`` while another one fires.

    AlertManager's rule: the source alert matches ``source_matchers``, the target
    ``target_matchers``, and every ``equal`` label has the same value on both (a missing
    label counts as the empty value).
    """
    sources = [a for a in alerts if _matches(rule.get("source_matchers", []), a)]
    targets = [a for a in alerts if _matches(rule.get("target_matchers", []), a)]
    return any(s is not t and all(s.get(k, "") == t.get(k, "") for k in rule.get("equal", []))
               for s in sources for t in targets)


def rendered_alerts(tests_dir: Path) -> list[dict[str, str]]:
    """Every alert the promtool cases expect (labels as Prometheus fires them)."""
    out: list[dict[str, str]] = []
    for path in sorted(tests_dir.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["tests"]:
            for check in case["alert_rule_test"]:
                out += [{"alertname": check["alertname"], **a["exp_labels"]}
                        for a in check["exp_alerts"]]
    return out


def test_the_former_severity_inhibition_could_never_match() -> None:
    alerts = rendered_alerts(REPO / "rules/tests")
    assert {a["alertname"] for a in alerts} == set(ALERT_NAMES)
    dead = {"source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'], "equal": ["federation", "alertname"]}
    assert not can_match(dead, alerts)
    # the same rule without alertname in `equal` would match (the check is not vacuous)
    assert can_match({**dead, "equal": ["federation"]}, alerts)


@pytest.mark.parametrize("am_file", ["alertmanager/alertmanager.yml",
                                     "helm/flmon/files/alertmanager/alertmanager.yml"])
def test_every_rendered_inhibition_can_match_a_pair_of_rendered_alerts(am_file: str) -> None:
    alerts = rendered_alerts(REPO / "rules/tests")
    doc = yaml.safe_load((REPO / am_file).read_text(encoding="utf-8"))
    rules = doc["inhibit_rules"]
    assert rules
    dead = [r for r in rules if not can_match(r, alerts)]
    assert dead == []


@pytest.mark.parametrize("value", ["grafana", "/grafana", "https://grafana.example.org/#/"])
def test_the_grafana_base_of_slack_links_is_an_absolute_url_too(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(minimal_data(), grafana__url=value))
    assert [path for path, _ in err.value.problems] == ["grafana.url"]
