"""Data recipe and model of the hospitals example.

Data: scikit-learn's Wisconsin breast-cancer set (569 patients, 30 features, label 1 =
benign). The recipe, fixed by seeds so every run and every process sees the same split:

1. Features are ``log1p``-transformed and standardised with constants computed once over
   the whole public data set. They stand in for normalisation constants a federation
   agrees on up front (a published reference, or a secure aggregate of local statistics).
2. A stratified 20 % (seed 42) is held back as the *global test set*: the server
   evaluates the global model on it each round, and the centralized baseline is scored
   on it.
3. The other 80 % is split across ``num-partitions`` hospitals with a Dirichlet label
   skew (``alpha = 0.8``, seed 7, at least 20 patients per hospital): hospitals see very
   different benign/malignant mixes, as referral centres and screening clinics do.
4. Each hospital keeps a random 20 % of its patients (seed 100 + partition id) as its
   local test set.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from flmon.demo.tabular import (
    Split,
    dirichlet_label_partition,
    train_test_split_indices,
)

HIDDEN_UNITS = 8
ALPHA = 0.8
SPLIT_SEED = 7
TEST_SEED = 42
NUM_FEATURES = 30


@cache
def _dataset() -> tuple[Split, Split]:
    """``(pool, global_test)``: the preprocessed data before partitioning."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x = np.log1p(data.data.astype(np.float64))
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    y = data.target.astype(np.int64)
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=TEST_SEED
    )
    return Split(x_pool, y_pool), Split(x_test, y_test)


@cache
def load_partition(partition_id: int, num_partitions: int) -> tuple[Split, Split]:
    """``(train, test)`` of hospital ``partition_id`` out of ``num_partitions``."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} not in 0..{num_partitions - 1}")
    pool, _ = _dataset()
    parts = dirichlet_label_partition(pool.y, num_partitions, ALPHA, SPLIT_SEED, min_size=20)
    idx = parts[partition_id]
    train_idx, test_idx = train_test_split_indices(len(idx), 0.2, 100 + partition_id)
    return (
        Split(pool.x[idx[train_idx]], pool.y[idx[train_idx]]),
        Split(pool.x[idx[test_idx]], pool.y[idx[test_idx]]),
    )


def load_global_test() -> Split:
    """The server's held-out test set."""
    return _dataset()[1]


def load_union(num_partitions: int) -> Split:
    """Every hospital's training data together: what a centralized model would see."""
    parts = [load_partition(p, num_partitions)[0] for p in range(num_partitions)]
    return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
