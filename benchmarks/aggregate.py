"""Cost of ``instrument(FedAvg())`` at real model sizes: ``aggregate_train`` of one round.

For each size (parameters x clients) two fresh processes each build the same round of
float32 train replies (a model of a few large arrays and some biases, every client's
update a small random step) and run ``aggregate_train`` on it: one with plain
``FedAvg()``, one with ``instrument(FedAvg())`` and its defaults (reply guard and update
indicators on). Each measures

- CPU seconds of ``aggregate_train`` (median of repetitions; CPU time because the
  machine is shared), and its wall seconds;
- extra peak memory: the peak traced by ``tracemalloc`` during the call (numpy reports
  its buffers to it) above what was allocated before it.

The figures are ratios instrumented / plain. Sizes whose replies would not fit in the
memory available are skipped and say so.

    python -m benchmarks.aggregate               # 1M and 10M x 16 and 64, 100M x 16 if room
    python -m benchmarks.aggregate --quick       # 100k and 1M x 16
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from benchmarks.common import ROOT

SIZES = ((1_000_000, 16), (1_000_000, 64), (10_000_000, 16), (10_000_000, 64),
         (100_000_000, 16), (100_000_000, 64))
QUICK_SIZES = ((100_000, 16), (1_000_000, 16))
HEADROOM = 2.0
"""Memory needed, as a multiple of the replies' bytes, before a size is attempted."""


def _layout(params: int) -> list[int]:
    """Array sizes of a model of ``params`` float32 parameters: 4 weights and 8 biases."""
    biases = [512] * 8
    rest = params - sum(biases)
    weights = [rest * 5 // 10, rest * 3 // 10, rest * 15 // 100]
    weights.append(rest - sum(weights))
    return [w for pair in zip(weights, biases[:4], strict=True) for w in pair] + biases[4:]


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _measure(mode: str, params: int, clients: int, repeat: int) -> dict[str, Any]:
    """One process, one mode: build the round, time and trace ``aggregate_train``."""
    import logging

    import numpy as np
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg

    from flmon.flower import instrument
    from flmon.metrics import FlmonMetrics
    from tests.core.ingrid import InProcessGrid

    logging.getLogger("flwr").setLevel(logging.WARNING)
    logging.getLogger("flmon").setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    sizes = _layout(params)
    global_np = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    global_arrays = ArrayRecord(global_np)
    grid = InProcessGrid(dict.fromkeys(range(1, clients + 1)))
    strategy: Any = FedAvg(min_available_nodes=1, min_train_nodes=1)
    if mode == "flmon":
        strategy = instrument(strategy, metrics=FlmonMetrics(sides=("server", "sink")))
    instructions = list(strategy.configure_train(1, global_arrays, ConfigRecord(), grid))
    replies = []
    for instruction in instructions:
        step = [(g + 0.01 * rng.standard_normal(g.size, dtype=np.float32)).astype(np.float32)
                for g in global_np]
        content = RecordDict({"arrays": ArrayRecord(step), "metrics": MetricRecord(
            {"loss": 0.5, "num-examples": int(rng.integers(100, 200))})})
        replies.append(Message(content=content, reply_to=instruction))
        del step
    del global_np
    gc.collect()
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeat):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        arrays, _ = strategy.aggregate_train(1, replies)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert arrays is not None
        del arrays
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _result = strategy.aggregate_train(1, replies)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return {"cpu_seconds": statistics.median(cpu), "wall_seconds": statistics.median(wall),
            "extra_peak_bytes": peak, "repetitions": repeat}


def _fresh(mode: str, params: int, clients: int, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.aggregate", "--child", mode, str(params),
         str(clients), str(repeat)],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {params}x{clients} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool = False,
        sizes: tuple[tuple[int, int], ...] | None = None) -> dict[str, Any]:
    """Every size, each mode in a fresh process; ratios instrumented / plain."""
    rows: list[dict[str, Any]] = []
    for params, clients in sizes or (QUICK_SIZES if quick else SIZES):
        need = int(params * 4 * clients * HEADROOM)
        row: dict[str, Any] = {"parameters": params, "clients": clients}
        available = _available_bytes()
        if need > available:
            row["skipped"] = (f"needs about {need / 2**30:.1f} GiB, "
                              f"{available / 2**30:.1f} GiB available")
            rows.append(row)
            continue
        repeat = 3 if params * clients <= 2 * 10**8 else 1
        plain = _fresh("plain", params, clients, repeat)
        flmon = _fresh("flmon", params, clients, repeat)
        row.update(plain=plain, flmon=flmon,
                   cpu_ratio=flmon["cpu_seconds"] / plain["cpu_seconds"],
                   wall_ratio=flmon["wall_seconds"] / plain["wall_seconds"],
                   memory_ratio=flmon["extra_peak_bytes"] / plain["extra_peak_bytes"])
        rows.append(row)
    return {"rows": rows, "goal": "ratios <= 1.2 (never above 2)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aggregate",
                                     description="aggregate_train cost at model sizes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="",
                        help="comma-separated PARAMSxCLIENTS, e.g. 1000000x16,10000000x64")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "PARAMS", "CLIENTS", "REPEAT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, params, clients, repeat = args.child
        print(json.dumps(_measure(mode, int(params), int(clients), int(repeat))))
        return 0
    sizes = tuple((int(float(p)), int(c)) for p, c in
                  (item.split("x") for item in args.sizes.split(",") if item))
    print(json.dumps(run(args.quick, sizes or None), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
