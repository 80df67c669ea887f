"""Honest and hostile ClientApps for the reply-guard tests, and a run helper.

Honest clients move every parameter by +0.1 per round and report the same metrics;
hostile ones send ``ATTACK`` in every parameter, so "the global model became the
attacker's" is visible at a glance: a global value near ``ATTACK``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg, Result

from flmon.flower import instrument
from flmon.metrics import FlmonMetrics
from tests.core.ingrid import InProcessGrid

ATTACK = 1000.0
STEP = 0.1
HONEST: dict[str, Any] = {"loss": 0.3, "accuracy": 0.9, "num-examples": 50}
SHAPES = ((4, 3), (3,))

MetricsFn = Callable[[int], Mapping[str, Any]]
ArraysFn = Callable[[list[np.ndarray], int], ArrayRecord]


def initial() -> ArrayRecord:
    return ArrayRecord([np.zeros(s, dtype=np.float32) for s in SHAPES])


def honest_arrays(sent: list[np.ndarray], _round: int) -> ArrayRecord:
    return ArrayRecord([(a + STEP).astype(a.dtype) for a in sent])


def attack_arrays(sent: list[np.ndarray], _round: int) -> ArrayRecord:
    return ArrayRecord([np.full(a.shape, ATTACK, dtype=a.dtype) for a in sent])


def client(metrics: MetricsFn | Mapping[str, Any] = HONEST,
           arrays: ArraysFn = honest_arrays) -> ClientApp:
    """A ClientApp replying ``metrics`` (or ``metrics(round)``) and ``arrays(sent, round)``."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        server_round = int(msg.content["config"]["server-round"])
        sent = msg.content["arrays"].to_numpy_ndarrays()
        values = metrics(server_round) if callable(metrics) else metrics
        content = RecordDict({"arrays": arrays(sent, server_round),
                              "metrics": MetricRecord(dict(values))})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(content=RecordDict({"metrics": MetricRecord(
            {"loss": 0.4, "num-examples": 20})}), reply_to=msg)

    return app


def raw_array(ndarray: np.ndarray, dtype: str | None = None,
              shape: tuple[int, ...] | None = None) -> Array:
    """An Array whose declared dtype/shape may lie about its ``.npy`` bytes."""
    real = Array(ndarray)
    return Array(dtype=dtype or real.dtype, shape=shape or real.shape, stype=real.stype,
                 data=real.data)


def run(apps: Mapping[int, ClientApp | None], rounds: int = 2,
        initial_arrays: ArrayRecord | None = None,
        **options: Any) -> tuple[Result, FlmonMetrics]:
    """Flower's own FedAvg loop over ``apps`` in process, wrapped by ``instrument``."""
    metrics = FlmonMetrics(sides=("server", "sink"))
    strategy = instrument(FedAvg(min_available_nodes=1, min_train_nodes=1,
                                 min_evaluate_nodes=1), metrics=metrics, **options)
    result = strategy.start(grid=InProcessGrid(dict(apps)),
                            initial_arrays=initial_arrays or initial(), num_rounds=rounds)
    return result, metrics


def global_values(result: Result) -> np.ndarray:
    """Every value of the final global model, flattened (Flower's ``Result.arrays`` is
    empty when no round aggregated anything: the model is then the initial one)."""
    arrays = result.arrays.to_numpy_ndarrays() if len(result.arrays) else (
        initial().to_numpy_ndarrays())
    return np.concatenate([a.ravel() for a in arrays])


def quarantined(metrics: FlmonMetrics, reason: str, phase: str = "train") -> float:
    value = metrics.registry.get_sample_value("fl_replies_quarantined_total",
                                              {"phase": phase, "reason": reason})
    return 0.0 if value is None else value


def sample(metrics: FlmonMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)
