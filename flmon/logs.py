"""ECS JSON logs with run, round and node fields on every record.

``configure_logging()`` installs one handler that writes one JSON object per line in
Elastic Common Schema (ECS) order: ``@timestamp``, ``log.level``, ``message`` first, then
``ecs.version`` and the rest. It captures Flower's own ``flwr`` logger, and redacts
secrets (registered values and well-known shapes such as Slack webhook URLs, bearer
tokens and ``password=`` pairs) before anything is written.

The current run, round and node come from :func:`log_context`, which the Flower
integration sets; any record may add ``extra={"event.action": ...}`` style fields.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from types import MappingProxyType
from typing import IO, Any

ECS_VERSION = "8.11.0"
SERVICE_NAME = "flmon"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "flmon_log_context", default=_EMPTY
)
_GLOBAL_CONTEXT: dict[str, Any] = {}
_GLOBAL_LOCK = threading.Lock()

# Field names accepted through ``extra=`` and copied into the document.
_ECS_EXTRA_FIELDS = (
    "event.action", "event.kind", "event.category", "event.type", "event.outcome",
    "event.duration", "error.type", "error.message",
)
_LABEL_FIELDS = ("run_id", "round", "node_id", "client", "phase", "federation")

# --- secret redaction ----------------------------------------------------------------

REDACTED = "[REDACTED]"
_SECRET_PATTERNS = (
    re.compile(r"https://hooks\.slack\.com/[A-Za-z0-9/_\-]+"),
    re.compile(r"xox[abposr]-[A-Za-z0-9\-]+"),
    re.compile(r"(?i)(authorization:\s*(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)\b((?:password|passwd|secret|api[_-]?key|app[_-]?key|token)\s*[=:]\s*)"
               r"[^\s,;\"']+"),
    re.compile(r"(?i)(://[^/\s:@]+:)[^/\s@]+(@)"),
)
MIN_SECRET_LENGTH = 6
"""Shortest value :func:`register_secret` accepts (shorter ones would redact ordinary words)."""
_registered_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Never write ``value`` to a log: every later record has it replaced by ``[REDACTED]``.

    Values shorter than :data:`MIN_SECRET_LENGTH` characters are refused (they would
    redact ordinary words).
    """
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"refusing to register a secret shorter than {MIN_SECRET_LENGTH} "
                         "characters")
    with _secrets_lock:
        _registered_secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and known secret shapes replaced."""
    with _secrets_lock:
        secrets = sorted(_registered_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups == 0:
            text = pattern.sub(REDACTED, text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)
    return text


# --- context ---------------------------------------------------------------------------


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``run_id``, ``round``, ``node_id``...) to every record in the block."""
    merged = {**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def set_global_context(**fields: Any) -> None:
    """Set fields for every record of the process (used when threads are involved)."""
    with _GLOBAL_LOCK:
        for key, value in fields.items():
            if value is None:
                _GLOBAL_CONTEXT.pop(key, None)
            else:
                _GLOBAL_CONTEXT[key] = value


def current_context() -> dict[str, Any]:
    """The merged global and local context."""
    with _GLOBAL_LOCK:
        merged = dict(_GLOBAL_CONTEXT)
    merged.update(_CONTEXT.get())
    return merged


# --- formatter -------------------------------------------------------------------------

# Every character str.splitlines() breaks a line at. json.dumps escapes those below
# U+0020 already; U+0085, U+2028 and U+2029 it leaves raw (ensure_ascii=False), which
# splits a record in two for a reader that uses splitlines(). They can only occur inside
# JSON strings, where their \u escape means the same character: one record, one line.
_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}"
                for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _iso(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _scalar(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return redact(str(value))


class EcsFormatter(logging.Formatter):
    """Format records as ECS JSON, one object per line (whatever line breaks it holds).

    ``to_dict(record)`` returns the document (key order fixed); ``format(record)``
    serialises it. Subclass and override :meth:`extend` to add fields: it is the one
    override point.
    """

    def __init__(self, service_name: str = SERVICE_NAME) -> None:
        super().__init__()
        self.service_name = service_name

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        message = record.getMessage()
        doc: dict[str, Any] = {
            "@timestamp": _iso(record.created),
            "log.level": record.levelname.lower(),
            "message": redact(message),
            "ecs.version": ECS_VERSION,
            "log.logger": record.name,
            "log.origin.function": record.funcName,
            "log.origin.file.line": record.lineno,
            "process.pid": record.process,
            "process.thread.name": record.threadName,
            "service.name": self.service_name,
        }
        labels: dict[str, Any] = {}
        for key, value in current_context().items():
            if key in _LABEL_FIELDS:
                labels[key] = _scalar(value)
        for key in _LABEL_FIELDS:
            if key in record.__dict__:
                labels[key] = _scalar(record.__dict__[key])
        for key in _ECS_EXTRA_FIELDS:
            if key in record.__dict__:
                doc[key] = _scalar(record.__dict__[key])
        if labels:
            doc["labels"] = {k: labels[k] for k in sorted(labels)}
        if record.exc_info and record.exc_info[0] is not None:
            doc["error.type"] = record.exc_info[0].__name__
            doc["error.message"] = redact(str(record.exc_info[1]))
            doc["error.stack_trace"] = redact(self.formatException(record.exc_info))
        self.extend(doc, record)
        return doc

    def extend(self, doc: dict[str, Any], record: logging.LogRecord) -> None:
        """Hook for subclasses: add or change fields of ``doc`` in place."""

    def format(self, record: logging.LogRecord) -> str:
        text = json.dumps(self.to_dict(record), ensure_ascii=False, default=str)
        return text.translate(_LINE_BREAKS)


class _RedactingFilter(logging.Filter):
    """Redacts secrets from records before other handlers (not ours) see them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_installed: list[tuple[logging.Logger, logging.Handler]] = []


def configure_logging(
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
    file: str | None = None,
    capture_flwr: bool = True,
    logger_name: str = "",
    quiet: tuple[str, ...] = ("httpx", "httpcore", "urllib3", "grpc"),
    service_name: str = SERVICE_NAME,
    **context: Any,
) -> logging.Handler:
    """Send logs as ECS JSON to ``stream`` (default stderr) or ``file``.

    Parameters
    ----------
    level
        Level of the configured logger.
    stream, file
        Where to write; ``file`` wins when both are given.
    capture_flwr
        Replace the handlers of Flower's ``flwr`` logger, so its records come out as ECS
        JSON too (Flower otherwise prints its own console format).
    logger_name
        Logger to configure; the root logger by default.
    quiet
        Chatty libraries whose records below WARNING are dropped (Flower's HTTP client
        logs every request it makes, log uploads included).
    service_name
        ``service.name`` of every record.
    **context
        Fields set for every record of the process (``run_id``, ``node_id``...).

    Returns
    -------
    logging.Handler
        The handler installed; calling ``configure_logging`` again replaces it.
    """
    for logger, old in _installed:
        logger.removeHandler(old)
        old.close()
    _installed.clear()

    handler: logging.Handler
    if file is not None:
        handler = logging.FileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(EcsFormatter(service_name))
    handler.addFilter(_RedactingFilter())

    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    target = logging.getLogger(logger_name)
    target.addHandler(handler)
    target.setLevel(level)
    _installed.append((target, handler))
    if capture_flwr:
        flwr_logger = logging.getLogger("flwr")
        for old in list(flwr_logger.handlers):
            flwr_logger.removeHandler(old)
        flwr_logger.addHandler(handler)
        flwr_logger.propagate = False
        _installed.append((flwr_logger, handler))
    if context:
        set_global_context(**context)
    return handler


def security_event(logger: logging.Logger, action: str, message: str, **fields: Any) -> None:
    """Log a security event (``event.kind: alert``, ``event.category: intrusion_detection``)."""
    extra = {
        "event.action": action,
        "event.kind": "alert",
        "event.category": "intrusion_detection",
        **fields,
    }
    logger.warning(message, extra=extra)
