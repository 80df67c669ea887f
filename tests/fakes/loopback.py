"""Loopback endpoints that speak the wire formats the sinks talk to, for the tests and
benchmarks only (no Datadog Agent, Elasticsearch or Slack is needed).

* :class:`UdpReceiver`: a DogStatsD listener collecting datagrams.
* :class:`FakeElasticsearch`: ``_bulk`` answered as Elasticsearch answers it (product
  header, NDJSON parsing, per-item statuses, ``create`` conflicts, scripted 429/5xx).
* :class:`FakeSlack`: the stack's Slack receiver (scripted answers) under the sink
  tests' names.
* :func:`closed_port`, :class:`BlackHole`, :class:`SlowHttpServer`,
  :class:`SlowUnixReader`: the fault endpoints.

Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flmon.stack.ports import LOOPBACK
from flmon.stack.ports import free_port as closed_port
from flmon.stack.slack_receiver import (
    CHANNEL_NOT_FOUND,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    SlackAnswer,
    SlackMessage,
    SlackReceiver,
)

__all__ = [
    "CHANNEL_NOT_FOUND", "OK", "RATE_LIMITED", "SERVER_ERROR", "BlackHole", "BulkRequest",
    "FakeElasticsearch", "FakeSlack", "SlackAnswer", "SlowHttpServer", "SlowUnixReader",
    "UdpReceiver",
    "closed_port",
]


SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
"""Linux: set the receive buffer past ``net.core.rmem_max`` (needs CAP_NET_ADMIN)."""
RECEIVE_BUFFER = 16 * 1024 * 1024


class UdpReceiver:
    """Collect every datagram sent to ``127.0.0.1:port``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # The kernel drops datagrams that do not fit the receive buffer (the default holds
        # about a hundred small ones) while this thread waits for the CPU on a busy machine:
        # a large buffer, past rmem_max where allowed, so what was sent is what is read.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)

    def lines(self) -> list[str]:
        return [line for d in list(self.datagrams) for line in d.decode().splitlines() if line]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.lines()) < count:
            time.sleep(0.01)
        time.sleep(0.05)  # anything more that was on its way
        return self.lines()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class _HttpServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that gave up and hung up: expected here
        super().handle_error(request, client_address)


class _Server:
    """A threading HTTP server on a loopback port, stopped by :meth:`close`."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.httpd = _HttpServer((LOOPBACK, 0), self.handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2)


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: that is what a slow server is for


# --- Elasticsearch -------------------------------------------------------------------

ES_HEADERS = {
    "X-Elastic-Product": "Elasticsearch",
    "Content-Type": "application/vnd.elasticsearch+json;compatible-with=9",
}

# A scripted answer to one _bulk request:
#   "ok"                    index every document
#   ("status", 429)         refuse the whole request with that HTTP status
#   ("items", [200, 429..]) per-item statuses, in request order (200 indexes the doc)
#   ("slow", seconds)       answer "ok" after a delay
#   ("garbage", b"...")     a 200 without the product header
#   ("lost", seconds)       index every document, but answer only after a delay (the
#                           client times out and retries what is in fact indexed)
BulkScript = Any


@dataclass
class BulkRequest:
    path: str
    headers: dict[str, str]
    actions: list[dict[str, Any]]
    docs: list[dict[str, Any]]
    status: int = 0


@dataclass
class _EsState:
    script: list[BulkScript] = field(default_factory=list)
    indexed: dict[str, dict[str, Any]] = field(default_factory=dict)
    index_of: dict[str, str] = field(default_factory=dict)
    requests: list[BulkRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _EsHandler(_QuietHandler):
    def do_GET(self) -> None:
        if self._read_api():
            return
        body = json.dumps({"name": "fake", "cluster_name": "flmon-test",
                           "version": {"number": "9.0.0"},
                           "tagline": "You Know, for Search"}).encode()
        self._answer(200, body, ES_HEADERS)

    def do_DELETE(self) -> None:
        state: _EsState = self.server.owner.state  # type: ignore[attr-defined]
        index = self.path.split("?")[0].strip("/")
        with state.lock:
            for doc_id in [i for i, idx in state.index_of.items() if idx == index]:
                del state.indexed[doc_id]
                del state.index_of[doc_id]
        self._answer(200, b'{"acknowledged":true}', ES_HEADERS)

    def _read_api(self) -> bool:
        """``_refresh``, ``_count`` and a ``match`` ``_search`` over what was indexed."""
        path = self.path.split("?")[0].strip("/")
        index, _, api = path.partition("/")
        if api not in ("_refresh", "_count", "_search"):
            return False
        state: _EsState = self.server.owner.state  # type: ignore[attr-defined]
        raw = self._body()
        with state.lock:
            docs = [d for i, d in state.indexed.items() if state.index_of[i] == index]
        if api == "_refresh":
            body: dict[str, Any] = {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        elif api == "_count":
            body = {"count": len(docs)}
        else:
            query = json.loads(raw or b"{}").get("query", {}).get("match", {})
            for key, wanted in query.items():
                wanted = wanted.get("query") if isinstance(wanted, dict) else wanted
                docs = [d for d in docs if d.get(key) == wanted]
            body = {"hits": {"total": {"value": len(docs), "relation": "eq"},
                             "hits": [{"_index": index, "_source": d} for d in docs]}}
        self._answer(200, json.dumps(body).encode(), ES_HEADERS)
        return True

    def do_HEAD(self) -> None:
        self._answer(200, b"", ES_HEADERS)

    def do_PUT(self) -> None:
        # The Python client sends _bulk as PUT; Elasticsearch takes PUT and POST alike.
        self.do_POST()

    def do_POST(self) -> None:
        if self._read_api():
            return
        state: _EsState = self.server.owner.state  # type: ignore[attr-defined]
        raw = self._body()
        if not self.path.split("?")[0].endswith("/_bulk"):
            self._answer(404, b'{"error":"no handler"}', ES_HEADERS)
            return
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        actions, docs = lines[0::2], lines[1::2]
        req = BulkRequest(self.path, dict(self.headers), actions, docs)
        with state.lock:
            step = state.script.pop(0) if state.script else "ok"
            state.requests.append(req)
        delay = 0.0
        if isinstance(step, tuple) and step[0] in ("slow", "lost"):
            if step[0] == "slow":
                time.sleep(step[1])
            else:
                delay = step[1]
            step = "ok"
        if isinstance(step, tuple) and step[0] == "garbage":
            req.status = 200
            self._answer(200, step[1], {"Content-Type": "text/html"})
            return
        if isinstance(step, tuple) and step[0] == "status":
            req.status = step[1]
            err = {"error": {"type": "es_rejected_execution_exception" if step[1] == 429
                             else "internal_error", "reason": "scripted"},
                   "status": step[1]}
            self._answer(step[1], json.dumps(err).encode(), ES_HEADERS)
            return
        statuses = step[1] if isinstance(step, tuple) else [200] * len(actions)
        items = []
        errors = False
        with state.lock:
            for action, doc, wanted in zip(actions, docs, statuses, strict=False):
                op, meta = next(iter(action.items()))
                index = meta.get("_index") or self.path.strip("/").split("/")[0]
                doc_id = meta.get("_id")
                item: dict[str, Any] = {"_index": index, "_id": doc_id}
                if wanted == 200 and op == "create" and doc_id in state.indexed:
                    item.update(status=409, error={
                        "type": "version_conflict_engine_exception",
                        "reason": f"[{doc_id}]: version conflict, document already exists"})
                    errors = True
                elif wanted == 200:
                    state.indexed[doc_id] = doc
                    state.index_of[doc_id] = index
                    item.update(status=201, result="created", _version=1)
                else:
                    kind = {429: "es_rejected_execution_exception",
                            400: "document_parsing_exception"}.get(wanted, "internal_error")
                    item.update(status=wanted, error={"type": kind, "reason": "scripted"})
                    errors = True
                items.append({op: item})
        req.status = 200
        body = json.dumps({"took": 1, "errors": errors, "items": items}).encode()
        if delay:
            time.sleep(delay)
        self._answer(200, body, ES_HEADERS)


class FakeElasticsearch(_Server):
    """``_bulk`` on loopback, answering like Elasticsearch."""

    handler = _EsHandler

    def __init__(self, script: list[BulkScript] | None = None) -> None:
        self.state = _EsState(script=list(script or []))
        super().__init__()

    @property
    def indexed(self) -> dict[str, dict[str, Any]]:
        with self.state.lock:
            return dict(self.state.indexed)

    @property
    def requests(self) -> list[BulkRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def sent_ids(self) -> list[str]:
        """Every ``_id`` in every request, in order (repeats show the retries)."""
        return [a[next(iter(a))]["_id"] for r in self.requests for a in r.actions]


# --- Slack ------------------------------------------------------------------------------


class FakeSlack(SlackReceiver):
    """:class:`flmon.stack.slack_receiver.SlackReceiver`, started at once, with
    ``webhook_url()`` (a URL whose path looks like a real webhook's secret), ``posts``
    and ``close()``."""

    def __init__(self, script: Sequence[SlackAnswer] = (), default: SlackAnswer = OK) -> None:
        super().__init__(script=script, default=default)
        self.start()

    def webhook_url(self) -> str:
        return (f"http://{LOOPBACK}:{self.port}"
                "/services/T000TEST/B000TEST/abcdefghijklmnopqrstuvwx")

    @property
    def posts(self) -> list[SlackMessage]:
        return self.messages()

    def close(self) -> None:
        self.stop()


# --- faults -----------------------------------------------------------------------------


class BlackHole:
    """A TCP port that listens but never accepts: connections hang in the backlog.

    The kernel completes handshakes up to the backlog; later connects hang too. Nothing
    is ever read or answered.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(1)
        self.port = int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def close(self) -> None:
        self.sock.close()


class _SlowHandler(_QuietHandler):
    def do_POST(self) -> None:
        owner: SlowHttpServer = self.server.owner  # type: ignore[attr-defined]
        self._body()
        owner.hits += 1
        owner.stop.wait(owner.delay)
        self._answer(200, b"ok", {"X-Elastic-Product": "Elasticsearch",
                                  "Content-Type": "text/plain"})

    def do_PUT(self) -> None:
        self.do_POST()


class SlowUnixReader:
    """A Unix datagram socket read once every ``delay`` seconds (never, for a black hole)."""

    def __init__(self, path: Path, delay: float | None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.stop = threading.Event()
        if delay is not None:
            threading.Thread(target=self._read, args=(delay,), daemon=True).start()

    def _read(self, delay: float) -> None:
        while not self.stop.wait(delay):
            try:
                self.sock.recv(65535)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class SlowHttpServer(_Server):
    """Answers every request after ``delay`` seconds (10 s by default)."""

    handler = _SlowHandler

    def __init__(self, delay: float = 10.0) -> None:
        self.delay = delay
        self.hits = 0
        self.stop = threading.Event()
        super().__init__()

    def close(self) -> None:
        self.stop.set()
        super().close()

