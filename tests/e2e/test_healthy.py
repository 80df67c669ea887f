"""A healthy run of the hospitals example through the whole reference deployment.

Three real SuperNodes train for three rounds with central DP (Flower's server-side fixed
clipping and RDP accountant, budget large enough not to matter); Prometheus scrapes the
ServerApp's exporter and the Pushgateway; the rendered rules and AlertManager
configuration are loaded. What Prometheus holds must match what Flower reported, no
critical alert may fire, the global model must beat the documented floor, and every
Grafana panel query must return data.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flmon.demo.config import CHANNELS
from tests.e2e.scenario_run import Finished, finished_run
from tests.e2e.support import flower_report, log_path, node_id

ROUNDS = 3
ACCURACY_FLOOR = 0.85
"""Documented in examples/README.md: the hospitals model after 3 rounds with central DP
(noise 0.3, seeded; measured 0.886, against 0.956 without DP)."""

_EPSILON = re.compile(r"Privacy spent: epsilon=([0-9.]+) at delta=[0-9.e-]+ after \d+ releases")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    workdir = tmp_path_factory.mktemp("healthy")
    with finished_run(workdir, "healthcare", "healthy", ROUNDS,
                      run_config={"dp": True, "dp-max-epsilon": 100.0,
                                  "dp-noise-multiplier": 0.3,
                                  # the noise is seeded so that the floor is reproducible
                                  "dp-noise-seed": 7}) as done:
        yield done


def _pushed(done: Finished, expr: str) -> list[dict[str, Any]]:
    assert done.stack.prometheus is not None
    return done.stack.prometheus.query(expr)


def test_run_completes_every_round(healthy: Finished) -> None:
    assert healthy.outcome.returncode == 0, log_path(healthy.stack.flower).read_text()[-3000:]
    assert healthy.outcome.rounds_completed == ROUNDS
    assert [r.round for r in healthy.outcome.rows] == list(range(1, ROUNDS + 1))


def test_prometheus_matches_what_flower_reported(healthy: Finished) -> None:
    assert healthy.stack.flower is not None
    report = flower_report(healthy.stack.flower)
    assert report.rounds_started == ROUNDS
    assert report.train_results == [3] * ROUNDS
    assert report.train_failures == [0] * ROUNDS
    assert report.evaluate_results == [3] * ROUNDS
    sel = healthy.stack.selector()
    assert healthy.run.pushed_value("fl_rounds_completed_total") == ROUNDS
    # One update per client and round, under the client's node id.
    per_client = {r["metric"]["client"]: float(r["value"][1])
                  for r in _pushed(healthy, f"fl_model_updates_total{sel}")}
    nodes = {node_id(healthy.stack.flower, i) for i in range(3)}
    assert per_client == {n: float(ROUNDS) for n in nodes}
    assert sum(per_client.values()) == sum(report.train_results)
    replies = healthy.stack.selector('phase="evaluate"')
    evaluate = {r["metric"]["client"]: float(r["value"][1])
                for r in _pushed(healthy, f"fl_client_replies_total{replies}")}
    assert evaluate == {n: float(ROUNDS) for n in nodes}
    for metric in ("fl_client_training_accuracy", "fl_client_evaluation_accuracy",
                   "fl_client_update_norm", "fl_client_anomaly_score"):
        assert {r["metric"]["client"] for r in _pushed(healthy, f"{metric}{sel}")} == nodes
    # The global model's accuracy on the held-out set, as Flower printed it.
    central = healthy.run.pushed_value("fl_centralized_accuracy")
    assert central is not None
    assert central == pytest.approx(report.centralized_accuracy[ROUNDS], abs=1e-3)


def test_global_model_beats_the_floor(healthy: Finished) -> None:
    central = healthy.run.pushed_value("fl_centralized_accuracy")
    assert central is not None and central >= ACCURACY_FLOOR


def test_dp_epsilon_moves_with_the_accountant(healthy: Finished) -> None:
    text = log_path(healthy.stack.flower).read_text(errors="replace")
    spent = [float(x) for x in _EPSILON.findall(text)]
    assert len(spent) == ROUNDS and spent == sorted(spent) and spent[0] > 0
    assert healthy.run.pushed_value("fl_dp_epsilon_spent") == pytest.approx(spent[-1], rel=1e-4)
    assert healthy.run.pushed_value("fl_dp_epsilon_budget") == 100.0


def test_no_critical_alert_fires(healthy: Finished) -> None:
    critical = [e for e in healthy.outcome.events if e.labels.get("severity") == "critical"]
    assert not critical, [(e.alertname, e.state) for e in critical]
    assert not [m for m in healthy.stack.slack.messages() if m.channel == CHANNELS["critical"]]
    assert healthy.stack.alertmanager is not None
    assert not [a for a in healthy.stack.alertmanager.alerts(active=False)
                if a["labels"].get("severity") == "critical"]


def _panels(dashboard: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """``(title, [expr, ...])`` of every panel with queries, nested rows included."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    for panel in walk(dashboard.get("panels", [])):
        exprs = [str(t["expr"]) for t in panel.get("targets", []) if t.get("expr")]
        if exprs:
            yield str(panel.get("title")), exprs


def _grafana_expr(expr: str) -> str:
    """Substitute Grafana's variables the way Grafana does for 'All' over a short range."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "5s")
            .replace("$__range", "10m").replace('=~"$client"', '=~".+"'))


def test_every_grafana_panel_query_returns_data(healthy: Finished) -> None:
    """Each panel's queries, run over the run's time range, give it something to draw.

    A panel passes when one of its queries returns a finite value: Grafana then draws
    it (a second query of the same panel may legitimately be empty, e.g. the per-client
    local-DP epsilon in a run with central DP). Every dashboard variable must have values.
    """
    prom = healthy.stack.prometheus
    assert prom is not None
    dashboards = sorted(healthy.stack.dashboards_dir.glob("*.json"))
    assert len(dashboards) >= 3
    empty: list[str] = []
    checked = 0
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            if variable.get("type") == "query" and isinstance(query, dict):
                match = re.match(r"label_values\((.*),\s*(\w+)\)$", query.get("query", ""))
                assert match, query
                values = prom.api(f"label/{match.group(2)}/values",
                                  {"match[]": match.group(1)})
                if not values:
                    empty.append(f"{path.name} variable {variable['name']}")
        for title, exprs in _panels(dashboard):
            checked += 1
            with_data = 0
            for expr in exprs:
                result = prom.query_range(_grafana_expr(expr), healthy.started_at,
                                          time.time(), 2)
                if any(math.isfinite(float(v)) for series in result for _, v in series["values"]):
                    with_data += 1
            if not with_data and title in FROM_PRIVACY_TEST:
                # Filled by `flmon privacy-test`, not by a federation run.
                assert all("fl_privacy_attack_" in e for e in exprs), (title, exprs)
            elif not with_data:
                empty.append(f"{path.name} / {title}: " + " | ".join(exprs))
    assert checked > 20
    assert not empty, "panels without data after a healthy run:\n" + "\n".join(empty)


FROM_PRIVACY_TEST = {"Privacy attack AUC"}
"""Panels whose series only `flmon privacy-test` pushes: empty after a healthy run."""


def test_dashboards_path_is_the_rendered_one(healthy: Finished) -> None:
    assert Path(healthy.stack.dashboards_dir).is_dir()
    assert {p.name for p in healthy.stack.dashboards_dir.glob("*.json")} >= {
        "overview.json", "clients.json", "security.json"}
