"""Telemetry on Flower's legacy path (``NumPyClient``, ``flwr.server.strategy``).

On that path Flower converts each reply Message into a ``FitRes``/``EvaluateRes`` and
keeps only the records it knows (``fitres.parameters``, ``fitres.metrics``...): the
``flmon.telemetry`` ConfigRecord that ``telemetry_mod`` attaches never reaches the
strategy. So, on request, the mod also copies the (allow-listed, numeric) telemetry
into the reply's own metrics under the reserved prefix :data:`PREFIX`, and the legacy
strategy wrapper takes every key with that prefix out of each result before the
wrapped strategy sees it.

The request is a key the instrumented server puts into the instruction's config
(:data:`REQUEST_KEY`); the mod removes it before the client code runs. A server that
is not instrumented never asks, so its clients' metrics stay exactly as the app wrote
them. A client that sends prefixed keys unasked gains nothing: an instrumented server
validates them like any telemetry record and strips them all, whatever they hold, so
they never reach aggregation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, Message

REQUEST_KEY = "flmon.telemetry"
"""Config key of a legacy instruction asking the client for telemetry in its metrics."""

PREFIX = "flmon.telemetry."
"""Reserved prefix of telemetry keys in a legacy reply's metrics."""

# Legacy record names, per phase: where the instruction's config is, where the
# reply's metrics are (see flwr.compat.common.recorddict_compat).
_LEGACY_RECORDS: dict[str, tuple[str, str]] = {
    "train": ("fitins.config", "fitres.metrics"),
    "evaluate": ("evaluateins.config", "evaluateres.metrics"),
}


def take_request(msg: Message, phase: str) -> str | None:
    """If ``msg`` is a legacy instruction asking for telemetry, remove the request.

    Returns the name of the reply record the telemetry copy goes into, else None.
    """
    names = _LEGACY_RECORDS.get(phase)
    if names is None or not msg.has_content():
        return None
    config = msg.content.config_records.get(names[0])
    if config is None or REQUEST_KEY not in config:
        return None
    del config[REQUEST_KEY]
    return names[1]


def embed(reply: Message, record_name: str, values: Mapping[str, float | int]) -> None:
    """Copy the encoded telemetry ``values`` into the reply's legacy metrics record."""
    metrics = reply.content.config_records.get(record_name)
    if not isinstance(metrics, ConfigRecord):
        return
    for key, value in values.items():
        metrics[PREFIX + key] = value


def split(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Separate a legacy result's metrics from flmon telemetry; never raises on content.

    Returns the metrics without any key of the reserved prefix, and the telemetry
    fields found (prefix removed), or None when there were none.
    """
    clean: dict[str, Any] = {}
    found: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(key, str) and key.startswith(PREFIX):
            found[key[len(PREFIX):]] = value
        else:
            clean[key] = value
    return clean, (found or None)
