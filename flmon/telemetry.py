"""The client-to-server telemetry schema: an allow-list of bounded numeric fields.

Telemetry is what a ClientApp tells the server about itself, next to the app's own
metrics: how long the message took, what the local loop did. It never carries data,
names or free text: every field is a number from the allow-list below, within bounds.
The client encodes with :func:`encode`; the server validates with :func:`validate`,
which never raises and reports every rejection with a reason from
:data:`REJECT_REASONS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_KEY = "flmon.telemetry"
"""Key of the ConfigRecord that carries telemetry in a reply's RecordDict."""

SCHEMA_VERSION = 1
MAX_KEYS = 32
"""A record with more keys than this is rejected whole, unread (``oversized``)."""


@dataclass(frozen=True)
class Field:
    """One allow-listed telemetry field: a number within ``[low, high]``."""

    name: str
    low: float
    high: float
    integer: bool = False
    help: str = ""


_DAY = 86_400.0

FIELDS: tuple[Field, ...] = (
    Field("v", 1, 1, integer=True, help="schema version"),
    Field("round", 0, 1e9, integer=True, help="server round the client saw in the config"),
    Field("duration_s", 0, _DAY, help="wall time of the ClientApp call for this message"),
    Field("fit_duration_s", 0, _DAY, help="wall time of the local training loop"),
    Field("epochs", 0, 1e6, integer=True, help="local epochs in this round"),
    Field("steps", 0, 1e12, integer=True, help="local steps (batches) in this round"),
    Field("examples", 0, 1e12, integer=True, help="local examples trained on in this round"),
    Field("loss", -1e12, 1e12, help="last local training loss"),
    Field("accuracy", 0, 1, help="last local training accuracy (0..1)"),
    Field("errors", 0, 1e9, integer=True, help="errors raised by the ClientApp since last reply"),
    Field("dp_epsilon", 0, 1e6, help="local-DP epsilon spent so far"),
    Field("rss_bytes", 0, 1e13, integer=True, help="resident memory of the ClientApp process"),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

REJECT_REASONS: tuple[str, ...] = (
    "not_a_record",
    "oversized",
    "bad_version",
    "unknown_key",
    "non_numeric",
    "non_finite",
    "non_integer",
    "out_of_bounds",
)


@dataclass
class Validated:
    """Outcome of :func:`validate`: the accepted fields and one reason per rejection."""

    values: dict[str, float] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    accepted: bool = True
    """False when the record was rejected whole (some fields may be dropped otherwise)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def encode(values: Mapping[str, float | int | None]) -> dict[str, float | int]:
    """Build a telemetry record from ``values``, keeping only valid allow-listed fields.

    The client side drops what the server would reject, so a well-behaved client
    never shows up in ``fl_telemetry_rejected_total``.
    """
    out: dict[str, float | int] = {"v": SCHEMA_VERSION}
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None or name == "v" or value is None or not _is_number(value):
            continue
        number = float(value)
        if not math.isfinite(number):
            continue
        number = min(max(number, spec.low), spec.high)
        out[name] = int(number) if spec.integer else float(number)
    return out


def validate(record: Any) -> Validated:
    """Check a received telemetry record against the allow-list; never raises.

    Parameters
    ----------
    record
        Whatever arrived under :data:`RECORD_KEY` (normally a Flower ConfigRecord,
        which behaves as a mapping).

    Returns
    -------
    Validated
        ``values`` holds the fields that passed; ``rejected`` one reason per field (or
        one for the whole record) that did not.
    """
    if not isinstance(record, Mapping):
        return _reject_whole("not_a_record")
    try:
        size = len(record)
    except Exception:  # a hostile mapping  # noqa: BLE001
        return _reject_whole("not_a_record")
    if size > MAX_KEYS:
        return _reject_whole("oversized")
    try:
        items = list(record.items())
    except Exception:  # noqa: BLE001
        return _reject_whole("not_a_record")
    version = dict(items).get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return _reject_whole("bad_version")
    result = Validated()
    for name, value in items:
        spec = BY_NAME.get(name) if isinstance(name, str) else None
        if spec is None:
            result.rejected.append("unknown_key")
            continue
        if name == "v":
            continue
        if not _is_number(value):
            result.rejected.append("non_numeric")
            continue
        number = float(value)
        if not math.isfinite(number):
            result.rejected.append("non_finite")
            continue
        if spec.integer and not isinstance(value, int):  # 2.5 (or 2.0) epochs
            result.rejected.append("non_integer")
            continue
        if number < spec.low or number > spec.high:
            result.rejected.append("out_of_bounds")
            continue
        result.values[name] = number
    return result


def _reject_whole(reason: str) -> Validated:
    return Validated(rejected=[reason], accepted=False)
