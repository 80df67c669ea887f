"""Scrape latency of the exporter while hostile connections are held, plain and TLS.

Conditions, each against a fresh exporter on loopback (default :class:`ConnectionLimits`):

- ``baseline``: nothing else connected;
- ``idle_1``: one TCP connection that sends nothing (under TLS: never handshakes);
- ``slow_30``: 30 connections that sent half a request line (under TLS: after the
  handshake);
- ``idle_100``: 100 silent connections, more than the bound of 64: each scrape makes
  room by closing the oldest.

Each scrape is a new connection (``urllib``, as a first scrape after a restart would be),
``GET /metrics`` of a registry of 500 series; figures are the median and 95th percentile
in milliseconds, and the count of scrapes that failed (5 s client timeout).

    python -m benchmarks.exporter_attack [--quick]
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import median

CONDITIONS = ("baseline", "idle_1", "slow_30", "idle_100")
TIMEOUT = 5.0


def _registry() -> Any:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    gauge = Gauge("fl_bench_series", "x", ["client"], registry=registry)
    for i in range(500):
        gauge.labels(client=str(i)).set(i)
    return registry


def _hold(condition: str, port: int, context: ssl.SSLContext | None) -> list[socket.socket]:
    held: list[socket.socket] = []
    count = {"baseline": 0, "idle_1": 1, "slow_30": 30, "idle_100": 100}[condition]
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if condition == "slow_30":
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
            sock.sendall(b"GET /metr")
        held.append(sock)
    return held


def measure(tls: bool, condition: str, scrapes: int, workdir: Path) -> dict[str, Any]:
    from flmon.exporter import start_exporter

    kwargs: dict[str, Any] = {}
    context = None
    if tls:
        from tests.core.certs import self_signed

        cert, key = self_signed(workdir)
        kwargs = {"certfile": str(cert), "keyfile": str(key)}
        context = ssl.create_default_context(cafile=str(cert))
    times: list[float] = []
    failures = 0
    with start_exporter(0, registry=_registry(), **kwargs) as exporter:
        held = _hold(condition, exporter.port, context)
        try:
            for _ in range(scrapes):
                start = time.perf_counter()
                try:
                    with urllib.request.urlopen(exporter.url, timeout=TIMEOUT,
                                                context=context) as response:
                        response.read()
                    times.append((time.perf_counter() - start) * 1000)
                except OSError:
                    failures += 1
            still_held = exporter.server.connection_count()
        finally:
            for sock in held:
                sock.close()
    ordered = sorted(times)
    p95 = statistics.quantiles(ordered, n=20)[-1] if len(ordered) >= 20 else max(ordered,
                                                                               default=0.0)
    return {"median_ms": round(median(ordered), 2), "p95_ms": round(p95, 2),
            "failures": failures, "scrapes": scrapes, "connections_held_at_end": still_held}


def run(quick: bool = False) -> dict[str, Any]:
    scrapes = 10 if quick else 100
    out: dict[str, Any] = {"scrapes_per_condition": scrapes}
    with tempfile.TemporaryDirectory() as tmp:
        for tls in (False, True):
            scheme = "tls" if tls else "plain"
            out[scheme] = {c: measure(tls, c, scrapes, Path(tmp)) for c in CONDITIONS}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
