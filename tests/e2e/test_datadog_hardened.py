"""Datadog's own OpenMetrics check, with the rendered ``conf.yaml``, reaches a hardened
flmon exporter the way Prometheus does.

The exporter (``flmon.start_exporter`` with an exporter-toolkit web config) serves HTTPS
with a certificate the test makes (and gives the check as its CA), basic auth and a bearer
token. ``flmon render`` writes the check's instance from ``scrape.live.auth`` of a
``flmon.yaml`` declaring that auth; ``datadog-checks-base``'s ``OpenMetricsBaseCheckV2`` runs
on it: with the right secret it collects flmon's series and ``<ns>.openmetrics.health`` is
OK, with a wrong password, a password file the Agent reads differently from Prometheus or a
CA that did not sign the certificate it is CRITICAL. The Helm chart's check annotation for a
hardened exporter (``exporter.webConfig``) runs the same way, its ``%%host%%`` and
``ENC[k8s_secret@...]`` handles filled in as the Agent fills them.

The rendered password is the Agent's secret handle ``ENC[file@<path>]``. The Agent resolves
handles before it hands the instance to the check (the check never sees them), so the test
does that step itself, in :func:`agent_resolved`, reading the file exactly as the Agent's
``/readsecret_multiple_providers.sh`` (``file@`` provider) does, and a ``k8s_secret@`` handle
as the value of that key of the Secret (what its ``k8s_secret`` provider returns).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from flmon.config import parse_config
from flmon.exporter import Exporter, start_exporter
from flmon.metrics import FlmonMetrics
from flmon.render.datadog import render_datadog
from tests.core.certs import self_signed
from tests.render.conftest import minimal_data, with_changes

pytestmark = pytest.mark.e2e

NS = "clinic"
PASSWORD = "datadog-scrape-pw-1"
TOKEN = "flmon-datadog-bearer-token-0123456789"
OK, CRITICAL = 0, 2

# --- the Agent's secret resolution ----------------------------------------------------

_HANDLE = re.compile(r"^ENC\[file@(/[^\]]+)\]$")
_K8S_HANDLE = re.compile(r"^ENC\[k8s_secret@([^/\]]+)/([^/\]]+)/([^/\]]+)\]$")
_MAX_SECRET_FILE_SIZE = 8192  # the Agent's maxSecretFileSize


def _read_secret_file(path: str) -> str:
    """What the Agent's ``file@`` provider returns for ``path`` (datadog-agent
    ``cmd/secrethelper/providers/file.go``, ``ReadSecretFile``): a symlink only within its
    own directory (as kubelet mounts Secret keys), at most 8192 bytes, and the file's
    content as it is (no trimming, unlike Prometheus' ``password_file``)."""
    if os.path.islink(path):
        target = os.path.abspath(os.path.join(os.path.dirname(path), os.readlink(path)))
        if not (os.path.dirname(target) + "/").startswith(
                os.path.abspath(os.path.dirname(path)) + "/"):
            raise ValueError(f"not following symlink {target!r} outside of {path!r}")
    if os.stat(path).st_size > _MAX_SECRET_FILE_SIZE:
        raise ValueError("secret exceeds max allowed size")
    return Path(path).read_bytes().decode()


def agent_resolved(value: Any, secrets: dict[tuple[str, str], dict[str, str]] | None = None
                   ) -> Any:
    """``value`` (a check instance) with each ``ENC[...]`` handle replaced, as the Agent does
    with ``secret_backend_command: /readsecret_multiple_providers.sh``: ``file@<path>`` by
    the file, ``k8s_secret@<namespace>/<name>/<key>`` by that key of ``secrets[(namespace,
    name)]`` (the Secret's decoded data, as the API server gives it to the Agent)."""
    if isinstance(value, dict):
        return {k: agent_resolved(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [agent_resolved(v, secrets) for v in value]
    if isinstance(value, str) and (match := _HANDLE.match(value)):
        return _read_secret_file(match.group(1))
    if isinstance(value, str) and (match := _K8S_HANDLE.match(value)):
        namespace, name, key = match.groups()
        return (secrets or {})[(namespace, name)][key]
    return value


# --- the hardened exporter ------------------------------------------------------------


@dataclass(frozen=True)
class Hardened:
    exporter: Exporter
    ca: Path
    token_file: Path
    workdir: Path


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    workdir = tmp_path_factory.mktemp("dd-hardened")
    cert, key = self_signed(workdir)  # the test's CA: the certificate signs itself
    token_file = workdir / "token"
    token_file.write_text(TOKEN + "\n")  # both readers trim a token file
    web_config = workdir / "web.yml"
    web_config.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"datadog": bcrypt.hashpw(
            PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()},
        "bearer_token_file": str(token_file),
    }))
    metrics = FlmonMetrics(sides=("server",))
    metrics.gauge("fl_current_round").set(3)
    metrics.counter("fl_rounds_completed_total").inc(2)
    with start_exporter(0, registry=metrics.registry, web_config=str(web_config)) as exporter:
        assert exporter.url.startswith("https://127.0.0.1:")
        yield Hardened(exporter, cert, token_file, workdir)


def rendered_conf(h: Hardened, auth: dict[str, Any]) -> str:
    """``datadog/conf.yaml`` of a flmon.yaml whose live exporter is declared hardened."""
    cfg = parse_config(with_changes(
        minimal_data(), datadog__namespace=NS,  # the endpoint: from the target and scheme
        scrape__live__targets=[f"127.0.0.1:{h.exporter.port}"], scrape__live__auth=auth,
        scrape__pushgateway__enabled=False, scrape__watch__enabled=False))
    return render_datadog(cfg)["datadog/conf.yaml"]


@dataclass(frozen=True)
class Result:
    error: str
    health: list[int]
    metrics: dict[str, list[Any]]


def run_check(conf_text: str, secrets: dict[tuple[str, str], dict[str, str]] | None = None
              ) -> Result:
    """The Agent's OpenMetrics check on the one instance of ``conf_text``, once."""
    from datadog_checks.base import OpenMetricsBaseCheckV2
    from datadog_checks.base.stubs import aggregator

    conf = yaml.safe_load(conf_text)
    (instance,) = conf["instances"]
    aggregator.reset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
        check = OpenMetricsBaseCheckV2("openmetrics", conf["init_config"],
                                       [agent_resolved(instance, secrets)])
        error = check.run()
    health = [s.status for s in aggregator._service_checks[f"{NS}.openmetrics.health"]
              if f"endpoint:{instance['openmetrics_endpoint']}" in s.tags]
    return Result(error, health, {n: list(v) for n, v in aggregator._metrics.items()})


def _basic(h: Hardened, password_file: Path, ca: Path | None = None) -> dict[str, Any]:
    return {"scheme": "https", "ca_file": str(ca or h.ca), "username": "datadog",
            "password_file": str(password_file)}


# --- the tests --------------------------------------------------------------------------


def test_basic_auth_over_tls_collects_and_the_secret_stays_in_its_file(
        hardened: Hardened) -> None:
    password_file = hardened.workdir / "password-right"
    password_file.write_text(PASSWORD)
    text = rendered_conf(hardened, _basic(hardened, password_file))
    assert PASSWORD not in text
    (instance,) = yaml.safe_load(text)["instances"]
    assert instance["openmetrics_endpoint"] == hardened.exporter.url
    assert instance["password"] == f"ENC[file@{password_file}]"
    assert {k: instance[k] for k in ("tls_verify", "tls_ca_cert", "username")} == {
        "tls_verify": True, "tls_ca_cert": str(hardened.ca), "username": "datadog"}
    assert "secret_backend_command: /readsecret_multiple_providers.sh" in text
    result = run_check(text)
    assert result.error == ""
    assert result.health == [OK]
    assert [s.value for s in result.metrics[f"{NS}.fl_current_round"]] == [3]
    assert "federation:hospitals_eu" in result.metrics[f"{NS}.fl_current_round"][0].tags


def test_a_bearer_token_file_is_read_by_the_check_itself(hardened: Hardened) -> None:
    text = rendered_conf(hardened, {"scheme": "https", "ca_file": str(hardened.ca),
                                    "bearer_token_file": str(hardened.token_file)})
    assert TOKEN not in text
    (instance,) = yaml.safe_load(text)["instances"]
    assert instance["auth_token"]["reader"] == {"type": "file",
                                                "path": str(hardened.token_file)}
    assert "password" not in instance
    assert "secret_backend_command" not in text  # nothing for the Agent to resolve
    result = run_check(text)
    assert result.error == ""
    assert result.health == [OK]
    assert f"{NS}.fl_current_round" in result.metrics


@pytest.mark.parametrize("case", ["wrong password", "trailing newline", "other CA"])
def test_the_check_is_critical_when_it_cannot_get_in(hardened: Hardened, case: str) -> None:
    password_file = hardened.workdir / f"password-{case.replace(' ', '-')}"
    ca = None
    if case == "wrong password":
        password_file.write_text("not-the-password")
    elif case == "trailing newline":
        # Prometheus trims its password_file; the Agent's file@ provider does not, so the
        # exporter gets "<password>\n" (conf.yaml's comment says so).
        password_file.write_text(PASSWORD + "\n")
    else:
        password_file.write_text(PASSWORD)
        other = hardened.workdir / "other-ca"
        other.mkdir(exist_ok=True)
        ca, _ = self_signed(other)  # a CA that did not sign the exporter's certificate
    result = run_check(rendered_conf(hardened, _basic(hardened, password_file, ca)))
    assert result.error != ""
    assert result.health == [CRITICAL]
    assert f"{NS}.fl_current_round" not in result.metrics


# --- the Helm chart's annotation ------------------------------------------------------


@pytest.fixture(scope="module")
def served_for_another_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    """The exporter on 127.0.0.1 with a certificate for 127.0.0.2 only: a check that does
    not send the chart's serverName as its TLS name fails to verify it."""
    workdir = tmp_path_factory.mktemp("dd-helm")
    cert, key = self_signed(workdir, "127.0.0.2")
    web_config = workdir / "web.yml"
    web_config.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"datadog": bcrypt.hashpw(
            PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}}))
    metrics = FlmonMetrics(sides=("server",))
    metrics.gauge("fl_current_round").set(5)
    with start_exporter(0, registry=metrics.registry, web_config=str(web_config)) as exporter:
        yield Hardened(exporter, cert, workdir / "unused", workdir)


@pytest.mark.parametrize(("server_name", "password", "health"), [
    ("127.0.0.2", PASSWORD, OK), ("127.0.0.2", "not-the-password", CRITICAL),
    ("", PASSWORD, CRITICAL)])  # no serverName: the certificate is not for %%host%%
def test_the_charts_annotation_reaches_the_hardened_exporter(
        served_for_another_name: Hardened, server_name: str, password: str,
        health: int) -> None:
    from tests.helm.helmchart import NAMESPACE, manifests, one, render

    h = served_for_another_name
    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "helm" / "flmon" / "ci"
                             / "datadog-hardened-values.yaml").read_text())
    values["exporter"]["port"] = h.exporter.port
    values["exporter"]["webConfig"]["serverName"] = server_name
    values["datadog"]["namespace"] = NS
    values["datadog"]["exporterCaFile"] = str(h.ca)  # where the Agent has the CA mounted
    superlink = one(manifests(render(values)), "Deployment", "flmon-superlink")
    checks = json.loads(superlink["spec"]["template"]["metadata"]["annotations"][
        "ad.datadoghq.com/superlink.checks"])["openmetrics"]
    assert PASSWORD not in json.dumps(checks)
    (instance,) = checks["instances"]
    instance["openmetrics_endpoint"] = instance["openmetrics_endpoint"].replace(
        "%%host%%", "127.0.0.1")  # the Agent's template variable: the pod's IP
    secret = values["exporter"]["webConfig"]["existingSecret"]
    conf = yaml.safe_dump({"init_config": checks["init_config"], "instances": [instance]})
    result = run_check(conf, {(NAMESPACE, secret): {"username": "datadog",
                                                    "password": password}})
    assert result.health == [health]
    assert (f"{NS}.fl_current_round" in result.metrics) is (health == OK)
