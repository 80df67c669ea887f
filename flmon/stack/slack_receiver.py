"""A Slack incoming-webhook endpoint on loopback.

It speaks the wire format AlertManager's ``slack_configs`` (and ``slack_sdk``'s
``WebhookClient``) use: a POST of a JSON payload (or a form field ``payload`` holding
JSON) with ``channel``, ``username``, ``text`` and ``attachments``; it answers ``200 ok``
as Slack does, or ``400 invalid_payload`` when the body is not a JSON object. Every
accepted message is recorded; accessors are thread-safe and :meth:`SlackReceiver.wait_for`
blocks until a message matches.

To try a sender's error handling, the receiver can also answer with a script of
:class:`SlackAnswer` (a rate limit with ``Retry-After``, a server error,
``channel_not_found``, a slow answer), then with a default answer; each message records
the status it was answered with.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from flmon.stack.ports import LOOPBACK


@dataclass(frozen=True)
class SlackMessage:
    """One webhook call as Slack would see it."""

    path: str
    channel: str
    username: str
    text: str
    attachments: tuple[dict[str, Any], ...]
    payload: dict[str, Any]
    received_at: float = field(default_factory=time.time)
    status: int = 200
    """The HTTP status the receiver answered with."""
    at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` on arrival, for measuring the intervals between posts."""

    def all_text(self) -> str:
        """``text`` plus every attachment's title, pretext, text, fallback and fields."""
        parts = [self.text]
        for att in self.attachments:
            for key in ("title", "pretext", "text", "fallback", "footer"):
                value = att.get(key)
                if isinstance(value, str):
                    parts.append(value)
            for fld in att.get("fields") or []:
                if isinstance(fld, dict):
                    parts.extend(str(fld.get(k, "")) for k in ("title", "value"))
        return "\n".join(p for p in parts if p)

    @property
    def resolved(self) -> bool:
        """Whether the message reads as AlertManager's resolved notification."""
        return "[RESOLVED]" in self.all_text().upper()

    @property
    def colors(self) -> tuple[str, ...]:
        """Attachment colours (AlertManager's default: ``danger`` firing, ``good`` resolved)."""
        return tuple(str(a.get("color", "")) for a in self.attachments)


@dataclass(frozen=True)
class SlackAnswer:
    """How the receiver answers one post: status, body, extra headers, delay in seconds."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


OK = SlackAnswer()
RATE_LIMITED = SlackAnswer(429, b"rate_limited", {"Retry-After": "1"})
SERVER_ERROR = SlackAnswer(500, b"internal_error")
CHANNEL_NOT_FOUND = SlackAnswer(404, b"channel_not_found")


def parse_payload(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a webhook body; raise ``ValueError`` unless it holds a JSON object."""
    text = body.decode("utf-8")
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(text)
        if "payload" not in form:
            raise ValueError("form body without a payload field")
        text = form["payload"][0]
    payload = json.loads(text)
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")
    return payload


class SlackReceiver:
    """Records what is posted to ``http://127.0.0.1:port/<any path>``.

    Parameters
    ----------
    port
        Listen port; when omitted the kernel picks one as the server binds (no race).
    on_message
        Called with each accepted message, on the server's thread (keep it short).
    script, default
        Answers to the posts, in order, then ``default`` for every later post
        (``200 ok`` unless told otherwise).
    """

    def __init__(
        self,
        port: int | None = None,
        on_message: Callable[[SlackMessage], None] | None = None,
        *,
        script: Sequence[SlackAnswer] = (),
        default: SlackAnswer = OK,
    ) -> None:
        self.port = port if port is not None else 0
        self.on_message = on_message
        self._script = list(script)
        self._default = default
        self._messages: list[SlackMessage] = []
        self._rejected = 0
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The webhook URL to configure (``api_url`` / contents of ``api_url_file``)."""
        if not self.port:
            raise RuntimeError("start the receiver first: its port is picked when it binds")
        return f"http://{LOOPBACK}:{self.port}/services/flmon/demo/webhook"

    def _record(self, message: SlackMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
        if self.on_message is not None:
            self.on_message(message)

    def _next_answer(self) -> SlackAnswer:
        with self._cond:
            return self._script.pop(0) if self._script else self._default

    def _reject(self) -> None:
        with self._cond:
            self._rejected += 1

    def start(self) -> SlackReceiver:
        """Bind and serve on a background thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "flmon-slack-receiver"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = parse_payload(body, self.headers.get("Content-Type") or "")
                except (ValueError, UnicodeDecodeError):
                    receiver._reject()
                    self._answer(400, b"invalid_payload")
                    return
                attachments = payload.get("attachments") or []
                answer = receiver._next_answer()
                message = SlackMessage(
                    path=self.path,
                    channel=str(payload.get("channel") or ""),
                    username=str(payload.get("username") or ""),
                    text=str(payload.get("text") or ""),
                    attachments=tuple(a for a in attachments if isinstance(a, dict)),
                    payload=payload,
                    status=answer.status,
                )
                receiver._record(message)
                if answer.delay:
                    time.sleep(answer.delay)
                self._answer(answer.status, answer.body, answer.headers)

            def do_GET(self) -> None:
                self._answer(405, b"method_not_allowed")

            def _answer(self, status: int, body: bytes,
                        headers: Mapping[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a delayed answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="slack-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- accessors (thread-safe) --------------------------------------------------------

    def messages(self) -> list[SlackMessage]:
        """A copy of every message received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def __iter__(self) -> Iterator[SlackMessage]:
        return iter(self.messages())

    def __len__(self) -> int:
        with self._cond:
            return len(self._messages)

    @property
    def rejected(self) -> int:
        """Requests answered ``invalid_payload``."""
        with self._cond:
            return self._rejected

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._cond:
            self._messages.clear()

    def wait_for(
        self, predicate: Callable[[SlackMessage], bool], timeout: float
    ) -> SlackMessage:
        """Return the first message (old or new) matching ``predicate``.

        Raise ``TimeoutError`` listing what arrived if none does within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for message in self._messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self._messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = "\n---\n".join(m.all_text()[:300] for m in self._messages)
                    raise TimeoutError(
                        f"no matching Slack message after {timeout:.0f}s; "
                        f"{len(self._messages)} received:\n{got}"
                    )
                self._cond.wait(remaining)

    def wait_for_count(self, count: int, timeout: float) -> list[SlackMessage]:
        """Every message so far, once there are ``count`` (fewer after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._messages)

    def __enter__(self) -> SlackReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
