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

import numpy as np

from flmon.reference.apps import Task
from flmon.reference.tabular import Split

HIDDEN_UNITS = 8
ALPHA = 0.8
SPLIT_SEED = 7
TEST_SEED = 42
NUM_FEATURES = 30


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


TASK = Task(name="healthcare", dataset=_dataset, num_features=NUM_FEATURES,
            hidden_units=HIDDEN_UNITS, alpha=ALPHA, split_seed=SPLIT_SEED, min_size=20)

load_partition = TASK.load_partition
"""``(train, test)`` of hospital ``partition_id`` out of ``num_partitions``."""
load_global_test = TASK.load_global_test
"""The server's held-out test set."""
load_union = TASK.load_union
"""Every hospital's training data together: what a centralized model would see."""
