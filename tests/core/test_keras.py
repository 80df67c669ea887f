"""FlmonCallback in a real Keras fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from flmon.keras import FlmonCallback
from flmon.training import LocalRecorder


def test_callback_records_epochs_batches_examples_and_figures() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    recorder = LocalRecorder()
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0,
                        callbacks=[FlmonCallback(recorder, batch_size=32)])
    value = recorder.registry.get_sample_value
    assert value("fl_local_epochs_total") == 3
    assert value("fl_local_steps_total") == 9
    assert value("fl_local_examples_total") == 288
    assert value("fl_local_training_loss") == pytest.approx(history.history["loss"][-1])
    assert value("fl_local_training_accuracy") == pytest.approx(history.history["accuracy"][-1])
    assert value("fl_local_training_duration_seconds_count") == 1
    taken = recorder.take()
    assert taken["epochs"] == 3 and taken["steps"] == 9 and taken["examples"] == 288
