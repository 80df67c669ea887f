"""Hot path: per-call cost of flmon's client-side instrumentation.

Every case is a ``timeit`` loop over one statement, repetitions interleaved with the
baselines measured in the same process and run:

- ``prom_histogram_observe``: a bare ``prometheus_client`` ``Histogram.observe`` (the
  reference the goal is stated against: flmon at most 2x of it);
- ``prom_counter_inc``: a bare ``Counter.inc``;
- ``otel_counter_add``: an OpenTelemetry SDK counter ``add`` (a ``MeterProvider`` with
  an in-memory reader, as an SDK user would have);
- ``track_training``: a ``@track_training``-decorated no-op function; its *added* cost
  is the decorated call minus the bare call;
- ``keras_batch``: ``FlmonCallback.on_train_batch_end`` called directly; added cost
  over a plain ``keras.callbacks.Callback`` (which Keras calls anyway);
- ``client_mod``: ``TelemetryMod`` around a trivial ``call_next`` with a real Flower
  train ``Message``; added cost over calling ``call_next`` directly. A breakdown of
  the mod's parts shows where its time goes.

One real tiny Keras ``model.fit`` with and without the callback gives the per-batch
figure in context.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.common import compare, median, ratios, spread

BASELINE = "prom_histogram_observe"


def _prom_cases() -> tuple[dict[str, str], dict[str, Any]]:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    hist = Histogram("bench_seconds", "bench", registry=registry)
    counter = Counter("bench_events", "bench", registry=registry)
    return ({BASELINE: "hist.observe(0.25)", "prom_counter_inc": "counter.inc()"},
            {"hist": hist, "counter": counter})


def _otel_cases() -> tuple[dict[str, str], dict[str, Any]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel_counter = provider.get_meter("flmon-bench").create_counter("bench_events")
    otel_hist = provider.get_meter("flmon-bench").create_histogram("bench_seconds")
    return ({"otel_counter_add": "otel_counter.add(1)",
             "otel_histogram_record": "otel_hist.record(0.25)"},
            {"otel_counter": otel_counter, "otel_hist": otel_hist, "_provider": provider})


def _training_cases() -> tuple[dict[str, str], dict[str, Any]]:
    from flmon.training import LocalRecorder, track_training

    recorder = LocalRecorder()

    def noop() -> None:
        return None

    def noop_result() -> dict[str, float]:
        return {"loss": 0.3, "accuracy": 0.9, "examples": 32}

    tracked = track_training(recorder=recorder)(noop)
    tracked_result = track_training(recorder=recorder)(noop_result)
    return (
        {"bare_noop_call": "noop()", "track_training": "tracked()",
         "bare_result_call": "noop_result()", "track_training_with_result": "tracked_result()",
         "recorder_add_steps": "recorder.add_steps(1)"},
        {"noop": noop, "tracked": tracked, "noop_result": noop_result,
         "tracked_result": tracked_result, "recorder": recorder},
    )


def _message() -> tuple[Any, Any, Any]:
    from flwr.app import (
        ArrayRecord,
        ConfigRecord,
        Context,
        Message,
        MessageType,
        MetricRecord,
        RecordDict,
    )
    from flwr.supercore.task_identity import TaskIdentity

    # What a ServerApp process has set when Flower creates a message there.
    TaskIdentity.run_id = 1
    TaskIdentity.task_id = 1
    TaskIdentity.node_id = 0
    import numpy as np

    arrays = ArrayRecord([np.zeros(8), np.zeros(1)])
    msg = Message(content=RecordDict({"arrays": arrays,
                                      "config": ConfigRecord({"server-round": 3})}),
                  dst_node_id=7, message_type=MessageType.TRAIN)
    reply = Message(content=RecordDict({
        "arrays": arrays,
        "metrics": MetricRecord({"train_loss": 0.4, "train_acc": 0.9, "num-examples": 200}),
    }), reply_to=msg)
    ctx = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})
    return msg, reply, ctx


def _mod_cases() -> tuple[dict[str, str], dict[str, Any]]:
    from flwr.app import ConfigRecord

    from flmon import telemetry
    from flmon.flower import mod as mod_module
    from flmon.flower.mod import TelemetryMod
    from flmon.training import LocalRecorder

    msg, reply, ctx = _message()
    recorder = LocalRecorder()
    mod = TelemetryMod(recorder=recorder)
    mod_no_rss = TelemetryMod(recorder=recorder, report_memory=False)

    def call_next(m: Any, c: Any) -> Any:
        return reply

    values = {"duration_s": 0.01, "round": 3, "rss_bytes": 123_456_789,
              "fit_duration_s": 0.009, "epochs": 2, "examples": 200, "loss": 0.4,
              "accuracy": 0.9}
    encoded: dict[str, Any] = dict(telemetry.encode(values))
    return (
        {"bare_call_next": "call_next(msg, ctx)",
         "client_mod": "mod(msg, ctx, call_next)",
         "client_mod_no_rss": "mod_no_rss(msg, ctx, call_next)",
         "part_getrusage": "rss()",
         "part_encode": "encode(values)",
         "part_configrecord": "ConfigRecord(encoded)",
         "part_round_of": "round_of(msg)",
         "part_content_setitem": "reply.content[key] = record",
         "part_recorder_take": "recorder.take()",
         "part_message_type": "msg.metadata.message_type.split('.')[0]"},
        {"msg": msg, "ctx": ctx, "reply": reply, "call_next": call_next, "mod": mod,
         "mod_no_rss": mod_no_rss, "rss": mod_module._rss_bytes, "encode": telemetry.encode,
         "values": values, "ConfigRecord": ConfigRecord, "encoded": encoded,
         "round_of": mod_module._round_of, "key": telemetry.RECORD_KEY,
         "record": ConfigRecord(encoded), "recorder": recorder},
    )


def _keras_cases() -> tuple[dict[str, str], dict[str, Any]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from flmon.keras import FlmonCallback
    from flmon.training import LocalRecorder

    callback = FlmonCallback(LocalRecorder(), batch_size=32)
    plain = keras.callbacks.Callback()
    logs = {"loss": 0.5, "accuracy": 0.8}
    return ({"keras_plain_callback_batch": "plain.on_train_batch_end(3, logs)",
             "keras_batch": "callback.on_train_batch_end(3, logs)"},
            {"callback": callback, "plain": plain, "logs": logs})


def keras_fit(repeat: int, epochs: int, samples: int) -> dict[str, Any]:
    """A real tiny ``model.fit`` with and without the callback, interleaved."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from flmon.keras import FlmonCallback
    from flmon.training import LocalRecorder

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    batch = 32
    batches = epochs * -(-samples // batch)

    def fit(callbacks: list[Any]) -> float:
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(x[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)  # compile
        start = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, callbacks=callbacks)
        return time.perf_counter() - start

    with_cb: list[float] = []
    without: list[float] = []
    for rep in range(repeat):
        order = [True, False] if rep % 2 == 0 else [False, True]
        for on in order:
            seconds = fit([FlmonCallback(LocalRecorder(), batch_size=batch)] if on else [])
            (with_cb if on else without).append(seconds)
    return {
        "batches_per_fit": batches,
        "fit_seconds_with_callback": spread(with_cb),
        "fit_seconds_without": spread(without),
        "per_batch_us_with_callback": median(with_cb) / batches * 1e6,
        "per_batch_us_without": median(without) / batches * 1e6,
        "ratio": median([a / b for a, b in zip(with_cb, without, strict=True)]),
    }


def run(quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    """Measure every hot-path case; ratios are medians of per-repetition ratios."""
    repeat = repeat or (3 if quick else 9)
    target = 0.01 if quick else 0.05
    cases: dict[str, str] = {}
    globals_: dict[str, Any] = {}
    for build in (_prom_cases, _otel_cases, _training_cases, _mod_cases, _keras_cases):
        c, g = build()
        cases.update(c)
        globals_.update(g)
    samples = compare(cases, globals_, repeat, target_s=target)
    ns = {name: median(values) for name, values in samples.items()}

    def added(case: str, bare: str) -> list[float]:
        return [a - b for a, b in zip(samples[case], samples[bare], strict=True)]

    def vs(values: list[float], base: str) -> float:
        return median([v / b for v, b in zip(values, samples[base], strict=True) if b > 0])

    subjects = {
        "track_training": added("track_training", "bare_noop_call"),
        "track_training_with_result": added("track_training_with_result", "bare_result_call"),
        "keras_batch": added("keras_batch", "keras_plain_callback_batch"),
        "client_mod": added("client_mod", "bare_call_next"),
        "client_mod_no_rss": added("client_mod_no_rss", "bare_call_next"),
    }
    results: dict[str, Any] = {
        "repetitions": repeat,
        "ns_per_call": ns,
        "ns_per_call_spread": {name: spread(v) for name, v in samples.items()},
        "added_ns": {name: median(v) for name, v in subjects.items()},
        "ratio_to_prom_histogram_observe": {
            name: vs(v, BASELINE) for name, v in subjects.items()},
        "ratio_to_otel_counter_add": {
            name: vs(v, "otel_counter_add") for name, v in subjects.items()},
        "gross_ratio_to_prom_histogram_observe": {
            "track_training": median(ratios(samples, "track_training", BASELINE)),
            "keras_batch": median(ratios(samples, "keras_batch", BASELINE)),
            "client_mod": median(ratios(samples, "client_mod", BASELINE)),
        },
        "otel_counter_add_vs_prom_histogram_observe":
            median(ratios(samples, "otel_counter_add", BASELINE)),
        "goal_ratio": 2.0,
    }
    results["meets_goal"] = {name: r <= 2.0 for name, r in
                             results["ratio_to_prom_histogram_observe"].items()}
    fit_repeat = 2 if quick else 3
    results["keras_fit"] = keras_fit(fit_repeat, epochs=1 if quick else 3,
                                     samples=256 if quick else 3200)
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
