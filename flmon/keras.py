"""``FlmonCallback``: Keras training figures into flmon's local recorder.

``model.fit(x, y, callbacks=[flmon.keras.FlmonCallback()])`` records the fit's wall time,
epochs, steps (per batch), examples (when ``batch_size`` is given or Keras reports the
sample count), and the last loss and accuracy, into the same recorder as
:func:`flmon.track_training`, so :func:`flmon.flower.telemetry_mod` forwards them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import keras

from flmon.metric_keys import TRAINING_ACCURACY, TRAINING_LOSS, first_number
from flmon.training import LocalRecorder, default_recorder


class FlmonCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Keras callback feeding flmon's local training metrics.

    Parameters
    ----------
    recorder
        Where to record; the process's default recorder when omitted.
    batch_size
        Examples per step, to count examples (the last batch of an epoch may be smaller:
        pass ``examples_per_epoch`` for exact counts).
    examples_per_epoch
        Exact number of training examples per epoch, when known.
    """

    def __init__(
        self,
        recorder: LocalRecorder | None = None,
        batch_size: int | None = None,
        examples_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self._recorder = recorder if recorder is not None else default_recorder()
        self._batch_size = batch_size
        self._examples_per_epoch = examples_per_epoch
        self._fit_start = 0.0
        self._epoch_steps = 0

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._fit_start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch_steps = 0

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch_steps += 1
        self._recorder.add_steps(1)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._examples_per_epoch is not None:
            examples: int | None = self._examples_per_epoch
        elif self._batch_size is not None:
            examples = self._epoch_steps * self._batch_size
        else:
            examples = None
        self._recorder.report(
            loss=first_number(logs, TRAINING_LOSS),
            accuracy=first_number(logs, TRAINING_ACCURACY),
            examples=examples,
            epochs=1,
        )

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._recorder.observe_call(time.perf_counter() - self._fit_start)
