"""Hostile connections against the exporter, over real loopback sockets, plain and TLS.

An idle TCP connection, one that never finishes its TLS handshake, 30 clients sending
half a request line, a slow loris dribbling bytes, more connections than the bound:
none of them may stop a scrape of ``/metrics`` or ``/healthz``. "Still answers" means
the scrape completes within the client's timeout (the timeout is the failure mode).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from flmon.exporter import ConnectionLimits, Exporter, start_exporter
from tests.core.certs import self_signed

CLIENT_TIMEOUT = 5.0


@dataclass
class Target:
    exporter: Exporter
    client_context: ssl.SSLContext | None

    @property
    def base(self) -> str:
        return self.exporter.url.removesuffix("/metrics")

    def connect(self) -> socket.socket:
        """A raw TCP connection (no TLS handshake, nothing sent)."""
        return socket.create_connection(("127.0.0.1", self.exporter.port),
                                        timeout=CLIENT_TIMEOUT)

    def connect_ready(self) -> socket.socket:
        """A connection ready for HTTP: TLS handshake done when the exporter is TLS."""
        sock = self.connect()
        if self.client_context is None:
            return sock
        return self.client_context.wrap_socket(sock, server_hostname="127.0.0.1")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT,
                                        context=self.client_context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def held(self) -> int:
        return self.exporter.server.connection_count()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("fl_connection_probe", "x", registry=registry).inc(7)
    return registry


def _wait(predicate: Callable[[], Any], what: str, timeout: float = CLIENT_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes ``sock`` (EOF or reset) within the client timeout."""
    sock.settimeout(CLIENT_TIMEOUT)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return True


def _assert_scrapes(target: Target) -> None:
    status, body = target.get("/metrics")
    assert status == 200 and "fl_connection_probe_total 7.0" in body
    assert target.get("/healthz") == (200, "ok\n")


@pytest.fixture(params=["plain", "tls"])
def serve(request: pytest.FixtureRequest, tmp_path: Path
          ) -> Iterator[Callable[..., Target]]:
    started: list[Exporter] = []

    def start(limits: ConnectionLimits | None = None, **kwargs: Any) -> Target:
        context = None
        if request.param == "tls":
            cert, key = self_signed(tmp_path)
            kwargs.update(certfile=str(cert), keyfile=str(key))
            context = ssl.create_default_context(cafile=str(cert))
        exporter = start_exporter(0, registry=_registry(), limits=limits, **kwargs)
        started.append(exporter)
        return Target(exporter, context)

    yield start
    for exporter in started:
        exporter.close()


def test_an_idle_connection_does_not_block_scrapes(serve: Callable[..., Target]) -> None:
    # Under TLS this is a connection that never starts (let alone finishes) its handshake.
    target = serve()
    idle = target.connect()
    partial = target.connect()
    partial.sendall(b"\x16\x03\x01\x02")  # the first bytes of a TLS record, then nothing
    try:
        _wait(lambda: target.held() >= 2, "the idle connections to be accepted")
        _assert_scrapes(target)
        assert target.held() >= 2, "the idle connections were dropped before the scrape"
    finally:
        idle.close()
        partial.close()


def test_thirty_slow_senders_do_not_block_scrapes(serve: Callable[..., Target]) -> None:
    target = serve()
    slow = [target.connect_ready() for _ in range(30)]
    try:
        for sock in slow:
            sock.sendall(b"GET /metr")
        _wait(lambda: target.held() >= 30, "30 slow connections to be held")
        _assert_scrapes(target)
        assert target.held() >= 30, "the slow senders were let go before the scrape"
    finally:
        for sock in slow:
            sock.close()


def test_the_handshake_and_the_request_head_have_deadlines(
        serve: Callable[..., Target]) -> None:
    target = serve(ConnectionLimits(handshake_timeout=0.5, read_timeout=0.5))
    silent = target.connect()
    half_line = target.connect_ready()
    half_line.sendall(b"GET /metrics HT")
    loris = target.connect_ready()
    stop = threading.Event()

    def dribble() -> None:
        # One byte every 50 ms, well inside any per-read timeout, forever: only a
        # deadline on the whole head ends it.
        try:
            for byte in b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"a" * 10_000:
                if stop.wait(0.05):
                    return
                loris.send(bytes([byte]))
        except OSError:
            return

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        assert _closed_by_server(silent)
        assert _closed_by_server(half_line)
        assert _closed_by_server(loris)
        _assert_scrapes(target)
    finally:
        stop.set()
        dribbler.join(timeout=CLIENT_TIMEOUT)
        for sock in (silent, half_line, loris):
            sock.close()


def test_at_the_bound_the_oldest_idle_connection_makes_room(
        serve: Callable[..., Target], caplog: pytest.LogCaptureFixture) -> None:
    target = serve(ConnectionLimits(max_connections=4))
    idle = [target.connect() for _ in range(4)]
    try:
        _wait(lambda: target.held() == 4, "4 connections to be held")
        with caplog.at_level(logging.WARNING, logger="flmon.exporter"):
            _assert_scrapes(target)
        assert _closed_by_server(idle[0]), "the oldest idle connection was not closed"
        assert target.held() <= 4
        assert any(getattr(r, "event.action", None) == "exporter-connection-bound"
                   for r in caplog.records)
    finally:
        for sock in idle:
            sock.close()


def test_when_every_connection_is_answering_a_newcomer_is_refused_quickly(
        serve: Callable[..., Target]) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_health() -> bool:
        entered.release()
        return release.wait(CLIENT_TIMEOUT)

    target = serve(ConnectionLimits(max_connections=2), health=slow_health)
    results: list[tuple[int, str]] = []
    busy = [threading.Thread(target=lambda: results.append(target.get("/healthz")))
            for _ in range(2)]
    for thread in busy:
        thread.start()
    try:
        for _ in busy:
            assert entered.acquire(timeout=CLIENT_TIMEOUT)
        extra = target.connect()
        if target.client_context is None:
            extra.settimeout(CLIENT_TIMEOUT)
            answer = b""
            while chunk := extra.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 503 ")
        else:
            assert _closed_by_server(extra)
        extra.close()
    finally:
        release.set()
        for thread in busy:
            thread.join(timeout=CLIENT_TIMEOUT)
    assert results == [(200, "ok\n"), (200, "ok\n")]
    _assert_scrapes(target)


def test_keep_alive_serves_several_scrapes_then_closes_when_idle(
        serve: Callable[..., Target]) -> None:
    target = serve(ConnectionLimits(idle_timeout=0.5))
    if target.client_context is None:
        conn = http.client.HTTPConnection("127.0.0.1", target.exporter.port,
                                          timeout=CLIENT_TIMEOUT)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", target.exporter.port,
                                           timeout=CLIENT_TIMEOUT,
                                           context=target.client_context)
    try:
        for path in ("/metrics", "/healthz", "/metrics"):
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            assert response.getheader("Connection") != "close"
        sock = conn.sock
        assert sock is not None
        assert _closed_by_server(sock), "an idle keep-alive connection stayed open"
    finally:
        conn.close()


def test_only_get_and_head_and_an_oversized_head_is_cut_off(
        serve: Callable[..., Target]) -> None:
    target = serve()
    request = urllib.request.Request(target.base + "/metrics", data=b"x=1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT, context=target.client_context)
    assert info.value.code == 501
    head = urllib.request.Request(target.base + "/metrics", method="HEAD")
    with urllib.request.urlopen(head, timeout=CLIENT_TIMEOUT,
                                context=target.client_context) as response:
        assert response.status == 200 and response.read() == b""
    big = target.connect_ready()
    try:
        try:
            big.sendall(b"GET /metrics HTTP/1.1\r\n")
            for _ in range(40):  # 40 KB of headers, past the 32 KiB bound on a head
                big.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass  # the server may hang up while we are still sending
        assert _closed_by_server(big), "an oversized request head was read on"
        _assert_scrapes(target)
    finally:
        big.close()
