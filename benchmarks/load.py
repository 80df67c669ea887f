"""Load: Locust against a monitored federation on loopback, and the effect on rounds.

The benchmark stands up:

- an **ingest endpoint** (a small threaded HTTP server in this process): ``POST
  /telemetry`` takes one client's reply as JSON and calls ``ServerRecorder.reply``,
  ``.telemetry`` and ``.client_metrics``, the calls the instrumented strategy makes per
  reply; ``GET /metrics`` serves that recorder's registry. Locust's ``FLClientUser``
  drives it as up to 100,000 distinct clients. (A ServerApp process cannot take
  telemetry from outside the Flower channel, so the ingest path runs next to it, in
  the benchmark, on the same two cores.)
- a **real federation** (``FlowerFederation``: SuperLink and two SuperNodes, tinyfl,
  flmon on) whose ServerApp serves ``/metrics`` on a fixed loopback port; Locust's
  ``ScrapeUser`` hammers it while the run is in progress.

Runs alternate without and with load; Locust starts once the exporter answers and
stops by itself after ``duration`` seconds (``--headless -t``). Figures: requests per
second, p50/p99 latency and failures per endpoint (Locust's CSV), and round durations
of the loaded runs against the unloaded ones.

Quick mode (the smoke test) skips the federation: ``ScrapeUser`` scrapes the ingest
process's registry through ``flmon.start_exporter`` instead.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, median, spread

LOCUSTFILE = Path(ROOT) / "benchmarks" / "locustfile.py"


# -- ingest endpoint -------------------------------------------------------------------
class _IngestServer(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Any
    registry: Any
    handled: int = 0
    errors: int = 0


class _IngestHandler(BaseHTTPRequestHandler):
    server: _IngestServer
    protocol_version = "HTTP/1.1"
    # One write per response (headers and body), no Nagle: small keep-alive replies
    # would otherwise wait for the client's delayed ACK (about 40 ms).
    wbufsize = 65536
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            self._send(200, b"ok\n")
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/telemetry" or length > 65536:
            self._send(404 if self.path != "/telemetry" else 413, b"no\n")
            return
        try:
            body = json.loads(self.rfile.read(length))
            node, phase = int(body["node_id"]), str(body["phase"])
            if phase not in ("train", "evaluate"):
                raise ValueError(phase)
            rec = self.server.recorder
            rec.reply(phase, node, None, 4096)
            rec.telemetry(phase, node, body.get("telemetry"))
            rec.client_metrics(phase, node, body.get("metrics") or {}, "num-examples")
        except (ValueError, KeyError, TypeError):
            self.server.errors += 1
            self._send(400, b"bad request\n")
            return
        self.server.handled += 1
        self._send(200, b"ok\n")


@contextmanager
def ingest_server() -> Iterator[_IngestServer]:
    """The ingest endpoint on a free loopback port, with its own registry (default cap)."""
    from prometheus_client import CollectorRegistry

    from flmon.flower.recorder import ServerRecorder
    from flmon.labels import ClientLabeler
    from flmon.metrics import FlmonMetrics

    metrics = FlmonMetrics(CollectorRegistry(), sides=("server", "sink"))
    server = _IngestServer(("127.0.0.1", 0), _IngestHandler)
    server.recorder = ServerRecorder(metrics, ClientLabeler(), anomaly_threshold=3.5)
    server.registry = metrics.registry
    thread = threading.Thread(target=server.serve_forever, name="bench-ingest", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- locust ----------------------------------------------------------------------------
def run_locust(host: str, ingest: str, users: int, spawn_rate: int, duration_s: int,
               outdir: Path, clients: int = 100_000, scrape_rate: float = 20.0,
               ingest_rate: float = 50.0) -> dict[str, Any]:
    """Locust headless for ``duration_s`` seconds; returns per-endpoint figures."""
    prefix = outdir / "locust"
    env = {**os.environ, "FLMON_BENCH_INGEST": ingest, "FLMON_BENCH_CLIENTS": str(clients),
           "FLMON_BENCH_SCRAPE_RATE": str(scrape_rate),
           "FLMON_BENCH_INGEST_RATE": str(ingest_rate), "PYTHONPATH": ROOT}
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(spawn_rate), "-t", f"{duration_s}s",
            "--host", host, "--csv", str(prefix), "--only-summary", "--stop-timeout", "2",
            "--loglevel", "WARNING", "ScrapeUser", "FLClientUser"]
    start = time.monotonic()
    completed = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True,
                               timeout=duration_s + 120, check=False)
    seconds = time.monotonic() - start
    stats_file = Path(f"{prefix}_stats.csv")
    endpoints: dict[str, dict[str, float]] = {}
    def number(text: str) -> float:
        # Locust writes "N/A" (older releases: an empty cell) where it has no figure.
        return float(text) if text and text != "N/A" else float("nan")

    if stats_file.exists():
        with stats_file.open() as f:
            for row in csv.DictReader(f):
                endpoints[row["Name"]] = {
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "requests_per_s": float(row["Requests/s"]),
                    "p50_ms": number(row["50%"]),
                    "p99_ms": number(row["99%"]),
                    "avg_ms": number(row["Average Response Time"]),
                    "avg_bytes": number(row["Average Content Size"]),
                }
    # Locust exits 1 when any request failed: failures are figures here, not errors.
    return {"returncode": completed.returncode, "seconds": seconds,
            "users": users, "spawn_rate": spawn_rate, "duration_s": duration_s,
            "endpoints": endpoints,
            "stderr_tail": completed.stderr[-1500:] if not endpoints else ""}


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# -- with a federation -----------------------------------------------------------------
def _federation_load(rounds: int, repeat: int, users: int, duration_s: int,
                     workdir: Path) -> dict[str, Any]:
    from benchmarks.wholerun import run_streaming
    from flmon.stack.flower import FlowerFederation
    from flmon.stack.ports import free_port

    baseline: list[dict[str, Any]] = []
    loaded: list[dict[str, Any]] = []
    locust_runs: list[dict[str, Any]] = []
    with ingest_server() as ingest, FlowerFederation(2) as fed:
        ingest_url = f"http://127.0.0.1:{ingest.server_address[1]}"
        run_streaming(fed, {"num-server-rounds": 1, "flmon": True})  # warm-up
        for rep in range(repeat):
            for with_load in ([False, True] if rep % 2 == 0 else [True, False]):
                port = free_port()
                config = {"num-server-rounds": rounds, "flmon": True, "exporter-port": port}
                if not with_load:
                    baseline.append(run_streaming(fed, config))
                    continue
                box: dict[str, Any] = {}
                runner = threading.Thread(
                    target=lambda c=config, b=box: b.update(result=run_streaming(fed, c)))
                runner.start()
                window: tuple[float, float] | None = None
                t0 = time.monotonic()
                if _wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120):
                    start = time.monotonic() - t0
                    out = workdir / f"locust-{rep}"
                    out.mkdir(parents=True, exist_ok=True)
                    locust_runs.append(run_locust(f"http://127.0.0.1:{port}", ingest_url,
                                                  users, users, duration_s, out))
                    window = (start, time.monotonic() - t0)
                runner.join()
                loaded.append({**box.get("result", {"returncode": -1}), "load_window": window})
        ingested, ingest_errors = ingest.handled, ingest.errors
    ok_base = [r for r in baseline if r.get("returncode") == 0]
    ok_load = [r for r in loaded if r.get("returncode") == 0]
    base_rounds = [s for r in ok_base for s in r["round_seconds"]]
    load_rounds = [s for r in ok_load for s in r["round_seconds"]]
    return {
        "federation": True,
        "rounds": rounds,
        "repetitions": repeat,
        "locust": _merge(locust_runs),
        "locust_runs": locust_runs,
        "ingested": ingested,
        "ingest_errors": ingest_errors,
        "round_seconds_without_load": spread(base_rounds),
        "round_seconds_with_load": spread(load_rounds),
        "round_ratio_with_load": (median(load_rounds) / median(base_rounds)
                                  if base_rounds and load_rounds else None),
        "strategy_seconds_without_load": spread([r["strategy_seconds"] for r in ok_base]),
        "strategy_seconds_with_load": spread([r["strategy_seconds"] for r in ok_load]),
        "load_windows_s": [r["load_window"] for r in loaded],
        "failed_runs": len(baseline) - len(ok_base) + len(loaded) - len(ok_load),
    }


def _merge(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per endpoint: summed counts, median of the runs' rates and percentiles."""
    out: dict[str, dict[str, float]] = {}
    names = {name for r in runs for name in r["endpoints"]}
    for name in sorted(names):
        rows = [r["endpoints"][name] for r in runs if name in r["endpoints"]]
        out[name] = {
            "requests": sum(r["requests"] for r in rows),
            "failures": sum(r["failures"] for r in rows),
            "requests_per_s": median([r["requests_per_s"] for r in rows]),
            "p50_ms": median([r["p50_ms"] for r in rows]),
            "p99_ms": median([r["p99_ms"] for r in rows]),
        }
    return out


# -- without a federation (smoke) ------------------------------------------------------
def _standalone_load(users: int, duration_s: int, workdir: Path) -> dict[str, Any]:
    from flmon.exporter import start_exporter

    with ingest_server() as ingest, start_exporter(0, registry=ingest.registry) as exporter:
        ingest_url = f"http://127.0.0.1:{ingest.server_address[1]}"
        result = run_locust(f"http://127.0.0.1:{exporter.port}", ingest_url, users, users,
                            duration_s, workdir)
        ingested, ingest_errors = ingest.handled, ingest.errors
    return {"federation": False, "locust": result["endpoints"], "locust_runs": [result],
            "ingested": ingested, "ingest_errors": ingest_errors,
            "round_ratio_with_load": None}


def run(quick: bool = False, repeat: int | None = None, users: int | None = None,
        duration_s: int | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flmon-load-") as tmp:
        if quick:
            return _standalone_load(users or 4, duration_s or 3, Path(tmp))
        return _federation_load(rounds=3, repeat=repeat or 2, users=users or 20,
                                duration_s=duration_s or 30, workdir=Path(tmp))


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
