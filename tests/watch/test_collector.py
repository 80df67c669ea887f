"""What the watch exposes: catalog names and types, counters that survive a restart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flmon import catalog
from flmon.labels import ClientLabeler
from flmon.watch.collector import WatchState
from flmon.watch.control import NodeView, RunView, Snapshot

NOW = 1_800_000_000.0


def _runs(completed: int, failed: int) -> tuple[RunView, ...]:
    runs = [RunView(i, "completed", NOW - 900, NOW - 899, NOW - 898, NOW - 800, 1, 2, 3.0)
            for i in range(completed)]
    runs += [RunView(1000 + i, "failed", NOW - 900, None, None, NOW - 850, 0, 0, 0.0)
             for i in range(failed)]
    return tuple(runs)


def _snapshot(completed: int = 2, failed: int = 1) -> Snapshot:
    nodes = (NodeView(5, "online", 1.0, NOW + 50, 30.0),
             NodeView(6, "offline", 2.0, NOW - 50, 30.0))
    return Snapshot(NOW, nodes, _runs(completed, failed))


def _families(state: WatchState) -> dict[str, object]:
    registry = CollectorRegistry()
    registry.register(state.collector())
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(state: WatchState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(state.collector())
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_watch_metric_of_the_catalog_is_exposed_with_its_type_and_labels() -> None:
    state = WatchState(ClientLabeler())
    state.record_success(_snapshot(), 0.01)
    families = _families(state)
    for spec in (s for s in catalog.CATALOG if s.side == "watch"):
        name = spec.name.removesuffix("_total") if spec.type == "counter" else spec.name
        assert name in families, spec.name
        family = families[name]
        assert family.type == spec.type, spec.name  # type: ignore[attr-defined]
        for sample in family.samples:  # type: ignore[attr-defined]
            assert set(sample.labels) - {"le"} == set(spec.labels), (spec.name, sample)


def test_contract_series_and_values() -> None:
    state = WatchState(ClientLabeler())
    state.record_success(_snapshot(completed=2, failed=1), 0.01)
    s = _samples(state)
    assert s[("fl_superlink_up", ())] == 1.0
    assert s[("fl_supernodes", (("status", "online"),))] == 1.0
    assert s[("fl_supernodes", (("status", "unregistered"),))] == 0.0
    assert s[("fl_supernode_online", (("client", "5"),))] == 1.0
    assert s[("fl_supernode_online", (("client", "6"),))] == 0.0
    assert s[("fl_runs", (("status", "completed"),))] == 2.0
    assert s[("fl_runs", (("status", "failed"),))] == 1.0
    assert s[("fl_runs_finished_total", (("result", "completed"),))] == 2.0
    assert s[("fl_runs_finished_total", (("result", "stopped"),))] == 0.0
    assert s[("fl_watch_polls_total", ())] == 1.0
    assert s[("fl_watch_poll_duration_seconds_count", ())] == 1.0


def test_a_failed_poll_reports_the_superlink_down_and_keeps_the_last_node_states() -> None:
    state = WatchState(ClientLabeler())
    state.record_success(_snapshot(), 0.01)
    state.record_failure("unreachable", "connection refused", 0.002)
    s = _samples(state)
    assert s[("fl_superlink_up", ())] == 0.0
    assert s[("fl_watch_poll_errors_total", (("reason", "unreachable"),))] == 1.0
    assert s[("fl_watch_poll_errors_total", (("reason", "timeout"),))] == 0.0
    # Counters keep their value; counts of the SuperLink's state are absent, not stale.
    assert s[("fl_runs_finished_total", (("result", "completed"),))] == 2.0
    assert not any(name in ("fl_supernodes", "fl_runs") for name, _ in s)
    # The nodes keep their last known state: a firing FLNodeOffline does not resolve
    # because the SuperLink is down too (FLSuperLinkDown inhibits it meanwhile).
    assert s[("fl_supernode_online", (("client", "5"),))] == 1.0
    assert s[("fl_supernode_online", (("client", "6"),))] == 0.0


def test_before_any_poll_answered_no_node_or_run_series_are_exposed() -> None:
    state = WatchState(ClientLabeler())
    state.record_failure("unreachable", "connection refused", 0.002)
    names = {name for name, _ in _samples(state)}
    assert "fl_superlink_up" in names
    assert not names & {"fl_supernode_online", "fl_run_running", "fl_supernodes"}


def _run(run_id: int, status: str) -> RunView:
    finished = NOW - 10 if status in ("completed", "failed", "stopped") else None
    return RunView(run_id, status, NOW - 100, NOW - 90, NOW - 80, finished, 0, 0, 0.0)


def _running(state: WatchState) -> dict[str, float]:
    return {dict(labels)["run_id"]: value for (name, labels), value in _samples(state).items()
            if name == "fl_run_running"}


def test_fl_run_running_has_one_series_per_run_in_progress_only() -> None:
    state = WatchState(ClientLabeler())
    runs = (_run(1, "pending"), _run(2, "starting"), _run(3, "running"), _run(4, "running"),
            _run(5, "completed"), _run(6, "failed"), _run(7, "stopped"))
    state.record_success(Snapshot(NOW, (), runs), 0.01)
    assert _running(state) == {"2": 1.0, "3": 1.0, "4": 1.0}


def test_a_run_the_superlink_marked_failed_leaves_fl_run_running_at_once() -> None:
    # A ServerApp killed mid-run: its own series still say active, the SuperLink says
    # failed: the watch's series of that run is gone at the next poll.
    state = WatchState(ClientLabeler())
    state.record_success(Snapshot(NOW, (), (_run(3, "running"), _run(4, "running"))), 0.01)
    state.record_success(Snapshot(NOW + 5, (), (_run(3, "failed"), _run(4, "running"))), 0.01)
    assert _running(state) == {"4": 1.0}
    # While the SuperLink does not answer, the runs in progress stay as last known.
    state.record_failure("timeout", "timed out", 5.0)
    assert _running(state) == {"4": 1.0}


def test_finished_runs_counter_starts_at_what_is_finished_and_counts_new_ones() -> None:
    first = WatchState(ClientLabeler())
    first.record_success(_snapshot(completed=2, failed=1), 0.01)
    first.record_success(_snapshot(completed=3, failed=1), 0.01)
    assert first.finished_counts() == {"completed": 3, "failed": 1, "stopped": 0}
    # A watch started now (a restart) reads the same numbers: no new failures appear.
    restarted = WatchState(ClientLabeler())
    restarted.record_success(_snapshot(completed=3, failed=1), 0.01)
    assert restarted.finished_counts() == first.finished_counts()
    # A run the SuperLink no longer lists does not make the counter go down.
    first.record_success(_snapshot(completed=1, failed=1), 0.01)
    assert first.finished_counts()["completed"] == 3
