"""No secret reaches a log line, a shipped log document, the exposition or a render.

Every secret flmon can be given is configured at once (Slack webhook URL in a file,
Elasticsearch API key, Datadog API and application keys in the environment, an
exporter bearer token in a file, a basic-auth password whose hash is in the web
configuration, the pseudonym key); then an instrumented in-process federation with
misbehaving clients runs with ECS logs to a file at DEBUG, every sink enabled against
loopback receivers that fail some requests, and the exporter behind auth is scraped
with good and bad credentials. Every log line, every document shipped to
Elasticsearch, every DogStatsD datagram, every scrape and every file ``flmon render``
writes is scanned for every secret.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import numpy as np
import pytest
import yaml
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg

import flmon
from flmon import logs
from flmon.flower import instrument
from flmon.metrics import FlmonMetrics
from flmon.sinks import build_sinks
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid
from tests.fakes.loopback import FakeElasticsearch, FakeSlack, SlackAnswer, UdpReceiver

REPO = Path(__file__).resolve().parents[2]
_ENV_NAMES = ("FLMON_ES_URL", "FLMON_ES_API_KEY", "FLMON_ES_API_KEY_FILE", "FLMON_ES_USERNAME",
              "FLMON_ES_PASSWORD", "FLMON_ES_PASSWORD_FILE", "FLMON_SLACK_WEBHOOK_URL",
              "FLMON_SLACK_WEBHOOK_URL_FILE", "FLMON_DATADOG_ENABLED", "FLMON_DATADOG_HOST",
              "FLMON_DATADOG_PORT", "FLMON_DATADOG_SOCKET", "DD_AGENT_HOST",
              "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_URL", "DD_API_KEY", "DD_APP_KEY",
              "FLMON_PUSHGATEWAY", "FLMON_EXPORTER_TOKEN")


def _secret(kind: str) -> str:
    return f"{kind}{secrets.token_hex(16)}"


@pytest.fixture
def receivers() -> Iterator[tuple[FakeSlack, FakeElasticsearch, UdpReceiver]]:
    slack = FakeSlack(script=[SlackAnswer(500, b"internal_error")])
    es = FakeElasticsearch(script=[("status", 429)])
    udp = UdpReceiver()
    yield slack, es, udp
    slack.close()
    es.close()
    udp.close()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "flmon.log"
    root, flwr_logger = logging.getLogger(), logging.getLogger("flwr")
    level, flwr_handlers = root.level, list(flwr_logger.handlers)
    # whatever earlier code set, every flmon and Flower record is written here
    named = {name: logging.getLogger(name).level for name in ("flmon", "flwr")}
    for name in named:
        logging.getLogger(name).setLevel(logging.NOTSET)
    handler = logs.configure_logging(file=str(path), level=logging.DEBUG)
    yield path
    for name, old_level in named.items():
        logging.getLogger(name).setLevel(old_level)
    for logger in (root, flwr_logger):
        logger.removeHandler(handler)
    handler.close()
    root.setLevel(level)
    for old in flwr_handlers:
        flwr_logger.addHandler(old)
    logs.set_global_context(run_id=None, round=None, node_id=None)


def _get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _forms(value: str) -> set[str]:
    """A secret and the encodings it could leak in."""
    return {value, base64.b64encode(value.encode()).decode(),
            urllib.parse.quote(value, safe=""), value[len(value) // 4: -len(value) // 4]}


def test_no_secret_in_logs_shipped_logs_exposition_or_render(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_file: Path,
        receivers: tuple[FakeSlack, FakeElasticsearch, UdpReceiver]) -> None:
    slack, es, udp = receivers
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    found: dict[str, str] = {
        "slack_webhook": f"http://127.0.0.1:{slack.port}/services/T{secrets.token_hex(5).upper()}/"
                         f"B{secrets.token_hex(5).upper()}/{secrets.token_hex(12)}",
        "es_api_key": _secret("esk"),
        "dd_api_key": _secret("ddk"),
        "dd_app_key": _secret("dda"),
        "bearer_token": _secret("tok"),
        "basic_password": _secret("pwd"),
        "pseudonym_key": _secret("psk"),
    }
    password_hash = bcrypt.hashpw(found["basic_password"].encode(),
                                  bcrypt.gensalt(rounds=4)).decode()
    found["basic_auth_header"] = base64.b64encode(
        f"prometheus:{found['basic_password']}".encode()).decode()

    webhook_file = tmp_path / "slack-webhook-url"
    webhook_file.write_text(found["slack_webhook"] + "\n")
    token_file = tmp_path / "exporter-token"
    token_file.write_text(found["bearer_token"] + "\n")
    token_file.chmod(0o600)
    web_config = tmp_path / "web.yml"
    web_config.write_text(yaml.safe_dump({
        "basic_auth_users": {"prometheus": password_hash},
        "bearer_token_file": str(token_file),
    }))
    env = {
        "FLMON_SLACK_WEBHOOK_URL_FILE": str(webhook_file),
        "FLMON_ES_URL": es.url,
        "FLMON_ES_API_KEY": found["es_api_key"],
        "FLMON_DATADOG_ENABLED": "1",
        "FLMON_DATADOG_HOST": "127.0.0.1",
        "FLMON_DATADOG_PORT": str(udp.port),
        "DD_API_KEY": found["dd_api_key"],
        "DD_APP_KEY": found["dd_app_key"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # --- a run with every sink, the exporter behind auth, misbehaving clients ----------
    metrics = FlmonMetrics(sides=("server", "sink"))
    sinks = build_sinks(metrics=metrics, mirror=metrics)
    assert sinks.slack is not None and sinks.elasticsearch is not None
    assert sinks.datadog is not None
    sinks.attach_logging()
    scrapes: list[str] = []
    with flmon.start_exporter(0, registry=metrics.registry,
                              web_config=str(web_config)) as exporter:
        url = exporter.url
        strategy = instrument(
            FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1),
            metrics=metrics, client_identity="pseudonym", pseudonym_key=found["pseudonym_key"])
        apps = {1: make_app(seed=1), 2: make_app(seed=2), 3: make_app(seed=3),
                4: make_app("extra-key", seed=4), 5: make_app("raise", seed=5),
                6: make_app("scaled", seed=6),
                7: make_app("hostile-telemetry", seed=7, telemetry={"v": 1, "x": "y"})}
        with sinks.slack.track_run("4242", rounds=2):
            strategy.start(grid=InProcessGrid(apps), num_rounds=2,
                           initial_arrays=ArrayRecord([np.zeros((4, 3)), np.zeros(3)]))
        log = logging.getLogger("flmon.tests.secrets")
        # what careless code might log: flmon's registered secrets are redacted anyway
        log.error("posting to %s with Bearer %s and ApiKey %s", found["slack_webhook"],
                  found["bearer_token"], found["es_api_key"])
        log.warning("Authorization: Basic %s", found["basic_auth_header"])
        assert _get(url, {})[0] == 401
        assert _get(url, {"Authorization": "Bearer not-the-token-000000"})[0] == 401
        assert _get(url, {"Authorization": "Basic " + base64.b64encode(
            f"prometheus:{found['pseudonym_key']}".encode()).decode()})[0] == 401
        for headers in ({"Authorization": f"Bearer {found['bearer_token']}"},
                        {"Authorization": f"Basic {found['basic_auth_header']}"}):
            status, body = _get(url, headers)
            assert status == 200
            scrapes.append(body)
    assert sinks.close(timeout=15)
    assert slack.posts and es.indexed and udp.lines()

    # --- render with the same secrets configured -----------------------------------
    config = yaml.safe_load((REPO / "examples" / "flmon.yaml").read_text())
    config["slack"]["webhook_url_file"] = str(webhook_file)
    config["slack"]["webhook_url_env"] = "FLMON_SLACK_WEBHOOK_URL"
    config_path = tmp_path / "flmon.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "render"
    rendered = subprocess.run(
        [sys.executable, "-m", "flmon.cli.main", "render", "--config", str(config_path),
         "--out", str(out), "--quiet"],
        env={**os.environ, "FLMON_SLACK_WEBHOOK_URL": found["slack_webhook"],
             "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=False, timeout=300, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    rendered_files = [p for p in out.rglob("*") if p.is_file()]
    assert len(rendered_files) > 10

    # --- the scan ---------------------------------------------------------------------
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20
    assert any("anomalous" in line for line in lines)  # the run did log security events
    assert any(logs.REDACTED in line for line in lines)
    haystacks: list[tuple[str, str]] = [(f"log line {i}", line) for i, line in enumerate(lines)]
    haystacks += [(f"shipped log document {k}", str(doc)) for k, doc in es.indexed.items()]
    haystacks += [(f"Slack message {i}", str(p.payload)) for i, p in enumerate(slack.posts)]
    haystacks += [("DogStatsD", "\n".join(udp.lines()))]
    haystacks += [(f"scrape {i}", text) for i, text in enumerate(scrapes)]
    haystacks += [("render output", rendered.stdout + rendered.stderr)]
    haystacks += [(str(p.relative_to(out)), p.read_text(encoding="utf-8", errors="replace"))
                  for p in rendered_files]
    leaks = [(where, name) for where, text in haystacks for name, value in found.items()
             for form in _forms(value) if form in text]
    assert not leaks, leaks
    assert password_hash not in log_file.read_text(encoding="utf-8")

