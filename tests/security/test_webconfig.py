"""The exporter's web configuration: TLS, client certificates, basic auth, bearer token."""

from __future__ import annotations

import base64
import logging
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Counter

import flmon
from flmon.logs import REDACTED, redact
from flmon.webconfig import (
    WebConfigError,
    hash_password,
    load_web_config,
    parse_web_config,
)
from tests.core.certs import self_signed

PASSWORD = "correct horse battery staple 7Q"
TOKEN = "tok-3f9a1c22b7e04d6e9a5b8c1d2e3f4a5b"


def _hash(password: str = PASSWORD) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("fl_webconfig_probe", "x", registry=registry).inc()
    return registry


def _get(url: str, headers: dict[str, str] | None = None,
         context: ssl.SSLContext | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    server, client, other = (tmp_path / d for d in ("server", "client", "other"))
    for d in (server, client, other):
        d.mkdir()
    cert, key = self_signed(server)
    client_cert, client_key = self_signed(client)
    other_cert, other_key = self_signed(other)
    return {"cert": cert, "key": key, "client_cert": client_cert,
            "client_key": client_key, "other_cert": other_cert, "other_key": other_key}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def test_tls_and_basic_auth_refuse_unauthenticated_scrapes(
        tmp_path: Path, tls_files: dict[str, Path]) -> None:
    config = _write(tmp_path, f"""
tls_server_config:
  cert_file: {tls_files['cert']}
  key_file: {tls_files['key']}
basic_auth_users:
  prometheus: {_hash()}
""")
    context = ssl.create_default_context(cafile=str(tls_files["cert"]))
    with flmon.start_exporter(0, registry=_registry(), web_config=str(config)) as exp:
        assert exp.url.startswith("https://127.0.0.1:")
        status, body = _get(exp.url, context=context)
        assert status == 401 and "fl_webconfig_probe" not in body
        assert _get(exp.url, _basic("prometheus", "wrong"), context)[0] == 401
        assert _get(exp.url, _basic("nobody", PASSWORD), context)[0] == 401
        assert _get(exp.url, {"Authorization": "Basic !!!not-base64"}, context)[0] == 401
        assert _get(exp.url, {"Authorization": f"Bearer {TOKEN}"}, context)[0] == 401
        status, body = _get(exp.url, _basic("prometheus", PASSWORD), context)
        assert status == 200 and "fl_webconfig_probe_total 1.0" in body
        healthz = exp.url.replace("/metrics", "/healthz")
        assert _get(healthz, context=context)[0] == 200
        assert _get(exp.url.replace("/metrics", "/"), context=context)[0] == 401
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(exp.url.replace("https://", "http://"), timeout=5)


def test_bearer_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = _write(tmp_path, "bearer_token_file: token\n")  # relative to the file
    with flmon.start_exporter(0, registry=_registry(), web_config=str(config)) as exp:
        assert _get(exp.url)[0] == 401
        assert _get(exp.url, {"Authorization": f"Bearer {TOKEN}x"})[0] == 401
        assert _get(exp.url, {"Authorization": f"Bearer {TOKEN[:-1]}"})[0] == 401
        assert _get(exp.url, {"Authorization": "Bearer"})[0] == 401
        assert _get(exp.url, _basic("prometheus", TOKEN))[0] == 401
        status, body = _get(exp.url, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "fl_webconfig_probe_total" in body
        assert _get(exp.url, {"Authorization": f"bearer {TOKEN}"})[0] == 200
    assert redact(f"token is {TOKEN}") == f"token is {REDACTED}"


def test_bearer_token_from_an_environment_variable_and_both_kinds_of_auth(
        tmp_path: Path) -> None:
    token = "env-" + TOKEN
    config = _write(tmp_path, f"""
bearer_token_env: FLMON_TEST_EXPORTER_TOKEN
basic_auth_users:
  alice: {_hash()}
""")
    web = load_web_config(config, environ={"FLMON_TEST_EXPORTER_TOKEN": token})
    authenticate = web.authenticator()
    assert authenticate is not None
    assert authenticate({"HTTP_AUTHORIZATION": f"Bearer {token}"})
    assert authenticate({"HTTP_AUTHORIZATION": _basic("alice", PASSWORD)["Authorization"]})
    assert not authenticate({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})
    assert not authenticate({})
    assert not authenticate({"HTTP_AUTHORIZATION": "Digest abc"})
    assert token not in repr(web) and "$2" not in repr(web)
    assert token not in repr(authenticate)
    assert redact(token) == REDACTED


def test_mutual_tls_requires_a_client_certificate_from_the_ca(
        tmp_path: Path, tls_files: dict[str, Path]) -> None:
    config = _write(tmp_path, f"""
tls_server_config:
  cert_file: {tls_files['cert']}
  key_file: {tls_files['key']}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {tls_files['client_cert']}
""")
    with flmon.start_exporter(0, registry=_registry(), web_config=str(config)) as exp:
        anonymous = ssl.create_default_context(cafile=str(tls_files["cert"]))
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _get(exp.url, context=anonymous)
        stranger = ssl.create_default_context(cafile=str(tls_files["cert"]))
        stranger.load_cert_chain(str(tls_files["other_cert"]), str(tls_files["other_key"]))
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _get(exp.url, context=stranger)
        known = ssl.create_default_context(cafile=str(tls_files["cert"]))
        known.load_cert_chain(str(tls_files["client_cert"]), str(tls_files["client_key"]))
        status, body = _get(exp.url, context=known)
        assert status == 200 and "fl_webconfig_probe_total" in body


def test_min_version_tls13_refuses_tls12_clients(
        tmp_path: Path, tls_files: dict[str, Path]) -> None:
    config = _write(tmp_path, f"""
tls_server_config:
  cert_file: {tls_files['cert']}
  key_file: {tls_files['key']}
  min_version: TLS13
""")
    with flmon.start_exporter(0, registry=_registry(), web_config=str(config)) as exp:
        old = ssl.create_default_context(cafile=str(tls_files["cert"]))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _get(exp.url, context=old)
        new = ssl.create_default_context(cafile=str(tls_files["cert"]))
        assert _get(exp.url, context=new)[0] == 200


def test_default_tls_floor_is_tls12_and_the_bind_address_loopback(
        tmp_path: Path, tls_files: dict[str, Path]) -> None:
    config = _write(tmp_path, f"""
tls_server_config:
  cert_file: {tls_files['cert']}
  key_file: {tls_files['key']}
""")
    with flmon.start_exporter(0, registry=_registry(), web_config=str(config)) as exp:
        assert exp.addr == "127.0.0.1"
        assert exp.ssl_context is not None
        assert exp.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
        tls12 = ssl.create_default_context(cafile=str(tls_files["cert"]))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert _get(exp.url, context=tls12)[0] == 200


def test_successful_basic_auth_checks_are_cached_failures_are_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    authenticate = parse_web_config({"basic_auth_users": {"prom": _hash()}}).authenticator()
    assert authenticate is not None
    monkeypatch.setattr("flmon.webconfig.bcrypt.checkpw", counting)
    good = {"HTTP_AUTHORIZATION": _basic("prom", PASSWORD)["Authorization"]}
    bad = {"HTTP_AUTHORIZATION": _basic("prom", "nope")["Authorization"]}
    unknown = {"HTTP_AUTHORIZATION": _basic("eve", PASSWORD)["Authorization"]}
    assert authenticate(good) and authenticate(good) and authenticate(good)
    assert len(calls) == 1
    assert not authenticate(bad) and not authenticate(bad)
    assert not authenticate(unknown)  # an unknown user still pays a bcrypt check
    assert len(calls) == 4


@pytest.mark.parametrize(("text", "message"), [
    ("bearer_token: abcdefabcdefabcdefabcdef\n", "not accepted inline"),
    ("basic_auth_users:\n  bob: plainpassword\n", "not a bcrypt hash"),
    ("rate_limit:\n  burst: 3\n", "unsupported keys"),
    ("tls_server_config:\n  cert: '-----BEGIN'\n", "inline certificates"),
    ("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n",
     "no such file"),
    ("bearer_token_env: FLMON_TEST_UNSET_VARIABLE\n", "is not set"),
    ("bearer_token_file: short\n", "at least 16"),
    ("- a list\n", "YAML mapping"),
    ("tls_server_config: [1\n", "not valid YAML"),
])
def test_invalid_configurations_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "short").write_text("abc123")
    path = _write(tmp_path, text)
    with pytest.raises(WebConfigError, match=message) as info:
        load_web_config(path, environ={})
    assert "plainpassword" not in str(info.value)


@pytest.mark.parametrize(("tls", "message"), [
    ("  client_auth_type: RequireAnyClientCert\n", "not supported"),
    ("  client_auth_type: RequireAndVerifyClientCert\n", "needs tls_server_config"),
    ("  client_ca_file: {cert}\n", "NoClientCert"),
    ("  min_version: TLS11\n", "not accepted"),
    ("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "unsupported keys"),
])
def test_insecure_tls_settings_are_refused(tmp_path: Path, tls_files: dict[str, Path],
                                           tls: str, message: str) -> None:
    path = _write(tmp_path, f"tls_server_config:\n  cert_file: {tls_files['cert']}\n"
                            f"  key_file: {tls_files['key']}\n"
                            + tls.format(cert=tls_files["cert"]))
    with pytest.raises(WebConfigError, match=message):
        load_web_config(path)


def test_web_config_cannot_be_combined_with_explicit_tls_arguments(
        tmp_path: Path, tls_files: dict[str, Path]) -> None:
    path = _write(tmp_path, "{}\n")
    with pytest.raises(ValueError, match="web_config"):
        flmon.start_exporter(0, registry=_registry(), web_config=str(path),
                             certfile=str(tls_files["cert"]), keyfile=str(tls_files["key"]))


def test_an_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    config = parse_web_config(None)
    assert not config.tls and config.authenticator() is None
    with flmon.start_exporter(0, registry=_registry(),
                              web_config=str(_write(tmp_path, ""))) as exp:
        assert _get(exp.url)[0] == 200


def test_auth_without_tls_warns_and_a_readable_token_file_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("x" * 20 + "-token-value")
    token_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="flmon.webconfig"):
        load_web_config(_write(tmp_path, f"bearer_token_file: {token_file}\n"))
    text = caplog.text
    assert "clear text" in text and "readable by group or others" in text
    assert "x" * 20 not in text


def test_hash_password_and_the_hash_command(tmp_path: Path) -> None:
    hashed = hash_password("s3cret-password", rounds=4)
    assert bcrypt.checkpw(b"s3cret-password", hashed.encode())
    done = subprocess.run([sys.executable, "-m", "flmon.webconfig", "hash"],
                          input="another-password\n", capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    produced = done.stdout.strip()
    assert bcrypt.checkpw(b"another-password", produced.encode())
    assert "another-password" not in done.stdout + done.stderr
    good = _write(tmp_path, f"basic_auth_users:\n  prom: '{produced}'\n")
    check = subprocess.run([sys.executable, "-m", "flmon.webconfig", "check", str(good)],
                           capture_output=True, text=True, check=False, timeout=60)
    assert check.returncode == 0 and "basic_auth_users=1" in check.stdout
    assert produced not in check.stdout
    bad = subprocess.run([sys.executable, "-m", "flmon.webconfig", "nope"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
