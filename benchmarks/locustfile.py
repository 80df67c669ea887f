"""Locust load on a monitored Flower server (all targets on loopback).

Two kinds of users:

- ``ScrapeUser`` fetches ``/metrics`` (3 of 4 requests) and ``/healthz`` from the
  ServerApp's exporter (``--host``), as Prometheus servers, Datadog Agents and
  dashboards would, only much more often;
- ``FLClientUser`` acts as many FL clients: each request is one client's train or
  evaluate reply (its telemetry record and metrics, JSON) posted to the benchmark's
  ingest endpoint (``FLMON_BENCH_INGEST``, ``http://127.0.0.1:PORT``), which hands it to
  ``ServerRecorder.reply``, ``.telemetry`` and ``.client_metrics`` exactly as the
  instrumented strategy does. Client ids are drawn from ``FLMON_BENCH_CLIENTS``
  distinct node ids (100,000 by default), so the cardinality cap is exercised.

Rates per user are bounded (``FLMON_BENCH_SCRAPE_RATE`` and ``FLMON_BENCH_INGEST_RATE``
requests per second, ``constant_throughput``), and the run is bounded by ``-t``:
``benchmarks/load.py`` starts it headless, for example::

    locust -f benchmarks/locustfile.py --headless -u 20 -r 20 -t 20s \\
        --host http://127.0.0.1:9400 --csv out/load ScrapeUser FLClientUser
"""

from __future__ import annotations

import json
import os
import random
from typing import ClassVar

from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

from benchmarks.common import loopback_url as _loopback

CLIENTS = int(os.environ.get("FLMON_BENCH_CLIENTS", "100000"))
SCRAPE_RATE = float(os.environ.get("FLMON_BENCH_SCRAPE_RATE", "20"))
INGEST_RATE = float(os.environ.get("FLMON_BENCH_INGEST_RATE", "50"))
INGEST = os.environ.get("FLMON_BENCH_INGEST", "http://127.0.0.1:1")


class ScrapeUser(FastHttpUser):
    """A scraper of the ServerApp's exporter."""

    wait_time = constant_throughput(SCRAPE_RATE)

    def on_start(self) -> None:
        _loopback(self.host or "")

    @task(3)
    def metrics(self) -> None:
        with self.client.get("/metrics", name="/metrics", catch_response=True) as response:
            if response.status_code != 200 or b"fl_" not in (response.content or b""):
                response.failure(f"status {response.status_code}, no fl_ series")

    @task(1)
    def healthz(self) -> None:
        self.client.get("/healthz", name="/healthz")


class FLClientUser(FastHttpUser):
    """Many FL clients: each request is one client's reply with telemetry."""

    wait_time = constant_throughput(INGEST_RATE)
    phases: ClassVar[tuple[str, ...]] = ("train", "evaluate")

    def on_start(self) -> None:
        # ``--host`` names the exporter; this user posts to the ingest endpoint by URL.
        self.url = _loopback(INGEST).rstrip("/") + "/telemetry"
        self.round = 1
        self.rng = random.Random(id(self))

    @task
    def reply(self) -> None:
        node_id = 10_000_000_000 + self.rng.randrange(CLIENTS)
        phase = self.rng.choice(self.phases)
        self.round += 1
        body = {
            "node_id": node_id,
            "phase": phase,
            "telemetry": {"v": 1, "round": self.round, "duration_s": self.rng.uniform(0.1, 5),
                          "fit_duration_s": 0.4, "epochs": 2, "steps": 20, "examples": 200,
                          "loss": self.rng.uniform(0.2, 0.8), "accuracy": self.rng.random(),
                          "rss_bytes": 200_000_000},
            "metrics": {"train_loss": 0.4, "train_acc": 0.9, "num-examples": 200},
        }
        self.client.post(self.url, data=json.dumps(body), name="/telemetry",
                         headers={"Content-Type": "application/json"})
