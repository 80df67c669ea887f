"""DogStatsD sink: the catalog metrics in Datadog, through the ``datadog`` package.

Two ways in, one queue out:

* **Mirror** (the usual way): every ``mirror_interval`` seconds the worker thread reads a
  ``prometheus_client`` registry (the one :class:`~flmon.metrics.FlmonMetrics` fills) and
  queues one DogStatsD point per ``fl_*`` series:

  ============  ===============================================  ==========================
  catalog type  DogStatsD point                                  name (``ns`` = namespace)
  ============  ===============================================  ==========================
  counter       count of the increase since the last collection  ``ns.fl_x.count``
  gauge         gauge of the current value                       ``ns.fl_x``
  histogram     counts of the increase of ``_count``, ``_sum``   ``ns.fl_x.count``,
                and of every cumulative bucket (tag              ``ns.fl_x.sum``,
                ``upper_bound``)                                 ``ns.fl_x.bucket``
  ============  ===============================================  ==========================

  These are the names the Datadog Agent's OpenMetrics check gives the same series, so the
  rendered monitors and dashboard work with either path (``tests/e2e/test_datadog_check.py``
  compares both). Use one path per series, never both: with ``datadog.dogstatsd`` the
  rendered check configuration leaves the live exporter out. Series that did not move are
  not sent (counters); gauges are sent at every collection; NaN and infinite values are
  skipped (``fl_training_accuracy_valid`` carries a NaN accuracy).

* **Direct** (:meth:`DatadogSink.record`): one point per call, for a training loop that
  wants per-step values in Datadog. Counters become counts (``ns.fl_x.count``), gauges
  gauges, histograms DogStatsD distributions under ``ns.fl_x``.

Tags: every Prometheus label as ``label:value``, then ``federation``, ``run_id`` and
``round`` when known (from :meth:`DatadogSink.set_context`, else from the registry's
``fl_run_info{run_id}`` and ``fl_current_round``, else from :func:`flmon.logs.set_global_context`),
then the configured constant tags. ``client`` values are capped like the server's label
(``max_client_tags`` distinct values, the rest as ``client:_other``).

Sending happens on the sink's worker thread, one datagram per point, through
``DogStatsd`` with a non-blocking socket: a full or missing Agent socket costs a dropped
datagram, never a wait. UDP cannot confirm delivery: ``fl_sink_sent_total`` counts points
handed to the socket; a refused send (Agent port closed, UDS buffer full) counts an error,
and the sink backs off.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from flmon import catalog
from flmon.logs import current_context
from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings, QueueSink, SendResult

SINK_NAME = "datadog"
_CONTEXT_TAGS = {"federation": "federation", "run": "run_id", "round": "round"}
"""Tag keys of the context: ``run_id`` as the live exporter's label, which the Agent's
OpenMetrics check turns into the same tag, so monitors grouped ``by {run_id}`` read
either path."""
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class DatadogConfig:
    """Settings of the DogStatsD sink.

    Parameters
    ----------
    host, port
        DogStatsD address (UDP). Ignored when ``socket_path`` is set.
    socket_path
        Unix domain socket of the Agent (``unix:///var/run/datadog/dsd.socket`` or a path).
    namespace
        Prefix of every metric name (``flmon`` gives ``flmon.fl_rounds_completed.count``).
    constant_tags
        Tags added to every point (``env:prod``, ``team:ml``).
    federation, run
        Values of the ``federation`` and ``run`` tags (``run`` is otherwise taken from
        the registry or the log context).
    round_tag
        Tag points with the current ``round``. One tag value per round: cheap for a few
        hundred rounds, switch it off for very long runs.
    max_client_tags
        Distinct ``client`` tag values kept; later clients are tagged ``client:_other``.
    mirror_interval
        Seconds between two collections of the mirrored registry.
    origin_detection
        Let the client add the container id for the Agent's origin detection.
    queue
        Queue, batch and retry settings.
    """

    host: str = "localhost"
    port: int = 8125
    socket_path: str | None = None
    namespace: str = "flmon"
    constant_tags: tuple[str, ...] = ()
    federation: str | None = None
    run: str | None = None
    round_tag: bool = True
    max_client_tags: int = 50
    mirror_interval: float = 10.0
    origin_detection: bool = True
    queue: QueueSettings = field(
        default_factory=lambda: QueueSettings(queue_size=10_000, batch_size=500,
                                              max_retries=2, max_backoff=10.0)
    )

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a valid UDP port")
        if self.mirror_interval <= 0:
            raise ValueError("mirror_interval must be positive")
        if self.max_client_tags < 0:
            raise ValueError("max_client_tags must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> DatadogConfig:
        """Read ``FLMON_DATADOG_*`` (falling back to Datadog's ``DD_AGENT_HOST``,
        ``DD_DOGSTATSD_PORT``, ``DD_DOGSTATSD_SOCKET``); ``overrides`` win.

        ``FLMON_DATADOG_HOST``, ``FLMON_DATADOG_PORT``, ``FLMON_DATADOG_SOCKET``,
        ``FLMON_DATADOG_NAMESPACE``, ``FLMON_DATADOG_TAGS`` (comma-separated),
        ``FLMON_FEDERATION``, ``FLMON_DATADOG_ROUND_TAG`` (0/1),
        ``FLMON_DATADOG_MIRROR_INTERVAL`` (seconds).
        """
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        host = env.get("FLMON_DATADOG_HOST") or env.get("DD_AGENT_HOST")
        if host:
            kwargs["host"] = host
        port = env.get("FLMON_DATADOG_PORT") or env.get("DD_DOGSTATSD_PORT")
        if port:
            kwargs["port"] = int(port)
        sock = env.get("FLMON_DATADOG_SOCKET") or env.get("DD_DOGSTATSD_SOCKET")
        if sock:
            kwargs["socket_path"] = sock
        if env.get("FLMON_DATADOG_NAMESPACE") is not None:
            kwargs["namespace"] = env["FLMON_DATADOG_NAMESPACE"]
        if env.get("FLMON_DATADOG_TAGS"):
            kwargs["constant_tags"] = tuple(
                t.strip() for t in env["FLMON_DATADOG_TAGS"].split(",") if t.strip()
            )
        if env.get("FLMON_FEDERATION"):
            kwargs["federation"] = env["FLMON_FEDERATION"]
        if env.get("FLMON_DATADOG_ROUND_TAG"):
            kwargs["round_tag"] = env["FLMON_DATADOG_ROUND_TAG"].lower() in _TRUE
        if env.get("FLMON_DATADOG_MIRROR_INTERVAL"):
            kwargs["mirror_interval"] = float(env["FLMON_DATADOG_MIRROR_INTERVAL"])
        kwargs.update(overrides)
        return cls(**kwargs)


class Point(NamedTuple):
    """One DogStatsD point waiting in the queue."""

    kind: str  # "c" count, "g" gauge, "d" distribution
    metric: str  # without the namespace
    value: float
    tags: tuple[str, ...]
    context: tuple[str, ...]


class _ClientCap:
    """The first ``limit`` client values keep their tag, later ones share ``_other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen or value == catalog.OTHER_CLIENTS:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return catalog.OTHER_CLIENTS


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _tag(key: str, value: object) -> str:
    return f"{key}:{value}"


class DatadogSink(QueueSink[Point]):
    """Send the catalog metrics to a Datadog Agent over DogStatsD, off the training thread.

    Parameters
    ----------
    config
        Agent address, namespace, tags, intervals.
    mirror
        Registry to mirror (usually ``FlmonMetrics(...).registry``); ``None`` for
        direct points only.
    metrics
        Where the ``fl_sink_*`` counters live.
    start
        Start the worker now.
    """

    def __init__(
        self,
        config: DatadogConfig | None = None,
        mirror: CollectorRegistry | FlmonMetrics | None = None,
        metrics: FlmonMetrics | CollectorRegistry | None = None,
        *,
        start: bool = True,
    ) -> None:
        try:
            from datadog.dogstatsd.base import DogStatsd
        except ImportError as exc:
            raise ImportError("the datadog sink needs the datadog package: "
                              "pip install 'flmon[datadog]'") from exc

        self.config = config if config is not None else DatadogConfig()
        cfg = self.config
        self._statsd = DogStatsd(
            host=None if cfg.socket_path else cfg.host,
            port=None if cfg.socket_path else cfg.port,
            socket_path=cfg.socket_path,
            namespace=cfg.namespace or None,
            constant_tags=list(cfg.constant_tags),
            disable_buffering=True,  # no flush thread of its own: the worker sends
            socket_timeout=0,  # never wait on a full socket: drop the datagram
            # The client's own telemetry counters tell us whether a send failed; its
            # telemetry datagrams are never sent (flmon's fl_sink_* counters stand in).
            disable_telemetry=False,
            telemetry_min_flush_interval=2**31,
            origin_detection_enabled=cfg.origin_detection,
        )
        self._registry = mirror.registry if isinstance(mirror, FlmonMetrics) else mirror
        self._cap = _ClientCap(cfg.max_client_tags)
        self._explicit: dict[str, str] = {}
        if cfg.federation:
            self._explicit["federation"] = cfg.federation
        if cfg.run:
            self._explicit["run"] = cfg.run
        self._context: tuple[str, ...] = self._context_tags({})
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._next_mirror = time.monotonic() + cfg.mirror_interval
        self._final_collected = False
        self._collect_lock = threading.Lock()
        super().__init__(SINK_NAME, cfg.queue, metrics, start=start)

    # --- context ----------------------------------------------------------------------

    def set_context(
        self, *, federation: str | None = None, run: str | int | None = None,
        round: int | None = None,
    ) -> None:
        """Set the ``federation``, ``run`` and ``round`` tags of later points."""
        for key, value in (("federation", federation), ("run", run), ("round", round)):
            if value is not None:
                self._explicit[key] = str(value)
        self._context = self._context_tags({})

    def _context_tags(self, found: Mapping[str, str]) -> tuple[str, ...]:
        logged = current_context()
        fallback = {
            "federation": logged.get("federation"),
            "run": logged.get("run_id"),
            "round": logged.get("round"),
        }
        tags = []
        for key in ("federation", "run", "round"):
            if key == "round" and not self.config.round_tag:
                continue
            value = self._explicit.get(key) or found.get(key) or fallback.get(key)
            if value is not None and value != "":
                tags.append(_tag(_CONTEXT_TAGS[key], value))
        return tuple(tags)

    # --- direct points ------------------------------------------------------------------

    def record(self, name: str, value: float, **labels: str | int | float) -> bool:
        """Queue one point of catalog metric ``name``; never blocks.

        Counters are sent as DogStatsD counts of ``value`` (the increase), gauges as
        gauges, histograms as distributions. Returns ``False`` when dropped (queue
        full, or a NaN or infinite value).
        """
        spec = catalog.get(name)
        unknown = set(labels) - set(spec.labels)
        if unknown:
            raise ValueError(f"{name} has no label(s) {sorted(unknown)}")
        if not math.isfinite(value):  # DogStatsD has no NaN: count it as dropped
            self._counters.dropped.inc()
            return False
        tags = tuple(_tag(k, labels[k]) for k in spec.labels if k in labels)
        if spec.type == "counter":
            point = Point("c", name.removesuffix("_total") + ".count", value, tags,
                          self._context)
        elif spec.type == "histogram":
            point = Point("d", name, value, tags, self._context)
        else:
            point = Point("g", name, value, tags, self._context)
        return self.put(point)

    # --- mirror -----------------------------------------------------------------------

    def collect(self) -> int:
        """Queue one point per moved ``fl_*`` series of the mirrored registry now.

        The worker calls this every ``mirror_interval`` and once more when closing.
        Returns the number of points queued.
        """
        if self._registry is None:
            return 0
        with self._collect_lock:  # the worker and a caller may collect at once
            return self._collect(self._registry)

    def _collect(self, registry: CollectorRegistry) -> int:
        families = list(registry.collect())
        found: dict[str, str] = {}
        for family in families:
            for sample in family.samples:
                if sample.name == "fl_run_info" and sample.labels.get("run_id"):
                    found["run"] = sample.labels["run_id"]
                elif sample.name == "fl_current_round" and sample.value > 0:
                    found["round"] = str(_number(sample.value))
        context = self._context_tags(found)
        queued = 0
        for family in families:
            if not family.name.startswith("fl_"):
                continue
            for sample in family.samples:
                mirrored = self._mirror_point(family.type, sample.name, sample.labels,
                                              sample.value, context)
                if mirrored is None:
                    continue
                point, key = mirrored
                if self._offer(point):
                    queued += 1
                    if key is not None:
                        self._last[key] = self._last.get(key, 0.0) + point.value
        return queued

    def _mirror_point(
        self, mtype: str, sample: str, labels: Mapping[str, str], value: float,
        context: tuple[str, ...],
    ) -> tuple[Point, tuple[str, tuple[tuple[str, str], ...]] | None] | None:
        if not math.isfinite(value):
            return None
        if mtype == "gauge":
            return Point("g", sample, value, self._tags(labels), context), None
        if mtype == "counter" and sample.endswith("_total"):
            metric = sample.removesuffix("_total") + ".count"
        elif mtype == "histogram" and sample.endswith(("_bucket", "_sum", "_count")):
            base, _, suffix = sample.rpartition("_")
            metric = f"{base}.{suffix}"
        else:
            return None  # _created, or a type the catalog does not use
        key = (sample, tuple(sorted(labels.items())))
        delta = value - self._last.get(key, 0.0)
        if delta < 0:  # the registry was reset (a new process): count from zero
            self._last[key] = 0.0
            delta = value
        if delta == 0:
            return None
        return Point("c", metric, delta, self._tags(labels), context), key

    def _tags(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        tags = []
        for key, value in labels.items():
            if key == "le":
                tags.append(_tag("upper_bound", "inf" if value == "+Inf" else value))
            elif value != "":
                tags.append(_tag(key, value))
        return tuple(tags)

    def _tick(self) -> None:
        if self._registry is None or self._final_collected:
            return
        now = time.monotonic()
        if self.closed:
            self._final_collected = True  # one last collection while closing
        elif now < self._next_mirror:
            return
        self._next_mirror = now + self.config.mirror_interval
        self.collect()

    # --- sending ----------------------------------------------------------------------

    def _send(self, batch: Sequence[Point], deadline: float | None) -> SendResult[Point]:
        statsd = self._statsd
        sent = 0
        for index, point in enumerate(batch):
            tags = list(self._bound(point.tags))
            own = {tag.split(":", 1)[0] for tag in tags}  # a label wins over the context
            tags += [tag for tag in point.context if tag.split(":", 1)[0] not in own]
            before = statsd.packets_dropped_writer
            value = _number(point.value)
            if point.kind == "c":
                statsd.count(point.metric, value, tags=tags)
            elif point.kind == "g":
                statsd.gauge(point.metric, value, tags=tags)
            else:
                statsd.distribution(point.metric, value, tags=tags)
            if statsd.packets_dropped_writer != before:
                # The Agent refused it (port closed, socket full): keep the rest for a
                # later attempt after a back-off; this one is lost.
                return SendResult(sent=sent, failed=1, retry=list(batch[index + 1:]),
                                  error=True)
            sent += 1
            if deadline is not None and time.monotonic() >= deadline:
                return SendResult(sent=sent, retry=list(batch[index + 1:]))
        return SendResult(sent=sent)

    def _bound(self, tags: Iterable[str]) -> Iterable[str]:
        for tag in tags:
            if tag.startswith("client:"):
                yield "client:" + self._cap(tag[7:])
            else:
                yield tag

    def _shutdown(self) -> None:
        self._statsd.close_socket()
