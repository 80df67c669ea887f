"""Bad credentials and failing handlers: 401 or 500 on the wire, ECS records in the log.

Nothing reaches raw stderr: no traceback printed by ``http.server``, no password.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client import CollectorRegistry

from flmon import logs
from flmon.exporter import start_exporter

LONG_PASSWORD = "p" * 60 + "-long-password-" + "q" * 25  # 100 bytes


@pytest.fixture
def ecs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logs.configure_logging(stream=out, level=logging.DEBUG)
    yield out
    for logger in (logging.getLogger(), logging.getLogger("flwr")):
        logger.removeHandler(handler)


def _records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a_100_byte_password_gets_401_and_an_ecs_record(
        tmp_path: Path, ecs: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    assert len(LONG_PASSWORD.encode()) == 100
    hashed = bcrypt.hashpw(b"the-right-password", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    with start_exporter(0, registry=CollectorRegistry(), web_config=str(web)) as exp:
        assert _get(exp.url, _basic("prom", LONG_PASSWORD))[0] == 401
        assert _get(exp.url, _basic("nobody", LONG_PASSWORD))[0] == 401
        assert _get(exp.url, _basic("prom", "the-right-password"))[0] == 200
    refused = [r for r in _records(ecs) if r.get("event.action") == "exporter-auth-refused"]
    assert refused and refused[0]["log.level"] == "warning"
    assert "72-byte" in refused[0]["message"]
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert LONG_PASSWORD not in ecs.getvalue() + captured.err + captured.out


def test_a_raising_credential_check_gets_401(
        ecs: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    def broken(environ: dict[str, Any]) -> bool:
        raise RuntimeError("credential store unreachable")

    with start_exporter(0, registry=CollectorRegistry(), authenticate=broken) as exp:
        assert _get(exp.url, _basic("prom", "pw"))[0] == 401
    (record,) = [r for r in _records(ecs) if r.get("event.action") == "exporter-auth-error"]
    assert record["error.type"] == "RuntimeError"
    assert "credential store unreachable" in record["error.stack_trace"]
    assert "Traceback" not in capfd.readouterr().err


def test_a_failing_handler_gets_500_and_its_traceback_goes_to_the_ecs_log(
        ecs: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    def broken_health() -> bool:
        raise ZeroDivisionError("health check divided by zero")

    with start_exporter(0, registry=CollectorRegistry(), health=broken_health) as exp:
        status, body = _get(exp.url.replace("/metrics", "/healthz"))
        assert (status, body) == (500, "internal error\n")
        assert _get(exp.url)[0] == 200  # the server goes on
    (record,) = [r for r in _records(ecs) if r.get("event.action") == "exporter-handler-error"]
    assert record["log.level"] == "error" and record["error.type"] == "ZeroDivisionError"
    assert "divided by zero" in record["error.stack_trace"]
    assert "Traceback" not in capfd.readouterr().err


def test_malformed_requests_are_answered_and_logged_not_printed(
        ecs: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    with start_exporter(0, registry=CollectorRegistry()) as exp:
        sock = socket.create_connection(("127.0.0.1", exp.port), timeout=5)
        too_many = b"".join(b"X-NOT-A-REQUEST-%d: 1\r\n" % i for i in range(101))
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + too_many + b"\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert _get(exp.url)[0] == 200
    assert any(r["log.logger"] == "flmon.exporter" and "431" in r["message"]
               for r in _records(ecs))
    captured = capfd.readouterr()
    assert "X-NOT-A-REQUEST" not in captured.err and "Traceback" not in captured.err
