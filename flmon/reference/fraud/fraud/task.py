"""Data recipe and model of the banks example.

Data: generated card transactions, imbalanced like real fraud data. The recipe, fixed by
seeds so every run and every process sees the same data:

1. ``sklearn.datasets.make_classification(n_samples=6000, n_features=16,
   n_informative=6, n_redundant=2, n_clusters_per_class=2, weights=[0.96],
   flip_y=0.005, class_sep=1.5, random_state=2024)``: 16 numeric features per
   transaction, about 4 % fraud (label 1).
2. Features are standardised with constants computed once over the whole set (the
   federation's agreed normalisation, as in the hospitals example).
3. A stratified 20 % (seed 42) is the *global test set* held by the server.
4. The rest is split across ``num-partitions`` banks with a Dirichlet label skew
   (``alpha = 1.0``, seed 11, at least 200 transactions per bank): banks differ in how
   much fraud they see.
5. Each bank keeps a random 20 % (seed 100 + partition id) as its local test set.

Accuracy alone flatters a model on 4 % fraud (always answering "legitimate" scores
0.96), so the clients also report recall and precision of the fraud class.
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
ALPHA = 1.0
SPLIT_SEED = 11
TEST_SEED = 42
NUM_FEATURES = 16


@cache
def _dataset() -> tuple[Split, Split]:
    """``(pool, global_test)``: the preprocessed data before partitioning."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=6000, n_features=NUM_FEATURES, n_informative=6, n_redundant=2,
        n_clusters_per_class=2, weights=[0.96], flip_y=0.005, class_sep=1.5,
        random_state=2024,
    )
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    y = y.astype(np.int64)
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=TEST_SEED
    )
    return Split(x_pool, y_pool), Split(x_test, y_test)


@cache
def load_partition(partition_id: int, num_partitions: int) -> tuple[Split, Split]:
    """``(train, test)`` of bank ``partition_id`` out of ``num_partitions``."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} not in 0..{num_partitions - 1}")
    pool, _ = _dataset()
    parts = dirichlet_label_partition(pool.y, num_partitions, ALPHA, SPLIT_SEED, min_size=200)
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
    """Every bank's training data together: what a centralized model would see."""
    parts = [load_partition(p, num_partitions)[0] for p in range(num_partitions)]
    return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
