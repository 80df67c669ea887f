"""Small tabular-classification helpers shared by the example Flower apps.

The examples train a tiny binary classifier (one hidden ``Dense`` layer and a sigmoid
output). Training runs in Keras on the clients; the initial weights and every evaluation
(the clients' local test sets and the server's centralized test set) use the same
network written in numpy, so the ServerApp and the evaluate messages never import
TensorFlow, whose import costs seconds per process (Flower starts a fresh ClientApp
process for every message).

Nothing here reads data: each example's ``task.py`` holds its dataset recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Split:
    """Features and binary labels of one data set."""

    x: Floats
    y: Labels

    def __len__(self) -> int:
        return len(self.y)

    def positives(self) -> float:
        """Share of label 1 (0 for an empty split)."""
        return float(self.y.mean()) if len(self.y) else 0.0


# --- partitioning -------------------------------------------------------------------------


def dirichlet_label_partition(
    y: Labels, num_partitions: int, alpha: float, seed: int, min_size: int = 10
) -> list[npt.NDArray[np.int64]]:
    """Split indices of ``y`` into label-skewed partitions.

    For each class, the class' indices are shuffled and cut according to proportions
    drawn from ``Dirichlet(alpha)``: a small ``alpha`` gives each partition a very
    different class mix. Draws repeat (same generator) until every partition holds at
    least ``min_size`` examples. Deterministic for a given ``seed``.
    """
    if num_partitions < 1:
        raise ValueError("num_partitions must be at least 1")
    if len(y) < num_partitions * min_size:
        raise ValueError(f"{len(y)} examples cannot give {num_partitions} x {min_size}")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_partitions)]
        for cls in classes:
            idx = np.flatnonzero(y == cls)
            rng.shuffle(idx)
            shares = rng.dirichlet(np.full(num_partitions, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
                part.extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise RuntimeError("could not draw partitions of the minimum size")


def train_test_split_indices(
    n: int, test_fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Shuffle ``range(n)`` and cut off the last ``test_fraction`` as a test set."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# --- the network in numpy -----------------------------------------------------------------


def init_weights(num_features: int, hidden: int, seed: int) -> list[Floats]:
    """Glorot-uniform kernels and zero biases, in Keras' ``get_weights()`` order."""
    rng = np.random.default_rng(seed)

    def glorot(fan_in: int, fan_out: int) -> Floats:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)

    return [
        glorot(num_features, hidden),
        np.zeros(hidden, dtype=np.float32),
        glorot(hidden, 1),
        np.zeros(1, dtype=np.float32),
    ]


def predict_proba(weights: list[Floats], x: Floats) -> Floats:
    """Forward pass: ReLU hidden layer, sigmoid output; returns P(y=1) per row."""
    k1, b1, k2, b2 = weights
    hidden = np.maximum(x @ k1 + b1, 0.0)
    logits = (hidden @ k2 + b2).reshape(-1)
    out: Floats = (1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))).astype(np.float32)
    return out


def evaluate(weights: list[Floats], split: Split) -> dict[str, float]:
    """Loss (binary cross-entropy), accuracy, recall and precision of ``weights``."""
    p = predict_proba(weights, split.x).astype(np.float64)
    y = split.y.astype(np.float64)
    eps = 1e-7
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    pred = (p >= 0.5).astype(np.float64)
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    return {
        "loss": loss if np.isfinite(loss) else 1e6,
        "accuracy": float(np.mean(pred == y)),
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
    }


# --- the network in Keras -----------------------------------------------------------------


def keras_model(num_features: int, hidden: int, learning_rate: float) -> Any:
    """The same network as a compiled Keras model (imports TensorFlow)."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(num_features,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit_keras(
    weights: list[Floats],
    split: Split,
    *,
    hidden: int,
    learning_rate: float,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks: list[Any] | None = None,
) -> tuple[list[Floats], dict[str, list[float]]]:
    """Train a Keras copy of the network from ``weights`` on ``split``.

    Returns the new weights and Keras' per-epoch history (``loss``, ``accuracy``).
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = keras_model(split.x.shape[1], hidden, learning_rate)
    model.set_weights(weights)
    history = model.fit(
        split.x, split.y.astype(np.float32), epochs=epochs, batch_size=batch_size,
        shuffle=True, verbose=0, callbacks=callbacks or [],
    )
    figures = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    return [np.asarray(w, dtype=np.float32) for w in model.get_weights()], figures
