"""build_sinks: the sinks the environment asks for, sharing one set of counters."""

from __future__ import annotations

import logging

from sinkfakes import FakeElasticsearch, FakeSlack, UdpReceiver, count

from flmon.metrics import FlmonMetrics
from flmon.sinks import build_sinks
from flmon.sinks.base import QueueSettings
from flmon.sinks.slack import SlackConfig


def test_nothing_is_enabled_by_an_empty_environment() -> None:
    sinks = build_sinks(env={})
    assert not sinks
    assert (sinks.datadog, sinks.elasticsearch, sinks.slack) == (None, None, None)
    assert sinks.close(1.0)


def test_the_environment_enables_each_sink() -> None:
    es, slack, udp = FakeElasticsearch(), FakeSlack(), UdpReceiver()
    fm = FlmonMetrics()
    env = {
        "FLMON_DATADOG_ENABLED": "1", "FLMON_DATADOG_HOST": "127.0.0.1",
        "FLMON_DATADOG_PORT": str(udp.port), "FLMON_FEDERATION": "banks",
        "FLMON_ES_URL": es.url, "FLMON_ES_INDEX": "flmon-factory",
        "FLMON_SLACK_WEBHOOK_URL": slack.webhook_url(),
    }
    try:
        sinks = build_sinks(metrics=fm, mirror=fm, env=env)
        assert sinks.datadog is not None and sinks.elasticsearch is not None
        assert sinks.slack is not None
        assert sinks.datadog.config.federation == sinks.slack.config.federation == "banks"
        logger = logging.getLogger("flmon.tests.factory")
        logger.setLevel(logging.INFO)
        sinks.attach_logging(logger)
        logger.info("through the factory")
        sinks.slack.run_started("f-1")
        sinks.datadog.record("fl_training_accuracy", 0.5)
        assert sinks.close(5.0)
        assert logger.handlers == []  # detached by close
        assert [d["message"] for d in es.indexed.values()] == ["through the factory"]
        assert all(a["create"]["_index"] == "flmon-factory"
                   for r in es.requests for a in r.actions)
        assert len(slack.posts) == 1
        assert any(line.startswith("flmon.fl_training_accuracy:0.5|g|#federation:banks")
                   for line in udp.wait_for(1))
        for sink in ("datadog", "elasticsearch", "slack"):  # one registry for all
            assert count(fm, "fl_sink_sent_total", sink) >= 1
    finally:
        es.close()
        slack.close()
        udp.close()


def test_keyword_arguments_win_over_the_environment() -> None:
    slack = FakeSlack()
    try:
        env = {"FLMON_ES_URL": "http://127.0.0.1:9", "FLMON_SLACK_WEBHOOK_URL": slack.webhook_url()}
        sinks = build_sinks(env=env, elasticsearch=False,
                            slack=SlackConfig(federation="kw", queue=QueueSettings()))
        assert sinks.elasticsearch is None
        assert sinks.slack is not None and sinks.slack.config.federation == "kw"
        assert sinks.close(2.0)
    finally:
        slack.close()
