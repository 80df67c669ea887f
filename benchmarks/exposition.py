"""Exposition at scale: ``/metrics`` latency, size and server RSS by number of clients.

Each (clients, cap) pair runs in a fresh subprocess (``python -m benchmarks.exposition
--worker ...``) so memory figures do not pollute each other. The worker feeds a
``ServerRecorder`` directly, as the instrumented strategy does for one round: per
client a train reply, its telemetry, its metrics, its model update, its update
indicators, and an evaluate reply with metrics. Then it serves the registry with
``flmon.start_exporter`` on loopback and fetches ``/metrics`` several times over HTTP.

Figures per pair: scrape latency (median of the fetches), body size, series count
(sample lines), RSS after feeding and after scraping, the in-process render time
(``generate_latest``) and the feed time. Caps: the default (``max_client_labels`` =
50) and raised to the number of clients, up to 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from benchmarks.common import ROOT, median

SIZES = (10, 100, 1_000, 10_000, 100_000)
QUICK_SIZES = (10, 100)
RAISED_CAP_LIMIT = 10_000


def _rss() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def feed(recorder: Any, clients: int) -> None:
    """One round's worth of what the strategy wrapper records for ``clients`` nodes."""
    from flmon.security.updates import UpdateStats

    record = {"v": 1, "round": 1, "duration_s": 0.5, "fit_duration_s": 0.4, "epochs": 2,
              "steps": 20, "examples": 200, "loss": 0.4, "accuracy": 0.9,
              "rss_bytes": 200_000_000}
    metrics = {"train_loss": 0.4, "train_acc": 0.9, "num-examples": 200}
    eval_metrics = {"eval_loss": 0.45, "eval_acc": 0.88, "num-examples": 50}
    base = 10_000_000_000
    stats: dict[int, UpdateStats] = {}
    for i in range(clients):
        node = base + i
        recorder.reply("train", node, None, 4096)
        recorder.telemetry("train", node, record)
        recorder.client_metrics("train", node, metrics, "num-examples")
        recorder.model_update(node)
        stats[node] = UpdateStats(norm=1.0 + (i % 7) * 0.01, cosine=0.9, norm_score=0.5,
                                  cosine_score=0.5)
        if len(stats) == 1000:  # in chunks: the benchmark's own objects stay out of RSS
            recorder.update_stats(stats, 1.03)
            stats = {}
    if stats:
        recorder.update_stats(stats, 1.03)
    for i in range(clients):
        node = base + i
        recorder.reply("evaluate", node, None, 0)
        recorder.telemetry("evaluate", node, record)
        recorder.client_metrics("evaluate", node, eval_metrics, "num-examples")


def worker(clients: int, cap: int, scrapes: int) -> dict[str, Any]:
    import logging

    from prometheus_client import CollectorRegistry, generate_latest

    from flmon.exporter import start_exporter
    from flmon.flower.recorder import ServerRecorder
    from flmon.labels import ClientLabeler
    from flmon.metrics import FlmonMetrics

    logging.getLogger("flmon").addHandler(logging.NullHandler())
    logging.getLogger("flmon").propagate = False
    rss_start = _rss()["VmRSS"]
    metrics = FlmonMetrics(CollectorRegistry(), sides=("server", "sink"))
    recorder = ServerRecorder(metrics, ClientLabeler(cap), anomaly_threshold=3.5)
    start = time.perf_counter()
    feed(recorder, clients)
    feed_s = time.perf_counter() - start
    rss_fed = _rss()["VmRSS"]
    renders = []
    for _ in range(max(1, scrapes // 2)):
        start = time.perf_counter()
        generate_latest(metrics.registry)
        renders.append(time.perf_counter() - start)
    latencies: list[float] = []
    body = b""
    with start_exporter(0, registry=metrics.registry) as exporter:
        for _ in range(scrapes):
            start = time.perf_counter()
            with urllib.request.urlopen(exporter.url, timeout=120) as response:
                body = response.read()
            latencies.append(time.perf_counter() - start)
    text = body.decode()
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    client_values = {line.split('client="', 1)[1].split('"', 1)[0]
                     for line in text.splitlines() if 'client="' in line}
    rss = _rss()
    return {
        "clients": clients,
        "cap": cap,
        "feed_seconds": feed_s,
        "feed_us_per_client": feed_s / max(clients, 1) * 1e6,
        "render_ms": median(renders) * 1e3,
        "scrape_ms": median(latencies) * 1e3,
        "scrape_ms_max": max(latencies) * 1e3,
        "scrapes": scrapes,
        "bytes": len(body),
        "series": series,
        "client_label_values": len(client_values),
        "rss_start_bytes": rss_start,
        "rss_fed_bytes": rss_fed,
        "rss_after_scrapes_bytes": rss["VmRSS"],
        "rss_peak_bytes": rss["VmHWM"],
        "rss_added_bytes": rss["VmRSS"] - rss_start,
    }


def measure(clients: int, cap: int, scrapes: int, timeout: float = 900.0) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return its figures."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.exposition", "--worker", "--clients", str(clients),
         "--cap", str(cap), "--scrapes", str(scrapes)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    if completed.returncode != 0:
        return {"clients": clients, "cap": cap, "error": completed.stderr[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False, sizes: tuple[int, ...] | None = None,
        scrapes: int | None = None) -> dict[str, Any]:
    from flmon.labels import DEFAULT_MAX_CLIENT_LABELS

    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    scrapes = scrapes or (3 if quick else 9)
    rows: list[dict[str, Any]] = []
    for clients in sizes:
        rows.append({**measure(clients, DEFAULT_MAX_CLIENT_LABELS, scrapes),
                     "cap_kind": "default"})
        raised = min(clients, RAISED_CAP_LIMIT)
        if raised != DEFAULT_MAX_CLIENT_LABELS:
            rows.append({**measure(clients, raised, scrapes), "cap_kind": "raised"})
    default_rows = [r for r in rows if r["cap_kind"] == "default" and "series" in r]
    folded = [r["series"] for r in default_rows if r["clients"] > DEFAULT_MAX_CLIENT_LABELS]
    at_1000 = [r for r in default_rows if r["clients"] == 1_000]
    return {
        "default_cap": DEFAULT_MAX_CLIENT_LABELS,
        "rows": rows,
        # Once clients outnumber the cap, the series count must not grow any more.
        "series_bounded_by_cap": len(set(folded)) <= 1,
        "series_with_default_cap_max": max((r["series"] for r in default_rows), default=0),
        "scrape_ms_at_1000_default_cap": at_1000[0]["scrape_ms"] if at_1000 else None,
        "goal_ms_at_1000": 50.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.clients, args.cap, args.scrapes)))
    else:
        print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
