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

The weight a client claims (its ``num-examples``) is part of the picture: its share of
the round's total weight is exported, and an outlying claim scores too (the log weight's
modified z-score, high side only, its MAD floored at ``WEIGHT_MAD_FLOOR``: in a round of
equals, a weight about 13 times the median; a client claiming 90 % of the examples among
3 or more equals is flagged).

Cost: the server sees every update once, as it streams. :func:`summarize_update` reads
each array in chunks of :data:`CHUNK` elements, in the arrays' own dtype (no float64 copy
of the update), and keeps only the update's exact L2 norm and its values at the round's
sampled positions. Finiteness of every coordinate comes for free: a chunk's sum of
squares is finite exactly when each of its differences is (an overflowing but finite
chunk is summed again in float64). The reference and the cosines are computed on the
sampled positions only (:data:`AUTO_SAMPLE_SIZE` by default, so the matrix is clients x
samples, never clients x parameters); the positions are drawn afresh each round from a
generator the caller seeds secretly, so a client cannot know which coordinates are
looked at.
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
WEIGHT_MAD_FLOOR = 0.5
"""Floor of the log weights' MAD (natural log)."""
DEFAULT_THRESHOLD = 3.5
AUTO_SAMPLE_SIZE = 8192
"""Positions sampled for the reference and the cosines when the caller does not say."""
CHUNK = 1 << 16
"""Elements per chunk when streaming an array."""
MIN_MAD = 1e-12
"""Absolute floor of every MAD, so that a round of all-zero updates scores 0, not NaN."""


@dataclass(frozen=True)
class UpdateStats:
    """Indicators of one client's update in one round."""

    norm: float
    cosine: float
    norm_score: float
    cosine_score: float
    weight_score: float = 0.0
    weight_share: float | None = None
    """The client's share of the round's total weight, when weights were given."""

    @property
    def score(self) -> float:
        """The anomaly score: the worst of the norm, cosine and weight scores."""
        return max(self.norm_score, self.cosine_score, self.weight_score)


@dataclass(frozen=True)
class UpdateSummary:
    """What is kept of one client's update: its exact norm and its sampled values."""

    norm: float
    sample: NDArray[np.generic]
    """The update at the sampled positions (in the model's dtype), or all of it (float64)."""


class MalformedUpdateError(ValueError):
    """A client's arrays do not match the global arrays (keys, shapes or values)."""


def sample_positions(total: int, sample_size: int | None,
                     seed: int | np.random.Generator) -> NDArray[np.int64] | None:
    """Sorted random positions to use for a model of ``total`` parameters, or None (all).

    ``seed`` is a generator (secretly seeded, drawn from afresh each round) or an int.
    """
    if sample_size is None or total <= sample_size:
        return None
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=sample_size, replace=False)).astype(np.int64)


def split_positions(positions: NDArray[np.int64] | None,
                    sizes: Sequence[int]) -> list[NDArray[np.int64]] | None:
    """Positions into the concatenated arrays, as positions within each array."""
    if positions is None:
        return None
    bounds = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
    cuts = np.searchsorted(positions, bounds)
    return [positions[cuts[i]:cuts[i + 1]] - bounds[i] for i in range(len(sizes))]


def _sum_squares(mine: NDArray[np.generic], ref: NDArray[np.generic], index: int,
                 buffer: NDArray[np.generic]) -> float:
    """Sum of squares of ``mine - ref`` (``buffer``: scratch of at least ``mine.size``);
    raises on any non-finite value."""
    if mine.dtype.kind == "f" and mine.dtype.itemsize >= 4 and mine.dtype == ref.dtype:
        diff = np.subtract(mine, ref, out=buffer[:mine.size])
        total = float(np.dot(diff, diff))
        if math.isfinite(total):
            return total
    # integers, float16, or a float32 sum that overflowed or met a non-finite value
    wide = mine.astype(np.float64) - ref.astype(np.float64)
    total = float(np.dot(wide, wide))
    if not math.isfinite(total):
        raise MalformedUpdateError(f"array {index}: non-finite values")
    return total


def summarize_update(
    client: Sequence[NDArray[np.generic]],
    global_: Sequence[NDArray[np.generic]],
    positions: Sequence[NDArray[np.int64]] | None = None,
    chunk: int = CHUNK,
) -> UpdateSummary:
    """Stream ``client - global`` array by array: exact norm, values at ``positions``.

    Parameters
    ----------
    client, global_
        The client's arrays and the global arrays it was sent (same count and sizes;
        flattened in C order).
    positions
        Per array, sorted positions within it to keep (see :func:`split_positions`);
        None keeps every coordinate.
    chunk
        Elements per chunk: the largest temporary is one chunk.

    Raises
    ------
    MalformedUpdateError
        Different number of arrays, different sizes, or any non-finite value.
    """
    if len(client) != len(global_):
        raise MalformedUpdateError(f"{len(client)} arrays, expected {len(global_)}")
    if positions is not None and len(positions) != len(global_):
        raise ValueError("positions must have one entry per array")
    squares = 0.0
    parts: list[NDArray[np.generic]] = []
    for index, (mine, ref) in enumerate(zip(client, global_, strict=True)):
        if mine.size != ref.size:
            raise MalformedUpdateError(f"array {index}: {mine.size} values, expected {ref.size}")
        flat_mine, flat_ref = mine.ravel(), ref.ravel()
        buffer = np.empty(min(chunk, flat_mine.size), dtype=mine.dtype)
        for start in range(0, flat_mine.size, chunk):
            stop = start + chunk
            squares += _sum_squares(flat_mine[start:stop], flat_ref[start:stop], index, buffer)
        if positions is None:
            parts.append(flat_mine.astype(np.float64) - flat_ref.astype(np.float64))
        else:  # floats in the model's dtype: the sample matrix stays small
            picked_mine, picked_ref = flat_mine[positions[index]], flat_ref[positions[index]]
            if mine.dtype.kind != "f":  # bool, unsigned: no wrap-around, no bool subtract
                picked_mine, picked_ref = (picked_mine.astype(np.float64),
                                           picked_ref.astype(np.float64))
            parts.append(np.subtract(picked_mine, picked_ref))
    sample = np.concatenate(parts) if parts else np.zeros(0)
    return UpdateSummary(norm=math.sqrt(squares), sample=sample)


def all_finite(arrays: Sequence[NDArray[np.generic]], chunk: int = CHUNK) -> bool:
    """Whether every value of every array is finite (streamed, one chunk at a time)."""
    for array in arrays:
        if array.dtype.kind not in "fc":
            continue
        flat = array.ravel()
        for start in range(0, flat.size, chunk):
            if not np.isfinite(flat[start:start + chunk]).all():
                return False
    return True


def _robust_z(values: NDArray[np.float64], floor: float) -> NDArray[np.float64]:
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    mad = max(mad, floor, MIN_MAD)
    return np.asarray(Z_CONSTANT * (values - median) / mad, dtype=np.float64)


def weight_scores(weights: Sequence[float]) -> NDArray[np.float64]:
    """Scores of claimed weights (all > 0): high-side modified z-score of their logs."""
    values = np.log(np.asarray(weights))
    if values.size < MIN_CLIENTS:
        return np.zeros(values.size)
    return np.maximum(_robust_z(values, WEIGHT_MAD_FLOOR), 0.0)


def round_stats(
    updates: Mapping[int, NDArray[np.generic]],
    scale: float = 1.0,
    norms: Mapping[int, float] | None = None,
    weights: Mapping[int, float] | None = None,
) -> dict[int, UpdateStats]:
    """Indicators for every client of a round.

    Parameters
    ----------
    updates
        Update vector per client id (all of one length): the whole update, or its values
        at the round's sampled positions (:attr:`UpdateSummary.sample`).
    scale
        Multiplier for norms computed from ``updates`` (``sqrt(total / sampled)`` when
        parameters were sampled); unused for clients in ``norms``.
    norms
        Exact norms per client (:attr:`UpdateSummary.norm`), when known.
    weights
        Claimed weight per client (> 0), scored and turned into shares when given.
    """
    ids = list(updates)
    if not ids:
        return {}
    matrix = np.stack([updates[i] for i in ids])
    raw_norms = np.linalg.norm(matrix, axis=1)
    norms_ = np.array([norms[i] if norms is not None and i in norms else raw_norms[k] * scale
                       for k, i in enumerate(ids)], dtype=np.float64)
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
        median_norm = float(np.median(norms_))
        norm_scores = np.maximum(_robust_z(norms_, NORM_MAD_FLOOR * median_norm), 0.0)
        cosine_scores = np.maximum(-_robust_z(cosines, COSINE_MAD_FLOOR), 0.0)
    else:  # fewer than 3 clients: no robust statistics
        norm_scores = np.zeros(n)
        cosine_scores = np.zeros(n)
    claimed = [float(weights[i]) for i in ids] if weights is not None else None
    w_scores = weight_scores(claimed) if claimed is not None else np.zeros(n)
    total = sum(claimed) if claimed is not None else 0.0
    return {
        client: UpdateStats(
            norm=float(norms_[k]),
            cosine=float(cosines[k]) if math.isfinite(cosines[k]) else 0.0,
            norm_score=float(norm_scores[k]),
            cosine_score=float(cosine_scores[k]),
            weight_score=float(w_scores[k]),
            weight_share=claimed[k] / total if claimed is not None and total > 0 else None,
        )
        for k, client in enumerate(ids)
    }
