"""Slack sink: run lifecycle notifications through an incoming webhook.

:class:`SlackNotifier` posts "run started", "run finished" (with a summary) and "run
failed" (with the error, redacted) to a Slack incoming webhook with
``slack_sdk.webhook.WebhookClient``. The calls only queue a message; the sink's worker
thread posts it, so a slow or failing Slack never holds up a round.

Retries: the SDK's own handlers retry within one post (``RateLimitErrorRetryHandler``
honours ``Retry-After`` up to ``max_retry_after`` seconds, ``ServerErrorRetryHandler``
retries 500/503, ``ConnectionErrorRetryHandler`` retries refused or reset connections);
a post that still fails with a rate limit, a server error or a connection error is tried
again by the worker after a back-off. The worker decides by the HTTP status alone: ``429``
and ``5xx`` are retried, any other status but ``200`` is a refusal no retry will change
(Slack's ``404 channel_not_found``, ``403 invalid_token``, ``410 channel_is_archived``,
``400 invalid_payload``...) and the message is dropped at once; the body is only quoted in
the log. Nothing is ever raised into the caller.

The webhook URL is a secret: it is read from ``FLMON_SLACK_WEBHOOK_URL`` or from the file
named by ``FLMON_SLACK_WEBHOOK_URL_FILE`` (or :attr:`SlackConfig.webhook_url_file`) by
:func:`flmon.secrets.read_secret`, which registers it for log redaction, and the SDK's
logger is kept at WARNING so that its debug lines, which print the URL, are never produced.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from flmon.logs import redact
from flmon.metrics import FlmonMetrics
from flmon.secrets import read_secret
from flmon.sinks.base import QueueSettings, QueueSink, SendResult

SINK_NAME = "slack"
URL_ENV = "FLMON_SLACK_WEBHOOK_URL"
URL_FILE_ENV = "FLMON_SLACK_WEBHOOK_URL_FILE"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAX_TEXT = 2900  # Slack section text is limited to 3000 characters


@dataclass(frozen=True)
class SlackConfig:
    """Settings of the Slack notifier (the webhook URL is not one of them).

    Parameters
    ----------
    webhook_url_file
        File holding the webhook URL; ``FLMON_SLACK_WEBHOOK_URL`` or
        ``FLMON_SLACK_WEBHOOK_URL_FILE`` are used when it is not set.
    federation
        Name shown in every message.
    timeout
        Seconds one HTTP request may take.
    rate_limit_retries, server_error_retries, connection_error_retries
        Retries the SDK's handlers make within one post.
    max_retry_after
        Longest ``Retry-After`` (seconds) the SDK handler sleeps for; a longer one is
        left to the worker's back-off.
    queue
        Queue, batch and retry settings.
    """

    webhook_url_file: str | None = None
    federation: str | None = None
    timeout: float = 10.0
    rate_limit_retries: int = 2
    server_error_retries: int = 2
    connection_error_retries: int = 1
    max_retry_after: float = 30.0
    queue: QueueSettings = field(
        default_factory=lambda: QueueSettings(queue_size=100, batch_size=10,
                                              flush_interval=0.5, max_retries=3,
                                              initial_backoff=1.0, max_backoff=60.0)
    )

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        for name in ("rate_limit_retries", "server_error_retries", "connection_error_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> SlackConfig:
        """Read ``FLMON_FEDERATION`` and ``FLMON_SLACK_TIMEOUT``; ``overrides`` win."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        if env.get("FLMON_FEDERATION"):
            kwargs["federation"] = env["FLMON_FEDERATION"]
        if env.get("FLMON_SLACK_TIMEOUT"):
            kwargs["timeout"] = float(env["FLMON_SLACK_TIMEOUT"])
        kwargs.update(overrides)
        return cls(**kwargs)


def read_webhook_url(config: SlackConfig | None = None,
                     env: Mapping[str, str] | None = None) -> str | None:
    """The webhook URL from the configured file, ``$FLMON_SLACK_WEBHOOK_URL`` or the file
    ``$FLMON_SLACK_WEBHOOK_URL_FILE``; ``None`` when none is set.

    The URL is checked (https, or http to a loopback address) and registered as a secret.
    Error messages never contain it.
    """
    value = read_secret(env=URL_ENV, file_env=URL_FILE_ENV, what="Slack webhook URL",
                        file=config.webhook_url_file if config is not None else None,
                        environ=env)
    if not value:
        return None
    parts = urlsplit(value)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    if not secure or not parts.hostname:
        raise ValueError("the Slack webhook URL must be an https:// URL "
                         "(plain http is accepted for loopback test receivers only)")
    return value


def _sdk_logger() -> logging.Logger:
    """The logger handed to the SDK: at WARNING, so its URL-bearing debug lines never run."""
    logger = logging.getLogger("flmon.sinks.slack.client")
    if logger.level == logging.NOTSET or logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)
    return logger


def _retry_handlers(config: SlackConfig) -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
        """Slack's rate-limit handler, refusing to sleep longer than ``max_retry_after``."""

        def _can_retry(self, *, state: Any, request: Any, response: Any = None,
                       error: Any = None) -> bool:
            if not super()._can_retry(state=state, request=request, response=response,
                                      error=error):
                return False
            return _retry_after(response.headers) <= config.max_retry_after

    return [
        CappedRateLimitRetryHandler(max_retry_count=config.rate_limit_retries),
        ServerErrorRetryHandler(max_retry_count=config.server_error_retries),
        ConnectionErrorRetryHandler(max_retry_count=config.connection_error_retries),
    ]


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    if not headers:
        return 1.0
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, (list, tuple)) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return redact(str(value))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


class SlackNotifier(QueueSink[dict[str, Any]]):
    """Post run lifecycle messages to a Slack incoming webhook, off the training thread.

    Parameters
    ----------
    config
        Federation name, timeouts, retry settings.
    metrics
        Where the ``fl_sink_*`` counters live.
    env
        Where the URL is looked up (``os.environ`` when omitted); see
        :func:`read_webhook_url`. There is no parameter for the URL itself.
    start
        Start the worker now.

    Raises
    ------
    ValueError
        When no webhook URL is configured, or it is not an https URL.
    """

    def __init__(
        self,
        config: SlackConfig | None = None,
        metrics: FlmonMetrics | CollectorRegistry | None = None,
        *,
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> None:
        try:
            from slack_sdk.webhook import WebhookClient
        except ImportError as exc:
            raise ImportError("the slack sink needs the slack_sdk package: "
                              "pip install 'flmon[slack]'") from exc

        self.config = config if config is not None else SlackConfig.from_env(env)
        url = read_webhook_url(self.config, env)
        if not url:
            raise ValueError(f"no Slack webhook URL: set {URL_ENV} or {URL_FILE_ENV}")
        self._client = WebhookClient(
            url=url,
            timeout=self.config.timeout,  # type: ignore[arg-type] # urllib takes a float
            logger=_sdk_logger(),
            retry_handlers=_retry_handlers(self.config),
        )
        super().__init__(SINK_NAME, self.config.queue, metrics, start=start)

    def __repr__(self) -> str:
        return f"SlackNotifier(federation={self.config.federation!r})"

    # --- messages -----------------------------------------------------------------------

    def notify(self, text: str, blocks: Sequence[Mapping[str, Any]] | None = None) -> bool:
        """Queue a message (``text`` is the notification fallback); never blocks or raises.

        Returns ``False`` when it was dropped.
        """
        payload: dict[str, Any] = {"text": redact(text)[:_MAX_TEXT]}
        if blocks:
            payload["blocks"] = [dict(b) for b in blocks]
        return self.put(payload)

    def run_started(self, run_id: str | int, *, rounds: int | None = None,
                    strategy: str | None = None, **details: Any) -> bool:
        """Queue "run started"."""
        fields = {"Rounds": rounds, "Strategy": strategy, **details}
        return self._post(":arrow_forward:", run_id, "started", fields)

    def run_finished(self, run_id: str | int, *, summary: Mapping[str, Any] | None = None,
                     duration_seconds: float | None = None) -> bool:
        """Queue "run finished" with a summary (rounds completed, final accuracy...)."""
        fields: dict[str, Any] = dict(summary or {})
        if duration_seconds is not None:
            fields["Duration"] = _duration(duration_seconds)
        return self._post(":white_check_mark:", run_id, "finished", fields)

    def run_failed(self, run_id: str | int, error: BaseException | str, *,
                   round: int | None = None,
                   duration_seconds: float | None = None) -> bool:
        """Queue "run failed" with the error (type and message, secrets redacted)."""
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            text = error
        fields: dict[str, Any] = {"Round": round}
        if duration_seconds is not None:
            fields["Duration"] = _duration(duration_seconds)
        return self._post(":x:", run_id, "failed", fields, error=redact(text))

    @contextmanager
    def track_run(self, run_id: str | int, *, rounds: int | None = None,
                  strategy: str | None = None) -> Iterator[dict[str, Any]]:
        """Notify start, then finish with the summary the block filled in, or failure.

        The exception, if any, is re-raised unchanged after queuing "run failed".
        """
        started = time.monotonic()
        summary: dict[str, Any] = {}
        self.run_started(run_id, rounds=rounds, strategy=strategy)
        try:
            yield summary
        except BaseException as exc:
            self.run_failed(run_id, exc, round=summary.get("Round"),
                            duration_seconds=time.monotonic() - started)
            raise
        self.run_finished(run_id, summary=summary,
                          duration_seconds=time.monotonic() - started)

    def _post(self, icon: str, run_id: str | int, what: str, fields: Mapping[str, Any],
              error: str | None = None) -> bool:
        federation = self.config.federation
        where = f" of federation *{_fmt(federation)}*" if federation else ""
        headline = f"{icon} flmon: run *{_fmt(run_id)}*{where} {what}"
        shown = [(k, v) for k, v in fields.items() if v is not None]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        ]
        if shown:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*{_fmt(k)}*\n{_fmt(v)}"} for k, v in shown[:10]
            ]})
        text = headline
        if error is not None:
            error = error[:_MAX_TEXT - 10]
            blocks.append({"type": "section",
                           "text": {"type": "mrkdwn", "text": f"```{error}```"}})
            text = f"{headline}: {error}"
        return self.notify(text, blocks)

    # --- sending ----------------------------------------------------------------------

    def _send(self, batch: Sequence[dict[str, Any]], deadline: float | None
              ) -> SendResult[dict[str, Any]]:
        """Post ``batch`` in order, deciding by HTTP status: ``200`` sent; ``429`` (after its
        ``Retry-After``), ``5xx`` or a connection error: this and the rest retried later;
        any other status: that message dropped as refused for good."""
        result: SendResult[dict[str, Any]] = SendResult()
        for index, payload in enumerate(batch):
            timeout = self.config.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    result.retry.extend(batch[index:])
                    return result
            self._client.timeout = timeout  # type: ignore[assignment] # urllib takes a float
            try:
                response = self._client.send_dict(payload)
            except Exception as exc:  # noqa: BLE001 - connection errors after SDK retries
                self._note_error(f"post failed: {type(exc).__name__}")
                result.error = True
                result.retry.extend(batch[index:])
                return result
            status = int(response.status_code)
            body = (response.body or "").strip()
            if status == 200:
                result.sent += 1
                continue
            result.error = True
            if status == 429 or status >= 500:
                result.retry_after = _retry_after(response.headers) if status == 429 else None
                result.retry.extend(batch[index:])
                self._note_error(f"Slack answered {status} {body[:60]}; will retry")
                return result
            result.failed += 1
            self._note_error(f"Slack refused a message: {status} {body[:60]}")
        return result
