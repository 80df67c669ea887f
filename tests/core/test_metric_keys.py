"""flmon.metric_keys: one table of metric-key names, one lookup."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flmon import metric_keys
from flmon.metric_keys import (
    REPLY_ACCURACY,
    REPLY_LOSS,
    ROUND,
    TRAINING_ACCURACY,
    TRAINING_LOSS,
    first_key,
    first_number,
    is_int,
)


def test_the_first_listed_name_holding_a_number_wins() -> None:
    logs = {"val_accuracy": 0.5, "acc": 0.7, "accuracy": "n/a", "train_acc": 0.9}
    assert first_key(logs, REPLY_ACCURACY) == "acc"
    assert first_number(logs, REPLY_ACCURACY) == 0.7
    assert first_number({"val_loss": 2.0, "train_loss": 1}, REPLY_LOSS) == 1.0


@pytest.mark.parametrize("value", [True, None, "0.9", [0.9], {"x": 1}])
def test_values_that_are_not_numbers_are_passed_over(value: object) -> None:
    assert first_number({"accuracy": value, "acc": 0.25}, TRAINING_ACCURACY) == 0.25
    assert first_number({"accuracy": value}, TRAINING_ACCURACY) is None


def test_numpy_numbers_and_nan_count() -> None:
    assert first_number({"loss": np.float32(0.5)}, TRAINING_LOSS) == 0.5
    assert first_number({"examples": np.int64(3)}, metric_keys.EXAMPLES) == 3.0
    assert math.isnan(first_number({"loss": float("nan")}, TRAINING_LOSS) or 0.0)


def test_empty_and_missing_mappings() -> None:
    assert first_key(None, TRAINING_LOSS) is None
    assert first_key({}, TRAINING_LOSS) is None
    assert first_number({"other": 1.0}, TRAINING_LOSS) is None


def test_rounds_take_whole_numbers_only() -> None:
    config = {"server-round": 2.0, "server_round": True, "round": 4}
    assert first_key(config, ROUND, accept=is_int) == "round"
    assert first_key({"server_round": 3}, ROUND, accept=is_int) == "server_round"


def test_local_training_and_reply_names_keep_their_meaning() -> None:
    # A local training loop's own figure is never read from an evaluation name...
    for name in ("val_loss", "eval_loss", "test_loss"):
        assert name not in TRAINING_LOSS and name in REPLY_LOSS
    for name in ("val_accuracy", "eval_accuracy", "test_accuracy"):
        assert name not in TRAINING_ACCURACY and name in REPLY_ACCURACY
    # ...and Keras's own names are training names.
    assert first_number({"loss": 0.3, "val_loss": 0.9}, TRAINING_LOSS) == 0.3
    assert first_number({"binary_accuracy": 0.8, "val_binary_accuracy": 0.6},
                        TRAINING_ACCURACY) == 0.8


def test_the_old_names_still_import() -> None:
    from flmon.flower.mod import ROUND_KEYS
    from flmon.flower.recorder import ACCURACY_KEYS, LOSS_KEYS
    from flmon.flower.recorder import first_number as old_first

    assert ROUND_KEYS == ROUND and ACCURACY_KEYS == REPLY_ACCURACY and LOSS_KEYS == REPLY_LOSS
    assert old_first({"acc": 1}, ACCURACY_KEYS) == 1.0
