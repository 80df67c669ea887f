"""``TelemetryMod(fields=..., report_memory=...)``: what a client chooses not to share
never leaves it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flmon import telemetry
from flmon.flower import TelemetryMod
from flmon.training import LocalRecorder
from tests.core.ingrid import InProcessGrid


def _app(**mod_options: Any) -> ClientApp:
    recorder = LocalRecorder()
    app = ClientApp(mods=[TelemetryMod(recorder=recorder, **mod_options)])

    def reply(msg: Message) -> Message:
        recorder.report(loss=0.3, accuracy=0.9, examples=50, epochs=2, steps=7)
        recorder.observe_call(0.25)
        recorder.dp_epsilon(1.5)
        recorder.error(RuntimeError("a handled failure"))
        content = RecordDict({"arrays": ArrayRecord([np.ones(2)]),
                              "metrics": MetricRecord({"loss": 0.3, "num-examples": 50})})
        return Message(content=content, reply_to=msg)

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        return reply(msg)

    @app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return reply(msg)

    @app.query()
    def _query(msg: Message, context: Context) -> Message:
        return reply(msg)

    return app


def _sent(app: ClientApp, message_type: str = "train") -> dict[str, Any] | None:
    """The telemetry record a reply of ``app`` carries, or None."""
    grid = InProcessGrid({1: app})
    content = RecordDict({"arrays": ArrayRecord([np.zeros(2)]),
                          "config": ConfigRecord({"server-round": 3})})
    msg = grid.create_message(content, message_type, 1, "3")
    (reply,) = grid.send_and_receive([msg])
    assert not reply.has_error(), reply.error
    record = reply.content.get(telemetry.RECORD_KEY)
    return None if record is None else dict(record)


def test_only_the_listed_fields_are_sent() -> None:
    for phase in ("train", "evaluate"):
        sent = _sent(_app(fields=["epochs", "loss"], report_memory=False), phase)
        assert sent == {"v": 1, "epochs": 2, "loss": 0.3}


def test_a_listed_rss_field_is_not_sent_without_report_memory() -> None:
    assert _sent(_app(fields=["rss_bytes", "round"], report_memory=False)) == {"v": 1, "round": 3}


def test_no_fields_sends_the_version_only() -> None:
    assert _sent(_app(fields=[])) == {"v": 1}


def test_report_memory_false_drops_memory_and_keeps_the_rest() -> None:
    sent = _sent(_app(report_memory=False))
    assert sent is not None
    assert set(sent) == {"v", "round", "duration_s", "fit_duration_s", "epochs", "steps",
                         "examples", "loss", "accuracy", "errors", "dp_epsilon"}
    assert sent["round"] == 3 and sent["epochs"] == 2 and sent["steps"] == 7
    assert sent["examples"] == 50 and sent["errors"] == 1 and sent["dp_epsilon"] == 1.5
    assert sent["fit_duration_s"] == 0.25 and sent["duration_s"] >= 0


def test_by_default_memory_is_sent_too() -> None:
    sent = _sent(_app())
    assert sent is not None and sent["rss_bytes"] > 0
    assert set(sent) == {f.name for f in telemetry.FIELDS}


def test_what_is_sent_passes_the_server_check() -> None:
    sent = _sent(_app())
    result = telemetry.validate(sent)
    assert result.accepted and result.rejected == []


def test_other_message_types_carry_no_telemetry() -> None:
    assert _sent(_app(), "query") is None


def test_an_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown telemetry fields \['hostname'\]"):
        TelemetryMod(fields=["epochs", "hostname"])
