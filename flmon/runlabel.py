"""Run identity: a ``run_id`` label on every series a ServerApp process exposes.

Flower runs several runs at once on one SuperLink, each in its own ServerApp process.
Each process records into flmon's default registry without a run label; the live
exporter adds ``run_id`` (the Flower run id as a decimal string, ``"unknown"`` before
a run started) when it serves that registry, from the process's current run, which
``instrument(...).start()`` sets. The Pushgateway path carries the same label as part
of its grouping key, so both paths name a run's series alike.

Series that already carry a ``run_id`` label (``fl_run_info``) keep theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

RUN_ID_LABEL = "run_id"
UNKNOWN_RUN = "unknown"

_lock = threading.Lock()
_current = UNKNOWN_RUN
_served: dict[int, CollectorRegistry] = {}


def set_current_run(run_id: int | str | None) -> None:
    """Set the run this process records (``None`` or ``""``: unknown)."""
    global _current
    text = str(run_id) if run_id not in (None, "") else UNKNOWN_RUN
    with _lock:
        _current = text


def current_run() -> str:
    """The ``run_id`` label value of the process's current run."""
    with _lock:
        return _current


class RunLabelled(Collector):
    """Everything ``source`` collects, with ``run_id`` added to every sample.

    Parameters
    ----------
    source
        The registry the process records into.
    run
        Returns the label value at each collection; :func:`current_run` by default.
    """

    def __init__(self, source: CollectorRegistry,
                 run: Callable[[], str] = current_run) -> None:
        self.source = source
        self._run = run

    def collect(self) -> Iterator[Metric]:
        run_id = self._run()
        for family in self.source.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                labels = s.labels if RUN_ID_LABEL in s.labels else {
                    **s.labels, RUN_ID_LABEL: run_id}
                out.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar,
                                          s.native_histogram))
            yield out


def run_labelled(source: CollectorRegistry) -> CollectorRegistry:
    """The registry to serve for ``source``: the same series with ``run_id`` added.

    One per source, so that every exporter of the process serves the same view.
    """
    with _lock:
        served = _served.get(id(source))
        if served is None:
            served = CollectorRegistry(auto_describe=False)
            served.register(RunLabelled(source))
            _served[id(source)] = served
        return served
