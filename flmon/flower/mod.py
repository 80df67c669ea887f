"""``telemetry_mod``: the ClientApp side of flmon.

The mod times each train and evaluate call, reads the server round from the message's
config, takes what ``track_training`` / ``FlmonCallback`` recorded during the call, and
attaches it to the reply as a small ConfigRecord under ``flmon.telemetry``: numbers from
an allow-list, nothing else. On Flower's legacy path, when the instrumented server asks,
the same numbers also go into the reply's metrics under a reserved prefix (see
:mod:`.legacy_telemetry`). The app's own ArrayRecord and MetricRecord are left as
they are, so the reply still passes every strategy's consistency check, and a server
that is not instrumented simply ignores the extra record.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Iterable
from typing import cast

from flwr.app import ConfigRecord, Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from flmon import telemetry
from flmon.flower import legacy_telemetry
from flmon.metric_keys import ROUND, first_key, is_int
from flmon.training import LocalRecorder, default_recorder

log = logging.getLogger("flmon.flower")

_PHASES = {MessageType.TRAIN, MessageType.EVALUATE}
ROUND_KEYS = ROUND


def _round_of(msg: Message) -> int | None:
    content = msg.content
    config = content.get("config")  # where Flower's strategies put it: one lookup
    if isinstance(config, ConfigRecord):
        value = config.get("server-round")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for record in content.config_records.values():
        key = first_key(record, ROUND_KEYS, accept=is_int)
        if key is not None:
            return cast(int, record[key])
    return None


def _rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class TelemetryMod:
    """A Flower mod that attaches flmon telemetry to train and evaluate replies.

    Parameters
    ----------
    recorder
        Where ``track_training`` and the Keras callback record; the process's default.
    fields
        Telemetry fields to send (a subset of :data:`flmon.telemetry.FIELDS`); all by
        default. Leave out what a deployment does not want to share.
    report_memory
        Send the ClientApp process's peak resident memory.
    """

    def __init__(
        self,
        recorder: LocalRecorder | None = None,
        fields: Iterable[str] | None = None,
        report_memory: bool = True,
    ) -> None:
        allowed = {f.name for f in telemetry.FIELDS}
        chosen = set(allowed if fields is None else fields)
        unknown = chosen - allowed
        if unknown:
            raise ValueError(
                f"unknown telemetry fields {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        self._recorder = recorder
        self._fields = frozenset(chosen)
        self._report_memory = report_memory

    @property
    def recorder(self) -> LocalRecorder:
        return self._recorder if self._recorder is not None else default_recorder()

    def __call__(self, msg: Message, ctx: Context, call_next: ClientAppCallable) -> Message:
        phase = msg.metadata.message_type.split(".")[0]
        if phase not in _PHASES:
            return call_next(msg, ctx)
        legacy_record = None
        try:
            legacy_record = legacy_telemetry.take_request(msg, phase)
        except Exception:
            log.debug("could not read a legacy telemetry request", exc_info=True)
        recorder = self.recorder
        recorder.take()  # figures of an earlier message are not this one's
        start = time.perf_counter()
        reply = call_next(msg, ctx)
        duration = time.perf_counter() - start
        if reply.has_error() or not reply.has_content():
            return reply
        try:
            values: dict[str, float | int | None] = dict(recorder.take())
            values["duration_s"] = duration
            values["round"] = _round_of(msg)
            if self._report_memory:
                values["rss_bytes"] = _rss_bytes()
            record = telemetry.encode(
                {k: v for k, v in values.items() if k in self._fields}
            )
            reply.content[telemetry.RECORD_KEY] = ConfigRecord(dict(record))
            if legacy_record is not None:
                legacy_telemetry.embed(reply, legacy_record, record)
        except Exception:
            log.debug("could not attach telemetry", exc_info=True)
        return reply


telemetry_mod = TelemetryMod()
"""The default mod: ``ClientApp(mods=[flmon.flower.telemetry_mod])``."""
