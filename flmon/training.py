"""``track_training``: record any local training loop, with or without Flower.

Used as a decorator::

    @flmon.track_training
    def train(model, data):
        ...
        return {"loss": 0.3, "accuracy": 0.91, "examples": 512}

or as a context manager around a hand-written loop::

    with flmon.track_training() as run:
        for epoch in range(3):
            ...
            run.epoch(loss=loss, accuracy=acc, examples=n)

Figures go to two places: the ``fl_local_*`` metrics of a registry (flmon's default
registry unless a recorder with its own is given; ``start_exporter`` serves it), and a
process-wide buffer that :func:`flmon.flower.telemetry_mod` reads after each message
and forwards to the server as telemetry.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from prometheus_client import CollectorRegistry

from flmon import metric_keys
from flmon.metrics import FlmonMetrics

P = ParamSpec("P")
R = TypeVar("R")

# Keys read from a decorated function's return value (a mapping), first match wins.
_RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "loss": metric_keys.TRAINING_LOSS,
    "accuracy": metric_keys.TRAINING_ACCURACY,
    "examples": metric_keys.EXAMPLES,
    "epochs": metric_keys.EPOCHS,
    "steps": metric_keys.STEPS,
}


class LocalRecorder:
    """Metrics and the telemetry buffer of one process's local training.

    Parameters
    ----------
    registry
        Registry for the ``fl_local_*`` metrics; a fresh one when omitted.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.metrics = FlmonMetrics(registry, sides=("client",))
        self.registry = self.metrics.registry
        m = self.metrics
        self._duration = m.histogram("fl_local_training_duration_seconds")
        self._epochs = m.counter("fl_local_epochs_total")
        self._steps = m.counter("fl_local_steps_total")
        self._examples = m.counter("fl_local_examples_total")
        self._loss = m.gauge("fl_local_training_loss")
        self._accuracy = m.gauge("fl_local_training_accuracy")
        self._errors = m.counter("fl_local_training_errors_total")
        self._lock = threading.Lock()
        self._buffer: dict[str, float] = {}
        self._observe = self._duration.observe

    # -- hot path ------------------------------------------------------------------
    def observe_call(self, seconds: float) -> None:
        """One training call ended after ``seconds``."""
        self._observe(seconds)
        with self._lock:  # take() swaps the buffer under the same lock
            buffer = self._buffer
            buffer["fit_duration_s"] = buffer.get("fit_duration_s", 0.0) + seconds

    def add_steps(self, n: int = 1) -> None:
        self._steps.inc(n)
        with self._lock:
            self._buffer["steps"] = self._buffer.get("steps", 0.0) + n

    # -- per epoch / per call --------------------------------------------------------
    def report(
        self,
        *,
        loss: float | None = None,
        accuracy: float | None = None,
        examples: int | None = None,
        epochs: int | None = None,
        steps: int | None = None,
    ) -> None:
        """Record figures of the loop; ``None`` (or a non-finite value) leaves one out."""
        updates: dict[str, float] = {}
        if _finite(loss):
            self._loss.set(float(loss))  # type: ignore[arg-type]
            updates["loss"] = float(loss)  # type: ignore[arg-type]
        if _finite(accuracy):
            self._accuracy.set(float(accuracy))  # type: ignore[arg-type]
            updates["accuracy"] = float(accuracy)  # type: ignore[arg-type]
        with self._lock:
            self._buffer.update(updates)
            for key, value, counter in (
                ("examples", examples, self._examples),
                ("epochs", epochs, self._epochs),
                ("steps", steps, self._steps),
            ):
                if _finite(value) and value >= 0:  # type: ignore[operator]
                    counter.inc(value)  # type: ignore[arg-type]
                    self._buffer[key] = self._buffer.get(key, 0.0) + float(value)  # type: ignore[arg-type]

    def dp_epsilon(self, epsilon: float) -> None:
        """Local-DP epsilon spent so far (cumulative); sent with the current reply.

        The telemetry mod forwards it as the ``dp_epsilon`` field; the server exports
        it as ``fl_client_dp_epsilon``. A later call in the same message replaces it.
        """
        if not _finite(epsilon) or epsilon < 0:
            raise ValueError("epsilon must be a finite number >= 0")
        with self._lock:
            self._buffer["dp_epsilon"] = float(epsilon)

    def error(self, exc: BaseException) -> None:
        self._errors.labels(error=type(exc).__name__).inc()
        with self._lock:
            self._buffer["errors"] = self._buffer.get("errors", 0.0) + 1

    # -- for the Flower mod ----------------------------------------------------------
    def take(self) -> dict[str, float]:
        """Return the figures recorded since the last ``take`` and start afresh."""
        with self._lock:
            taken, self._buffer = self._buffer, {}
        return taken


def _finite(value: float | int | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


_default: LocalRecorder | None = None
_default_lock = threading.Lock()


def default_recorder() -> LocalRecorder:
    """The process's recorder, in flmon's default registry (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from flmon.registry import default_registry

                _default = LocalRecorder(default_registry())
    return _default


class TrainingRun:
    """A tracked training call; what ``with track_training() as run`` gives."""

    __slots__ = ("_recorder", "_start", "seconds")

    def __init__(self, recorder: LocalRecorder) -> None:
        self._recorder = recorder
        self._start = 0.0
        self.seconds = 0.0

    def epoch(
        self,
        loss: float | None = None,
        accuracy: float | None = None,
        examples: int | None = None,
        steps: int | None = None,
    ) -> None:
        """One epoch ended with these figures."""
        self._recorder.report(
            loss=loss, accuracy=accuracy, examples=examples, epochs=1, steps=steps
        )

    def step(self, n: int = 1) -> None:
        """``n`` steps (batches) ended."""
        self._recorder.add_steps(n)

    def report(self, **values: Any) -> None:
        """Record figures by name: ``loss``, ``accuracy``, ``examples``, ``epochs``, ``steps``."""
        self._recorder.report(**values)

    def __enter__(self) -> TrainingRun:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._start
        self._recorder.observe_call(self.seconds)
        if exc is not None:
            self._recorder.error(exc)


def _report_result(recorder: LocalRecorder, result: object) -> None:
    if not isinstance(result, Mapping):
        return
    found: dict[str, Any] = {}
    for field, keys in _RESULT_KEYS.items():
        key = metric_keys.first_key(result, keys)
        if key is not None:
            found[field] = result[key]
    if found:
        recorder.report(**found)


def _resolve(tracker: _Tracker, cache: list[LocalRecorder]) -> LocalRecorder:
    cache.append(tracker.recorder)
    return cache[0]


class _Tracker:
    """Decorator and context-manager factory behind :func:`track_training`."""

    def __init__(self, recorder: LocalRecorder | None) -> None:
        self._recorder = recorder

    @property
    def recorder(self) -> LocalRecorder:
        return self._recorder if self._recorder is not None else default_recorder()

    def wrap(self, func: Callable[P, R]) -> Callable[P, R]:
        perf_counter = time.perf_counter
        resolved: list[LocalRecorder] = []  # the recorder, resolved on the first call

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            recorder = resolved[0] if resolved else _resolve(self, resolved)
            start = perf_counter()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                recorder.observe_call(perf_counter() - start)
                recorder.error(exc)
                raise
            recorder.observe_call(perf_counter() - start)
            # the common returns (None, a dict) skip the slower ABC check
            if result is not None and (type(result) is dict or isinstance(result, Mapping)):
                _report_result(recorder, result)
            return result

        return wrapper

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        return self.wrap(func)

    def __enter__(self) -> TrainingRun:
        self._run = TrainingRun(self.recorder)
        return self._run.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run.__exit__(exc_type, exc, tb)


@overload
def track_training(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def track_training(*, recorder: LocalRecorder | None = None) -> _Tracker: ...


def track_training(
    func: Callable[P, R] | None = None, /, *, recorder: LocalRecorder | None = None
) -> Callable[P, R] | _Tracker:
    """Record a local training function or block.

    ``@track_training`` and ``@track_training()`` decorate a function (sync code): its
    wall time, errors (re-raised) and, when it returns a mapping, ``loss``,
    ``accuracy``, ``examples``, ``epochs`` and ``steps`` found there (Flower-style keys
    such as ``train_loss`` and ``num-examples`` too). ``with track_training() as run``
    times the block and gives ``run.epoch(...)``, ``run.step()`` and ``run.report(...)``.

    Parameters
    ----------
    func
        The function, when used as a bare decorator.
    recorder
        Where to record; the process's :func:`default_recorder` when omitted.
    """
    tracker = _Tracker(recorder)
    if func is not None:
        return tracker.wrap(func)
    return tracker
