"""Elasticsearch sink: a ``logging.Handler`` that ships ECS documents in bulk.

``emit`` freezes the record (its message formatted, the run, round and node context
captured) and queues it; it never waits for the network. The sink's worker thread turns
each record into the same ECS document the JSON log line carries
(:meth:`flmon.logs.EcsFormatter.to_dict`, so the context fields and secret redaction
come with it) and sends batches with ``elasticsearch.helpers.streaming_bulk``.

Delivery, once per document: each document gets an id when it is first sent and is
sent with ``op_type: create``. A retry of a document that an earlier attempt did index
is answered ``409 version_conflict`` and counted as delivered, so retries never
duplicate a document (this also makes the sink work with data streams).

Retries: documents rejected with ``429`` or a ``5xx``, and whole requests that failed
(connection refused, timeout, ``429``/``5xx`` for the request), are retried by the worker
with exponential back-off, up to ``max_retries`` times, then dropped. Documents the
cluster refuses for good (a mapping conflict, ``400``, ``401``/``403``) are dropped
at once. All of it is counted in ``fl_sink_*{sink="elasticsearch"}``.

Credentials come from the environment or from files only, never from the URL or the
code: ``FLMON_ES_API_KEY`` / ``FLMON_ES_API_KEY_FILE``, or ``FLMON_ES_USERNAME`` with
``FLMON_ES_PASSWORD`` / ``FLMON_ES_PASSWORD_FILE``, read by
:func:`flmon.secrets.read_secret`, which registers them for log redaction, so no flmon log
line can carry them.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from flmon.logs import EcsFormatter, current_context, log_context
from flmon.metrics import FlmonMetrics
from flmon.secrets import read_secret
from flmon.sinks.base import QueueSettings, QueueSink, SendResult

SINK_NAME = "elasticsearch"

# Records of these loggers are never shipped: the client's own records about a
# request the sink makes would feed the queue they are about.
_IGNORED_LOGGERS = ("elastic_transport", "elasticsearch", "urllib3", "flmon.sinks")


@dataclass(frozen=True)
class ElasticsearchConfig:
    """Settings of the Elasticsearch log sink (no credentials: see :func:`read_credentials`).

    Parameters
    ----------
    hosts
        Cluster URLs (``https://es.example:9200``); no user or password in them.
    index
        Index, alias or data stream written to (``op_type: create``). The default is
        the data stream that ``flmon render``'s index template (pattern ``flmon-logs-*``)
        creates on first write.
    request_timeout
        Seconds one bulk request may take.
    ca_certs
        CA bundle to verify the cluster's certificate.
    verify_certs
        Verify TLS certificates (leave on outside tests).
    level
        Lowest level the handler ships.
    queue
        Queue, batch and retry settings.
    """

    hosts: tuple[str, ...] = ("http://localhost:9200",)
    index: str = "flmon-logs-default"
    request_timeout: float = 10.0
    ca_certs: str | None = None
    verify_certs: bool = True
    level: int = logging.INFO
    queue: QueueSettings = field(
        default_factory=lambda: QueueSettings(queue_size=10_000, batch_size=500,
                                              flush_interval=1.0, max_retries=5,
                                              initial_backoff=0.5, max_backoff=30.0)
    )

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("at least one Elasticsearch URL is needed")
        for host in self.hosts:
            parts = urlsplit(host)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("Elasticsearch URLs look like https://host:9200")
            if parts.username or parts.password:
                raise ValueError("put Elasticsearch credentials in FLMON_ES_API_KEY(_FILE) or "
                                 "FLMON_ES_USERNAME/FLMON_ES_PASSWORD(_FILE), not in the URL")
        if not self.index or self.index != self.index.lower() or " " in self.index:
            raise ValueError(f"{self.index!r} is not a valid index name (lowercase, no spaces)")
        if self.request_timeout <= 0:
            raise ValueError("request_timeout must be positive")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> ElasticsearchConfig:
        """Read ``FLMON_ES_URL`` (comma-separated), ``FLMON_ES_INDEX``, ``FLMON_ES_CA_CERTS``,
        ``FLMON_ES_TIMEOUT`` and ``FLMON_ES_LEVEL``; ``overrides`` win."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        if env.get("FLMON_ES_URL"):
            kwargs["hosts"] = tuple(u.strip() for u in env["FLMON_ES_URL"].split(",")
                                    if u.strip())
        if env.get("FLMON_ES_INDEX"):
            kwargs["index"] = env["FLMON_ES_INDEX"]
        if env.get("FLMON_ES_CA_CERTS"):
            kwargs["ca_certs"] = env["FLMON_ES_CA_CERTS"]
        if env.get("FLMON_ES_TIMEOUT"):
            kwargs["request_timeout"] = float(env["FLMON_ES_TIMEOUT"])
        if env.get("FLMON_ES_LEVEL"):
            level = logging.getLevelName(env["FLMON_ES_LEVEL"].upper())
            if not isinstance(level, int):
                raise ValueError(f"FLMON_ES_LEVEL={env['FLMON_ES_LEVEL']!r} is not a log level")
            kwargs["level"] = level
        kwargs.update(overrides)
        return cls(**kwargs)


def read_credentials(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client keyword arguments for the credentials found in ``env`` (or ``os.environ``).

    ``FLMON_ES_API_KEY`` (or ``_FILE``) gives ``api_key``; ``FLMON_ES_USERNAME`` with
    ``FLMON_ES_PASSWORD`` (or ``_FILE``) gives ``basic_auth``. Every value found is
    registered as a secret, so logs redact it. Empty when none is set.
    """
    env = os.environ if env is None else env
    api_key = read_secret(env="FLMON_ES_API_KEY", file_env="FLMON_ES_API_KEY_FILE",
                          what="Elasticsearch API key", environ=env)
    password = read_secret(env="FLMON_ES_PASSWORD", file_env="FLMON_ES_PASSWORD_FILE",
                           what="Elasticsearch password", environ=env)
    username = env.get("FLMON_ES_USERNAME")
    if api_key and (password or username):
        raise ValueError("set either an Elasticsearch API key or a username and password")
    if api_key:
        return {"api_key": api_key}
    if password or username:
        if not (password and username):
            raise ValueError("FLMON_ES_USERNAME and FLMON_ES_PASSWORD(_FILE) go together")
        return {"basic_auth": (username, password)}
    return {}


class _Doc:
    """A queued record, its ECS document once built, and the id it keeps across retries."""

    __slots__ = ("context", "doc", "id", "record")

    def __init__(self, record: logging.LogRecord, context: dict[str, Any]) -> None:
        self.record: logging.LogRecord | None = record
        self.context = context
        self.doc: dict[str, Any] | None = None
        self.id: str | None = None


class _BulkSink(QueueSink[_Doc]):
    def __init__(
        self,
        config: ElasticsearchConfig,
        client: Any,
        metrics: FlmonMetrics | CollectorRegistry | None,
        start: bool,
        ecs: EcsFormatter,
    ) -> None:
        self.config = config
        self._client = client
        self._ecs = ecs
        self._unreachable = False
        super().__init__(SINK_NAME, config.queue, metrics, start=start)

    def _document(self, item: _Doc) -> dict[str, Any] | None:
        """Build the ECS document of a queued record (once), in its logging context."""
        if item.doc is None and item.record is not None:
            record, item.record = item.record, None
            try:
                with log_context(**item.context):
                    item.doc = self._ecs.to_dict(record)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the rest
                self._note_error(f"could not format a record: {type(exc).__name__}")
        return item.doc

    def _send(self, batch: Sequence[_Doc], deadline: float | None) -> SendResult[_Doc]:
        timeout = self.config.request_timeout
        if deadline is not None:
            timeout = max(0.05, min(timeout, deadline - time.monotonic()))
        client = self._client.options(request_timeout=timeout)
        items = list(batch)
        if self._unreachable:
            # The last request did not get through: try one document before building
            # and sending the whole batch again (a probe that needs no more privilege
            # than the writes themselves).
            probe, reachable = self._bulk(client, items[:1])
            if not reachable:
                probe.retry.extend(items[1:])
                return probe
            rest, _ = self._bulk(client, items[1:])
            return SendResult(sent=probe.sent + rest.sent, retry=probe.retry + rest.retry,
                              failed=probe.failed + rest.failed,
                              error=probe.error or rest.error)
        result, _ = self._bulk(client, items)
        return result

    def _bulk(self, client: Any, items: list[_Doc]) -> tuple[SendResult[_Doc], bool]:
        """One ``streaming_bulk`` call; also returns whether the cluster was reached."""
        from elastic_transport import TransportError
        from elasticsearch.helpers import streaming_bulk

        unformattable = [item for item in items if self._document(item) is None]
        batch = [item for item in items if item.doc is not None]
        result: SendResult[_Doc] = SendResult(failed=len(unformattable),
                                              error=bool(unformattable))
        if not batch:
            return result, True
        for item in batch:
            if item.id is None:
                item.id = uuid.uuid4().hex
        by_id = {item.id: item for item in batch}
        done: set[str] = set()
        reasons: dict[str, int] = {}

        def actions() -> Iterator[dict[str, Any]]:
            for item in batch:
                yield {"_op_type": "create", "_index": self.config.index, "_id": item.id,
                       "_source": item.doc}

        try:
            for ok, info in streaming_bulk(
                client, actions(), chunk_size=len(batch), raise_on_error=False,
                raise_on_exception=False, max_retries=0, yield_ok=True,
            ):
                _, outcome = next(iter(info.items()))
                doc_id = outcome.get("_id")
                status = int(outcome.get("status") or 0)
                done.add(str(doc_id))
                if ok or status == 409:  # 409 on create: an earlier attempt indexed it
                    result.sent += 1
                elif status == 429 or status >= 500 or status == 0:
                    result.error = True
                    if doc_id in by_id:
                        result.retry.append(by_id[doc_id])
                else:
                    result.error = True
                    result.failed += 1
                    reason = outcome.get("error")
                    kind = reason.get("type") if isinstance(reason, dict) else type(
                        outcome.get("exception")).__name__
                    reasons[f"{status} {kind}"] = reasons.get(f"{status} {kind}", 0) + 1
        except TransportError as exc:  # connection refused, timeout: retry what is left
            result.error = True
            result.retry.extend(item for item in batch if item.id not in done)
            self._unreachable = True
            self._note_error(f"bulk request failed: {type(exc).__name__}")
            return result, False
        self._unreachable = False
        if reasons:
            self._note_error(f"documents refused: {reasons}")
        return result, True

    def _shutdown(self) -> None:
        self._client.close()


class ElasticsearchHandler(logging.Handler):
    """A logging handler that ships ECS documents to Elasticsearch from a background thread.

    Parameters
    ----------
    config
        URLs, index, timeouts, queue settings; from the environment when omitted
        (:meth:`ElasticsearchConfig.from_env`).
    metrics
        Where the ``fl_sink_*`` counters live.
    formatter
        The ECS formatter (``service.name``, subclass fields).
    env
        Where credentials are read from (``os.environ`` when omitted).
    start
        Start the worker now.
    """

    def __init__(
        self,
        config: ElasticsearchConfig | None = None,
        metrics: FlmonMetrics | CollectorRegistry | None = None,
        *,
        formatter: EcsFormatter | None = None,
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> None:
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:
            raise ImportError("the elasticsearch sink needs the elasticsearch package: "
                              "pip install 'flmon[elasticsearch]'") from exc

        self.config = config if config is not None else ElasticsearchConfig.from_env(env)
        super().__init__(self.config.level)
        self.ecs = formatter if formatter is not None else EcsFormatter()
        self.setFormatter(self.ecs)
        options: dict[str, Any] = dict(read_credentials(env))
        if self.config.ca_certs:
            options["ca_certs"] = self.config.ca_certs
        client = Elasticsearch(
            list(self.config.hosts),
            request_timeout=self.config.request_timeout,
            max_retries=0,  # the sink's worker retries, with back-off and a deadline
            retry_on_timeout=False,
            verify_certs=self.config.verify_certs,
            **options,
        )
        self.sink = _BulkSink(self.config, client, metrics, start, self.ecs)
        self._closed = False

    @property
    def metrics(self) -> FlmonMetrics:
        """The registry holding this handler's ``fl_sink_*`` counters."""
        return self.sink.metrics

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record; drop (and count) when the queue is full.

        What depends on the moment of the call is fixed here: the message is formatted
        and the run/round/node context captured. The ECS document itself is built on the
        sink's thread, so that the caller pays a few microseconds per record.
        """
        if record.name.startswith(_IGNORED_LOGGERS) or \
                threading.current_thread().name == f"flmon-sink-{SINK_NAME}":
            return
        if self.sink.reject_if_full():  # do not prepare what would be dropped
            return
        try:
            frozen = copy.copy(record)  # other handlers keep the record as it was
            frozen.msg = record.getMessage()
            frozen.args = None
            context = current_context()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        self.sink.put(_Doc(frozen, context))

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait up to ``timeout`` seconds (the close timeout by default) for the queue to
        empty; return whether it did."""
        if self._closed:
            return True
        return self.sink.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Ship what is queued within ``timeout`` seconds, then stop (idempotent)."""
        if not self._closed:
            self._closed = True
            self.sink.close(timeout)
        super().close()
