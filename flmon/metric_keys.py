"""The metric-key names flmon reads figures from, and the one lookup over them.

Training code, Keras logs and Flower replies name the same figure in several ways
(``accuracy``, ``acc``, ``train_accuracy``...). Each tuple below lists the names of one
figure, most specific first; :func:`first_key` and :func:`first_number` return the first
name present whose value is a number (``bool`` is not one).

- ``TRAINING_*``, ``EXAMPLES``, ``EPOCHS``, ``STEPS``: a local training loop's own figures,
  from what a function decorated with :func:`flmon.track_training` returns and from the
  logs Keras hands :class:`flmon.keras.FlmonCallback`.
- ``REPLY_*``: what a ClientApp reports in a train or evaluate reply's MetricRecord, read
  by the server (so evaluation names count too).
- ``ROUND``: where a ClientApp finds the server round in the ConfigRecords it receives.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "EPOCHS", "EXAMPLES", "REPLY_ACCURACY", "REPLY_LOSS", "ROUND", "STEPS",
    "TRAINING_ACCURACY", "TRAINING_LOSS", "first_key", "first_number", "is_int", "is_number",
]

TRAINING_LOSS: tuple[str, ...] = ("loss", "train_loss", "training_loss")
TRAINING_ACCURACY: tuple[str, ...] = (
    "accuracy", "acc", "train_acc", "train_accuracy", "training_accuracy",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
)
EXAMPLES: tuple[str, ...] = ("examples", "num-examples", "num_examples")
EPOCHS: tuple[str, ...] = ("epochs",)
STEPS: tuple[str, ...] = ("steps",)

REPLY_ACCURACY: tuple[str, ...] = (
    "accuracy", "acc", "train_acc", "train_accuracy", "eval_acc", "eval_accuracy",
    "val_accuracy", "test_accuracy",
)
REPLY_LOSS: tuple[str, ...] = ("loss", "train_loss", "eval_loss", "val_loss", "test_loss")

ROUND: tuple[str, ...] = ("server-round", "server_round", "round")


def is_number(value: object) -> bool:
    """A real number (Python's or NumPy's), not a ``bool``; NaN and infinities included."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    """A Python ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def first_key(mapping: Mapping[str, Any] | None, keys: tuple[str, ...],
              accept: Callable[[object], bool] = is_number) -> str | None:
    """The first of ``keys`` present in ``mapping`` with a value ``accept`` takes."""
    if not mapping:
        return None
    for key in keys:
        if key in mapping and accept(mapping[key]):
            return key
    return None


def first_number(mapping: Mapping[str, Any] | None, keys: tuple[str, ...]) -> float | None:
    """The value of :func:`first_key` as a ``float``; ``None`` when no key matches."""
    key = first_key(mapping, keys)
    return None if key is None else float(mapping[key])  # type: ignore[index]
