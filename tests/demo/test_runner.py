"""The node-killed scenario's bookkeeping: which node died, when FLNodeOffline showed it."""

from __future__ import annotations

from pathlib import Path

from flmon.demo import scenarios
from flmon.demo.runner import AlertEvent, RunOutcome, logged_node_id, may_restart

KILLED_AT = 1_000.0


def _outcome(*events: AlertEvent) -> RunOutcome:
    outcome = RunOutcome("node-killed", "healthcare", 5, 2, None, 0.0, events=list(events))
    outcome.killed_node, outcome.killed_node_id, outcome.killed_at = 1, "77", KILLED_AT
    return outcome


def _offline(client: str, at: float, state: str = "firing") -> AlertEvent:
    return AlertEvent(at, "FLNodeOffline", state, {"alertname": "FLNodeOffline",
                                                   "client": client})


def test_node_killed_expects_node_offline() -> None:
    assert "FLNodeOffline" in scenarios.get("node-killed").expected_alerts


def test_the_offline_alert_counts_only_for_the_killed_node() -> None:
    assert _outcome(_offline("12", KILLED_AT + 30)).offline_alert_after() is None
    outcome = _outcome(_offline("12", KILLED_AT + 30), _offline("77", KILLED_AT + 58.5),
                       _offline("77", KILLED_AT + 90, "resolved"))
    assert outcome.offline_alert_after() == 58.5
    never_killed = RunOutcome("node-killed", "healthcare", 5, 2, None, 0.0,
                              events=[_offline("77", 5.0)])
    assert never_killed.offline_alert_after() is None


def test_the_restart_waits_for_node_offline_or_the_timeout() -> None:
    sc = scenarios.get("node-killed")
    waiting = _outcome(_offline("12", KILLED_AT + 30))
    assert not may_restart(sc, waiting, KILLED_AT + 100)
    assert may_restart(sc, waiting, KILLED_AT + sc.offline_timeout + 1)
    assert may_restart(sc, _outcome(_offline("77", KILLED_AT + 58)), KILLED_AT + 60)
    # a scenario that does not expect FLNodeOffline restarts at once
    assert may_restart(scenarios.get("straggler"), waiting, KILLED_AT + 1)


def test_the_node_id_is_the_last_one_the_supernode_logged(tmp_path: Path) -> None:
    log = tmp_path / "supernode-1.log"
    assert logged_node_id(log) is None
    log.write_text("INFO : SuperNode ID: 123\nreconnect\nINFO : SuperNode ID: 456\n")
    assert logged_node_id(log) == "456"
    log.write_text("no id yet\n")
    assert logged_node_id(log) is None
