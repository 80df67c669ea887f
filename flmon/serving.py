"""The exporter's HTTP server: one that hostile connections cannot stop.

Each connection gets its own thread, and everything a client can drag out happens there:
the TLS handshake, reading the request head, writing the response. The serving thread
only accepts. Every wait a client controls has a deadline:

- the TLS handshake must finish within ``handshake_timeout`` of the connection;
- a request head (request line and headers) must arrive whole within ``read_timeout``
  of the connection (first request) or of its first byte (later requests), and stay
  under ``MAX_HEAD_BYTES``: a slow loris sending one byte a second is cut off at the
  deadline, not kept alive by each byte;
- a keep-alive connection waits at most ``idle_timeout`` for its next request;
- writing a response must finish within ``write_timeout`` (a client that does not read).

At most ``max_connections`` connections are served at once. When a new one arrives at
the bound, the oldest connection that is not in the middle of a response (one still in
its handshake, reading its head, or idle between requests) is closed to make room, so
connections that send nothing cannot crowd out a scrape; only when every connection is
busy answering is the newcomer refused (``503`` on plain HTTP, closed under TLS).

Responses come from a WSGI application (:func:`flmon.exporter.make_app`, whose
``/metrics`` is prometheus_client's own WSGI exposition), bridged here to HTTP/1.1 with
keep-alive. Unexpected errors are logged through the ``flmon.exporter`` logger (ECS
JSON when :func:`flmon.configure_logging` is on), never printed by ``http.server``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

log = logging.getLogger("flmon.exporter")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MAX_HEAD_BYTES = 32 * 1024
"""Largest request head (request line and headers) read before the connection is closed."""

_BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy\n")
_NOTE_INTERVAL = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on what one client can hold of the exporter; seconds and counts.

    The defaults suit a Prometheus server scraping every few seconds over keep-alive
    connections, with room for a few more scrapers and probes.
    """

    max_connections: int = 64
    handshake_timeout: float = 5.0
    read_timeout: float = 10.0
    idle_timeout: float = 60.0
    write_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise ValueError("ConnectionLimits.max_connections must be a positive integer")
        for name in ("handshake_timeout", "read_timeout", "idle_timeout", "write_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"ConnectionLimits.{name} must be a positive number of seconds")


class _Connection:
    """One accepted connection: its socket and whether it is in the middle of a response."""

    __slots__ = ("busy", "evicted", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.busy = False
        self.evicted = False

    def kick(self) -> None:
        """Wake whatever the connection's thread is blocked on; it then closes."""
        self.evicted = True
        # The plain socket's shutdown, also for an SSLSocket: it leaves the TLS object
        # alone while the connection's thread may be using it.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


class _HeadTooLargeError(OSError):
    """The request head exceeded MAX_HEAD_BYTES."""


class _DeadlineReader(io.RawIOBase):
    """Reads a socket under the deadline of the request head being read."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._deadline: float | None = None
        self._waiting = False
        self._read_timeout = 0.0
        self._budget = MAX_HEAD_BYTES

    def readable(self) -> bool:
        return True

    def start_head(self, read_timeout: float, idle_timeout: float | None) -> None:
        """The next request head: its first byte within ``idle_timeout`` (when given),
        all of it within ``read_timeout`` of its first byte (or of now)."""
        now = time.monotonic()
        self._read_timeout = read_timeout
        self._waiting = idle_timeout is not None
        self._deadline = now + (idle_timeout if idle_timeout is not None else read_timeout)
        self._budget = MAX_HEAD_BYTES

    def end_head(self) -> None:
        self._deadline = None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("request head not received in time")
            if self._budget <= 0:
                raise _HeadTooLargeError("request head too large")
            self._sock.settimeout(remaining)
            view = view[:self._budget]
        count = self._sock.recv_into(view)
        if self._deadline is not None:
            self._budget -= count
            if self._waiting and count:
                self._waiting = False
                self._deadline = time.monotonic() + self._read_timeout
        return count


class _SocketWriter(io.RawIOBase):
    """Writes whole buffers (``sendall``), as the response needs."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class _ErrorStream:
    """``wsgi.errors``: what an application writes there goes to the log."""

    def write(self, text: str) -> int:
        if text.strip():
            log.warning("exporter application: %s", text.strip())
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing is buffered."""


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, GET and HEAD only, answered by the server's WSGI app."""

    protocol_version = "HTTP/1.1"
    server: HardenedHTTPServer
    _reader: _DeadlineReader

    def __init__(self, request: socket.socket, client_address: Any,
                 server: HardenedHTTPServer, conn: _Connection) -> None:
        self.conn = conn
        self._first = True
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.connection = self.request
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = _SocketWriter(self.connection)  # type: ignore[assignment]

    def version_string(self) -> str:
        return "flmon"

    def log_message(self, format: str, *args: Any) -> None:
        """Requests and protocol errors are debug records of flmon's logger, not stderr."""
        log.debug("exporter %s: " + format, self.client_address[0], *args)

    def handle_one_request(self) -> None:
        limits = self.server.limits
        self._reader.start_head(limits.read_timeout,
                                None if self._first else limits.idle_timeout)
        self._first = False
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._reader.end_head()
        if ok and (self.headers.get("Content-Length", "0").strip() not in ("", "0")
                   or "Transfer-Encoding" in self.headers):
            self.close_connection = True  # a body is never read: do not parse it as a request
        return ok

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, head: bool) -> None:
        # Busy (never closed to make room) only while the application works: writing
        # the response is up to the client, and a client that does not read is closable.
        if not self.server.begin_response(self.conn):
            self.close_connection = True
            return
        try:
            status, headers, body = self._call_app()
        finally:
            self.server.end_response(self.conn)
        self.connection.settimeout(self.server.limits.write_timeout)
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason or None)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _environ(self) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            # HEAD is answered as GET without the body (prometheus_client's app serves
            # GET only).
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": str(self.client_address[0]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.ssl_context is not None else "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": _ErrorStream(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            if "_" in name:
                continue  # as wsgiref: X_Forwarded would otherwise pose as X-Forwarded
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call_app(self) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, headers]

            def write(data: bytes) -> None:
                raise RuntimeError("the exporter does not support WSGI write()")

            return write

        try:
            result = self.server.app(self._environ(), start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if not captured:
                raise RuntimeError("the application did not call start_response")
        except Exception:
            log.error("exporter: the request handler for %s failed", self.path[:200],
                      exc_info=True, extra={"event.action": "exporter-handler-error"})
            return ("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")],
                    b"internal error\n")
        return str(captured[0]), list(captured[1]), body


class HardenedHTTPServer(socketserver.TCPServer):
    """Accepts on one thread; serves each connection on its own, within ``limits``."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WSGIApp, limits: ConnectionLimits,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.limits = limits
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._closing = False
        self._counts = {"evicted": 0, "refused": 0}
        self._noted = {"evicted": 0, "refused": 0}
        self._last_note = -_NOTE_INTERVAL
        # Connections are served by _serve (which builds a _Handler), not by the
        # RequestHandlerClass of socketserver's own dispatch.
        super().__init__(address, socketserver.BaseRequestHandler)

    # --- admission ---------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        conn = _Connection(request)
        with self._lock:
            admitted = self._admit(conn)
            if not admitted:
                self._counts["refused"] += 1
        self._note()
        if not admitted:
            self._refuse(request)
            return
        thread = threading.Thread(target=self._serve, args=(conn, client_address),
                                  name="flmon-exporter-conn", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no more threads: refuse rather than fail the serving thread
            with self._lock:
                self._connections.pop(id(conn), None)
            self._refuse(request)

    def _admit(self, conn: _Connection) -> bool:
        """Under the lock: make room if need be, register ``conn``; False to refuse it."""
        if self._closing:
            return False
        bound = self.limits.max_connections
        if len(self._connections) >= bound:
            # Connections already kicked are on their way out; never hold more than twice
            # the bound of them at once.
            victim = next((c for c in self._connections.values()
                           if not c.busy and not c.evicted), None)
            if victim is None or len(self._connections) >= 2 * bound:
                return False
            victim.kick()
            self._counts["evicted"] += 1
        self._connections[id(conn)] = conn
        return True

    def _refuse(self, sock: socket.socket) -> None:
        try:
            if self.ssl_context is None:
                sock.setblocking(False)
                sock.send(_BUSY_RESPONSE)
        except OSError:
            pass
        self.shutdown_request(sock)

    def _note(self) -> None:
        """At most one warning per interval about connections closed or refused.

        Logged outside the lock: a slow log handler must not hold up admissions.
        """
        now = time.monotonic()
        with self._lock:
            if self._counts == self._noted or now - self._last_note < _NOTE_INTERVAL:
                return
            self._last_note = now
            evicted = self._counts["evicted"] - self._noted["evicted"]
            refused = self._counts["refused"] - self._noted["refused"]
            self._noted = dict(self._counts)
        log.warning("exporter at its connection bound (%d): %d idle or unfinished connection(s) "
                    "closed to make room, %d refused while all were answering",
                    self.limits.max_connections, evicted, refused,
                    extra={"event.action": "exporter-connection-bound"})

    # --- per-connection thread -----------------------------------------------------------

    def begin_response(self, conn: _Connection) -> bool:
        """Mark ``conn`` busy (not to be closed for room); False when it was closed already."""
        with self._lock:
            if conn.evicted:
                return False
            conn.busy = True
            return True

    def end_response(self, conn: _Connection) -> None:
        with self._lock:
            conn.busy = False

    def _serve(self, conn: _Connection, client_address: Any) -> None:
        try:
            sock = conn.sock
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                with self._lock:
                    if conn.evicted:
                        return
                    sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                        do_handshake_on_connect=False)
                    conn.sock = sock
                # The timeout is a deadline for the whole handshake (CPython's ssl module).
                sock.settimeout(self.limits.handshake_timeout)
                sock.do_handshake()
            _Handler(sock, client_address, self, conn)
        except OSError as exc:  # timeouts, resets, TLS failures, closed to make room
            log.debug("exporter connection from %s closed: %s: %s", client_address[0],
                      type(exc).__name__, exc)
        except Exception:
            log.error("exporter: unexpected error on a connection from %s", client_address[0],
                      exc_info=True, extra={"event.action": "exporter-handler-error"})
        finally:
            with self._lock:
                self._connections.pop(id(conn), None)
            self.shutdown_request(conn.sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Errors on the serving thread are logged, not printed."""
        log.error("exporter: error accepting a connection", exc_info=True,
                  extra={"event.action": "exporter-handler-error"})

    def connection_count(self) -> int:
        """Connections currently held (for tests and benchmarks)."""
        with self._lock:
            return len(self._connections)

    def server_close(self) -> None:
        """Stop accepting, and close every connection still open."""
        with self._lock:
            self._closing = True
            connections = list(self._connections.values())
        for conn in connections:
            conn.kick()
        super().server_close()
