"""A bounded queue drained by one background thread: the part every sink shares.

The training loop only ever calls :meth:`QueueSink.put`, which appends to a bounded
queue under a lock and returns. When the queue is full the record is dropped and
counted in ``fl_sink_dropped_total{sink}``; nothing waits for the network. One daemon
thread takes batches off the queue and hands them to the sink's :meth:`QueueSink._send`,
retries what may be retried with exponential back-off, and counts what it delivered
(``fl_sink_sent_total``), the failed attempts (``fl_sink_errors_total``) and what it gave
up on (``fl_sink_dropped_total``).

:meth:`QueueSink.close` flushes with a deadline and returns by that deadline whatever the
endpoint does: records still queued or in flight when it passes are counted as dropped,
and the worker, a daemon thread, cannot keep the process alive.

Accounting: once a sink is closed, every record ever passed to ``put`` has been counted
exactly once, as sent or as dropped.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry

from flmon.metrics import FlmonMetrics

T = TypeVar("T")

log = logging.getLogger("flmon.sinks")

SINK_METRICS = ("fl_sink_sent_total", "fl_sink_errors_total", "fl_sink_dropped_total")


@dataclass(frozen=True)
class QueueSettings:
    """How a sink queues, batches and retries.

    Parameters
    ----------
    queue_size
        Records the queue holds; ``put`` drops (and counts) beyond it.
    batch_size
        Records taken off the queue for one send.
    flush_interval
        Seconds between sends when fewer than ``batch_size`` records wait.
    max_retries
        Further attempts for a batch (or the records of it that failed with a
        retryable error) before it is dropped.
    initial_backoff, max_backoff
        Back-off after a failed attempt: ``initial_backoff * 2**n`` seconds with
        jitter (50-100 %), capped at ``max_backoff``. Records that arrive meanwhile
        wait in the queue, and are dropped once it is full.
    close_timeout
        Default deadline of :meth:`QueueSink.close` and of the flush at interpreter
        exit, in seconds.
    """

    queue_size: int = 1000
    batch_size: int = 100
    flush_interval: float = 1.0
    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")
        if self.close_timeout < 0:
            raise ValueError("close_timeout must not be negative")


@dataclass
class SendResult(Generic[T]):
    """What one send attempt achieved.

    Parameters
    ----------
    sent
        Records delivered.
    retry
        Records that failed with a retryable error (rate limit, server error,
        connection trouble); the worker tries them again after a back-off.
    failed
        Records the endpoint refused for good (a malformed document, an unknown
        channel); they are dropped.
    error
        Whether the attempt met an error (counted once in ``fl_sink_errors_total``).
    retry_after
        Seconds the endpoint asked to wait before the next attempt, if it said.
    """

    sent: int = 0
    retry: list[T] = field(default_factory=list)
    failed: int = 0
    error: bool = False
    retry_after: float | None = None


class _Counters:
    """The three ``fl_sink_*`` children of one sink, created once."""

    def __init__(self, metrics: FlmonMetrics, sink: str) -> None:
        self.sent = metrics.counter("fl_sink_sent_total").labels(sink=sink)
        self.errors = metrics.counter("fl_sink_errors_total").labels(sink=sink)
        self.dropped = metrics.counter("fl_sink_dropped_total").labels(sink=sink)


_per_registry: weakref.WeakKeyDictionary[CollectorRegistry, FlmonMetrics] = (
    weakref.WeakKeyDictionary())
_per_registry_lock = threading.Lock()


def sink_metrics(metrics: FlmonMetrics | CollectorRegistry | None) -> FlmonMetrics:
    """The ``FlmonMetrics`` holding the sink counters.

    ``metrics`` itself; for a bare ``CollectorRegistry``, the sink counters created in it
    once (every sink given that registry shares them); a fresh registry when ``None``.
    """
    if metrics is None:
        return FlmonMetrics(sides=("sink",))
    if isinstance(metrics, CollectorRegistry):
        with _per_registry_lock:
            found = _per_registry.get(metrics)
            if found is None:
                try:
                    found = FlmonMetrics(metrics, sides=("sink",))
                except ValueError as exc:  # prometheus_client: duplicated timeseries
                    raise ValueError("this registry already holds the fl_sink_* counters "
                                     "of a FlmonMetrics: pass that FlmonMetrics") from exc
                _per_registry[metrics] = found
            return found
    missing = [name for name in SINK_METRICS if name not in metrics]
    if missing:
        raise ValueError(f"FlmonMetrics lacks the sink metrics {missing}: create it with "
                         "sides including 'sink'")
    return metrics


class QueueSink(ABC, Generic[T]):
    """A bounded queue and the background thread that drains it.

    Subclasses implement :meth:`_send` (deliver one batch, honour ``deadline``) and may
    override :meth:`_tick` (work done on every wake-up, such as collecting a registry)
    and :meth:`_shutdown` (release clients).

    Parameters
    ----------
    name
        Value of the ``sink`` label.
    settings
        Queue, batch and retry settings.
    metrics
        Where the ``fl_sink_*`` counters live; pass the application's
        :class:`~flmon.metrics.FlmonMetrics` (or its registry) to expose them on
        ``/metrics``. A private registry when omitted (see :attr:`metrics`).
    start
        Start the worker thread now (tests may start it later with :meth:`start`).
    """

    def __init__(
        self,
        name: str,
        settings: QueueSettings | None = None,
        metrics: FlmonMetrics | CollectorRegistry | None = None,
        *,
        start: bool = True,
    ) -> None:
        self.name = name
        self.settings = settings if settings is not None else QueueSettings()
        self.metrics = sink_metrics(metrics)
        self._counters = _Counters(self.metrics, name)
        self._queue: deque[T] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._closing = False
        self._closed = False
        self._detached = False
        self._clean = True
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._last_error_log = 0.0
        self._suppressed_errors = 0
        self._atexit_ref = _register_atexit(self)
        if start:
            self.start()

    # --- producer side ----------------------------------------------------------------

    def put(self, item: T) -> bool:
        """Queue ``item`` for sending; never blocks.

        Returns
        -------
        bool
            ``False`` when the record was dropped (queue full, or sink closed).
        """
        return self._offer(item, refuse_when_closing=True)

    def _offer(self, item: T, refuse_when_closing: bool = False) -> bool:
        """Queue ``item`` (subclasses' own records may still be queued while closing)."""
        wake = False
        with self._lock:
            if (refuse_when_closing and self._closing) or self._detached \
                    or len(self._queue) >= self.settings.queue_size:
                accepted = False
            else:
                self._queue.append(item)
                accepted = True
                wake = len(self._queue) == self.settings.batch_size
        if not accepted:
            self._counters.dropped.inc()
            return False
        if wake:
            self._wake.set()
        return True

    def reject_if_full(self) -> bool:
        """Count a drop and return ``True`` when :meth:`put` would drop right now.

        A cheap check (no lock) for producers whose records are costly to build: a full
        queue then costs them nothing but this call.
        """
        if self._closing or len(self._queue) >= self.settings.queue_size:
            self._counters.dropped.inc()
            return True
        return False

    @property
    def queued(self) -> int:
        """Records waiting in the queue (not counting a batch in flight)."""
        with self._lock:
            return len(self._queue)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (done by the constructor unless ``start=False``)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"flmon-sink-{self.name}", daemon=True
        )
        self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wake the worker and wait until the queue is empty and nothing is in flight.

        Returns ``False`` when ``timeout`` passed first. Records are not dropped.
        """
        timeout = self.settings.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, then stop; return within ``timeout`` seconds.

        Records still queued or in flight when the deadline passes are counted as
        dropped; the worker (a daemon thread) is left to finish or die with the process.
        Calling ``close`` again does nothing and returns the first outcome.

        Returns
        -------
        bool
            ``True`` when everything queued was handled (sent, or dropped by the
            endpoint's refusal) before the deadline.
        """
        timeout = self.settings.close_timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                return self._clean
            self._closed = True
            self._closing = True
            self._deadline = time.monotonic() + timeout
        _unregister_atexit(self._atexit_ref)
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, self._deadline - time.monotonic()))
        with self._lock:
            worker_alive = thread is not None and thread.is_alive()
            left = 0
            if worker_alive or thread is None:
                left = len(self._queue) + self._inflight
                self._queue.clear()
                self._inflight = 0
                self._detached = True  # a late result of the worker is not counted
            self._clean = self._clean and left == 0
            clean = self._clean
        if left:
            self._counters.dropped.inc(left)
            log.warning("sink %s closed with %d record(s) undelivered", self.name, left)
        if not worker_alive:
            self._shutdown_quietly()
        return clean

    def __enter__(self) -> QueueSink[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- worker -----------------------------------------------------------------------

    def _run(self) -> None:
        retry: list[T] = []
        attempts = 0
        wait = self.settings.flush_interval
        backing_off = False
        while True:
            if self._closing:
                if wait > 0:  # a back-off while closing, already cut to the deadline
                    time.sleep(wait)
            else:
                # While backing off only close() may cut the wait short; otherwise a
                # full batch or flush() wakes the worker early.
                (self._stop if backing_off else self._wake).wait(wait)
            self._wake.clear()
            if self._closing and self._deadline_passed():
                break
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - a failing tick must not kill the worker
                self._note_error("collecting failed", exc_info=True)
            backoff: float | None = None
            batches = 0
            while batches <= self.settings.queue_size // self.settings.batch_size:
                batches += 1
                if retry:
                    batch, retry = retry, []
                else:
                    batch = self._take()
                if not batch:
                    break
                result = self._attempt(batch)
                give_up = bool(result.retry) and attempts + 1 > self.settings.max_retries
                if not self._account(result, give_up):
                    return  # close() gave up waiting and counted what was left
                if result.retry and not give_up:
                    attempts += 1
                    retry = result.retry
                    backoff = self._backoff(attempts, result.retry_after)
                    break
                attempts = 0
                if result.error:
                    if give_up:
                        self._note_error(f"gave up on {len(result.retry)} record(s) after "
                                         f"{self.settings.max_retries} retries")
                    backoff = self._backoff(1, result.retry_after)
                    break
                if self._closing and self._deadline_passed():
                    break
            with self._idle:
                done = not self._queue and not self._inflight
                self._idle.notify_all()
            backing_off = backoff is not None
            if self._closing:
                if done:
                    break
                wait = 0.0 if backoff is None else min(backoff, max(0.0, self._remaining()))
            else:
                wait = self.settings.flush_interval if backoff is None else backoff
        self._finish()

    def _take(self) -> list[T]:
        with self._lock:
            n = min(len(self._queue), self.settings.batch_size)
            batch = [self._queue.popleft() for _ in range(n)]
            self._inflight = n
        return batch

    def _attempt(self, batch: list[T]) -> SendResult[T]:
        deadline = self._deadline if self._closing else None
        try:
            result = self._send(batch, deadline)
        except Exception as exc:  # noqa: BLE001 - any failure: retry the whole batch
            self._note_error(f"send failed: {type(exc).__name__}: {exc}")
            result = SendResult(retry=list(batch), error=True)
        return result

    def _account(self, result: SendResult[T], give_up: bool) -> bool:
        """Count one attempt's outcome; ``False`` when close() abandoned the batch."""
        dropped = result.failed + (len(result.retry) if give_up else 0)
        with self._lock:
            if self._detached:
                return False
            self._inflight = 0 if give_up else len(result.retry)
        if result.sent:
            self._counters.sent.inc(result.sent)
        if dropped:
            self._counters.dropped.inc(dropped)
        if result.error:
            self._counters.errors.inc()
        return True

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.settings.max_backoff,
                   self.settings.initial_backoff * 2.0 ** max(0, attempt - 1))
        delay = base * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.max_backoff))
        return max(delay, 0.001)

    def _remaining(self) -> float:
        return (self._deadline - time.monotonic()) if self._deadline is not None else 0.0

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _finish(self) -> None:
        with self._idle:
            if self._detached:
                return
            left = len(self._queue) + self._inflight
            self._queue.clear()
            self._inflight = 0
            self._clean = self._clean and left == 0
            self._idle.notify_all()
        if left:
            self._counters.dropped.inc(left)
            log.warning("sink %s stopped with %d record(s) undelivered", self.name, left)

    def _shutdown_quietly(self) -> None:
        try:
            self._shutdown()
        except Exception:
            log.debug("sink %s: error while releasing its client", self.name, exc_info=True)

    def _note_error(self, message: str, exc_info: bool = False) -> None:
        """Log a sink problem at most every 30 s, so a dead endpoint does not flood logs."""
        now = time.monotonic()
        if now - self._last_error_log < 30.0:
            self._suppressed_errors += 1
            return
        suppressed, self._suppressed_errors = self._suppressed_errors, 0
        self._last_error_log = now
        more = f" ({suppressed} similar message(s) suppressed)" if suppressed else ""
        log.warning("sink %s: %s%s", self.name, message, more, exc_info=exc_info)

    # --- for subclasses -----------------------------------------------------------------

    @abstractmethod
    def _send(self, batch: Sequence[T], deadline: float | None) -> SendResult[T]:
        """Deliver ``batch``; called on the worker thread only.

        ``deadline`` (``time.monotonic()`` based) is set while closing; a send should
        not run past it. Raising is allowed: the whole batch is then retried.
        """

    def _tick(self) -> None:
        """Called on the worker thread at every wake-up, before sending."""

    def _shutdown(self) -> None:
        """Release clients and sockets; called once the worker has stopped."""


# --- flush at interpreter exit -----------------------------------------------------------

_live: dict[int, weakref.ref[QueueSink[object]]] = {}
_live_lock = threading.Lock()
_atexit_installed = False


def _register_atexit(sink: QueueSink[T]) -> int:
    global _atexit_installed
    key = id(sink)
    with _live_lock:
        _live[key] = weakref.ref(sink)  # type: ignore[arg-type]
        if not _atexit_installed:
            atexit.register(_close_all)
            _atexit_installed = True
    return key


def _unregister_atexit(key: int) -> None:
    with _live_lock:
        _live.pop(key, None)


def _close_all() -> None:
    with _live_lock:
        sinks = [ref() for ref in _live.values()]
        _live.clear()
    for sink in sinks:
        if sink is not None:
            sink.close()
