"""Prometheus collectors built from the catalog, in an explicit registry.

``FlmonMetrics(registry)`` creates every catalog metric of the chosen sides once, and
hands them out by name. Nothing is registered in ``prometheus_client.REGISTRY`` unless
it is passed in on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.samples import Sample

from flmon import catalog
from flmon.catalog import MetricSpec, Side

Metric = Union[Counter, Gauge, Histogram]  # noqa: UP007 - runtime alias on 3.10

_DEFAULT_SIDES: tuple[Side, ...] = ("server", "client", "sink")


class UnsetGauge(Gauge):
    """A label-less gauge that is absent from the exposition until it is first set.

    A plain gauge reads 0 before anything sets it. For figures such as accuracy or
    epsilon, 0 is a value, and a wrong one: before a run's first round,
    ``fl_training_accuracy < 0.85`` would fire. flmon's unlabelled gauges therefore
    appear only once they hold a value, as labelled children do.
    """

    _flmon_set = False

    def inc(self, amount: float = 1) -> None:
        self._flmon_set = True
        super().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._flmon_set = True
        super().dec(amount)

    def set(self, value: float) -> None:
        self._flmon_set = True
        super().set(value)

    def set_to_current_time(self) -> None:
        self._flmon_set = True
        super().set_to_current_time()

    def _child_samples(self) -> tuple[Sample, ...]:
        if not self._flmon_set:
            return ()
        return tuple(super()._child_samples())


def _build(spec: MetricSpec, registry: CollectorRegistry) -> Metric:
    if spec.type == "counter":
        # prometheus_client appends _total itself.
        return Counter(
            spec.name.removesuffix("_total"), spec.help, spec.labels, registry=registry
        )
    if spec.type == "histogram":
        return Histogram(spec.name, spec.help, spec.labels, registry=registry,
                         buckets=spec.buckets)
    if not spec.labels:
        return UnsetGauge(spec.name, spec.help, registry=registry)
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


class FlmonMetrics:
    """The catalog's collectors, registered once in one registry.

    Parameters
    ----------
    registry
        Where to register. A fresh ``CollectorRegistry`` when omitted.
    sides
        Which parts of the catalog to create (``server``, ``client``, ``sink``).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        sides: Iterable[Side] = _DEFAULT_SIDES,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        wanted = set(sides)
        self._metrics: dict[str, Metric] = {
            spec.name: _build(spec, self.registry)
            for spec in catalog.CATALOG
            if spec.side in wanted
        }

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def counter(self, name: str) -> Counter:
        metric = self._get(name)
        if not isinstance(metric, Counter):
            raise TypeError(f"{name} is a {catalog.get(name).type}, not a counter")
        return metric

    def gauge(self, name: str) -> Gauge:
        metric = self._get(name)
        if not isinstance(metric, Gauge):
            raise TypeError(f"{name} is a {catalog.get(name).type}, not a gauge")
        return metric

    def histogram(self, name: str) -> Histogram:
        metric = self._get(name)
        if not isinstance(metric, Histogram):
            raise TypeError(f"{name} is a {catalog.get(name).type}, not a histogram")
        return metric

    def _get(self, name: str) -> Metric:
        try:
            return self._metrics[name]
        except KeyError:
            catalog.get(name)  # raises "not in the flmon catalog" for unknown names
            raise KeyError(f"metric {name!r} was not created in this FlmonMetrics") from None
