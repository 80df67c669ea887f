"""Poisoning indicators computed from a round's model updates.

For each client, the update is its returned arrays minus the global arrays it was
sent. Per round flmon computes:

- the update's L2 norm;
- its cosine similarity to the mean of the *other* clients' updates (leave-one-out, so
  one large update cannot pull the reference towards itself);
- a robust anomaly score: the larger of the norm's modified z-score and the cosine's
  (low side only), both against the round's median and MAD (Iglewicz and Hoaglin's
  ``0.6745 * (x - median) / MAD``). The MAD is floored at a fraction of the median so
  that a round of near-identical clients does not turn noise into alarms.

Cost is linear in model size: one pass to flatten, one for norms, one for the
leave-one-out sums. For huge models ``sample_size`` restricts the computation to a
fixed, seeded random subset of parameter positions (the same for every client of a
round); norms are then rescaled to estimate the full norm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Z_CONSTANT = 0.6745
MAD_FLOOR_FRACTION = 0.1
COSINE_MAD_FLOOR = 0.1
DEFAULT_THRESHOLD = 3.5


@dataclass(frozen=True)
class UpdateStats:
    """Indicators of one client's update in one round."""

    norm: float
    cosine: float
    norm_score: float
    cosine_score: float

    @property
    def score(self) -> float:
        """The anomaly score: the worse of the norm and cosine scores."""
        return max(self.norm_score, self.cosine_score)


class MalformedUpdateError(ValueError):
    """A client's arrays do not match the global arrays (keys, shapes or values)."""


def flatten_update(
    client: Sequence[NDArray[np.generic]],
    global_: Sequence[NDArray[np.generic]],
    positions: NDArray[np.int64] | None = None,
) -> NDArray[np.float64]:
    """Concatenate ``client - global`` over all arrays into one float64 vector.

    Raises
    ------
    MalformedUpdateError
        Different number of arrays, different shapes, or non-finite values.
    """
    if len(client) != len(global_):
        raise MalformedUpdateError(f"{len(client)} arrays, expected {len(global_)}")
    parts: list[NDArray[np.float64]] = []
    for index, (mine, ref) in enumerate(zip(client, global_, strict=True)):
        if mine.shape != ref.shape:
            raise MalformedUpdateError(f"array {index}: shape {mine.shape}, expected {ref.shape}")
        diff = np.asarray(mine, dtype=np.float64).ravel() - np.asarray(ref, np.float64).ravel()
        parts.append(diff)
    flat = np.concatenate(parts) if parts else np.zeros(0)
    if positions is not None and flat.size:
        flat = flat[positions[positions < flat.size]]
    if not np.all(np.isfinite(flat)):
        raise MalformedUpdateError("non-finite values in the update")
    return flat


def sample_positions(total: int, sample_size: int | None, seed: int) -> NDArray[np.int64] | None:
    """Sorted random positions to use for a model of ``total`` parameters, or None (all)."""
    if sample_size is None or total <= sample_size:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=sample_size, replace=False)).astype(np.int64)


def _robust_z(values: NDArray[np.float64], floor: float) -> NDArray[np.float64]:
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    mad = max(mad, floor)
    return np.asarray(Z_CONSTANT * (values - median) / mad, dtype=np.float64)


def round_stats(
    updates: Mapping[int, NDArray[np.float64]], scale: float = 1.0
) -> dict[int, UpdateStats]:
    """Indicators for every client of a round.

    Parameters
    ----------
    updates
        Flattened update vector per client id (all of one length).
    scale
        Multiplier for norms (``sqrt(total / sampled)`` when parameters were sampled).
    """
    ids = list(updates)
    if not ids:
        return {}
    matrix = np.stack([updates[i] for i in ids])
    norms = np.linalg.norm(matrix, axis=1) * scale
    n = len(ids)
    cosines = np.ones(n)
    if n > 1:
        total = matrix.sum(axis=0)
        for row in range(n):
            others = total - matrix[row]
            denom = float(np.linalg.norm(matrix[row]) * np.linalg.norm(others))
            cosines[row] = float(matrix[row] @ others) / denom if denom > 0 else 1.0
    if n >= 3:
        median_norm = float(np.median(norms))
        norm_scores = np.abs(_robust_z(norms, MAD_FLOOR_FRACTION * median_norm))
        cosine_scores = np.maximum(-_robust_z(cosines, COSINE_MAD_FLOOR), 0.0)
    else:  # fewer than 3 clients: no robust statistics
        norm_scores = np.zeros(n)
        cosine_scores = np.zeros(n)
    return {
        client: UpdateStats(
            norm=float(norms[k]),
            cosine=float(cosines[k]) if math.isfinite(cosines[k]) else 0.0,
            norm_score=float(norm_scores[k]),
            cosine_score=float(cosine_scores[k]),
        )
        for k, client in enumerate(ids)
    }
