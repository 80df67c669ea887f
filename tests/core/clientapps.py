"""Real ClientApps for in-process strategy tests, honest or misbehaving."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flmon.flower import TelemetryMod
from flmon.training import LocalRecorder, track_training


def make_app(
    behaviour: str = "honest",
    seed: int = 0,
    telemetry: dict[str, object] | None = None,
) -> ClientApp:
    """A ClientApp whose update is ``direction + noise`` (per-seed), or a misbehaviour.

    ``behaviour``: ``honest``, ``extra-key`` (a metric key nobody else sends), ``nan``
    (NaN accuracy), ``two-metric-records``, ``scaled`` (update x 20), ``sign-flip``,
    ``raise``, ``bad-shape`` (arrays of another shape), ``hostile-telemetry`` (replaces
    the telemetry record with ``telemetry``).
    """
    recorder = LocalRecorder()
    app = ClientApp(mods=[TelemetryMod(recorder=recorder)])
    rng = np.random.default_rng(seed)

    @track_training(recorder=recorder)
    def local_fit(arrays: list[np.ndarray]) -> dict[str, float]:
        direction = np.linspace(0.5, 1.5, arrays[0].size).reshape(arrays[0].shape)
        arrays[0] = arrays[0] + 0.1 * direction + 0.03 * rng.normal(size=arrays[0].shape)
        return {"loss": 0.3, "accuracy": 0.9, "examples": 50, "epochs": 1}

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if behaviour == "raise":
            raise RuntimeError("client failure")
        sent = msg.content["arrays"].to_numpy_ndarrays()
        arrays = [a.copy() for a in sent]
        local_fit(arrays)
        if behaviour == "scaled":
            arrays = [s + 20 * (a - s) for a, s in zip(arrays, sent, strict=True)]
        if behaviour == "sign-flip":
            arrays = [s - (a - s) for a, s in zip(arrays, sent, strict=True)]
        if behaviour == "bad-shape":
            arrays = [np.zeros(a.size + 1) for a in arrays]
        metrics: dict[str, float | int] = {"loss": 0.3, "accuracy": 0.9, "num-examples": 50}
        if behaviour == "extra-key":
            metrics['x"} 1\nfl_injected 1'] = 1.0
        if behaviour == "nan":
            metrics["accuracy"] = float("nan")
        content = RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord(metrics)})
        if behaviour == "two-metric-records":
            content["more"] = MetricRecord({"x": 1.0})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        metrics = MetricRecord({"loss": 0.4, "accuracy": 0.8, "num-examples": 20})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    if behaviour == "hostile-telemetry":
        inner = app

        def hostile(msg: Message, context: Context) -> Message:
            reply = inner(msg, context)
            if reply.has_content():
                reply.content["flmon.telemetry"] = ConfigRecord(telemetry or {})  # type: ignore[arg-type]
            return reply

        return _CallableApp(hostile)  # type: ignore[return-value]
    return app


class _CallableApp:
    """Something the in-process grid can call like a ClientApp."""

    def __init__(self, func: object) -> None:
        self._func = func

    def __call__(self, msg: Message, context: Context) -> Message:
        return self._func(msg, context)  # type: ignore[operator, no-any-return]
