"""Simulation runtime: a 1,000-client ``flwr run`` with flmon on and off.

Flower's local simulation SuperLink (:class:`flmon.stack.simulation.LocalSimulation`)
runs ``tests/apps/tinyfl`` with ``num-supernodes = 1000`` virtual clients (ServerApp in
a ``flwr-simulation`` process, ClientApps in Ray actors), one round of train and
evaluate over every client, with run config ``flmon = true`` and ``flmon = false``
(instrumentation off on both sides), each on a fresh SuperLink. Figures: the wall time
of ``flwr run`` and the CPU time of the SuperLink's whole process tree (the
``flwr-simulation`` process, Ray's daemons and actors), each as a ratio on/off.

CPU time is sampled every second over the tree, keeping each process's last reading,
so processes that exit before the end (Ray workers) still count.

Run alone: ``python -m benchmarks.simulation [--clients N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, spread

APP = Path(ROOT) / "tests" / "apps" / "tinyfl"


class _TreeCpu(threading.Thread):
    """Samples the CPU seconds of a process and all its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.last: dict[int, float] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in tree:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            self.last[proc.pid] = t.user + t.system + t.children_user + t.children_system

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.sample()

    def total(self) -> float:
        return sum(self.last.values())


def one_run(clients: int, instrumented: bool) -> dict[str, Any]:
    from flmon.stack.simulation import LocalSimulation

    with LocalSimulation(clients) as sim:
        assert sim.superlink is not None and sim.superlink.pid is not None
        sampler = _TreeCpu(sim.superlink.pid)
        sampler.sample()
        before = sampler.total()
        sampler.start()
        result = sim.run(APP, {"num-server-rounds": 1, "flmon": instrumented,
                               "round-timeout": 1800}, timeout=3600)
        sampler.done.set()
        sampler.join()
        sampler.sample()
        cpu = sampler.total() - before
    if result.returncode != 0:
        raise RuntimeError(f"flwr run failed ({result.returncode}):\n{result.output[-3000:]}")
    return {"seconds": round(result.seconds, 2), "cpu_seconds": round(cpu, 2)}


def run(quick: bool = False, clients: int = 1000, repeat: int = 1) -> dict[str, Any]:
    """Interleaved on/off runs; ``quick`` uses 100 clients."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return {"available": False, "reason": "needs the simulation extra (flwr[simulation])"}
    if quick:
        clients = 100
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for rep in range(repeat):
        for mode in (["on", "off"] if rep % 2 == 0 else ["off", "on"]):
            runs[mode].append(one_run(clients, mode == "on"))
    pairs = list(zip(runs["on"], runs["off"], strict=True))
    return {
        "available": True,
        "clients": clients,
        "rounds": 1,
        "repetitions": repeat,
        "wall_seconds_on": spread([r["seconds"] for r in runs["on"]]),
        "wall_seconds_off": spread([r["seconds"] for r in runs["off"]]),
        "cpu_seconds_on": spread([r["cpu_seconds"] for r in runs["on"]]),
        "cpu_seconds_off": spread([r["cpu_seconds"] for r in runs["off"]]),
        "ratio_wall": spread([a["seconds"] / b["seconds"] for a, b in pairs]),
        "ratio_cpu": spread([a["cpu_seconds"] / b["cpu_seconds"] for a, b in pairs
                             if b["cpu_seconds"] > 0]),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    started = time.monotonic()
    result = run(clients=args.clients, repeat=args.repeat)
    result["benchmark_seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
