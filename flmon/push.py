"""Push a registry to a Prometheus Pushgateway from a background thread.

Flower's SuperLink starts a fresh ServerApp process for every run; the process ends
with the run. Pushing at the end of each phase and of the run keeps the final round and
the state between runs visible in the Pushgateway. ``request()`` never blocks: the
worker pushes the latest state (requests coalesce), and ``close(timeout)`` makes one
last push within a deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

log = logging.getLogger("flmon.push")

PushFunction = Callable[..., None]


class Pusher:
    """Coalescing background pusher.

    Parameters
    ----------
    gateway
        ``host:port`` or URL of the Pushgateway.
    registry
        What to push (the whole registry replaces the group: PUT semantics).
    job
        The ``job`` grouping label.
    grouping_key
        Further grouping labels (e.g. ``{"federation": "hospitals"}``).
    timeout
        Seconds for one HTTP push.
    on_error
        Called with each exception (for counting); errors are also logged at debug.
    username, password
        HTTP basic credentials for a Pushgateway behind a web config (use an
        ``https://`` gateway URL so they do not travel in clear).
    """

    def __init__(
        self,
        gateway: str,
        registry: CollectorRegistry,
        job: str = "flmon",
        grouping_key: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        on_error: Callable[[Exception], None] | None = None,
        push: PushFunction = push_to_gateway,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.registry = registry
        self.job = job
        self.grouping_key = dict(grouping_key or {})
        self.timeout = timeout
        self._on_error = on_error
        self._push = push
        self._handler: Callable[..., Callable[[], None]] = default_handler
        if username is not None:
            user, secret = username, password or ""

            def handler(url: str, method: str, timeout: float | None,
                        headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
                return basic_auth_handler(url, method, timeout, headers, data, user, secret)

            self._handler = handler
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.pushes = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="flmon-pusher", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a push of the current state; returns at once."""
        self._wanted.set()

    def _push_once(self) -> None:
        with self._lock:
            try:
                self._push(self.gateway, job=self.job, registry=self.registry,
                           grouping_key=self.grouping_key, timeout=self.timeout,
                           handler=self._handler)
                self.pushes += 1
            except Exception as exc:  # noqa: BLE001 - a sink never raises into training
                self.errors += 1
                log.debug("push to %s failed: %s", self.gateway, exc)
                if self._on_error is not None:
                    self._on_error(exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wanted.wait(timeout=0.5):
                self._wanted.clear()
                self._push_once()

    def close(self, timeout: float = 5.0) -> bool:
        """Push the final state (within ``timeout`` seconds) and stop the worker.

        Returns True when the final push was made in time.
        """
        self._stop.set()
        self._thread.join(timeout=timeout)
        done = threading.Event()

        def final() -> None:
            self._push_once()
            done.set()

        start = time.monotonic()
        threading.Thread(target=final, name="flmon-pusher-final", daemon=True).start()
        return done.wait(max(0.0, timeout - (time.monotonic() - start)))
