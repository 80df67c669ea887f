"""Whole run: the same federation with and without flmon, and the bytes telemetry adds.

Three measurements:

- ``federation``: real ``flower-superlink`` and ``flower-supernode`` processes on
  loopback (:class:`flmon.stack.flower.FlowerFederation`) running
  ``tests/apps/tinyfl`` (seeded data, FedAvg over every node) for several rounds, with
  run config ``flmon = true`` and ``flmon = false`` (instrumentation off on both sides),
  repetitions interleaved on the same SuperLink and SuperNodes. Figures: the wall time
  of ``flwr run`` and the strategy time Flower itself prints ("Strategy execution
  finished in ..."), each as a ratio on/off per repetition.
- ``inprocess``: the same comparison without processes or network: Flower's own
  ``FedAvg.start`` loop over an in-process grid delivering to real ``ClientApp``
  objects (``tests/core/ingrid.py``). The federation's rounds are dominated by
  SuperNodes polling for messages; the in-process loop shows flmon's CPU cost per
  round where nothing else hides it.
- ``telemetry_bytes``: the ``flmon.telemetry`` ConfigRecord the mod attaches to a real
  train reply, serialized as Flower does (``ConfigRecord.deflate()`` and the protobuf of
  the reply's RecordDict with and without it).
"""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, median, spread

APP = Path(ROOT) / "tests" / "apps" / "tinyfl"
_STRATEGY_RE = re.compile(r"Strategy execution finished in ([0-9.]+)s")
_ROUND_RE = re.compile(r"\[ROUND (\d+)/(\d+)\]")


# -- real federation -------------------------------------------------------------------
def federation_cpu_seconds(fed: Any) -> float:
    """CPU seconds used so far by the federation's processes and all their descendants.

    Live processes count their own time; exited ones (ServerApp and ClientApp processes)
    count in their parent's ``children_*`` times once reaped, so the total over every
    live process of the tree counts each process once.
    """
    import psutil

    total = 0.0
    seen: set[int] = set()
    for root in [fed.superlink, *fed.supernodes]:
        if root is None or root.pid is None:
            continue
        try:
            proc = psutil.Process(root.pid)
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for p in tree:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def run_streaming(fed: Any, run_config: dict[str, Any], timeout: float = 900.0,
                  on_line: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """``flwr run --stream`` on ``fed``; every output line is time-stamped on arrival.

    Returns the wall time, Flower's strategy time, and round durations (time between
    consecutive ``[ROUND k/N]`` lines, the last round ending at the strategy's end).
    """
    from flmon.stack.flower import CONNECTION, _bin, format_config

    argv = [_bin("flwr"), "run", str(APP.resolve()), CONNECTION, "--stream",
            "--run-config", format_config(run_config)]
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=fed.env, cwd=fed.workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    marks: dict[int, float] = {}
    strategy_s: float | None = None
    end_mark: float | None = None
    tail: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic() - start
            tail = [*tail[-30:], line.rstrip()]
            if on_line is not None:
                on_line(now, line)
            found = _ROUND_RE.search(line)
            if found:
                marks.setdefault(int(found.group(1)), now)
            found = _STRATEGY_RE.search(line)
            if found:
                strategy_s = float(found.group(1))
                end_mark = now
            if time.monotonic() - start > timeout:
                proc.kill()
                break
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seconds = time.monotonic() - start
    rounds = sorted(marks)
    bounds = [marks[r] for r in rounds] + ([end_mark] if end_mark is not None else [])
    durations = [b - a for a, b in itertools.pairwise(bounds)]
    return {"returncode": returncode, "seconds": seconds, "strategy_seconds": strategy_s,
            "round_seconds": durations, "tail": tail if returncode else []}


def federation(rounds: int = 3, nodes: int = 2, repeat: int = 3,
               warmup: bool = True, settle_s: float = 2.0) -> dict[str, Any]:
    """The real federation with flmon on and off, interleaved repetitions.

    Besides wall and strategy time, each run's CPU time over every federation process
    (SuperLink, SuperNodes, the ServerApp and ClientApp processes they start) is
    measured: rounds are paced by 3-second polling (SuperNodes poll for messages, the
    ServerApp's grid polls for replies), so wall time moves in 3 s steps while CPU time
    shows what the instrumentation actually costs.
    """
    from flmon.stack.flower import FlowerFederation

    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    failures: list[dict[str, Any]] = []
    with FlowerFederation(nodes) as fed:
        if warmup:  # first run pays cold imports in fresh processes
            run_streaming(fed, {"num-server-rounds": 1, "flmon": True})
        for rep in range(repeat):
            order = ["on", "off"] if rep % 2 == 0 else ["off", "on"]
            for mode in order:
                time.sleep(settle_s)
                cpu_before = federation_cpu_seconds(fed)
                result = run_streaming(fed, {"num-server-rounds": rounds,
                                             "flmon": mode == "on", "exporter-port": 0})
                time.sleep(settle_s)  # the ServerApp and ClientApps exit and are reaped
                result["cpu_seconds"] = federation_cpu_seconds(fed) - cpu_before
                if result["returncode"] != 0 or result["strategy_seconds"] is None:
                    failures.append({"mode": mode, **result})
                    continue
                runs[mode].append(result)
    pairs = list(zip(runs["on"], runs["off"], strict=False))
    wall_ratios = [a["seconds"] / b["seconds"] for a, b in pairs]
    strategy_ratios = [a["strategy_seconds"] / b["strategy_seconds"] for a, b in pairs]
    cpu_ratios = [a["cpu_seconds"] / b["cpu_seconds"] for a, b in pairs
                  if b["cpu_seconds"] > 0]
    cpu_added = [a["cpu_seconds"] - b["cpu_seconds"] for a, b in pairs]
    round_on = [s for r in runs["on"] for s in r["round_seconds"]]
    round_off = [s for r in runs["off"] for s in r["round_seconds"]]
    return {
        "rounds": rounds,
        "supernodes": nodes,
        "repetitions": repeat,
        "completed_pairs": len(pairs),
        "failures": failures,
        "wall_seconds_on": spread([r["seconds"] for r in runs["on"]]),
        "wall_seconds_off": spread([r["seconds"] for r in runs["off"]]),
        "strategy_seconds_on": spread([r["strategy_seconds"] for r in runs["on"]]),
        "strategy_seconds_off": spread([r["strategy_seconds"] for r in runs["off"]]),
        "round_seconds_on": spread(round_on),
        "round_seconds_off": spread(round_off),
        "cpu_seconds_on": spread([r["cpu_seconds"] for r in runs["on"]]),
        "cpu_seconds_off": spread([r["cpu_seconds"] for r in runs["off"]]),
        "ratio_wall": spread(wall_ratios),
        "ratio_strategy": spread(strategy_ratios),
        "ratio_cpu": spread(cpu_ratios),
        "cpu_ms_added_per_client_round": median(cpu_added) / rounds / nodes * 1e3
        if cpu_added else None,
        "runs": {mode: [{"seconds": round(r["seconds"], 3),
                         "strategy_seconds": r["strategy_seconds"],
                         "cpu_seconds": round(r["cpu_seconds"], 3),
                         "round_seconds": [round(x, 3) for x in r["round_seconds"]]}
                        for r in rs] for mode, rs in runs.items()},
        "goal_ratio": 1.01,
    }


# -- in-process ------------------------------------------------------------------------
def _client_app(partition: int, partitions: int, size: int, instrumented: bool) -> Any:
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from flmon.flower import TelemetryMod
    from flmon.training import LocalRecorder, track_training

    rng = np.random.default_rng(100 + partition)
    x = rng.normal(loc=0.05 * partition, size=(200, size)) / np.sqrt(size)
    true_w = np.random.default_rng(1234).normal(size=size)
    y = (x @ true_w > 0).astype(np.float64)
    recorder = LocalRecorder()

    def local_fit(w: np.ndarray, b: np.ndarray) -> dict[str, float]:
        for _ in range(2):
            p = 1.0 / (1.0 + np.exp(-(x @ w + b[0])))
            w -= 0.5 * x.T @ (p - y) / len(y)
            b -= 0.5 * np.array([np.mean(p - y)])
        return {"loss": float(np.mean((p - y) ** 2)), "accuracy": float(np.mean((p > .5) == y)),
                "examples": len(y), "epochs": 2}

    fit = track_training(recorder=recorder)(local_fit) if instrumented else local_fit
    app = ClientApp(mods=[TelemetryMod(recorder=recorder)] if instrumented else [])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        w, b = (a.copy() for a in msg.content.array_records["arrays"].to_numpy_ndarrays())
        result = fit(w, b)
        metrics = MetricRecord({"train_loss": result["loss"], "train_acc": result["accuracy"],
                                "num-examples": len(y)})
        return Message(content=RecordDict({"arrays": ArrayRecord([w, b]),
                                           "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        w, b = msg.content.array_records["arrays"].to_numpy_ndarrays()
        p = 1.0 / (1.0 + np.exp(-(x @ w + b[0])))
        metrics = MetricRecord({"eval_loss": float(np.mean((p - y) ** 2)),
                                "eval_acc": float(np.mean((p > .5) == y)),
                                "num-examples": len(y)})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def _inprocess_once(rounds: int, nodes: int, size: int, instrumented: bool) -> float:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAvg
    from prometheus_client import CollectorRegistry

    from flmon.flower import instrument
    from flmon.metrics import FlmonMetrics
    from tests.core.ingrid import InProcessGrid

    apps = {1000 + i: _client_app(i, nodes, size, instrumented) for i in range(nodes)}
    grid = InProcessGrid(apps)
    strategy: Any = FedAvg(fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
                           min_available_nodes=1)
    if instrumented:
        metrics = FlmonMetrics(CollectorRegistry(), sides=("server", "sink"))
        strategy = instrument(strategy, metrics=metrics)
    initial = ArrayRecord([np.zeros(size), np.zeros(1)])
    start = time.process_time()
    strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, timeout=60)
    return time.process_time() - start


def inprocess(rounds: int = 10, nodes: int = 10, sizes: tuple[int, ...] = (8, 100_000),
              repeat: int = 5) -> dict[str, Any]:
    """Flower's strategy loop in process, flmon on and off, CPU time, interleaved.

    Flower's INFO lines are turned off on both sides; flmon's security events (an
    anomalous update, say) go to a handler that drops them, as logging is configured by
    the application and its cost depends on where records go.
    """
    import flwr.serverapp  # noqa: F401 - Flower sets its logger's level on import

    flwr_logger = logging.getLogger("flwr")
    flmon_logger = logging.getLogger("flmon")
    level, propagate = flwr_logger.level, flmon_logger.propagate
    flwr_logger.setLevel(logging.WARNING)
    null = logging.NullHandler()
    flmon_logger.addHandler(null)
    flmon_logger.propagate = False
    out: dict[str, Any] = {"rounds": rounds, "nodes": nodes, "repetitions": repeat,
                           "clock": "process CPU time", "by_model_size": {}}
    try:
        for size in sizes:
            on: list[float] = []
            off: list[float] = []
            _inprocess_once(1, nodes, size, True)  # warm-up
            for rep in range(repeat):
                for mode in ([True, False] if rep % 2 == 0 else [False, True]):
                    (on if mode else off).append(_inprocess_once(rounds, nodes, size, mode))
            ratios = [a / b for a, b in zip(on, off, strict=True)]
            out["by_model_size"][str(size + 1)] = {
                "parameters": size + 1,
                "seconds_on": spread(on),
                "seconds_off": spread(off),
                "ratio": spread(ratios),
                "added_ms_per_round": (median(on) - median(off)) / rounds * 1e3,
                "added_us_per_client_round": (median(on) - median(off)) / rounds / nodes * 1e6,
            }
    finally:
        flwr_logger.setLevel(level)
        flmon_logger.removeHandler(null)
        flmon_logger.propagate = propagate
    return out


# -- bytes -----------------------------------------------------------------------------
def telemetry_bytes() -> dict[str, Any]:
    """Size of the telemetry a real train reply carries, serialized as Flower does."""
    from flwr.app import (
        ArrayRecord,
        ConfigRecord,
        Context,
        Message,
        MessageType,
        MetricRecord,
        RecordDict,
    )
    from flwr.common.serde import recorddict_to_proto
    from flwr.supercore.task_identity import TaskIdentity

    from flmon import telemetry
    from flmon.flower import TelemetryMod
    from flmon.training import LocalRecorder, track_training

    TaskIdentity.run_id = 1
    TaskIdentity.task_id = 1
    TaskIdentity.node_id = 0
    recorder = LocalRecorder()
    weights = [np.zeros(8), np.zeros(1)]
    msg = Message(content=RecordDict({"arrays": ArrayRecord(weights),
                                      "config": ConfigRecord({"server-round": 12})}),
                  dst_node_id=7, message_type=MessageType.TRAIN)
    ctx = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})

    @track_training(recorder=recorder)
    def local_fit() -> dict[str, float]:
        return {"loss": 0.4316, "accuracy": 0.9575, "examples": 200, "epochs": 2}

    def app(m: Message, c: Context) -> Message:
        local_fit()
        return Message(content=RecordDict({
            "arrays": ArrayRecord(weights),
            "metrics": MetricRecord({"train_loss": 0.43, "train_acc": 0.96, "num-examples": 200}),
        }), reply_to=m)

    reply = TelemetryMod(recorder=recorder)(msg, ctx, app)
    record = reply.content[telemetry.RECORD_KEY]
    with_bytes = recorddict_to_proto(reply.content).ByteSize()
    del reply.content[telemetry.RECORD_KEY]
    without_bytes = recorddict_to_proto(reply.content).ByteSize()
    return {
        "fields": sorted(record.keys()),
        "configrecord_deflate_bytes": len(record.deflate()),
        "reply_recorddict_proto_bytes_with": with_bytes,
        "reply_recorddict_proto_bytes_without": without_bytes,
        "added_bytes_per_reply": with_bytes - without_bytes,
        "reply_model": "tinyfl: 9 float64 parameters, 3 metrics",
    }


def run(quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    if quick:
        return {
            "telemetry_bytes": telemetry_bytes(),
            "inprocess": inprocess(rounds=2, nodes=3, sizes=(8,), repeat=repeat or 1),
            "federation": federation(rounds=1, nodes=2, repeat=repeat or 1, warmup=False),
        }
    return {
        "telemetry_bytes": telemetry_bytes(),
        "inprocess": inprocess(repeat=repeat or 5),
        "federation": federation(rounds=3, nodes=2, repeat=repeat or 5),
    }


if __name__ == "__main__":
    import json

    print(json.dumps({"telemetry_bytes": telemetry_bytes(),
                      "inprocess": inprocess(rounds=3, nodes=4, sizes=(8, 100_000),
                                             repeat=2)}, indent=2))
