"""Watch: the cost of one ``flmon watch`` poll at 1,000 nodes and 10,000 runs.

A loopback server in a process of its own (``flmon.stack.control_api``) answers
``ListNodes`` and ``ListRuns`` in Flower's wire format (protobuf over HTTP, Flower's own
message classes, ``ListRuns`` paged as the SuperLink pages it) from a synthetic state.
The watch's poller reads every node and every page of runs, the state aggregates them,
and Prometheus' view is one scrape of the watch's registry. Measured per size:

- a full poll (every page: the watch's first poll, and every ``full_every``-th) and a
  steady-state poll (newest pages only, see ``ControlPoller.poll``): wall time (both
  calls, decode and aggregation) and this process's CPU time (the server's work is in the
  other process), and the runs a steady poll reads;
- aggregation alone; one scrape (``generate_latest``) with its bytes and series;
- bytes on the wire of one poll, and this process's RSS after the polls.

A real SuperLink adds its own database query per call (SQLite here), which this does not
measure; the figure is the watch's side.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from typing import Any

from prometheus_client import generate_latest

from benchmarks.common import ROOT, spread
from flmon.labels import ClientLabeler
from flmon.watch.aggregate import aggregate
from flmon.watch.service import Watch, WatchOptions

SIZES = ((1000, 10000), (100, 1000))
QUICK_SIZES = ((20, 100),)


def _wire_bytes(nodes: int, runs: int, page: int) -> int:
    from flwr.proto.control_pb2 import ListNodesResponse, ListRunsResponse

    from flmon.stack.control_api import synthetic_nodes, synthetic_runs

    now = time.time()
    total = len(ListNodesResponse(nodes_info=synthetic_nodes(nodes, now)).SerializeToString())
    all_runs = synthetic_runs(runs, now)
    for start in range(0, max(runs, 1), page):
        chunk = all_runs[start:start + page]
        total += len(ListRunsResponse(run_dict={r.run_id: r for r in chunk})
                     .SerializeToString())
    return total


def _calls(watch: Watch) -> int:
    """Runs the SuperLink has returned so far, over every ListRuns call."""
    return watch.poller.runs_read


def _one_size(nodes: int, runs: int, polls: int) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-m", "flmon.stack.control_api", "--nodes", str(nodes),
         "--runs", str(runs)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        address = server.stdout.readline().strip()
        watch = Watch(WatchOptions(superlink=address, insecure=True, timeout=30.0),
                      ClientLabeler())
        watch.poll_once()  # warm-up: connection, imports
        full_wall: list[float] = []
        full_cpu: list[float] = []
        for _ in range(polls):  # what the first poll (and every full_every-th) costs
            w0, c0 = time.perf_counter(), time.process_time()
            snapshot = watch.poller.poll()
            watch.state.record_success(snapshot, 0.0)
            full_cpu.append(time.process_time() - c0)
            full_wall.append(time.perf_counter() - w0)
        wall: list[float] = []
        cpu: list[float] = []
        calls_before = _calls(watch)
        for _ in range(polls):  # the steady state: newest pages only
            w0, c0 = time.perf_counter(), time.process_time()
            ok = watch.poll_once()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            if not ok:
                raise RuntimeError(f"poll failed: {watch.state.last_error}")
        agg: list[float] = []
        for _ in range(polls):
            c0 = time.process_time()
            aggregate(snapshot, ClientLabeler())
            agg.append(time.process_time() - c0)
        scrape: list[float] = []
        text = b""
        for _ in range(polls):
            c0 = time.process_time()
            text = generate_latest(watch.registry)
            scrape.append(time.process_time() - c0)
        watch.stop()
        series = sum(1 for line in text.decode().splitlines()
                     if line and not line.startswith("#"))
        return {
            "nodes": nodes, "runs": runs, "polls": polls,
            "full_poll_wall_ms": spread([w * 1000 for w in full_wall]),
            "full_poll_cpu_ms": spread([c * 1000 for c in full_cpu]),
            "poll_wall_ms": spread([w * 1000 for w in wall]),
            "poll_cpu_ms": spread([c * 1000 for c in cpu]),
            "steady_runs_read_per_poll": (_calls(watch) - calls_before) / polls,
            "aggregate_cpu_ms": spread([a * 1000 for a in agg]),
            "scrape_cpu_ms": spread([s * 1000 for s in scrape]),
            "scrape_bytes": len(text), "series": series,
            "wire_bytes_per_poll": _wire_bytes(nodes, runs, watch.options.page_size),
            "rss_max_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        server.kill()
        server.wait(timeout=10)


def run(quick: bool = False) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    rows = [_one_size(n, r, 3 if quick else 10) for n, r in sizes]
    return {"rows": rows}
