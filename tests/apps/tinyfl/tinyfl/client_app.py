"""ClientApp: honest by default; node config ``behaviour`` makes a node misbehave.

- ``raise``: the ClientApp raises in every train call from round 2 on;
- ``hostile``: sends hostile telemetry (NaN, 10,000 keys, label-injection strings) and a
  metric key nobody else sends;
- ``nan``: reports NaN accuracy;
- ``scaled``: sends its update scaled by 50 (a poisoning attempt);
- ``sign-flip``: sends its update with the sign flipped (a poisoning attempt);
- ``takeover``: metric keys of its own and every parameter at ``TAKEOVER_VALUE``.

Run config ``flmon = false`` turns the instrumentation off (for overhead baselines).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import flmon
from flmon.flower import telemetry_mod
from tinyfl.task import evaluate, load_partition, train

TAKEOVER_VALUE = 1000.0


def hostile_telemetry_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Outermost mod of hostile nodes: overwrites the telemetry record with garbage."""
    reply = call_next(msg, context)
    if _behaviour(context) == "hostile" and reply.has_content():
        server_round = int(msg.content["config"]["server-round"])
        if server_round == 1:
            garbage = {f"k{i}": float(i) for i in range(10_000)}
        elif server_round == 2:
            garbage = {"v": 1, "duration_s": float("nan"), 'x"} 1\n': 3.0,
                       "loss": "a string", "accuracy": 7.0}
        else:
            garbage = {"v": 1, "round": server_round, "duration_s": 0.5, "x" * 100: 1}
        reply.content["flmon.telemetry"] = ConfigRecord(garbage)
    return reply


def optional_telemetry_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """flmon's telemetry_mod, unless the run config says ``flmon = false``."""
    if not context.run_config.get("flmon", True):
        return call_next(msg, context)
    return telemetry_mod(msg, context, call_next)


# The first mod is the outermost: it sees the reply telemetry_mod produced.
app = ClientApp(mods=[hostile_telemetry_mod, optional_telemetry_mod])


def _behaviour(context: Context) -> str:
    return str(context.node_config.get("behaviour", "honest"))


def _local_training(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return train(weights, x, y)


tracked_training = flmon.track_training(_local_training)


@app.train()
def do_train(msg: Message, context: Context) -> Message:
    behaviour = _behaviour(context)
    server_round = int(msg.content["config"]["server-round"])
    if behaviour == "raise" and server_round >= 2:
        raise RuntimeError("simulated ClientApp failure")
    x, y = load_partition(int(context.node_config["partition-id"]),
                          int(context.node_config["num-partitions"]))
    sent = msg.content["arrays"].to_numpy_ndarrays()
    weights = [a.copy() for a in sent]
    fit = tracked_training if context.run_config.get("flmon", True) else _local_training
    result = fit(weights, x, y)
    if behaviour == "scaled":
        weights = [s + 50.0 * (w - s) for w, s in zip(weights, sent, strict=True)]
    if behaviour == "sign-flip":
        weights = [s - (w - s) for w, s in zip(weights, sent, strict=True)]
    metrics = {"train_loss": result["loss"], "train_acc": result["accuracy"],
               "num-examples": len(y)}
    if behaviour == "nan":
        metrics["train_acc"] = float("nan")
    if behaviour == "hostile":
        metrics['x"} 1\nfl_injected 1'] = 1.0
    if behaviour == "takeover":
        # keys of its own (which used to win ties by sort order) and a model of its own
        metrics = {"!": 1.0, "num-examples": len(y)}
        weights = [np.full_like(w, TAKEOVER_VALUE) for w in weights]
    content = RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord(metrics)})
    reply = Message(content=content, reply_to=msg)
    return reply


@app.evaluate()
def do_evaluate(msg: Message, context: Context) -> Message:
    x, y = load_partition(int(context.node_config["partition-id"]),
                          int(context.node_config["num-partitions"]))
    weights = msg.content["arrays"].to_numpy_ndarrays()
    loss, accuracy = evaluate(weights, x, y)
    content = RecordDict({"metrics": MetricRecord(
        {"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(y)})})
    return Message(content=content, reply_to=msg)
