"""Every ECS record is exactly one line, whatever line separators its text holds.

``str.splitlines()`` breaks at more than ``\\n``: also at ``\\r``, ``\\x0b``, ``\\x0c``,
``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029. A client-chosen string carrying one
must not split a record (or forge a second one) for a consumer that uses it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from flmon import logs

SEPARATORS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logs.configure_logging(stream=out, level=logging.DEBUG)
    yield out
    for logger in (logging.getLogger(), logging.getLogger("flwr")):
        logger.removeHandler(handler)
    logs.set_global_context(client=None)


def test_the_separators_are_all_that_splitlines_breaks_at() -> None:
    every = "".join(chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1)
    assert sorted(every) == sorted(SEPARATORS)


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_message_and_a_field_with_a_line_separator_stay_one_line(
        stream: io.StringIO, sep: str) -> None:
    forged = '{"log.level": "info", "message": "forged"}'
    message = f"first{sep}{forged}"
    action = f"act{sep}ion"
    with logs.log_context(client=f"node{sep}7"):
        logging.getLogger("flmon.test").warning(message, extra={"event.action": action})
        logging.getLogger("flmon.test").info("second")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["message"] == message and first["event.action"] == action
    assert first["labels"]["client"] == f"node{sep}7"
    assert json.loads(lines[1])["message"] == "second"
    assert sep not in stream.getvalue().removesuffix("\n").replace("\n", "", 1)
