"""flmon.secrets.read_secret: one set of rules for every secret flmon reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from flmon.logs import REDACTED, redact
from flmon.secrets import SecretError, read_secret


def _file(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_a_value_from_the_environment_is_returned_and_redacted() -> None:
    value = read_secret(env="APP_TOKEN", file_env="APP_TOKEN_FILE",
                        environ={"APP_TOKEN": "env-secret-1a2b"})
    assert value == "env-secret-1a2b"
    assert redact("sent env-secret-1a2b") == f"sent {REDACTED}"


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_a_file_loses_one_trailing_newline(tmp_path: Path, ending: str) -> None:
    path = _file(tmp_path, "file-secret-3c4d" + ending)
    assert read_secret(env="APP_TOKEN", file_env="APP_TOKEN_FILE",
                       environ={"APP_TOKEN_FILE": str(path)}) == "file-secret-3c4d"
    assert read_secret(file=path) == "file-secret-3c4d"
    assert "file-secret-3c4d" not in redact("read file-secret-3c4d")


def test_explicit_arguments_are_read_before_the_environment(tmp_path: Path) -> None:
    explicit = _file(tmp_path, "explicit-file-5e6f\n")
    other = _file(tmp_path, "other-file-7a8b\n", "other")
    environ = {"APP_TOKEN_FILE": str(other)}
    assert read_secret(file=explicit, file_env="APP_TOKEN_FILE",
                       environ=environ) == "explicit-file-5e6f"
    assert read_secret("explicit-value-9c0d", env="APP_TOKEN",
                       environ={"APP_TOKEN": "from-env-value"}) == "explicit-value-9c0d"


def test_nothing_set_and_empty_variables_mean_no_secret() -> None:
    assert read_secret(env="APP_TOKEN", file_env="APP_TOKEN_FILE", environ={}) is None
    assert read_secret(env="APP_TOKEN", file_env="APP_TOKEN_FILE",
                       environ={"APP_TOKEN": "", "APP_TOKEN_FILE": ""}) is None
    assert read_secret() is None


def test_a_value_and_a_file_at_once_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "file-secret-1f2e\n")
    with pytest.raises(SecretError, match=r"set \$APP_TOKEN or \$APP_TOKEN_FILE .*not both") \
            as info:
        read_secret(env="APP_TOKEN", file_env="APP_TOKEN_FILE", what="app token",
                    environ={"APP_TOKEN": "env-secret-3d4c", "APP_TOKEN_FILE": str(path)})
    assert "env-secret-3d4c" not in str(info.value)
    with pytest.raises(SecretError, match="not both"):
        read_secret(file=path, env="APP_TOKEN", environ={"APP_TOKEN": "env-secret-3d4c"})


def test_an_empty_file_is_refused_naming_the_variable_and_the_path(tmp_path: Path) -> None:
    for text in ("", "\n"):
        path = _file(tmp_path, text)
        with pytest.raises(SecretError, match="is empty") as info:
            read_secret(file_env="APP_TOKEN_FILE", what="app token",
                        environ={"APP_TOKEN_FILE": str(path)})
        assert "app token" in str(info.value) and "$APP_TOKEN_FILE" in str(info.value)
        assert str(path) in str(info.value)


def test_a_missing_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SecretError, match="cannot read") as info:
        read_secret(file=missing, what="app token")
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("text", ["padded-secret-77\n\n", " padded-secret-77",
                                  "padded-secret-77 \n", "\tpadded-secret-77"])
def test_white_space_around_the_secret_is_refused_not_trimmed(
        tmp_path: Path, text: str) -> None:
    with pytest.raises(SecretError, match="white space") as info:
        read_secret(file=_file(tmp_path, text))
    assert "padded-secret-77" not in str(info.value)
    with pytest.raises(SecretError, match="white space"):
        read_secret(env="APP_TOKEN", environ={"APP_TOKEN": text})


def test_secrets_too_short_to_redact_are_refused() -> None:
    with pytest.raises(SecretError, match=r"\$APP_TOKEN.*at least 6 characters") as info:
        read_secret(env="APP_TOKEN", environ={"APP_TOKEN": "pw123"})
    assert "pw123" not in str(info.value)
    with pytest.raises(SecretError, match="at least 6"):
        read_secret("pw123", min_length=1)  # the redaction minimum cannot be lowered
    with pytest.raises(SecretError, match="at least 16"):
        read_secret("fifteen-chars-x", min_length=16)
    assert read_secret("sixteen-chars-xy", min_length=16) == "sixteen-chars-xy"


def test_the_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least"):
        read_secret("short")


def test_a_pushgateway_username_needs_a_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flmon.flower.strategy import _pushgateway_credentials

    for name in ("FLMON_PUSHGATEWAY_USERNAME", "FLMON_PUSHGATEWAY_PASSWORD",
                 "FLMON_PUSHGATEWAY_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert _pushgateway_credentials(None, None) == (None, None)
    with pytest.raises(ValueError, match="needs a password"):
        _pushgateway_credentials("pusher", None)
    monkeypatch.setenv("FLMON_PUSHGATEWAY_PASSWORD", "env-pw-secret")
    assert _pushgateway_credentials("pusher", None) == ("pusher", "env-pw-secret")
    path = _file(tmp_path, "file-pw-secret\n")
    with pytest.raises(ValueError, match="not both"):
        _pushgateway_credentials("pusher", str(path))
    monkeypatch.delenv("FLMON_PUSHGATEWAY_PASSWORD")
    assert _pushgateway_credentials("pusher", str(path)) == ("pusher", "file-pw-secret")


def test_an_empty_bearer_token_variable_is_refused_by_the_web_config() -> None:
    from flmon.webconfig import WebConfigError, parse_web_config

    raw = {"bearer_token_env": "FLMON_TEST_TOKEN"}
    with pytest.raises(WebConfigError, match=r"\$FLMON_TEST_TOKEN is empty"):
        parse_web_config(raw, environ={"FLMON_TEST_TOKEN": ""})
    with pytest.raises(WebConfigError, match="white space"):
        parse_web_config(raw, environ={"FLMON_TEST_TOKEN": " sixteen-chars-token-value"})
    config = parse_web_config(raw, environ={"FLMON_TEST_TOKEN": "sixteen-chars-token-value"})
    assert config.authenticator() is not None
