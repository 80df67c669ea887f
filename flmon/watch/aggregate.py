"""From one Control API snapshot to bounded aggregates.

Whatever the number of runs the SuperLink keeps (thousands, over months), the watch
exports a fixed number of series for them: counts per status, and histograms of the
finished runs' durations, bytes and ClientApp runtime per result. Nodes get one series
each under the bounded ``client`` label of :class:`flmon.labels.ClientLabeler`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from flmon import catalog
from flmon.labels import ClientLabeler
from flmon.watch.control import (
    NODE_STATUSES,
    RESULTS,
    RUN_STATUSES,
    UNFINISHED,
    NodeView,
    Snapshot,
)

HEARTBEAT_PATIENCE = 2
"""Flower's ``HEARTBEAT_PATIENCE``: ``online_until`` is the last heartbeat plus this many
heartbeat intervals (``flwr.common.constant``)."""


@dataclass(frozen=True)
class HistogramData:
    """Cumulative bucket counts (``le`` upper bounds, ``+Inf`` last), sum and count."""

    buckets: tuple[tuple[str, float], ...]
    sum: float
    count: int


def histogram(values: Iterable[float], bounds: Sequence[float]) -> HistogramData:
    """Cumulative Prometheus buckets of ``values`` for the upper ``bounds``."""
    ordered = sorted(values)
    rows = [(_le(b), float(bisect_right(ordered, b))) for b in bounds]  # values <= b
    rows.append(("+Inf", float(len(ordered))))
    return HistogramData(tuple(rows), float(sum(ordered)), len(ordered))


def _le(bound: float) -> str:
    return repr(float(bound))


IN_PROGRESS: tuple[str, ...] = ("starting", "running")
"""Run statuses for which the SuperLink has a ServerApp in progress (``fl_run_running``)."""


@dataclass(frozen=True)
class NodeRow:
    node_id: int
    client: str
    online: bool
    heartbeat_age: float | None
    heartbeat_interval: float
    replaced: bool = False
    """Offline, and a node registered after its last heartbeat took its place."""


def last_heartbeat(node: NodeView) -> float | None:
    """When the SuperLink last heard ``node``, as its ``online_until`` implies."""
    if node.online_until is None:
        return None
    return node.online_until - HEARTBEAT_PATIENCE * node.heartbeat_interval


def replaced_nodes(nodes: Sequence[NodeView]) -> set[int]:
    """Offline nodes whose place a later registration took (one new node for one old).

    A SuperNode restarted without SuperNode authentication registers under a new node id;
    its old id stays offline in ``ListNodes`` for ever. The Control API does not link the
    two, so the watch pairs them by time: each activated node registered after an
    offline node's last heartbeat replaces one such offline node, the one heard last
    before it registered. A node that died and was not replaced stays unpaired.
    """
    offline = sorted((beat, n.node_id) for n in nodes if n.status == "offline"
                     and (beat := last_heartbeat(n)) is not None)
    newcomers = sorted((n.registered_at, n.node_id) for n in nodes
                       if n.status in ("online", "offline") and n.registered_at is not None)
    replaced: set[int] = set()
    eligible: list[int] = []  # offline ids silent before the current newcomer, latest last
    next_offline = 0
    for registered_at, new_id in newcomers:  # O(n log n): each offline id pushed once
        while next_offline < len(offline) and offline[next_offline][0] <= registered_at:
            eligible.append(offline[next_offline][1])
            next_offline += 1
        if eligible and eligible[-1] == new_id:  # a node does not replace itself
            if len(eligible) > 1:
                replaced.add(eligible.pop(-2))
        elif eligible:
            replaced.add(eligible.pop())
    return replaced


@dataclass
class Aggregates:
    """Everything the collector writes about one snapshot."""

    nodes_by_status: dict[str, int]
    node_rows: list[NodeRow]
    runs_by_status: dict[str, int]
    duration: dict[str, HistogramData]
    pending_duration: dict[str, HistogramData]
    clientapp_runtime: dict[str, HistogramData]
    transferred: dict[str, HistogramData]
    oldest_unfinished_age: dict[str, float] = field(default_factory=dict)
    last_finished: dict[str, float] = field(default_factory=dict)
    in_progress: tuple[int, ...] = ()
    """Ids of the runs starting or running, in order: one ``fl_run_running`` series each."""


def aggregate(snapshot: Snapshot, labeler: ClientLabeler) -> Aggregates:
    """Aggregate ``snapshot``; nodes are labelled in registration order."""
    now = snapshot.now
    nodes_by_status = dict.fromkeys(NODE_STATUSES, 0)
    rows: list[NodeRow] = []
    ordered = sorted(snapshot.nodes, key=lambda n: (n.registered_at or 0.0, n.node_id))
    replaced = replaced_nodes(ordered)
    for node in ordered:
        if node.status in nodes_by_status:
            nodes_by_status[node.status] += 1
        if node.status not in ("online", "offline"):
            continue  # never activated, or unregistered: no liveness to report
        label = labeler.label(node.node_id)
        if not label.own:
            continue
        last_beat = last_heartbeat(node)
        age = None if last_beat is None else max(0.0, now - last_beat)
        rows.append(NodeRow(node.node_id, label.value, node.status == "online", age,
                            node.heartbeat_interval, node.node_id in replaced))

    runs_by_status = dict.fromkeys(RUN_STATUSES, 0)
    durations: dict[str, list[float]] = {r: [] for r in RESULTS}
    waits: dict[str, list[float]] = {r: [] for r in RESULTS}
    runtimes: dict[str, list[float]] = {r: [] for r in RESULTS}
    sent: list[float] = []
    received: list[float] = []
    oldest: dict[str, float] = {}
    last_finished: dict[str, float] = {}
    for run in snapshot.runs:
        runs_by_status[run.status] += 1
        if run.status in UNFINISHED:
            since = run.pending_at if run.pending_at is not None else now
            oldest[run.status] = max(oldest.get(run.status, 0.0), max(0.0, now - since))
            continue
        start = run.running_at or run.starting_at or run.pending_at
        if run.finished_at is not None:
            if start is not None:
                durations[run.status].append(max(0.0, run.finished_at - start))
            last_finished[run.status] = max(last_finished.get(run.status, 0.0),
                                            run.finished_at)
        if run.pending_at is not None and run.running_at is not None:
            waits[run.status].append(max(0.0, run.running_at - run.pending_at))
        runtimes[run.status].append(max(0.0, run.clientapp_runtime))
        sent.append(float(run.bytes_sent))
        received.append(float(run.bytes_recv))
    for status in UNFINISHED:
        oldest.setdefault(status, 0.0)

    run_b = catalog.RUN_DURATION_BUCKETS
    byte_b = catalog.RUN_BYTES_BUCKETS
    return Aggregates(
        nodes_by_status=nodes_by_status,
        node_rows=rows,
        runs_by_status=runs_by_status,
        duration={r: histogram(v, run_b) for r, v in durations.items()},
        pending_duration={r: histogram(v, run_b) for r, v in waits.items()},
        clientapp_runtime={r: histogram(v, run_b) for r, v in runtimes.items()},
        transferred={"sent": histogram(sent, byte_b), "received": histogram(received, byte_b)},
        oldest_unfinished_age=oldest,
        last_finished=last_finished,
        in_progress=tuple(sorted(r.run_id for r in snapshot.runs if r.status in IN_PROGRESS)),
    )
