"""Slack notifier against a loopback server that answers like an incoming webhook."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sinkfakes import (
    CHANNEL_NOT_FOUND,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeSlack,
    SlackAnswer,
    closed_port,
    count,
)

from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings
from flmon.sinks.slack import SlackConfig, SlackNotifier, read_webhook_url


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack()
    yield server
    server.close()


def notifier(url: str, quick: QueueSettings, metrics: FlmonMetrics,
             **config: object) -> SlackNotifier:
    cfg = SlackConfig(federation="hospitals", queue=quick, timeout=2.0, **config)  # type: ignore[arg-type]
    return SlackNotifier(cfg, metrics, env={"FLMON_SLACK_WEBHOOK_URL": url})


def test_lifecycle_payloads(slack: FakeSlack, quick: QueueSettings,
                            metrics: FlmonMetrics) -> None:
    n = notifier(slack.webhook_url(), quick, metrics)
    n.run_started("run-9", rounds=5, strategy="FedAvg")
    n.run_finished("run-9", summary={"Rounds completed": 5, "Accuracy": 0.91234},
                   duration_seconds=125.0)
    n.run_failed("run-9", RuntimeError("aggregation failed: token=abcdef123456"), round=3)
    assert n.close(5.0)
    posts = slack.wait_for_count(3, timeout=10)
    assert [p.path for p in posts] == ["/services/T000TEST/B000TEST/abcdefghijklmnopqrstuvwx"] * 3
    started, finished, failed = (p.payload for p in posts)
    assert started == {
        "text": ":arrow_forward: flmon: run *run-9* of federation *hospitals* started",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text":
                ":arrow_forward: flmon: run *run-9* of federation *hospitals* started"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Rounds*\n5"},
                {"type": "mrkdwn", "text": "*Strategy*\nFedAvg"}]},
        ],
    }
    assert finished["blocks"][1]["fields"] == [
        {"type": "mrkdwn", "text": "*Rounds completed*\n5"},
        {"type": "mrkdwn", "text": "*Accuracy*\n0.9123"},
        {"type": "mrkdwn", "text": "*Duration*\n2m05s"},
    ]
    assert finished["text"].endswith("run *run-9* of federation *hospitals* finished")
    assert failed["text"] == (":x: flmon: run *run-9* of federation *hospitals* failed: "
                              "RuntimeError: aggregation failed: token=[REDACTED]")
    assert failed["blocks"][1]["fields"] == [{"type": "mrkdwn", "text": "*Round*\n3"}]
    assert failed["blocks"][2]["text"]["text"] == (
        "```RuntimeError: aggregation failed: token=[REDACTED]```")
    assert count(metrics, "fl_sink_sent_total", "slack") == 3


def test_rate_limit_is_retried_after_retry_after(quick: QueueSettings,
                                                  metrics: FlmonMetrics) -> None:
    slack = FakeSlack(script=[RATE_LIMITED, OK])
    try:
        n = notifier(slack.webhook_url(), quick, metrics)
        n.notify("hello")
        assert n.flush(10.0)
        posts = slack.wait_for_count(2, timeout=10)
        assert [p.status for p in posts] == [429, 200]
        assert posts[1].at - posts[0].at >= 1.0  # Retry-After: 1
        assert posts[0].payload == posts[1].payload == {"text": "hello"}
        assert count(metrics, "fl_sink_sent_total", "slack") == 1
        assert count(metrics, "fl_sink_errors_total", "slack") == 0  # the SDK retried
        n.close(1.0)
    finally:
        slack.close()


def test_server_errors_are_retried_then_given_up(quick: QueueSettings,
                                                 metrics: FlmonMetrics) -> None:
    slack = FakeSlack(default=SERVER_ERROR)
    try:
        n = notifier(slack.webhook_url(), QueueSettings(
            flush_interval=0.05, max_retries=1, initial_backoff=0.05, max_backoff=0.1),
            metrics, server_error_retries=1)
        assert n.notify("will not make it") is True
        assert n.flush(15.0)
        # each post: one try and one SDK retry; the worker tries the post twice
        assert [p.status for p in slack.posts] == [500] * 4
        assert count(metrics, "fl_sink_dropped_total", "slack") == 1
        assert count(metrics, "fl_sink_errors_total", "slack") == 2
        assert count(metrics, "fl_sink_sent_total", "slack") == 0
        n.close(1.0)
    finally:
        slack.close()


def test_server_error_then_ok(quick: QueueSettings, metrics: FlmonMetrics) -> None:
    slack = FakeSlack(script=[SERVER_ERROR, OK])
    try:
        n = notifier(slack.webhook_url(), quick, metrics)
        n.notify("second time lucky")
        assert n.close(10.0)
        assert [p.status for p in slack.posts] == [500, 200]
        assert count(metrics, "fl_sink_sent_total", "slack") == 1
    finally:
        slack.close()


def test_channel_not_found_is_dropped_without_retry(quick: QueueSettings,
                                                    metrics: FlmonMetrics) -> None:
    slack = FakeSlack(script=[CHANNEL_NOT_FOUND], default=OK)
    try:
        n = notifier(slack.webhook_url(), quick, metrics)
        n.notify("to nowhere")
        n.notify("next one")
        assert n.close(5.0)
        assert [(p.status, p.payload["text"]) for p in slack.posts] == [
            (404, "to nowhere"), (200, "next one")]
        assert count(metrics, "fl_sink_dropped_total", "slack") == 1
        assert count(metrics, "fl_sink_errors_total", "slack") == 1
        assert count(metrics, "fl_sink_sent_total", "slack") == 1
    finally:
        slack.close()


def test_a_long_retry_after_is_left_to_the_worker(quick: QueueSettings,
                                                  metrics: FlmonMetrics) -> None:
    slack = FakeSlack(script=[SlackAnswer(429, b"rate_limited", {"Retry-After": "3600"})])
    try:
        n = notifier(slack.webhook_url(), quick, metrics, max_retry_after=5.0)
        n.notify("later")
        assert n.flush(5.0)  # the SDK did not sleep an hour; the worker retried
        assert [p.status for p in slack.posts] == [429, 200]
        assert count(metrics, "fl_sink_errors_total", "slack") == 1
        n.close(1.0)
    finally:
        slack.close()


def test_failures_never_raise_into_training(quick: QueueSettings,
                                            metrics: FlmonMetrics) -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T0/B0/closedclosedclosed"
    n = notifier(url, quick, metrics)
    with pytest.raises(ZeroDivisionError), n.track_run("run-1", rounds=2) as summary:
        summary["Round"] = 1
        raise ZeroDivisionError("lr too small")
    for _ in range(3):
        assert n.notify("nobody listens") in (True, False)
    n.close(2.0)
    # close() may return while the SDK still retries the connection: wait for the worker
    # to end, so that its last attempt is not left to log at interpreter exit
    for worker in [t for t in threading.enumerate() if t.name == "flmon-sink-slack"]:
        worker.join(60.0)
        assert not worker.is_alive()
    assert count(metrics, "fl_sink_errors_total", "slack") >= 1
    assert count(metrics, "fl_sink_sent_total", "slack") == 0
    assert count(metrics, "fl_sink_dropped_total", "slack") == 5


def test_track_run_reports_finish_with_summary(slack: FakeSlack, quick: QueueSettings,
                                               metrics: FlmonMetrics) -> None:
    n = notifier(slack.webhook_url(), quick, metrics)
    with n.track_run(7, rounds=3, strategy="FedProx") as summary:
        summary["Final accuracy"] = 0.875
    assert n.close(5.0)
    texts = [p.payload["text"] for p in slack.posts]
    assert texts[0].endswith("run *7* of federation *hospitals* started")
    assert texts[1].endswith("run *7* of federation *hospitals* finished")
    assert {"type": "mrkdwn", "text": "*Final accuracy*\n0.875"} in (
        slack.posts[1].payload["blocks"][1]["fields"])


def test_webhook_url_is_never_logged(quick: QueueSettings, metrics: FlmonMetrics,
                                     caplog: pytest.LogCaptureFixture) -> None:
    slack = FakeSlack(script=[SERVER_ERROR, CHANNEL_NOT_FOUND])
    caplog.set_level(logging.DEBUG)
    try:
        url = slack.webhook_url()
        n = notifier(url, quick, metrics)
        n.notify("x")
        n.close(5.0)
        assert len(slack.posts) == 2
        assert url not in repr(n)
        assert caplog.records  # the refusal was logged...
        for record in caplog.records:  # ...without the URL or its token
            assert "abcdefghijklmnopqrstuvwx" not in record.getMessage()
    finally:
        slack.close()


def test_webhook_url_comes_from_env_or_file(tmp_path: Path) -> None:
    url_file = tmp_path / "webhook"
    url_file.write_text("https://hooks.slack.com/services/T1/B1/xxxxxxxxxxxx\n")
    assert read_webhook_url(SlackConfig(webhook_url_file=str(url_file)), {}) == (
        "https://hooks.slack.com/services/T1/B1/xxxxxxxxxxxx")
    assert read_webhook_url(None, {"FLMON_SLACK_WEBHOOK_URL_FILE": str(url_file)}) == (
        "https://hooks.slack.com/services/T1/B1/xxxxxxxxxxxx")
    assert read_webhook_url(None, {}) is None
    with pytest.raises(ValueError, match="not both"):
        read_webhook_url(None, {"FLMON_SLACK_WEBHOOK_URL": "https://a.b/c",
                                "FLMON_SLACK_WEBHOOK_URL_FILE": str(url_file)})
    with pytest.raises(ValueError, match="https") as info:
        read_webhook_url(None, {"FLMON_SLACK_WEBHOOK_URL": "http://hooks.example/zzzzsecret"})
    assert "zzzzsecret" not in str(info.value)
    with pytest.raises(ValueError, match="no Slack webhook URL"):
        SlackNotifier(SlackConfig(), env={})
