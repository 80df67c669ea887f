"""ECS JSON logs: key order, context labels, Flower capture, secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from flmon import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logs.configure_logging(stream=out, level=logging.DEBUG)
    yield out
    for logger in (logging.getLogger(), logging.getLogger("flwr")):
        logger.removeHandler(handler)
    logs.set_global_context(run_id=None, round=None, node_id=None)


def _records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_records_are_ecs_json_with_fixed_leading_keys(stream: io.StringIO) -> None:
    logging.getLogger("flmon.test").info("round %d done", 3)
    (doc,) = _records(stream)
    assert list(doc)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert doc["message"] == "round 3 done" and doc["log.level"] == "info"
    assert str(doc["@timestamp"]).endswith("Z") and doc["ecs.version"] == logs.ECS_VERSION
    assert doc["log.logger"] == "flmon.test"


def test_run_round_and_node_labels_come_from_context(stream: io.StringIO) -> None:
    logs.set_global_context(run_id=77)
    with logs.log_context(round=4, node_id=9):
        logging.getLogger("x").warning("inside", extra={"event.action": "round-end"})
    logging.getLogger("x").warning("outside")
    inside, outside = _records(stream)
    assert inside["labels"] == {"node_id": 9, "round": 4, "run_id": 77}
    assert inside["event.action"] == "round-end"
    assert outside["labels"] == {"run_id": 77}


def test_flower_logger_is_captured(stream: io.StringIO) -> None:
    logging.getLogger("flwr").info("[ROUND 1/3]")
    (doc,) = _records(stream)
    assert doc["log.logger"] == "flwr" and doc["message"] == "[ROUND 1/3]"


@pytest.mark.parametrize(
    "secret_text",
    [
        "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX",
        "xoxb-123456-abcdef",
        "Authorization: Bearer abc.def.ghi",
        "password=hunter2hunter2",
        "api_key: 0123456789abcdef",
        "https://user:s3cr3tpass@es.internal:9200",
    ],
)
def test_known_secret_shapes_never_reach_the_log(stream: io.StringIO, secret_text: str) -> None:
    logging.getLogger("x").error("connecting with %s", secret_text)
    text = stream.getvalue()
    assert logs.REDACTED in text
    for fragment in ("XXXXXXXXXXXX", "abcdef", "abc.def.ghi", "hunter2", "0123456789abcdef",
                     "s3cr3tpass"):
        if fragment in secret_text:
            assert fragment not in text


def test_registered_secrets_are_redacted_in_messages_and_tracebacks(
    stream: io.StringIO,
) -> None:
    logs.register_secret("tok-9f8e7d6c5b4a")
    try:
        raise RuntimeError("auth failed for tok-9f8e7d6c5b4a")
    except RuntimeError:
        logging.getLogger("x").exception("sink failed with tok-9f8e7d6c5b4a")
    assert "tok-9f8e7d6c5b4a" not in stream.getvalue()
    (doc,) = _records(stream)
    assert doc["error.type"] == "RuntimeError"
    assert "[REDACTED]" in str(doc["error.message"])


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        logs.register_secret("abc")


def test_security_events_are_tagged(stream: io.StringIO) -> None:
    logs.security_event(logging.getLogger("x"), "anomalous-update", "client 3", client="3")
    (doc,) = _records(stream)
    assert doc["event.kind"] == "alert" and doc["event.action"] == "anomalous-update"
    assert doc["labels"] == {"client": "3"}
