"""Process-wide state that one test must not hand to the next."""

from __future__ import annotations

from collections.abc import Iterator

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
