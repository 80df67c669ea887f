"""Poisoning indicators computed from a round's model updates.

For each client, the update is its returned arrays minus the global arrays it was
sent. Per round flmon computes:

- the update's L2 norm;
- its cosine similarity to the round's *reference update*: the coordinate-wise median
  of all the round's updates, which one or a few outlying updates cannot drag towards
  themselves (unlike the mean);
- a robust anomaly score: the larger of the norm's modified z-score (high side only:
  an unusually *large* update is what can take over an average) and the cosine's (low
  side only: an update pointing away from the others), both against the round's
  median and MAD (Iglewicz and Hoaglin's ``0.6745 * (x - median) / MAD``).

The MADs are floored so that a round of near-identical clients does not turn noise
into alarms: the norm's at ``NORM_MAD_FLOOR`` times the median norm, the cosine's at
``COSINE_MAD_FLOOR``. With the default threshold of 3.5 that means, in a homogeneous
round, an update at least ``1 + 3.5 * 0.3 / 0.6745`` (about 2.6) times the median norm,
or a cosine about 1.04 below the round's median cosine; a heterogeneous (non-IID) round
has larger MADs and needs more. These floors were chosen on the in-process non-IID
benchmark ``benchmarks/anomaly_fpr.py`` (figures in ``docs/security.md``). Rounds with
fewer than 3 updates have no robust statistics: their scores are 0.

Cost is linear in model size: one pass to flatten, one for norms, one coordinate-wise
median (linear in the number of clients per coordinate) and one for the dot products.
For huge models ``sample_size`` restricts the computation to a fixed, seeded random
subset of parameter positions (the same for every client of a round); norms are then
rescaled to estimate the full norm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Z_CONSTANT = 0.6745
NORM_MAD_FLOOR = 0.3
"""Floor of the norms' MAD, as a fraction of the median norm."""
COSINE_MAD_FLOOR = 0.2
"""Floor of the cosines' MAD."""
MIN_CLIENTS = 3
"""Fewest updates in a round for which scores are computed."""
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
    raw_norms = np.linalg.norm(matrix, axis=1)
    norms = raw_norms * scale
    n = len(ids)
    cosines = np.ones(n)
    if n > 1:
        reference = np.median(matrix, axis=0)
        ref_norm = float(np.linalg.norm(reference))
        dots = matrix @ reference
        for row in range(n):
            denom = float(raw_norms[row]) * ref_norm
            cosines[row] = float(dots[row]) / denom if denom > 0 else 0.0
        cosines = np.clip(cosines, -1.0, 1.0)
    if n >= MIN_CLIENTS:
        median_norm = float(np.median(norms))
        norm_scores = np.maximum(_robust_z(norms, NORM_MAD_FLOOR * median_norm), 0.0)
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
