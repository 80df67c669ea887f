"""``start_exporter``: serve ``/metrics`` and ``/healthz`` from an explicit registry.

The server (:mod:`flmon.serving`) accepts on a daemon thread and serves each connection
on its own thread, TLS handshake included, with deadlines on everything a client can
drag out and a bound on concurrent connections (:class:`ConnectionLimits`). The body of
``/metrics`` is prometheus_client's WSGI exposition. TLS is optional (certificate and
key files); :mod:`flmon.webconfig` adds client authentication.
"""

from __future__ import annotations

import errno
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from flmon import registry as default_registries
from flmon.serving import ConnectionLimits, HardenedHTTPServer

__all__ = ["ConnectionLimits", "Exporter", "make_app", "start_exporter"]

log = logging.getLogger("flmon.exporter")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Authenticator = Callable[[dict[str, Any]], bool]


def _authenticated(authenticate: Authenticator, environ: dict[str, Any]) -> bool:
    """Whatever goes wrong while checking credentials is a refusal (401), never a 500."""
    try:
        return bool(authenticate(environ))
    except Exception:
        log.error("exporter: the credential check failed; request refused", exc_info=True,
                  extra={"event.action": "exporter-auth-error", "event.outcome": "failure"})
        return False


def make_app(
    registry: CollectorRegistry,
    authenticate: Authenticator | None = None,
    health: Callable[[], bool] | None = None,
) -> WSGIApp:
    """The WSGI application: ``/metrics``, ``/healthz`` and a small index page.

    Parameters
    ----------
    registry
        What ``/metrics`` exposes.
    authenticate
        Called with the WSGI environ of every request but ``/healthz``; a request it
        refuses, or that raises, gets 401 with a ``WWW-Authenticate`` challenge.
    health
        Answers ``/healthz``: 200 ``ok`` when true, 503 otherwise. Always ok when omitted.
    """
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            healthy = True if health is None else bool(health())
            status = "200 OK" if healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if healthy else b"unhealthy\n"]
        if authenticate is not None and not _authenticated(authenticate, environ):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain; charset=utf-8"),
                 ("WWW-Authenticate", 'Basic realm="flmon"')],
            )
            return [b"unauthorized\n"]
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [b'<html><body><h1>flmon</h1><a href="/metrics">metrics</a></body></html>\n']
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found\n"]

    return app


@dataclass
class Exporter:
    """A running exporter; ``close()`` stops it."""

    server: HardenedHTTPServer
    thread: threading.Thread
    addr: str
    port: int
    tls: bool

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings connections are served with (None on plain HTTP)."""
        return self.server.ssl_context

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bind(addr: str, port: int, tries: int,
          serve_on: Callable[[int], HardenedHTTPServer]) -> HardenedHTTPServer:
    """The server on the first free port of ``port .. port + tries - 1``."""
    if tries < 1:
        raise ValueError("port_tries must be >= 1")
    last = port if port == 0 else min(port + tries - 1, 65535)
    for candidate in range(port, last + 1):
        try:
            server = serve_on(candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or candidate == last:
                raise
            continue
        if candidate != port:
            logging.getLogger("flmon.exporter").warning(
                "port %d is taken (another run's exporter?): serving /metrics on port %d",
                port, candidate)
        return server
    raise AssertionError("unreachable")  # pragma: no cover


def start_exporter(
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_cafile: str | None = None,
    authenticate: Authenticator | None = None,
    health: Callable[[], bool] | None = None,
    web_config: str | None = None,
    limits: ConnectionLimits | None = None,
    port_tries: int = 1,
) -> Exporter:
    """Serve ``registry`` on ``http(s)://addr:port/metrics`` from a daemon thread.

    Parameters
    ----------
    port
        TCP port; 0 picks a free one (read it back from ``Exporter.port``).
    addr
        Bind address. Loopback by default: bind ``0.0.0.0`` on purpose, in a pod.
    registry
        The registry to expose; flmon's default registry
        (:func:`flmon.registry.default_registry`) when omitted, where ``instrument``
        and ``track_training`` record by default. Never ``prometheus_client.REGISTRY``
        unless passed.
    certfile, keyfile
        PEM files: serve HTTPS with them (TLS 1.2 or newer).
    client_cafile
        Require client certificates signed by this CA (mutual TLS).
    authenticate, health
        See :func:`make_app`.
    web_config
        Path of a web configuration file in the format of Prometheus' exporter-toolkit
        (TLS, client certificates, basic auth, bearer token; see :mod:`flmon.webconfig`).
        It sets ``certfile``, ``keyfile``, ``client_cafile``, ``authenticate`` and the
        minimum TLS version, and cannot be combined with them.
    limits
        Connection bound and timeouts (:class:`ConnectionLimits`: 64 connections,
        5 s handshake, 10 s request head, 60 s keep-alive idle, 10 s write by default).
    port_tries
        Ports to try, from ``port`` up: a second ServerApp running at the same time on
        the same host (concurrent runs) binds ``port + 1`` instead of failing. The port
        bound is logged and in ``Exporter.port``; see docs/architecture.md.
    """
    min_tls = ssl.TLSVersion.TLSv1_2
    if web_config is not None:
        from flmon.webconfig import load_web_config

        if any(v is not None for v in (certfile, keyfile, client_cafile, authenticate)):
            raise ValueError("web_config sets the TLS files and authentication: "
                             "pass them in the file, not as arguments")
        web = load_web_config(web_config)
        kwargs = web.exporter_kwargs()
        certfile, keyfile = kwargs["certfile"], kwargs["keyfile"]
        client_cafile, authenticate = kwargs["client_cafile"], kwargs["authenticate"]
        min_tls = web.tls_min_version
    if registry is None:
        from flmon.runlabel import run_labelled

        registry = run_labelled(default_registries.default_registry())  # adds run_id
    if (certfile is None) != (keyfile is None):
        raise ValueError("TLS needs both certfile and keyfile")
    app = make_app(registry, authenticate=authenticate, health=health)
    context: ssl.SSLContext | None = None
    if certfile is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = min_tls
        context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        if client_cafile is not None:
            context.load_verify_locations(cafile=client_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
    tls = context is not None
    server = _bind(addr, port, port_tries,
                   lambda candidate: HardenedHTTPServer((addr, candidate), app,
                                                        limits or ConnectionLimits(), context))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="flmon-exporter", daemon=True)
    thread.start()
    bound_port = int(server.server_address[1])
    return Exporter(server=server, thread=thread, addr=addr, port=bound_port, tls=tls)
