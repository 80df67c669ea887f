"""The watch loop: poll the SuperLink every ``interval``, serve what it saw.

One thread polls; the exporter (:func:`flmon.start_exporter`) answers scrapes from its
own threads out of the last poll. A poll that fails sets ``fl_superlink_up`` to 0 and
is logged once per change of reason (not at every poll), the process keeps serving and
polls again at the next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from flmon.labels import ClientLabeler
from flmon.watch.collector import WatchState
from flmon.watch.control import ControlPoller, PollError
from flmon.watch.pushgateway import PushgatewayJanitor

log = logging.getLogger("flmon.watch")


@dataclass(frozen=True)
class WatchOptions:
    """Settings of one watch (see ``flmon watch --help``)."""

    superlink: str
    insecure: bool = False
    root_certificates: str | None = None
    interval: float = 5.0
    timeout: float = 5.0
    pushgateway: str | None = None
    pushgateway_username: str | None = None
    pushgateway_password: str | None = None
    stale_after: float = 1800.0
    page_size: int = 1000
    full_every: int = 60
    """Every this many polls, read every run (picks up runs the SuperLink dropped)."""


class Watch:
    """Polls one SuperLink and keeps a :class:`WatchState` for the exporter.

    Parameters
    ----------
    options
        What to poll and how often.
    labeler
        The ``client`` labels of the nodes.
    registry
        Where the watch's collector is registered; a fresh registry when omitted.
    """

    def __init__(self, options: WatchOptions, labeler: ClientLabeler,
                 registry: CollectorRegistry | None = None) -> None:
        if options.interval <= 0:
            raise ValueError("interval must be positive")
        self.options = options
        self.state = WatchState(labeler, options.stale_after)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(self.state.collector())
        self.poller = ControlPoller(options.superlink, insecure=options.insecure,
                                    root_certificates=options.root_certificates,
                                    timeout=options.timeout, page_size=options.page_size)
        self.janitor = (PushgatewayJanitor(options.pushgateway, options.stale_after,
                                           timeout=options.timeout,
                                           username=options.pushgateway_username,
                                           password=options.pushgateway_password)
                        if options.pushgateway else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._logged_reason: str | None = "never polled"
        # Listing the Pushgateway at every poll would cost more than the poll.
        self._sweep_every = min(30.0, max(options.interval, options.stale_after / 4))
        self._last_sweep = float("-inf")
        self._polls_since_full = 0

    def poll_once(self) -> bool:
        """One poll (and Pushgateway sweep); True when the SuperLink answered."""
        start = time.perf_counter()
        previous = self.state.snapshot
        if self._polls_since_full >= self.options.full_every:
            previous = None
        try:
            snapshot = self.poller.poll(previous)
        except PollError as exc:
            self.state.record_failure(exc.reason, str(exc), time.perf_counter() - start)
            if self._logged_reason != exc.reason:
                log.error("SuperLink %s does not answer the Control API (%s): %s; "
                          "fl_superlink_up is 0", self.options.superlink, exc.reason, exc)
                self._logged_reason = exc.reason
            return False
        self.state.record_success(snapshot, time.perf_counter() - start)
        self._polls_since_full = 0 if previous is None else self._polls_since_full + 1
        if self._logged_reason is not None:
            log.info("SuperLink %s answers the Control API: %d nodes, %d runs",
                     self.options.superlink, len(snapshot.nodes), len(snapshot.runs))
            self._logged_reason = None
        if self.janitor is not None and time.monotonic() - self._last_sweep >= self._sweep_every:
            self._last_sweep = time.monotonic()
            runs = {run.run_id: run for run in snapshot.runs}
            deleted, errors = self.janitor.sweep(runs, snapshot.now)
            self.state.record_sweep(deleted, errors)
        return True

    def run(self) -> None:
        """Poll until :meth:`stop`; every ``interval`` from the start of the last poll."""
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception:
                log.exception("watch poll failed unexpectedly")
            self._stop.wait(max(0.0, self.options.interval - (time.monotonic() - started)))

    def start(self) -> Watch:
        self._thread = threading.Thread(target=self.run, name="flmon-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.timeout * 3 + 1)
        self.poller.close()

    def healthy(self) -> bool:
        """``/healthz``: the watch itself runs (the SuperLink's state is in the metrics)."""
        return self._thread is not None and self._thread.is_alive()
