"""Read the SuperLink's state through Flower's Control API (``ListNodes``, ``ListRuns``).

The Control API is protobuf over HTTP on the SuperLink's one port (``/v1/control/*``).
flmon uses Flower's own client (``flwr.supercore.control.ControlHttpClient``) and message
classes, so the wire format is Flower's; that client is internal to Flower 1.42, so
the version is pinned and the calls are exercised against a real SuperLink in the tests.

Only the two read calls are made. Note that ``ListRuns`` is not free of side effects on
the SuperLink: for every *finished* run it returns, the SuperLink cleans up that run's
left-over messages, objects and sessions (``LinkState.cleanup_run``), exactly as
``flwr ls`` does. Nothing of a run in progress is touched, and the run records
themselves (status, timestamps, bytes) stay.

Every call has a timeout. A poll reads the run list in pages of ``page_size`` (the
SuperLink returns 20 runs when no limit is given); after the first, a poll reads only the
newest pages, down to the oldest run it saw unfinished (see :meth:`ControlPoller.poll`),
so that the SuperLink answers, and cleans up, a page of runs rather than all of them.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

NODE_STATUSES: tuple[str, ...] = ("registered", "online", "offline", "unregistered")
RUN_STATUSES: tuple[str, ...] = (
    "pending", "starting", "running", "completed", "failed", "stopped",
)
UNFINISHED: tuple[str, ...] = ("pending", "starting", "running")
RESULTS: tuple[str, ...] = ("completed", "failed", "stopped")
DEFAULT_PAGE_SIZE = 1000
FIRST_PAGE = 100


class PollError(Exception):
    """A poll that failed; ``reason`` is the bounded label value of the error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_time(text: str) -> float | None:
    """Unix time of one of Flower's ISO-8601 timestamps; None when empty or invalid."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


@dataclass(frozen=True)
class NodeView:
    """What flmon reads of one SuperNode (``flwr supernode ls``)."""

    node_id: int
    status: str
    registered_at: float | None
    online_until: float | None
    heartbeat_interval: float


@dataclass(frozen=True)
class RunView:
    """What flmon reads of one run (``flwr ls``).

    ``status`` is one of :data:`RUN_STATUSES`: a finished run's status is its sub-status.
    """

    run_id: int
    status: str
    pending_at: float | None
    starting_at: float | None
    running_at: float | None
    finished_at: float | None
    bytes_sent: int
    bytes_recv: int
    clientapp_runtime: float

    @property
    def finished(self) -> bool:
        return self.status in RESULTS


@dataclass(frozen=True)
class Snapshot:
    """One successful poll: the SuperLink's clock, its nodes and its runs."""

    now: float
    nodes: tuple[NodeView, ...]
    runs: tuple[RunView, ...]


def node_view(proto: Any) -> NodeView:
    """A :class:`NodeView` from a ``flwr.proto.node_pb2.NodeInfo``."""
    online_until = float(proto.online_until) if proto.HasField("online_until") else None
    return NodeView(
        node_id=int(proto.node_id),
        status=str(proto.status),
        registered_at=parse_time(proto.registered_at),
        online_until=online_until,
        heartbeat_interval=float(proto.heartbeat_interval),
    )


def run_status(status: str, sub_status: str) -> str | None:
    """The flmon status of a run: its status, or its sub-status once finished."""
    if status == "finished":
        return sub_status if sub_status in RESULTS else None
    return status if status in UNFINISHED else None


def run_view(proto: Any) -> RunView | None:
    """A :class:`RunView` from a ``flwr.proto.run_pb2.Run``; None for an unknown status."""
    status = run_status(proto.status.status, proto.status.sub_status)
    if status is None:
        return None
    return RunView(
        run_id=int(proto.run_id),
        status=status,
        pending_at=parse_time(proto.pending_at),
        starting_at=parse_time(proto.starting_at),
        running_at=parse_time(proto.running_at),
        finished_at=parse_time(proto.finished_at),
        bytes_sent=int(proto.bytes_sent),
        bytes_recv=int(proto.bytes_recv),
        clientapp_runtime=float(proto.clientapp_runtime),
    )


class ControlPoller:
    """Polls one SuperLink's Control API.

    Parameters
    ----------
    superlink
        ``HOST:PORT`` of the SuperLink (its one HTTP port).
    insecure
        Plain HTTP. Otherwise HTTPS, verified against ``root_certificates`` (a PEM file)
        or the system's CAs.
    timeout
        Seconds for each HTTP call (connect, read, write).
    page_size
        Runs per ``ListRuns`` call.
    """

    def __init__(
        self,
        superlink: str,
        insecure: bool = False,
        root_certificates: str | None = None,
        timeout: float = 5.0,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        from flwr.supercore.control import ControlHttpClient

        if insecure and root_certificates is not None:
            raise ValueError("insecure and root_certificates cannot be combined")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        verify: ssl.SSLContext | bool = not insecure
        if not insecure:
            context = ssl.create_default_context(cafile=root_certificates)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            verify = context
        scheme = "http" if insecure else "https"
        self.superlink = superlink
        self.page_size = page_size
        self.list_runs_calls = 0
        """ListRuns calls made so far, and the runs they returned (benchmarks read them)."""
        self.runs_read = 0
        self._client = ControlHttpClient(
            f"{scheme}://{superlink}", interceptors=(), verify=verify, timeout=timeout,
        )

    def poll(self, previous: Snapshot | None = None) -> Snapshot:
        """``ListNodes`` then ``ListRuns``; raise :class:`PollError`.

        Without ``previous`` every page of runs is read. With it, pages are read newest
        first only until every run unfinished in ``previous`` was read again and a page
        reached runs ``previous`` knew: every older run is then finished and known, and
        is taken from ``previous`` (a finished run does not change). A SuperLink with
        10,000 runs, two of them in progress, then answers one page of 100 runs instead
        of ten pages of 1,000.
        """
        try:
            return self._poll(previous)
        except PollError:
            raise
        except Exception as exc:
            raise PollError(classify(exc), f"{type(exc).__name__}: {exc}") from exc

    def _poll(self, previous: Snapshot | None) -> Snapshot:
        from flwr.proto.control_pb2 import ListNodesRequest, ListRunsRequest

        nodes_response = self._client.ListNodes(ListNodesRequest())
        nodes = tuple(node_view(info) for info in nodes_response.nodes_info)
        known = {r.run_id: r for r in previous.runs} if previous is not None else None
        pending = ({i for i, r in known.items() if not r.finished}
                   if known is not None else set())
        runs: dict[int, RunView] = {}
        now_text = nodes_response.now
        skip = 0
        size = min(FIRST_PAGE, self.page_size) if known is not None else self.page_size
        complete = True
        while True:
            page = self._client.ListRuns(ListRunsRequest(limit=size, skip=skip))
            self.list_runs_calls += 1
            self.runs_read += len(page.run_dict)
            now_text = page.now or now_text
            views = _views(page.run_dict.values())
            runs.update((view.run_id, view) for view in views)
            pending -= {view.run_id for view in views}
            if len(page.run_dict) < size:
                break
            # Runs are listed newest first and a new run is newer than every known
            # one: once a page reaches known runs and every run that was unfinished has
            # been read again, all older runs are known and finished.
            if known is not None and not pending and any(v.run_id in known for v in views):
                complete = False
                break
            skip += size
            size = self.page_size
        if not complete and known is not None:
            for run_id, view in known.items():
                runs.setdefault(run_id, view)
        now = parse_time(now_text)
        if now is None:
            raise PollError("decode", f"the SuperLink's clock {now_text!r} is not ISO-8601")
        return Snapshot(now=now, nodes=nodes, runs=tuple(runs.values()))

    def close(self) -> None:
        self._client._client.close()


def _views(protos: Iterable[Any]) -> list[RunView]:
    return [view for view in (run_view(p) for p in protos) if view is not None]


def classify(exc: BaseException) -> str:
    """A bounded reason for a failed call: unreachable, timeout, http_<code>, tls, decode."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"http_{exc.response.status_code // 100}xx"
    if isinstance(exc, httpx.ConnectError) and isinstance(exc.__context__, ssl.SSLError):
        return "tls"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        return "tls" if "ssl" in text or "certificate" in text else "unreachable"
    if isinstance(exc, (httpx.TransportError, OSError)):
        return "unreachable"
    if isinstance(exc, ValueError):
        return "decode"
    return "error"
