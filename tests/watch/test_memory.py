"""Nodes the SuperLink no longer lists (an in-memory SuperLink restarted): still offline."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flmon.labels import ClientLabeler
from flmon.watch.collector import WatchState
from flmon.watch.control import NodeView, Snapshot
from flmon.watch.memory import NodeMemory

NOW = 1_800_000_000.0
BEAT = 30.0
STALE = 1800.0


def _online(node_id: int, last_beat: float, registered_at: float = 1.0) -> NodeView:
    return NodeView(node_id, "online", registered_at, last_beat + 2 * BEAT, BEAT)


def _node_samples(state: WatchState) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(state.collector())
    text = generate_latest(registry).decode()
    return {(s.name, s.labels["client"]): s.value
            for f in text_string_to_metric_families(text) for s in f.samples
            if s.name.startswith("fl_supernode_")}


def _state() -> WatchState:
    state = WatchState(ClientLabeler(), stale_after=STALE)
    state.record_success(Snapshot(NOW, (_online(5, NOW - 3), _online(6, NOW - 7)), ()), 0.01)
    return state


def test_a_node_that_vanished_from_listnodes_is_exported_offline_and_replaced() -> None:
    state = _state()
    # The SuperLink restarted with in-memory state: it lists no node at all.
    state.record_success(Snapshot(NOW + 60, (), ()), 0.01)
    s = _node_samples(state)
    assert s[("fl_supernode_online", "5")] == 0.0
    assert s[("fl_supernode_online", "6")] == 0.0
    # Its place is gone: the rule of old node ids ends its alert stale_after after its
    # last heartbeat.
    assert s[("fl_supernode_replaced", "5")] == 1.0
    assert s[("fl_supernode_heartbeat_age_seconds", "5")] == 63.0
    assert s[("fl_supernode_heartbeat_age_seconds", "6")] == 67.0
    assert s[("fl_supernode_heartbeat_interval_seconds", "6")] == BEAT


def test_a_vanished_node_is_forgotten_stale_after_its_last_heartbeat() -> None:
    state = _state()
    state.record_success(Snapshot(NOW - 7 + STALE, (), ()), 0.01)  # node 6: exactly stale
    assert ("fl_supernode_online", "6") in _node_samples(state)
    state.record_success(Snapshot(NOW - 7 + STALE + 1, (), ()), 0.01)
    s = _node_samples(state)
    assert ("fl_supernode_online", "6") not in s
    assert ("fl_supernode_online", "5") in s  # heard 4 s later: not yet
    state.record_success(Snapshot(NOW - 3 + STALE + 1, (), ()), 0.01)
    assert _node_samples(state) == {}
    assert len(state.memory) == 0


def test_a_node_the_operator_unregistered_is_forgotten_at_once() -> None:
    state = _state()
    unregistered = NodeView(5, "unregistered", 1.0, None, BEAT)
    state.record_success(Snapshot(NOW + 5, (unregistered, _online(6, NOW + 2)), ()), 0.01)
    s = _node_samples(state)
    assert ("fl_supernode_online", "5") not in s
    assert s[("fl_supernode_online", "6")] == 1.0
    # Gone from the listing later: not brought back.
    state.record_success(Snapshot(NOW + 10, (_online(6, NOW + 8),), ()), 0.01)
    assert ("fl_supernode_online", "5") not in _node_samples(state)


def test_a_node_listed_again_reports_what_the_superlink_says() -> None:
    state = _state()
    state.record_success(Snapshot(NOW + 60, (_online(6, NOW + 50),), ()), 0.01)
    assert _node_samples(state)[("fl_supernode_online", "5")] == 0.0
    state.record_success(Snapshot(NOW + 65, (_online(5, NOW + 64), _online(6, NOW + 50)), ()),
                         0.01)
    s = _node_samples(state)
    assert s[("fl_supernode_online", "5")] == 1.0
    assert ("fl_supernode_replaced", "5") not in s  # online nodes have no replaced series


def test_while_the_superlink_is_down_the_last_node_states_stay() -> None:
    state = _state()
    state.record_success(Snapshot(NOW + 60, (_online(6, NOW + 50),), ()), 0.01)
    state.record_failure("unreachable", "connection refused", 0.001)
    s = _node_samples(state)
    assert s[("fl_supernode_online", "5")] == 0.0
    assert s[("fl_supernode_online", "6")] == 1.0


def test_memory_is_bounded_by_the_client_label_cap() -> None:
    state = WatchState(ClientLabeler(max_labels=3), stale_after=STALE)
    nodes = tuple(_online(i, NOW - 1, registered_at=float(i)) for i in range(1, 11))
    state.record_success(Snapshot(NOW, nodes, ()), 0.01)
    state.record_success(Snapshot(NOW + 5, (), ()), 0.01)
    assert len(state.memory) == 3
    assert {c for _, c in _node_samples(state)} == {"1", "2", "3"}


def test_zero_stale_after_forgets_a_vanished_node_at_the_next_poll() -> None:
    node = _online(5, NOW - 3)
    state = WatchState(ClientLabeler(), stale_after=0.0)
    state.record_success(Snapshot(NOW, (node,), ()), 0.01)
    state.record_success(Snapshot(NOW + 5, (), ()), 0.01)
    assert _node_samples(state) == {}
    assert len(state.memory) == 0


def test_a_negative_stale_after_is_refused() -> None:
    with pytest.raises(ValueError, match="stale_after"):
        NodeMemory(-1.0)
