"""The reference apps' network in numpy: training, per-record losses and gradients.

The examples train a one-hidden-layer ReLU network with a sigmoid output (see
:mod:`flmon.reference.tabular`) with Keras' SGD (momentum 0.9) on binary cross-entropy. The
privacy test needs the same network with two things Keras does not give cheaply: the
gradient of the loss of *each record* at a given model, and thousands of short, seeded
training runs without importing TensorFlow. This module has both, in closed form.

Weights are a list ``[k1, b1, k2, b2]`` in Keras' ``get_weights()`` order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Weights = list[npt.NDArray[np.floating]]

_EPS = 1e-7  # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _forward(weights: Weights, x: Array) -> tuple[Array, Array, Array]:
    k1, b1, k2, b2 = (np.asarray(w, dtype=np.float64) for w in weights)
    pre = x @ k1 + b1
    hidden = np.maximum(pre, 0.0)
    logits = (hidden @ k2 + b2).reshape(-1)
    p = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
    return pre, hidden, p


def losses(weights: Weights, x: npt.ArrayLike, y: npt.ArrayLike) -> Array:
    """Binary cross-entropy of each record (Keras' clipping of probabilities)."""
    _, _, p = _forward(weights, np.asarray(x, dtype=np.float64))
    p = np.clip(p, _EPS, 1.0 - _EPS)
    t = np.asarray(y, dtype=np.float64)
    out: Array = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
    return out


def per_example_gradients(weights: Weights, x: npt.ArrayLike, y: npt.ArrayLike) -> Array:
    """Gradient of each record's loss with respect to every weight, one row per record.

    Columns follow :func:`flatten`'s order (``k1``, ``b1``, ``k2``, ``b2``, row-major).
    """
    xs = np.asarray(x, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    k2 = np.asarray(weights[2], dtype=np.float64).reshape(-1)
    pre, hidden, p = _forward(weights, xs)
    err = p - t  # d loss / d logit
    d_pre = (err[:, None] * k2[None, :]) * (pre > 0.0)
    g_k1 = xs[:, :, None] * d_pre[:, None, :]
    g_k2 = hidden * err[:, None]
    n = len(t)
    out: Array = np.concatenate(
        [g_k1.reshape(n, -1), d_pre, g_k2, err[:, None]], axis=1
    )
    return out


def flatten(weights: Weights) -> Array:
    """All weights as one float64 vector (the order of :func:`per_example_gradients`)."""
    return np.concatenate([np.asarray(w, dtype=np.float64).reshape(-1) for w in weights])


def unflatten(vector: Array, like: Weights) -> list[npt.NDArray[np.float32]]:
    """Cut ``vector`` back into arrays shaped like ``like`` (float32, as Keras keeps them)."""
    out: list[npt.NDArray[np.float32]] = []
    start = 0
    for w in like:
        size = int(np.asarray(w).size)
        out.append(vector[start:start + size].reshape(np.shape(w)).astype(np.float32))
        start += size
    return out


def train(
    weights: Weights,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    learning_rate: float,
    epochs: int,
    batch_size: int,
    seed: int,
    momentum: float = 0.9,
) -> list[npt.NDArray[np.float32]]:
    """Mini-batch SGD with momentum on the mean binary cross-entropy, as the examples' Keras.

    Keras' update rule (``nesterov=False``): ``v = momentum * v - lr * g``, ``w = w + v``;
    the records are reshuffled every epoch (seeded here by ``seed``).
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    w = flatten(weights)
    velocity = np.zeros_like(w)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(ys))
        for start in range(0, len(ys), batch_size):
            batch = order[start:start + batch_size]
            current = unflatten(w, weights)
            grad = per_example_gradients(current, xs[batch], ys[batch]).mean(axis=0)
            velocity = momentum * velocity - learning_rate * grad
            w = w + velocity
    return unflatten(w, weights)
