"""The watch's state and the Prometheus collector that exposes it.

The poll loop writes into :class:`WatchState` (one lock, aggregates computed at poll
time); :class:`WatchCollector` reads it at every scrape, so a scrape costs the same
whether the SuperLink keeps ten runs or ten thousand. Names, help and buckets come
from :mod:`flmon.catalog`.

While the last poll failed, ``fl_superlink_up`` is 0 and the node and run counts and
histograms are absent rather than stale; the per-node series and ``fl_run_running`` keep
the last known states (FLSuperLinkDown inhibits FLNodeOffline and the alerts about runs in
progress meanwhile), so an alert already firing about a dead node does not resolve because
the SuperLink went down too. Nodes the SuperLink no longer lists are reported offline until
``stale_after`` after their last heartbeat (:mod:`flmon.watch.memory`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from flmon import catalog
from flmon.catalog import CLIENT_LABEL
from flmon.labels import ClientLabeler
from flmon.watch.aggregate import Aggregates, HistogramData, NodeRow, aggregate
from flmon.watch.control import RESULTS, Snapshot
from flmon.watch.memory import NodeMemory

POLL_ERROR_REASONS: tuple[str, ...] = (
    "unreachable", "timeout", "tls", "http_4xx", "http_5xx", "decode", "error",
)


def _help(name: str) -> str:
    return catalog.get(name).help


def _gauge(name: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, _help(name), labels=list(labels))


def _counter(name: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    # CounterMetricFamily appends _total itself.
    return CounterMetricFamily(name.removesuffix("_total"), _help(name), labels=list(labels))


def _histogram(name: str, label: str, data: dict[str, HistogramData]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, _help(name), labels=[label])
    for value, hist in data.items():
        family.add_metric([value], list(hist.buckets), hist.sum)
    return family


class _Durations:
    """A histogram accumulated in place: fixed memory however many polls."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def data(self) -> HistogramData:
        rows = [(repr(float(b)), float(c)) for b, c in zip(self.bounds, self.counts,
                                                            strict=True)]
        rows.append(("+Inf", float(self.total)))
        return HistogramData(tuple(rows), self.sum, self.total)


class WatchState:
    """What the watch knows; thread-safe.

    Parameters
    ----------
    labeler
        Gives each node its bounded ``client`` label value.
    stale_after
        Seconds after its last heartbeat a node the SuperLink no longer lists is forgotten
        (``lifecycle.stale_after``).
    """

    def __init__(self, labeler: ClientLabeler, stale_after: float = 1800.0) -> None:
        self.labeler = labeler
        self.memory = NodeMemory(stale_after)
        self.node_rows: list[NodeRow] = []
        """The listed nodes and the remembered ones, as of the last successful poll."""
        self.in_progress: tuple[int, ...] = ()
        """Runs starting or running, as of the last successful poll."""
        self._lock = threading.Lock()
        self.started = time.time()
        self.up = False
        self.snapshot: Snapshot | None = None
        self.aggregates: Aggregates | None = None
        self.finished: dict[str, set[int]] = {r: set() for r in RESULTS}
        self.polls = 0
        self.errors = dict.fromkeys(POLL_ERROR_REASONS, 0)
        self.last_success: float | None = None
        self.last_error: str | None = None
        self._durations = _Durations(catalog.POLL_DURATION_BUCKETS)
        self.groups_deleted = 0
        self.pushgateway_errors = 0

    def record_success(self, snapshot: Snapshot, duration: float) -> None:
        """A poll that answered: replace the snapshot, count newly finished runs."""
        aggregates = aggregate(snapshot, self.labeler)
        with self._lock:
            self.up = True
            self.snapshot = snapshot
            self.aggregates = aggregates
            self.node_rows = self.memory.merge(snapshot.now, snapshot.nodes,
                                               aggregates.node_rows)
            self.in_progress = aggregates.in_progress
            for run in snapshot.runs:
                if run.finished:
                    self.finished[run.status].add(run.run_id)
            self.polls += 1
            self.last_success = time.time()
            self.last_error = None
            self._durations.observe(duration)

    def record_failure(self, reason: str, message: str, duration: float) -> None:
        """A poll that failed: the SuperLink is down for flmon until the next success.

        The per-node rows and the runs in progress stay as last known.
        """
        with self._lock:
            self.up = False
            self.snapshot = None
            self.aggregates = None
            self.polls += 1
            self.errors[reason if reason in self.errors else "error"] += 1
            self.last_error = message
            self._durations.observe(duration)

    def record_sweep(self, deleted: int, errors: int) -> None:
        with self._lock:
            self.groups_deleted += deleted
            self.pushgateway_errors += errors

    def finished_counts(self) -> dict[str, int]:
        with self._lock:
            return {r: len(ids) for r, ids in self.finished.items()}

    def poll_durations(self) -> HistogramData:
        with self._lock:
            return self._durations.data()

    def collector(self) -> WatchCollector:
        return WatchCollector(self)


class WatchCollector(Collector):
    """Exposes a :class:`WatchState`."""

    def __init__(self, state: WatchState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        s = self.state
        with s._lock:
            up = s.up
            agg = s.aggregates
            node_rows, in_progress = s.node_rows, s.in_progress
            finished = {r: len(ids) for r, ids in s.finished.items()}
            polls, errors = s.polls, dict(s.errors)
            durations = s._durations.data()
            last_success = s.last_success
            deleted, push_errors = s.groups_deleted, s.pushgateway_errors
        yield GaugeMetricFamily("fl_superlink_up", _help("fl_superlink_up"), value=float(up))
        runs_finished = _counter("fl_runs_finished_total", ("result",))
        for result, count in finished.items():
            runs_finished.add_metric([result], float(count), created=s.started)
        yield runs_finished
        yield from self._health(polls, errors, durations, last_success, deleted, push_errors)
        if last_success is not None:  # once a poll answered: the last known states
            yield from self._nodes(node_rows)
            running = _gauge("fl_run_running", ("run_id",))
            for run_id in in_progress:
                running.add_metric([str(run_id)], 1.0)
            yield running
        if agg is not None:
            yield from self._snapshot(agg)

    def _health(
        self, polls: int, errors: dict[str, int], hist: HistogramData,
        last_success: float | None, deleted: int, push_errors: int,
    ) -> Iterator[Metric]:
        started = self.state.started
        total = _counter("fl_watch_polls_total")
        total.add_metric([], float(polls), created=started)
        yield total
        by_reason = _counter("fl_watch_poll_errors_total", ("reason",))
        for reason, count in errors.items():
            by_reason.add_metric([reason], float(count), created=started)
        yield by_reason
        family = HistogramMetricFamily("fl_watch_poll_duration_seconds",
                                       _help("fl_watch_poll_duration_seconds"))
        family.add_metric([], list(hist.buckets), hist.sum)
        yield family
        if last_success is not None:
            yield GaugeMetricFamily(
                "fl_watch_last_poll_success_timestamp_seconds",
                _help("fl_watch_last_poll_success_timestamp_seconds"), value=last_success)
        for name, value in (("fl_watch_pushgateway_groups_deleted_total", deleted),
                            ("fl_watch_pushgateway_errors_total", push_errors)):
            counter = _counter(name)
            counter.add_metric([], float(value), created=started)
            yield counter

    def _nodes(self, node_rows: list[NodeRow]) -> Iterator[Metric]:
        online = _gauge("fl_supernode_online", (CLIENT_LABEL,))
        age = _gauge("fl_supernode_heartbeat_age_seconds", (CLIENT_LABEL,))
        interval = _gauge("fl_supernode_heartbeat_interval_seconds", (CLIENT_LABEL,))
        replaced = _gauge("fl_supernode_replaced", (CLIENT_LABEL,))
        for row in node_rows:
            online.add_metric([row.client], float(row.online))
            if not row.online:
                replaced.add_metric([row.client], float(row.replaced))
            interval.add_metric([row.client], row.heartbeat_interval)
            if row.heartbeat_age is not None:
                age.add_metric([row.client], row.heartbeat_age)
        yield from (online, age, interval, replaced)

    def _snapshot(self, agg: Aggregates) -> Iterator[Metric]:
        nodes = _gauge("fl_supernodes", ("status",))
        for status, count in agg.nodes_by_status.items():
            nodes.add_metric([status], float(count))
        yield nodes
        runs = _gauge("fl_runs", ("status",))
        for status, count in agg.runs_by_status.items():
            runs.add_metric([status], float(count))
        yield runs
        yield _histogram("fl_run_duration_seconds", "result", agg.duration)
        yield _histogram("fl_run_pending_duration_seconds", "result", agg.pending_duration)
        yield _histogram("fl_run_clientapp_runtime_seconds", "result", agg.clientapp_runtime)
        yield _histogram("fl_run_transferred_bytes", "direction", agg.transferred)
        oldest = _gauge("fl_run_oldest_unfinished_age_seconds", ("status",))
        for status, seconds in agg.oldest_unfinished_age.items():
            oldest.add_metric([status], seconds)
        yield oldest
        last = _gauge("fl_run_last_finished_timestamp_seconds", ("result",))
        for result, when in agg.last_finished.items():
            last.add_metric([result], when)
        yield last
