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

import numpy as np

from flmon.reference.apps import Task
from flmon.reference.tabular import Split

HIDDEN_UNITS = 8
ALPHA = 1.0
SPLIT_SEED = 11
TEST_SEED = 42
NUM_FEATURES = 16


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


TASK = Task(name="fraud", dataset=_dataset, num_features=NUM_FEATURES,
            hidden_units=HIDDEN_UNITS, alpha=ALPHA, split_seed=SPLIT_SEED, min_size=200,
            scores=("recall", "precision"), central_scores=("recall",))

load_partition = TASK.load_partition
"""``(train, test)`` of bank ``partition_id`` out of ``num_partitions``."""
load_global_test = TASK.load_global_test
"""The server's held-out test set."""
load_union = TASK.load_union
"""Every bank's training data together: what a centralized model would see."""
