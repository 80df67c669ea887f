"""Snapshots of the Control API to bounded aggregates."""

from __future__ import annotations

from flmon.labels import ClientLabeler
from flmon.watch.aggregate import aggregate, histogram, replaced_nodes
from flmon.watch.control import NodeView, RunView, Snapshot, parse_time, run_status

NOW = 1_800_000_000.0


def _node(node_id: int, status: str, registered: float, online_until: float | None = None,
          interval: float = 30.0) -> NodeView:
    return NodeView(node_id, status, registered, online_until, interval)


def _run(run_id: int, status: str, pending: float, running: float | None = None,
         finished: float | None = None, sent: int = 0, recv: int = 0,
         runtime: float = 0.0) -> RunView:
    return RunView(run_id, status, pending, pending, running, finished, sent, recv, runtime)


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    data = histogram([0.5, 1.0, 1.0, 7.0, 100.0], (1.0, 10.0))
    assert data.buckets == (("1.0", 3.0), ("10.0", 4.0), ("+Inf", 5.0))
    assert data.count == 5
    assert data.sum == 109.5


def test_run_status_is_the_sub_status_once_finished() -> None:
    assert run_status("finished", "failed") == "failed"
    assert run_status("running", "") == "running"
    assert run_status("finished", "") is None
    assert run_status("exploded", "") is None


def test_flower_timestamps_parse_with_and_without_zone() -> None:
    assert parse_time("2026-12-01T07:00:00+00:00") == parse_time("2026-12-01T07:00:00")
    assert parse_time("") is None
    assert parse_time("yesterday") is None


def test_nodes_are_counted_per_status_and_only_activated_ones_get_a_label() -> None:
    nodes = (
        _node(11, "online", 10.0, online_until=NOW + 45.0),
        _node(12, "offline", 20.0, online_until=NOW - 15.0),
        _node(13, "registered", 30.0),
        _node(14, "unregistered", 40.0),
    )
    agg = aggregate(Snapshot(NOW, nodes, ()), ClientLabeler())
    assert agg.nodes_by_status == {"registered": 1, "online": 1, "offline": 1,
                                   "unregistered": 1}
    rows = {row.client: row for row in agg.node_rows}
    assert set(rows) == {"11", "12"}
    assert rows["11"].online and not rows["12"].online
    # online_until = last heartbeat + 2 intervals: 45 s left means the beat was 15 s ago.
    assert rows["11"].heartbeat_age == 15.0
    assert rows["12"].heartbeat_age == 75.0


def test_nodes_beyond_the_cap_are_counted_but_get_no_series_of_their_own() -> None:
    nodes = tuple(_node(100 + i, "online", float(i), NOW + 60) for i in range(5))
    agg = aggregate(Snapshot(NOW, nodes, ()), ClientLabeler(max_labels=2))
    assert agg.nodes_by_status["online"] == 5
    # The first two registered keep their labels, whatever order ListNodes returns.
    assert [row.client for row in agg.node_rows] == ["100", "101"]
    again = aggregate(Snapshot(NOW, tuple(reversed(nodes)), ()), ClientLabeler(max_labels=2))
    assert [row.client for row in again.node_rows] == ["100", "101"]


def test_no_client_identity_means_no_per_node_series() -> None:
    nodes = (_node(1, "online", 1.0, NOW + 60),)
    agg = aggregate(Snapshot(NOW, nodes, ()), ClientLabeler(identity="none"))
    assert agg.nodes_by_status["online"] == 1
    assert agg.node_rows == []


def test_pseudonymous_labels_match_the_serverapps() -> None:
    key = "k" * 32
    agg = aggregate(Snapshot(NOW, (_node(7, "online", 1.0, NOW + 60),), ()),
                    ClientLabeler(identity="pseudonym", pseudonym_key=key))
    serverapp = ClientLabeler(identity="pseudonym", pseudonym_key=key).label(7).value
    assert [row.client for row in agg.node_rows] == [serverapp]
    assert serverapp != "7"


def test_runs_are_counted_per_status_and_finished_ones_aggregated_per_result() -> None:
    runs = (
        _run(1, "completed", NOW - 1000, running=NOW - 990, finished=NOW - 690,
             sent=5000, recv=7000, runtime=40.0),
        _run(2, "failed", NOW - 500, running=NOW - 495, finished=NOW - 490),
        _run(3, "running", NOW - 100, running=NOW - 95),
        _run(4, "pending", NOW - 30),
    )
    agg = aggregate(Snapshot(NOW, (), runs), ClientLabeler())
    assert agg.runs_by_status == {"pending": 1, "starting": 0, "running": 1,
                                  "completed": 1, "failed": 1, "stopped": 0}
    assert agg.duration["completed"].sum == 300.0
    assert agg.duration["failed"].sum == 5.0
    assert agg.duration["stopped"].count == 0
    assert agg.pending_duration["completed"].sum == 10.0
    assert agg.clientapp_runtime["completed"].sum == 40.0
    assert agg.transferred["sent"].sum == 5000.0
    assert agg.transferred["received"].count == 2
    assert agg.oldest_unfinished_age == {"pending": 30.0, "running": 100.0, "starting": 0.0}
    assert agg.last_finished == {"completed": NOW - 690, "failed": NOW - 490}


def test_an_old_node_id_is_replaced_by_the_node_that_registered_after_its_last_heartbeat(
        ) -> None:
    # Node 21 was killed (last heartbeat at NOW - 600 s: online_until = beat + 2 x 30 s)
    # and restarted without authentication: it registered as 22 at NOW - 590 s. Node 23
    # died too but nobody took its place; node 24 registered before 23 went silent.
    nodes = (
        _node(21, "offline", NOW - 3600.0, online_until=NOW - 600.0 + 60.0),
        _node(23, "offline", NOW - 3500.0, online_until=NOW - 100.0 + 60.0),
        _node(24, "online", NOW - 3400.0, online_until=NOW + 45.0),
        _node(22, "online", NOW - 590.0, online_until=NOW + 50.0),
    )
    assert replaced_nodes(nodes) == {21}
    rows = {row.client: row for row in aggregate(Snapshot(NOW, nodes, ()),
                                                 ClientLabeler()).node_rows}
    assert rows["21"].replaced and not rows["23"].replaced
    assert rows["21"].heartbeat_age == 600.0
    assert not rows["22"].replaced and not rows["24"].replaced


def test_one_new_node_replaces_one_old_id_only_the_one_heard_last() -> None:
    # Two nodes died (beats at -900 s and -800 s); one new node came at -700 s.
    nodes = (
        _node(31, "offline", NOW - 5000.0, online_until=NOW - 900.0 + 60.0),
        _node(32, "offline", NOW - 5000.0, online_until=NOW - 800.0 + 60.0),
        _node(33, "online", NOW - 700.0, online_until=NOW + 45.0),
    )
    assert replaced_nodes(nodes) == {32}
    # A second newcomer takes the other old id; a restart that itself died is replaced
    # by the next one (a chain of unauthenticated restarts).
    nodes += (_node(34, "offline", NOW - 650.0, online_until=NOW - 400.0 + 60.0),
              _node(35, "online", NOW - 390.0, online_until=NOW + 45.0))
    assert replaced_nodes(nodes) == {31, 32, 34}
