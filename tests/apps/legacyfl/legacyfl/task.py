"""Logistic regression in numpy on a generated, per-partition dataset."""

from __future__ import annotations

import numpy as np

FEATURES = 8


def load_partition(partition_id: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    true_w = rng.normal(size=FEATURES)
    local = np.random.default_rng(100 + partition_id)
    x = local.normal(loc=0.2 * partition_id, size=(200, FEATURES))
    y = (x @ true_w + local.normal(scale=0.5, size=200) > 0).astype(np.float64)
    return x, y


def initial_weights() -> list[np.ndarray]:
    return [np.zeros(FEATURES), np.zeros(1)]


def _predict(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ weights[0] + weights[1][0])))


def evaluate(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(_predict(weights, x), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    accuracy = float(np.mean((p > 0.5) == (y > 0.5)))
    return loss, accuracy


def train(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, epochs: int = 2,
          lr: float = 0.5) -> dict[str, float]:
    w, b = weights[0].copy(), weights[1].copy()
    for _ in range(epochs):
        p = _predict([w, b], x)
        w -= lr * x.T @ (p - y) / len(y)
        b -= lr * np.array([np.mean(p - y)])
    weights[0], weights[1] = w, b
    loss, accuracy = evaluate([w, b], x, y)
    return {"loss": loss, "accuracy": accuracy, "examples": len(y), "epochs": epochs}
