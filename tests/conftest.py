"""Process-wide state that one test must not hand to the next, and fixtures every folder uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flmon import logs, runlabel


@pytest.fixture(autouse=True)
def _isolated_process_context() -> Iterator[None]:
    # A strategy run sets the log context (run_id, round) and the current run for the whole
    # process, as it should in a ServerApp; in a test process they would leak into the next
    # test's log records, Datadog tags and run_id labels.
    with logs._GLOBAL_LOCK:
        saved = dict(logs._GLOBAL_CONTEXT)
    run = runlabel.current_run()
    yield
    with logs._GLOBAL_LOCK:
        logs._GLOBAL_CONTEXT.clear()
        logs._GLOBAL_CONTEXT.update(saved)
    runlabel.set_current_run(None if run == runlabel.UNKNOWN_RUN else run)


@pytest.fixture()
def render_dir(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Renders each configuration given into its own folder under ``tmp_path``."""
    from tests.render.conftest import render_into

    counter = iter(range(1000))

    def make(data: dict[str, Any]) -> Path:
        out = tmp_path / f"render{next(counter)}"
        render_into(out, data)
        return out

    return make
