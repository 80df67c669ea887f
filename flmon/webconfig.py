"""Web configuration of the exporter: TLS, client certificates, basic auth, bearer token.

The file follows the format of Prometheus' exporter-toolkit (``--web.config.file``), so
one file can serve flmon and other exporters, plus two flmon keys for a bearer token::

    tls_server_config:
      cert_file: server.crt          # PEM; relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default)
      client_ca_file: clients-ca.crt
      min_version: TLS12             # TLS12 (default) or TLS13
    basic_auth_users:                # user: bcrypt hash (python -m flmon.webconfig hash)
      prometheus: $2b$12$...
    bearer_token_file: /run/secrets/flmon-token    # flmon extension
    # bearer_token_env: FLMON_EXPORTER_TOKEN       # flmon extension

What differs from exporter-toolkit, on purpose:

- secrets come from files or environment variables only: an inline ``bearer_token``
  (or inline ``cert``/``key``) is refused;
- only ``NoClientCert`` and ``RequireAndVerifyClientCert`` are accepted as
  ``client_auth_type`` (exporter-toolkit's own docs call the others insecure), and
  ``min_version`` below TLS 1.2 is refused;
- keys flmon does not implement (``cipher_suites``, ``http_server_config``,
  ``rate_limit``...) are refused rather than silently ignored;
- the file is read once, when the exporter starts.

When basic-auth users and a bearer token are both configured, either is accepted.
``/healthz`` stays open (liveness probes carry no credentials); ``/metrics`` and every
other path need them. The bearer token is registered with
:func:`flmon.logs.register_secret`, so it never reaches a log; neither it nor the
password hashes appear in ``repr()``. Password and token checks are constant-time, an
unknown user costs a bcrypt check at the highest configured cost, and successful basic-auth
checks are cached (keyed by an HMAC under a per-process random key) so that a scrape
every few seconds does not pay bcrypt each time. A password longer than bcrypt's 72 bytes
is refused (401 and a security event in the log), never truncated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from flmon.exporter import Authenticator as Authenticator  # one definition, re-exported
from flmon.logs import security_event
from flmon.secrets import SecretError, read_secret
from flmon.yamlerrors import describe_yaml_error

log = logging.getLogger("flmon.webconfig")

CLIENT_AUTH_TYPES = ("NoClientCert", "RequireAndVerifyClientCert")
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
MIN_TOKEN_LENGTH = 16
"""Shortest bearer token accepted (characters)."""

_TOP_KEYS = ("tls_server_config", "basic_auth_users", "bearer_token_file", "bearer_token_env")
_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version")
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_CACHE_SIZE = 256
_NOTE_INTERVAL = 10.0
BCRYPT_MAX_PASSWORD_BYTES = 72
"""bcrypt's limit: a longer password is refused (401), never truncated."""


class WebConfigError(ValueError):
    """The web configuration file is invalid; the message says where and why."""


@dataclass(frozen=True)
class WebConfig:
    """A validated web configuration.

    ``bearer_token`` and ``basic_auth_users`` are left out of ``repr()``.
    """

    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    bearer_token: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    @property
    def tls_min_version(self) -> ssl.TLSVersion:
        return TLS_VERSIONS[self.min_version]

    @property
    def authenticates(self) -> bool:
        return bool(self.basic_auth_users) or self.bearer_token is not None

    def authenticator(self) -> Authenticator | None:
        """The ``authenticate(environ) -> bool`` callable, or None when no auth is set."""
        if not self.authenticates:
            return None
        return _Authenticator(self.basic_auth_users, self.bearer_token)

    def exporter_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`flmon.exporter.start_exporter`."""
        return {
            "certfile": self.cert_file,
            "keyfile": self.key_file,
            "client_cafile": self.client_ca_file
            if self.client_auth_type == "RequireAndVerifyClientCert" else None,
            "authenticate": self.authenticator(),
        }


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class _Authenticator:
    """Checks the ``Authorization`` header of a WSGI request."""

    def __init__(self, users: Mapping[str, bytes], token: str | None) -> None:
        self._users = dict(users)
        # Compared as digests: equal lengths, so the comparison time tells nothing.
        self._token = _digest(token.encode()) if token is not None else None
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        # An unknown user pays the same bcrypt check as a known one (the highest cost).
        cost = max((int(h.split(b"$")[2]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._long_passwords = 0
        self._long_noted_at = -_NOTE_INTERVAL

    def _note_long_password(self) -> None:
        """A security event, at most one per interval (each request could send one)."""
        now = time.monotonic()
        with self._lock:
            self._long_passwords += 1
            if now - self._long_noted_at < _NOTE_INTERVAL:
                return
            self._long_noted_at, count = now, self._long_passwords
            self._long_passwords = 0
        security_event(log, "exporter-auth-refused",
                       f"exporter: basic auth refused: password longer than bcrypt's "
                       f"{BCRYPT_MAX_PASSWORD_BYTES}-byte limit ({count} request(s) since the "
                       f"last such record)", **{"event.outcome": "failure"})

    def __repr__(self) -> str:
        return f"<flmon exporter authenticator: {len(self._users)} user(s), " \
               f"bearer token {'set' if self._token is not None else 'unset'}>"

    def __call__(self, environ: dict[str, Any]) -> bool:
        header = environ.get("HTTP_AUTHORIZATION")
        if not isinstance(header, str):
            return False
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self._token is not None:
            return hmac.compare_digest(_digest(credentials.encode()), self._token)
        if scheme == "basic" and self._users:
            return self._basic(credentials)
        return False

    def _basic(self, credentials: str) -> bool:
        try:
            decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return False
        user_bytes, sep, password = decoded.partition(b":")
        if not sep:
            return False
        try:
            user = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return False
        hashed = self._users.get(user)
        if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
            # bcrypt raises on such a password (other implementations truncate it): it
            # matches no hash here. Refuse at the cost of a wrong password, and say why.
            bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD_BYTES], self._dummy)
            self._note_long_password()
            return False
        key = hmac.new(self._cache_key, user_bytes + b"\0" + password + b"\0"
                       + (hashed or b""), hashlib.sha256).digest()
        with self._lock:
            if hashed is not None and key in self._cache:
                self._cache.move_to_end(key)
                return True
        try:
            ok = bcrypt.checkpw(password, hashed if hashed is not None else self._dummy)
        except ValueError:  # whatever else bcrypt refuses is a wrong password too
            return False
        if ok and hashed is not None:
            with self._lock:
                self._cache[key] = None
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
            return True
        return False


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of ``password`` for ``basic_auth_users``.

    Raises
    ------
    ValueError
        When the password is longer than bcrypt's 72 bytes (UTF-8).
    """
    if len(password.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than bcrypt's {BCRYPT_MAX_PASSWORD_BYTES} "
                         f"bytes; choose a shorter one")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def _path(base: Path, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where} must be a file path")
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise WebConfigError(f"{where}: no such file: {path}")
    return str(path)


def _read_token(where: str, *, file: str | None = None, env: str | None = None,
                environ: Mapping[str, str] | None = None) -> str | None:
    try:
        token = read_secret(file=file, env=env, environ=environ, what=where,
                            min_length=MIN_TOKEN_LENGTH)
    except SecretError as exc:
        raise WebConfigError(str(exc)) from None
    if token is not None and (any(c.isspace() for c in token) or not token.isprintable()):
        raise WebConfigError(f"{where}: the bearer token must be printable, without spaces")
    return token


def _tls(base: Path, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise WebConfigError("tls_server_config must be a mapping")
    for inline in ("cert", "key"):
        if inline in raw:
            raise WebConfigError(f"tls_server_config.{inline}: inline certificates and keys "
                                 f"are not accepted; use {inline}_file")
    unknown = sorted(set(map(str, raw)) - set(_TLS_KEYS))
    if unknown:
        raise WebConfigError(f"tls_server_config: unsupported keys {unknown}; "
                             f"supported: {list(_TLS_KEYS)}")
    if "cert_file" not in raw or "key_file" not in raw:
        raise WebConfigError("tls_server_config needs both cert_file and key_file")
    out: dict[str, Any] = {
        "cert_file": _path(base, raw["cert_file"], "tls_server_config.cert_file"),
        "key_file": _path(base, raw["key_file"], "tls_server_config.key_file"),
    }
    auth_type = raw.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH_TYPES:
        raise WebConfigError(f"tls_server_config.client_auth_type {auth_type!r} is not "
                             f"supported; use one of {list(CLIENT_AUTH_TYPES)}")
    out["client_auth_type"] = auth_type
    if "client_ca_file" in raw:
        if auth_type == "NoClientCert":
            raise WebConfigError("tls_server_config.client_ca_file is set but "
                                 "client_auth_type is NoClientCert; set "
                                 "RequireAndVerifyClientCert")
        out["client_ca_file"] = _path(base, raw["client_ca_file"],
                                      "tls_server_config.client_ca_file")
    elif auth_type == "RequireAndVerifyClientCert":
        raise WebConfigError("client_auth_type RequireAndVerifyClientCert needs "
                             "tls_server_config.client_ca_file")
    version = raw.get("min_version", "TLS12")
    if version not in TLS_VERSIONS:
        raise WebConfigError(f"tls_server_config.min_version {version!r} is not accepted; "
                             f"use one of {list(TLS_VERSIONS)}")
    out["min_version"] = version
    return out


def _users(raw: Any) -> dict[str, bytes]:
    if not isinstance(raw, Mapping):
        raise WebConfigError("basic_auth_users must be a mapping of user: bcrypt hash")
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError("basic_auth_users: user names must be non-empty strings "
                                 "without ':'")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            # Never echo the value: it may be a plain password put there by mistake.
            raise WebConfigError(f"basic_auth_users.{user}: not a bcrypt hash (generate "
                                 f"one with: python -m flmon.webconfig hash)")
        users[user] = hashed.encode()
    return users


def _warn_if_readable(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("bearer token file %s is readable by group or others; "
                    "chmod 600 it", path)


def parse_web_config(raw: Any, base_dir: str | os.PathLike[str] = ".",
                     environ: Mapping[str, str] | None = None) -> WebConfig:
    """Validate a parsed web configuration (``None`` or ``{}``: plain HTTP, no auth).

    Parameters
    ----------
    raw
        The YAML document.
    base_dir
        Directory that relative file paths are relative to.
    environ
        Where ``bearer_token_env`` is looked up; ``os.environ`` when omitted.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise WebConfigError("a web configuration must be a YAML mapping")
    if "bearer_token" in raw:
        raise WebConfigError("bearer_token: secrets are not accepted inline; use "
                             "bearer_token_file or bearer_token_env")
    unknown = sorted(set(map(str, raw)) - set(_TOP_KEYS))
    if unknown:
        raise WebConfigError(f"unsupported keys {unknown}; supported: {list(_TOP_KEYS)}")
    base = Path(base_dir)
    kwargs: dict[str, Any] = {}
    if raw.get("tls_server_config") is not None:
        kwargs.update(_tls(base, raw["tls_server_config"]))
    if raw.get("basic_auth_users"):
        kwargs["basic_auth_users"] = _users(raw["basic_auth_users"])
    token_file, token_env = raw.get("bearer_token_file"), raw.get("bearer_token_env")
    if token_file is not None and token_env is not None:
        raise WebConfigError("set bearer_token_file or bearer_token_env, not both")
    token: str | None = None
    if token_file is not None:
        path = _path(base, token_file, "bearer_token_file")
        token = _read_token("bearer_token_file", file=path)
        _warn_if_readable(path)
    elif token_env is not None:
        if not isinstance(token_env, str) or not token_env:
            raise WebConfigError("bearer_token_env must name an environment variable")
        env = os.environ if environ is None else environ
        if token_env not in env:
            raise WebConfigError(f"bearer_token_env: ${token_env} is not set")
        token = _read_token(f"bearer_token_env (${token_env})", env=token_env, environ=env)
        if token is None:
            raise WebConfigError(f"bearer_token_env: ${token_env} is empty")
    if token is not None:
        kwargs["bearer_token"] = token
    config = WebConfig(**kwargs)
    if config.authenticates and not config.tls:
        log.warning("exporter authentication without TLS: credentials travel in clear "
                    "text; add tls_server_config unless the exporter is on loopback")
    return config


def load_web_config(path: str | os.PathLike[str],
                    environ: Mapping[str, str] | None = None) -> WebConfig:
    """Read and validate a web configuration file; see the module docstring."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WebConfigError(f"cannot read web configuration {file}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{file}: {describe_yaml_error(exc, text)}") from None
    return parse_web_config(raw, file.resolve().parent, environ)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flmon.webconfig hash``: read a password on stdin, print its bcrypt hash.

    ``python -m flmon.webconfig check FILE``: validate a web configuration file.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hash"] and len(args) == 1:
        if sys.stdin.isatty():
            import getpass

            password = getpass.getpass("password: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            print("error: empty password", file=sys.stderr)
            return 2
        try:
            print(hash_password(password))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args[:1] == ["check"] and len(args) == 2:
        try:
            config = load_web_config(args[1])
        except WebConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"ok: tls={'on' if config.tls else 'off'} "
              f"client_auth_type={config.client_auth_type} min_version={config.min_version} "
              f"basic_auth_users={len(config.basic_auth_users)} "
              f"bearer_token={'set' if config.bearer_token else 'unset'}")
        return 0
    print("usage: python -m flmon.webconfig hash   (password on stdin)\n"
          "       python -m flmon.webconfig check FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
