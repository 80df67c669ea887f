"""Every PromQL query the documentation gives is checked the way the rendered rules are.

A query is every line of a ```` ```promql ```` block, and every inline code span that
selects a series with a label matcher or applies a function or comparison to one, in
``docs/*.md``, ``README.md`` and the chart's README. Schematic expressions (the alert table
of docs/configuration.md writes ``{S}``, ``D(...)``, ``INC(...)``, ``T``) are not queries.

Each query must parse (promtool), name only catalog metrics, Prometheus' ``up`` or the
recording rules flmon renders, match only labels its metric carries, and match closed
labels (quarantine reasons, statuses, results, phases...) only with values flmon writes:
the values come from the code that writes them. The rendered rules and dashboards are held
to the same label values.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flwr.common import Code

from flmon import catalog
from flmon.flower.legacy_guard import LEGACY_REASONS
from flmon.flower.recorder import ERROR_NAMES, PHASES, SECURITY_EVENT_KINDS
from flmon.flower.replies import QUARANTINE_REASONS
from flmon.privacy.attack import ATTACKS
from flmon.privacy.report import SECTIONS
from flmon.render import grafana, promql
from flmon.render.rules import RECORDING_RULE_NAMES
from flmon.telemetry import REJECT_REASONS
from flmon.watch.collector import POLL_ERROR_REASONS
from flmon.watch.control import NODE_STATUSES, RESULTS, RUN_STATUSES, UNFINISHED

from .conftest import EXAMPLE, REPO

DOCS = sorted([*(REPO / "docs").glob("*.md"), REPO / "README.md", REPO / "helm/flmon/README.md"])

_RESULT_METRICS = ("fl_runs_finished_total", "fl_run_duration_seconds",
                   "fl_run_pending_duration_seconds", "fl_run_clientapp_runtime_seconds",
                   "fl_run_last_finished_timestamp_seconds")

CLOSED: dict[tuple[str, str], frozenset[str]] = {
    ("fl_replies_quarantined_total", "reason"): frozenset(QUARANTINE_REASONS + LEGACY_REASONS),
    ("fl_telemetry_rejected_total", "reason"): frozenset(REJECT_REASONS),
    ("fl_watch_poll_errors_total", "reason"): frozenset(POLL_ERROR_REASONS),
    ("fl_supernodes", "status"): frozenset(NODE_STATUSES),
    ("fl_runs", "status"): frozenset(RUN_STATUSES),
    ("fl_run_oldest_unfinished_age_seconds", "status"): frozenset(UNFINISHED),
    ("fl_client_failures_total", "error"): frozenset(
        {*ERROR_NAMES.values(), "unknown", "no_reply", *(c.name.lower() for c in Code)}),
    ("fl_security_events_total", "kind"): frozenset(SECURITY_EVENT_KINDS),
    ("fl_privacy_attack_auc", "attack"): frozenset(ATTACKS),
    ("fl_privacy_attack_advantage", "attack"): frozenset(ATTACKS),
    ("fl_privacy_attack_auc", "dp"): frozenset(SECTIONS.values()),
    ("fl_privacy_attack_advantage", "dp"): frozenset(SECTIONS.values()),
    **{(name, "result"): frozenset(RESULTS) for name in _RESULT_METRICS},
    **{(spec.name, "phase"): frozenset(PHASES) for spec in catalog.CATALOG
       if "phase" in spec.labels},
}
"""(metric, label) -> every value flmon writes, from the writers' own constants."""

_TARGET_LABELS = frozenset({"job", "instance", "federation", "run_id"})
_SIMPLE_ALTERNATIVES = re.compile(r"^[A-Za-z0-9_.:-]+(?:\|[A-Za-z0-9_.:-]+)*$")


def _spec(sample: str) -> catalog.MetricSpec | None:
    for spec in catalog.CATALOG:
        if sample in spec.sample_names:
            return spec
    return None


def _example_values() -> dict[str, frozenset[str]]:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    sc = doc["scrape"]
    jobs = {sc["live"]["job"], sc["pushgateway"]["job"], sc["pushgateway"]["pushed_job"],
            sc["watch"]["job"]}
    return {"job": frozenset(jobs), "federation": frozenset({doc["federation"]["name"]})}


def label_problems(expr: str, example: dict[str, frozenset[str]] | None = None) -> list[str]:
    """Labels ``expr`` matches that its metric lacks, or values flmon never writes."""
    problems: list[str] = []
    for m in promql.matchers(expr):
        if m.metric is None or m.label == "__name__":
            continue
        spec = _spec(m.metric)
        if spec is not None:
            carried = set(spec.labels) | _TARGET_LABELS
            if spec.type == "histogram":
                carried.add("le")
            if m.label not in carried:
                problems.append(f"{m.metric} has no label {m.label!r}")
                continue
        closed = CLOSED.get((spec.name if spec else m.metric, m.label))
        if closed is None and example is not None and m.label in example:
            closed = example[m.label]
        if closed is None or "$" in m.value:
            continue
        if m.op in ("=", "!="):
            values = [m.value]
        elif _SIMPLE_ALTERNATIVES.fullmatch(m.value):
            values = m.value.split("|")
        else:
            continue
        problems += [f'{m.metric}{{{m.label}="{v}"}}: flmon writes no such {m.label} '
                     f"(it writes {', '.join(sorted(closed))})"
                     for v in values if v not in closed]
    return problems


# --- finding the queries -------------------------------------------------------------

_FENCE_RE = re.compile(r"^```promql\n(.*?)^```", re.M | re.S)
_ANY_FENCE_RE = re.compile(r"^```.*?^```", re.M | re.S)
_SPAN_RE = re.compile(r"`([^`\n]+)`")
_SERIES_RE = re.compile(r"\b(?:fl_[a-z0-9_]+|federation:[a-z0-9_:]+|up)\b")
_QUERY_SIGN_RE = re.compile(r'(?:=|!=|=~|!~)"|\(|\s(?:==|!=|>=|<=|>|<)\s|\[')
_SCHEMATIC_RE = re.compile(r"\{[A-Z]\b|\bD\(|\bINC\(|\s[A-Z]$|<[a-z.]+>|\bwindow\]|\*")


def doc_queries(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, query) of every PromQL query in the Markdown file ``path``."""
    text = path.read_text(encoding="utf-8")
    for block in _FENCE_RE.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        for offset, line in enumerate(block.group(1).splitlines()):
            if line.strip():
                yield first + offset, line.strip()
    prose = _ANY_FENCE_RE.sub(lambda b: "\n" * b.group(0).count("\n"), text)
    for number, line in enumerate(prose.splitlines(), start=1):
        for span in _SPAN_RE.findall(line):
            if (_SERIES_RE.search(span) and _QUERY_SIGN_RE.search(span)
                    and not _SCHEMATIC_RE.search(span) and not span.startswith("flmon ")):
                yield number, span


def all_queries() -> list[tuple[str, str]]:
    return [(f"{p.relative_to(REPO)}:{n}", q) for p in DOCS for n, q in doc_queries(p)]


# --- the checks ----------------------------------------------------------------------


def test_the_docs_give_queries_and_the_finder_sees_them() -> None:
    queries = dict(all_queries())
    runbook = [q for where, q in queries.items() if where.startswith("docs/runbooks.md:")]
    assert len(runbook) >= 30  # every section's first query, and those in the text
    seen = set(queries.values())
    assert 'fl_replies_quarantined_total{reason="non_finite_metrics"}' in seen
    assert "increase(fl_sink_dropped_total[15m]) > 0" in seen
    assert "fl_supernodes{status}" not in seen  # a label list, not a query
    assert not [q for q in seen if "INC(" in q or "{S}" in q]  # schematic


def test_every_doc_query_parses(promtool: str, tmp_path: Path) -> None:
    queries = all_queries()
    rules = {"groups": [{"name": "docs", "rules": [
        {"record": f"docs:query_{i}", "expr": q} for i, (_, q) in enumerate(queries)]}]}
    path = tmp_path / "docs-queries.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0:  # name the queries that fail
        bad = []
        for where, q in queries:
            one = tmp_path / "one.yaml"
            one.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [
                {"record": "docs:query", "expr": q}]}]}), encoding="utf-8")
            r = subprocess.run([promtool, "check", "rules", str(one)], capture_output=True,
                               text=True, timeout=60, check=False)
            if r.returncode != 0:
                bad.append(f"{where}: {q}: {(r.stdout + r.stderr).strip()[-300:]}")
        pytest.fail("\n".join(bad) or done.stdout + done.stderr)
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_every_doc_query_names_only_metrics_flmon_writes() -> None:
    bad = {f"{where}: {q}": sorted(promql.unknown_metrics(q, RECORDING_RULE_NAMES))
           for where, q in all_queries()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_every_doc_query_matches_only_labels_and_values_flmon_writes() -> None:
    example = _example_values()
    bad = {f"{where}: {q}": label_problems(q, example) for where, q in all_queries()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_a_reason_the_guard_never_writes_is_caught() -> None:
    assert label_problems('fl_replies_quarantined_total{reason="non_finite"}') == [
        'fl_replies_quarantined_total{reason="non_finite"}: flmon writes no such reason (it '
        f"writes {', '.join(sorted(CLOSED['fl_replies_quarantined_total', 'reason']))})"]
    assert label_problems('fl_replies_quarantined_total{reason="non_finite_metrics"}') == []
    assert label_problems('fl_runs{status=~"running|done"}') != []
    assert label_problems('fl_training_accuracy{client="site-a"}') == [
        "fl_training_accuracy has no label 'client'"]
    assert label_problems('up{job="flmon-wacth"}', _example_values()) != []


def test_the_closed_labels_are_labels_of_catalog_metrics() -> None:
    for name, label in CLOSED:
        assert label in catalog.get(name).labels, (name, label)
        assert CLOSED[name, label]


def _rendered_exprs() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load((REPO / "rules/flmon-rules.yaml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]
    for path in sorted((REPO / "dashboards/grafana").glob("*.json")):
        for expr in grafana.dashboard_exprs(json.loads(path.read_text(encoding="utf-8"))):
            yield path.name, expr


def test_the_rendered_rules_and_dashboards_match_only_values_flmon_writes() -> None:
    example = _example_values()
    exprs = list(_rendered_exprs())
    assert len(exprs) > 30
    bad = {f"{where}: {e}": label_problems(e, example) for where, e in exprs}
    assert {k: v for k, v in bad.items() if v} == {}
