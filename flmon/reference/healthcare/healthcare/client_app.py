"""Hospital side: train on local patients, evaluate the global model locally.

flmon here: ``telemetry_mod`` times every message and attaches allow-listed numeric
telemetry to the reply (it travels over the Flower channel, the only way out of a
hospital network); ``FlmonCallback`` feeds Keras' per-epoch figures into it. No raw data
and no per-patient figures leave the node.
"""

from __future__ import annotations

import time

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import flmon
import flmon.flower
from flmon.demo import faults, tabular
from healthcare import task

flmon.configure_logging()

app = ClientApp(mods=[flmon.flower.telemetry_mod])


def _partition(context: Context) -> tuple[int, int]:
    return int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the global model on this hospital's patients for a few local epochs."""
    from flmon.keras import FlmonCallback

    cfg = context.run_config
    server_round = int(msg.content["config"]["server-round"])
    fault = faults.fault_for(cfg, context.node_config, server_round)
    partition_id, num_partitions = _partition(context)
    train_split, _ = task.load_partition(partition_id, num_partitions)

    if fault.delay_seconds:
        time.sleep(fault.delay_seconds)
    if fault.flip_labels:
        # A broken upstream join: labels no longer belong to their patients.
        rng = np.random.default_rng(1000 * server_round + partition_id)
        train_split = tabular.Split(train_split.x, rng.integers(0, 2, len(train_split)))

    global_weights = msg.content["arrays"].to_numpy_ndarrays()
    callback = FlmonCallback()
    weights, history = tabular.fit_keras(
        global_weights,
        train_split,
        hidden=task.HIDDEN_UNITS,
        learning_rate=float(cfg["learning-rate"]),
        epochs=int(cfg["local-epochs"]),
        batch_size=int(cfg["batch-size"]),
        seed=1000 * server_round + partition_id,
        callbacks=[callback],
    )
    if fault.kind == "poisoned":
        weights = faults.poison(weights, global_weights, fault.poison_scale)

    metrics: dict[str, float | int] = {
        "train_loss": float(history["loss"][-1]),
        "train_acc": float(history["accuracy"][-1]),
        "num-examples": len(train_split),
    }
    if bool(cfg.get("dp", False)):
        # Flower's DP accountant needs equal client weights.
        metrics["dp-weight"] = 1
    content = RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Score the global model on this hospital's held-out patients (numpy, no TensorFlow)."""
    partition_id, num_partitions = _partition(context)
    _, test_split = task.load_partition(partition_id, num_partitions)
    weights = msg.content["arrays"].to_numpy_ndarrays()
    scores = tabular.evaluate(weights, test_split)
    metrics: dict[str, float | int] = {
        "eval_loss": scores["loss"],
        "eval_acc": scores["accuracy"],
        "num-examples": len(test_split),
    }
    if bool(context.run_config.get("dp", False)):
        metrics["dp-weight"] = 1
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
