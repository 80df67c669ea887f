"""The Pushgateway pusher against a real Pushgateway, and against a closed port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from flmon.push import Pusher
from flmon.stack.ports import free_port
from flmon.stack.pushgateway import Pushgateway


def _pushed(gateway: Pushgateway, name: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get("federation", "")] = sample.value
    return out


def test_final_state_reaches_the_pushgateway_on_close() -> None:
    registry = CollectorRegistry()
    rounds = Gauge("fl_current_round", "x", registry=registry)
    with Pushgateway() as gateway:
        pusher = Pusher(gateway.address, registry, job="flmon",
                        grouping_key={"federation": "hospitals"})
        rounds.set(1)
        pusher.request()
        deadline = time.monotonic() + 10
        while _pushed(gateway, "fl_current_round") != {"hospitals": 1.0}:
            assert time.monotonic() < deadline, gateway.metrics_text()[-2000:]
            time.sleep(0.1)
        rounds.set(5)
        assert pusher.close(timeout=5) is True
        assert _pushed(gateway, "fl_current_round") == {"hospitals": 5.0}
        assert pusher.errors == 0 and pusher.pushes >= 2


def test_a_closed_port_costs_the_caller_nothing_and_is_counted() -> None:
    registry = CollectorRegistry()
    Gauge("fl_current_round", "x", registry=registry).set(1)
    errors: list[Exception] = []
    pusher = Pusher(f"127.0.0.1:{free_port()}", registry, timeout=1.0,
                    on_error=errors.append)
    for _ in range(1000):
        pusher.request()
    closed = pusher.close(timeout=3)
    assert closed is True and pusher.errors >= 1 and errors
    assert pusher.pushes == 0


def test_request_returns_while_a_push_hangs() -> None:
    release = threading.Event()
    started = threading.Event()

    def hanging_push(*args: object, **kwargs: object) -> None:
        started.set()
        release.wait(30)

    pusher = Pusher("127.0.0.1:9", CollectorRegistry(), push=hanging_push)
    pusher.request()
    assert started.wait(5)
    for _ in range(100):
        pusher.request()  # would hang here if request() waited for the push in flight
    assert pusher.close(timeout=0.5) is False  # the final push cannot finish in time
    release.set()


def test_credentials_for_a_pushgateway_behind_basic_auth(tmp_path: Path) -> None:
    import base64
    import urllib.request

    import bcrypt

    web_config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"push-secret-123", bcrypt.gensalt(rounds=4)).decode()
    web_config.write_text(f"basic_auth_users:\n  flmon: {hashed}\n")
    registry = CollectorRegistry()
    Gauge("fl_current_round", "x", registry=registry).set(7)
    with Pushgateway(web_config=web_config) as gateway:
        anonymous = Pusher(gateway.address, registry)
        assert anonymous.close(timeout=5) is True
        assert anonymous.errors == 1 and anonymous.pushes == 0
        pusher = Pusher(gateway.address, registry, username="flmon",
                        password="push-secret-123")
        assert pusher.close(timeout=5) is True
        assert pusher.errors == 0 and pusher.pushes == 1
        token = base64.b64encode(b"flmon:push-secret-123").decode()
        request = urllib.request.Request(f"{gateway.url}/metrics",
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
    assert 'fl_current_round{instance="",job="flmon"} 7' in text


def test_instrument_reads_pushgateway_credentials_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flwr.serverapp.strategy import FedAvg

    import flmon.flower.strategy as strategy_module
    from flmon.logs import redact
    from flmon.metrics import FlmonMetrics

    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file-pw\n")
    monkeypatch.setenv("FLMON_PUSHGATEWAY_USERNAME", "pusher")
    monkeypatch.setenv("FLMON_PUSHGATEWAY_PASSWORD_FILE", str(secret_file))
    made: list[dict[str, object]] = []

    class RecordingPusher(Pusher):
        def __init__(self, *args: object, **kwargs: object) -> None:
            made.append(kwargs)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(strategy_module, "Pusher", RecordingPusher)
    wrapped = strategy_module.instrument(FedAvg(), metrics=FlmonMetrics(),
                                         pushgateway=f"127.0.0.1:{free_port()}")
    assert wrapped.pusher is not None
    wrapped.pusher.close(timeout=2)
    assert made[0]["username"] == "pusher" and made[0]["password"] == "from-a-file-pw"
    assert "from-a-file-pw" not in redact("password is from-a-file-pw")
