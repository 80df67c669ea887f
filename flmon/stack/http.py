"""Tiny HTTP client for the stack: JSON in and out, loopback URLs only."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class HTTPError(RuntimeError):
    """A request failed; carries the status (0 when no answer) and body."""

    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"{url}: HTTP {status}: {body[:500]}")
        self.url = url
        self.status = status
        self.body = body


def require_loopback(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` points at a loopback host."""
    host = urllib.parse.urlsplit(url).hostname
    if host not in _LOOPBACK_HOSTS:
        raise ValueError(f"the stack only talks to loopback addresses, not {url!r}")


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """Send a request; return ``(status, body)``. Raise :class:`HTTPError` if no answer."""
    require_loopback(url)
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise HTTPError(url, 0, str(exc)) from exc


def get_text(url: str, params: Mapping[str, str] | None = None, timeout: float = 10.0) -> str:
    """GET ``url`` and return the body as text; raise :class:`HTTPError` unless 2xx."""
    status, data = request("GET", url, params=params, timeout=timeout)
    text = data.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        raise HTTPError(url, status, text)
    return text


def get_json(url: str, params: Mapping[str, str] | None = None, timeout: float = 10.0) -> Any:
    """GET ``url`` and decode the JSON body; raise :class:`HTTPError` unless 2xx."""
    return json.loads(get_text(url, params, timeout))


def post_json(url: str, payload: Any, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST ``payload`` as JSON; return ``(status, body)``."""
    return request(
        "POST",
        url,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def is_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether a GET on ``url`` answers 2xx."""
    try:
        status, _ = request("GET", url, timeout=timeout)
    except HTTPError:
        return False
    return 200 <= status < 300
