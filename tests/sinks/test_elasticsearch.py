"""Elasticsearch log sink against a loopback server that answers ``_bulk`` like Elasticsearch.

The sink's real ``elasticsearch-py`` client (transport, product check, bulk helper, retries)
talks to :class:`flmon.sinks.loopback.FakeElasticsearch`, which speaks the bulk wire
format: NDJSON ``create`` actions in, per-item statuses out (``201``, ``409`` conflicts,
``429`` and ``5xx`` for retries), with Elasticsearch's product header.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sinkfakes import FakeElasticsearch, count

from flmon.logs import ECS_VERSION, EcsFormatter, log_context
from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings
from flmon.sinks.elasticsearch import (
    ElasticsearchConfig,
    ElasticsearchHandler,
    read_credentials,
)

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_LEVELS = {"debug", "info", "warning", "error", "critical"}


def assert_ecs(doc: dict[str, Any]) -> None:
    assert list(doc)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert _TIMESTAMP.match(doc["@timestamp"]), doc["@timestamp"]
    assert doc["log.level"] in _LEVELS
    assert isinstance(doc["message"], str)
    assert doc["ecs.version"] == ECS_VERSION


@pytest.fixture
def es() -> Iterator[FakeElasticsearch]:
    server = FakeElasticsearch()
    yield server
    server.close()


def handler_for(url: str, quick: QueueSettings, metrics: FlmonMetrics,
                env: dict[str, str] | None = None, **config: Any) -> ElasticsearchHandler:
    cfg = ElasticsearchConfig(hosts=(url,), index="flmon-logs-test", queue=quick, **config)
    return ElasticsearchHandler(cfg, metrics, env=env if env is not None else {})


def test_records_arrive_once_as_ecs_documents(
        es: FakeElasticsearch, quick: QueueSettings, metrics: FlmonMetrics,
        train_logger: logging.Logger) -> None:
    handler = handler_for(es.url, quick, metrics)
    train_logger.addHandler(handler)
    with log_context(run_id="run-1", round=2, node_id=17):
        for step in range(120):
            train_logger.info("step %d loss %.3f", step, 1 / (step + 1))
    train_logger.warning("done", extra={"event.action": "round-end"})
    handler.close(5.0)
    docs = list(es.indexed.values())
    assert len(docs) == 121 == len(es.sent_ids())  # no retry was needed
    for doc in docs:
        assert_ecs(doc)
    steps = [d["message"].split()[1] for d in docs if d["message"].startswith("step")]
    assert sorted(steps, key=int) == [str(i) for i in range(120)]
    first = next(d for d in docs if d["message"].startswith("step 0 "))
    assert first["labels"] == {"node_id": 17, "round": 2, "run_id": "run-1"}
    assert first["log.logger"] == "flmon.tests.training"
    last = next(d for d in docs if d["message"] == "done")
    assert last["log.level"] == "warning" and last["event.action"] == "round-end"
    # every action is a create with an id, into the configured index
    for request in es.requests:
        for action in request.actions:
            assert list(action) == ["create"]
            assert action["create"]["_index"] == "flmon-logs-test"
            assert re.fullmatch(r"[0-9a-f]{32}", action["create"]["_id"])
    assert count(metrics, "fl_sink_sent_total", "elasticsearch") == 121
    assert count(metrics, "fl_sink_errors_total", "elasticsearch") == 0


def test_429_and_partial_failures_lose_and_duplicate_nothing(
        quick: QueueSettings, metrics: FlmonMetrics, train_logger: logging.Logger) -> None:
    statuses = [201] * 10
    statuses[1], statuses[3], statuses[5], statuses[7] = 429, 503, 500, 400
    es = FakeElasticsearch(script=[
        ("status", 429),                                 # whole request rejected
        ("items", [200 if s == 201 else s for s in statuses]),  # partial failure
        ("status", 502),                                 # whole request, server error
    ])
    try:
        handler = handler_for(es.url, QueueSettings(batch_size=10, flush_interval=0.05,
                                                    initial_backoff=0.05, max_backoff=0.2,
                                                    max_retries=5), metrics)
        train_logger.addHandler(handler)
        for i in range(10):
            train_logger.error("record %d", i)
        handler.close(10.0)
        messages = sorted(d["message"] for d in es.indexed.values())
        # 9 delivered exactly once; the one refused for good (400) is dropped and counted
        assert messages == sorted(f"record {i}" for i in range(10) if i != 7)
        assert len(es.indexed) == 9
        ids = es.sent_ids()
        assert len(ids) == 10 + 10 + 3 + 3  # 429 all, partial, 502 the three, the three
        assert set(ids[20:]) == {ids[10 + i] for i in (1, 3, 5)}  # same ids on retry
        assert count(metrics, "fl_sink_sent_total", "elasticsearch") == 9
        assert count(metrics, "fl_sink_dropped_total", "elasticsearch") == 1
        assert count(metrics, "fl_sink_errors_total", "elasticsearch") == 3
    finally:
        es.close()


def test_a_retry_of_an_indexed_document_is_not_a_duplicate(
        quick: QueueSettings, metrics: FlmonMetrics, train_logger: logging.Logger) -> None:
    # The first answer comes after the client's timeout: the documents are indexed but
    # the sink cannot know and sends them again; the cluster answers 409 to the creates.
    es = FakeElasticsearch(script=[("lost", 1.5)])
    try:
        handler = handler_for(es.url, quick, metrics, request_timeout=0.5)
        train_logger.addHandler(handler)
        for i in range(5):
            train_logger.info("once %d", i)
        handler.close(10.0)
        assert sorted(d["message"] for d in es.indexed.values()) == [
            f"once {i}" for i in range(5)]
        # after a request that did not get through, one document probes the cluster
        # before the rest of the batch is sent again, with the same ids
        assert [len(r.actions) for r in es.requests] == [5, 1, 4]
        assert es.requests[0].actions == es.requests[1].actions + es.requests[2].actions
        assert count(metrics, "fl_sink_sent_total", "elasticsearch") == 5
        assert count(metrics, "fl_sink_dropped_total", "elasticsearch") == 0
    finally:
        es.close()


def test_a_server_that_is_not_elasticsearch_is_refused_quietly(
        quick: QueueSettings, metrics: FlmonMetrics, train_logger: logging.Logger) -> None:
    es = FakeElasticsearch(script=[("garbage", b"<html>proxy</html>")])
    try:
        handler = handler_for(es.url, quick, metrics)
        train_logger.addHandler(handler)
        train_logger.info("lost to a proxy")
        handler.close(5.0)
        assert es.indexed == {}
        assert count(metrics, "fl_sink_dropped_total", "elasticsearch") == 1
        assert count(metrics, "fl_sink_errors_total", "elasticsearch") == 1
    finally:
        es.close()


def test_api_key_from_a_file_is_sent_and_never_logged(
        es: FakeElasticsearch, quick: QueueSettings, metrics: FlmonMetrics,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    key_file = tmp_path / "es-api-key"
    key_file.write_text(key + "\n")
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    handler = handler_for(es.url, quick, metrics, env={"FLMON_ES_API_KEY_FILE": str(key_file)})
    root.addHandler(handler)
    try:
        logging.getLogger("flmon.tests.auth").info("authenticated %s", key)
    finally:
        root.removeHandler(handler)
    handler.close(5.0)
    assert es.requests
    assert all(r.headers.get("authorization") == f"ApiKey {key}" for r in es.requests)
    assert [d["message"] for d in es.indexed.values()] == ["authenticated [REDACTED]"]
    # The client's own debug records of the request show no key either.
    transport = [r for r in caplog.records if r.name.startswith(("elastic", "urllib3"))]
    assert any("Authorization: ApiKey <hidden>" in r.getMessage() for r in transport)
    for record in transport:
        assert key not in record.getMessage()


def test_basic_auth_from_env(es: FakeElasticsearch, quick: QueueSettings,
                             metrics: FlmonMetrics, train_logger: logging.Logger) -> None:
    env = {"FLMON_ES_USERNAME": "flmon_writer", "FLMON_ES_PASSWORD": "s3cret-pw"}
    handler = handler_for(es.url, quick, metrics, env=env)
    train_logger.addHandler(handler)
    train_logger.info("hello")
    handler.close(5.0)
    expected = "Basic " + base64.b64encode(b"flmon_writer:s3cret-pw").decode()
    assert es.requests[0].headers.get("authorization") == expected


def test_credentials_are_refused_in_the_url_and_checked() -> None:
    with pytest.raises(ValueError, match="not in the URL"):
        ElasticsearchConfig(hosts=("https://elastic:changeme@127.0.0.1:9200",))
    with pytest.raises(ValueError, match="go together"):
        read_credentials({"FLMON_ES_USERNAME": "u"})
    with pytest.raises(ValueError, match="either"):
        read_credentials({"FLMON_ES_API_KEY": "abcdefgh", "FLMON_ES_PASSWORD": "abcdefgh"})
    assert read_credentials({}) == {}


def test_the_clients_own_records_are_not_shipped(
        es: FakeElasticsearch, quick: QueueSettings, metrics: FlmonMetrics) -> None:
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    handler = handler_for(es.url, quick, metrics, level=logging.DEBUG)
    root.addHandler(handler)
    try:
        for i in range(3):
            logging.getLogger("flmon.tests.app").debug("app record %d", i)
        assert handler.flush(5.0)
        logging.getLogger("flmon.tests.app").debug("after a request")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    handler.close(5.0)
    loggers = {d["log.logger"] for d in es.indexed.values()}
    assert loggers == {"flmon.tests.app"}
    assert len(es.indexed) == 4


def test_config_from_env() -> None:
    cfg = ElasticsearchConfig.from_env({"FLMON_ES_URL": "http://127.0.0.1:9200, http://127.0.0.1:9201",
                                        "FLMON_ES_INDEX": "logs-flmon-prod",
                                        "FLMON_ES_LEVEL": "warning"})
    assert cfg.hosts == ("http://127.0.0.1:9200", "http://127.0.0.1:9201")
    assert cfg.index == "logs-flmon-prod" and cfg.level == logging.WARNING
    with pytest.raises(ValueError):
        ElasticsearchConfig(index="Not Valid")


def test_other_handlers_see_the_record_unchanged(
        es: FakeElasticsearch, quick: QueueSettings, metrics: FlmonMetrics,
        train_logger: logging.Logger) -> None:
    seen: list[tuple[object, object]] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.msg, record.args))

    handler = handler_for(es.url, quick, metrics)
    train_logger.addHandler(handler)
    train_logger.addHandler(Spy())
    train_logger.info("loss %.2f", 0.5)
    handler.close(5.0)
    assert seen == [("loss %.2f", (0.5,))]
    assert [d["message"] for d in es.indexed.values()] == ["loss 0.50"]


def test_a_record_that_cannot_be_formatted_is_dropped_alone(
        es: FakeElasticsearch, quick: QueueSettings, metrics: FlmonMetrics,
        train_logger: logging.Logger) -> None:
    class Picky(EcsFormatter):
        def extend(self, doc: dict[str, Any], record: logging.LogRecord) -> None:
            if "bad" in doc["message"]:
                raise RuntimeError("cannot format")

    cfg = ElasticsearchConfig(hosts=(es.url,), index="flmon-logs-test", queue=quick)
    handler = ElasticsearchHandler(cfg, metrics, formatter=Picky(), env={})
    train_logger.addHandler(handler)
    for message in ("good 1", "bad", "good 2"):
        train_logger.info(message)
    handler.close(5.0)
    assert sorted(d["message"] for d in es.indexed.values()) == ["good 1", "good 2"]
    assert count(metrics, "fl_sink_dropped_total", "elasticsearch") == 1
    assert count(metrics, "fl_sink_sent_total", "elasticsearch") == 2
