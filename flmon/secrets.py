"""Read a secret (password, API key, token, webhook URL) the same way everywhere.

A secret comes from one of two places: a value (given explicitly, else the environment
variable ``env``) or a file (its path given explicitly, else read from the environment
variable ``file_env``). Setting both is an error, so a stale variable can never win
silently. The rules, for every caller:

- one trailing newline (``\\n`` or ``\\r\\n``, as ``echo`` and editors leave) is removed;
  any other white space at either end is refused, never silently trimmed;
- an empty file is refused, naming the variable and the path; an empty environment
  variable counts as not set;
- a secret shorter than ``min_length`` (at least :data:`flmon.logs.MIN_SECRET_LENGTH`,
  below which log redaction cannot hold it) is refused;
- the secret is registered with :func:`flmon.logs.register_secret`, so no flmon log line
  can carry it, and no error message ever contains it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flmon.logs import MIN_SECRET_LENGTH, register_secret

__all__ = ["SecretError", "read_secret"]


class SecretError(ValueError):
    """A secret is configured wrongly; the message names where, never the secret."""


def read_secret(
    value: str | None = None,
    *,
    env: str | None = None,
    file_env: str | None = None,
    file: str | os.PathLike[str] | None = None,
    what: str = "secret",
    min_length: int = MIN_SECRET_LENGTH,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The secret from ``value``/``$env`` or from the file ``file``/``$file_env``.

    Parameters
    ----------
    value
        The secret itself; ``$env`` is not read when it is given.
    env
        Environment variable holding the secret.
    file_env
        Environment variable holding the path of a file that holds the secret.
    file
        Path of a file holding the secret; ``$file_env`` is not read when it is given.
    what
        What the secret is, for error messages (``"Elasticsearch API key"``).
    min_length
        Shortest accepted secret; raised to :data:`flmon.logs.MIN_SECRET_LENGTH`.
    environ
        Where variables are looked up (``os.environ`` when omitted).

    Returns
    -------
    str or None
        The secret, registered for log redaction; ``None`` when nothing is set.

    Raises
    ------
    SecretError
        Both a value and a file are set, the file cannot be read or is empty, or the
        secret is too short or has white space around it.
    """
    environ = os.environ if environ is None else environ
    direct, direct_name = value, "the value given"
    if direct is None and env:
        direct, direct_name = environ.get(env), f"${env}"
    path: str | None = os.fspath(file) if file is not None else None
    path_name = f"the file {path}"
    if not path and file_env:
        path = environ.get(file_env)
        path_name = f"${file_env} ({path})"
    if direct and path:
        raise SecretError(f"{what}: set {direct_name} or {path_name}, not both")
    if path:
        source = path_name
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SecretError(f"{what}: cannot read {source}: {reason}") from None
        secret = _without_newline(text)
        if not secret:
            raise SecretError(f"{what}: {source} is empty")
    elif direct:
        source, secret = direct_name, _without_newline(direct)
    else:
        return None
    if secret != secret.strip():
        raise SecretError(f"{what} ({source}) has white space at its start or end "
                          "(only one trailing newline is removed)")
    shortest = max(min_length, MIN_SECRET_LENGTH)
    if len(secret) < shortest:
        raise SecretError(f"{what} ({source}) must be at least {shortest} characters")
    register_secret(secret)
    return secret


def _without_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
