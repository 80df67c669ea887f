"""track_training as decorator and context manager, and what it leaves for the mod."""

from __future__ import annotations

import math

import pytest

from flmon.training import LocalRecorder, track_training


def _value(recorder: LocalRecorder, name: str, **labels: str) -> float:
    value = recorder.registry.get_sample_value(name, labels or None)
    assert value is not None, name
    return value


def test_decorator_records_time_and_returned_figures() -> None:
    recorder = LocalRecorder()

    @track_training(recorder=recorder)
    def train(epochs: int) -> dict[str, float]:
        return {"train_loss": 0.25, "acc": 0.75, "num-examples": 32, "epochs": epochs}

    assert train(2) == {"train_loss": 0.25, "acc": 0.75, "num-examples": 32, "epochs": 2}
    train(3)
    assert _value(recorder, "fl_local_training_duration_seconds_count") == 2
    assert _value(recorder, "fl_local_examples_total") == 64
    assert _value(recorder, "fl_local_epochs_total") == 5
    assert _value(recorder, "fl_local_training_loss") == 0.25
    assert _value(recorder, "fl_local_training_accuracy") == 0.75
    taken = recorder.take()
    assert taken["examples"] == 64 and taken["epochs"] == 5 and taken["fit_duration_s"] > 0
    assert recorder.take() == {}


def test_bare_decorator_keeps_the_function_name_and_uses_the_default_recorder() -> None:
    @track_training
    def fit() -> None:
        """Docstring."""

    assert fit.__name__ == "fit" and fit.__doc__ == "Docstring."
    from flmon.training import default_recorder

    before = default_recorder().registry.get_sample_value(
        "fl_local_training_duration_seconds_count") or 0
    fit()
    after = default_recorder().registry.get_sample_value(
        "fl_local_training_duration_seconds_count")
    assert after == before + 1


def test_errors_are_counted_and_reraised() -> None:
    recorder = LocalRecorder()

    @track_training(recorder=recorder)
    def broken() -> None:
        raise ValueError("diverged")

    with pytest.raises(ValueError, match="diverged"):
        broken()
    assert _value(recorder, "fl_local_training_errors_total", error="ValueError") == 1
    assert _value(recorder, "fl_local_training_duration_seconds_count") == 1
    assert recorder.take()["errors"] == 1


def test_context_manager_records_epochs_and_steps() -> None:
    recorder = LocalRecorder()
    with track_training(recorder=recorder) as run:
        for epoch in range(3):
            for _ in range(4):
                run.step()
            run.epoch(loss=1.0 / (epoch + 1), accuracy=0.5 + 0.1 * epoch, examples=100)
    assert run.seconds > 0
    assert _value(recorder, "fl_local_steps_total") == 12
    assert _value(recorder, "fl_local_epochs_total") == 3
    assert _value(recorder, "fl_local_examples_total") == 300
    assert _value(recorder, "fl_local_training_accuracy") == pytest.approx(0.7)
    taken = recorder.take()
    assert taken["steps"] == 12 and taken["epochs"] == 3


def test_non_finite_figures_are_left_out() -> None:
    recorder = LocalRecorder()
    with track_training(recorder=recorder) as run:
        run.report(loss=math.nan, accuracy=math.inf, examples=-5)
    taken = recorder.take()
    assert "loss" not in taken and "accuracy" not in taken and "examples" not in taken
    assert recorder.registry.get_sample_value("fl_local_examples_total") == 0
