"""The membership-inference attack of flmon privacy-test, on planted clients.

Data: a generated binary task (independent of the reference apps); the network is the
examples' (one ReLU hidden layer, sigmoid output) in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from flmon.privacy import attack, model
from flmon.reference import tabular

FEATURES = 10
HIDDEN = 8


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=n, n_features=FEATURES, n_informative=4,
                               flip_y=0.1, random_state=seed)
    return x.astype(np.float64), y.astype(np.int64)


def _global_model(seed: int = 3) -> list[np.ndarray]:
    """A global model after a little training on other data (as after a few rounds)."""
    x, y = _data(200, 99)
    start = tabular.init_weights(FEATURES, HIDDEN, seed)
    return model.train(start, x, y, learning_rate=0.05, epochs=2, batch_size=16, seed=seed)


def test_per_example_gradients_match_finite_differences() -> None:
    x, y = _data(5, 1)
    weights = [w.astype(np.float64) for w in _global_model()]
    grads = model.per_example_gradients(weights, x, y)
    flat = model.flatten(weights)
    step = 1e-6
    for j in range(0, flat.size, 7):
        up, down = flat.copy(), flat.copy()
        up[j] += step
        down[j] -= step
        shape = [w.astype(np.float64) for w in weights]

        def loss_at(v: np.ndarray, like: list[np.ndarray] = shape) -> np.ndarray:
            cut, start = [], 0
            for w in like:
                cut.append(v[start:start + w.size].reshape(w.shape))
                start += w.size
            return model.losses(cut, x, y)

        numeric = (loss_at(up) - loss_at(down)) / (2 * step)
        np.testing.assert_allclose(grads[:, j], numeric, rtol=1e-4, atol=1e-7)


def test_auc_agrees_with_scikit_learn_including_ties() -> None:
    rng = np.random.default_rng(0)
    members = np.round(rng.normal(0.3, 1.0, 40), 1)  # rounding makes ties
    others = np.round(rng.normal(0.0, 1.0, 25), 1)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(25)], np.r_[members, others])
    assert attack.roc_auc(members, others) == pytest.approx(expected, abs=1e-12)


def test_advantage_is_the_best_threshold_gap() -> None:
    # threshold 2: TPR 3/4, FPR 1/4 -> 0.5, the best of all thresholds
    assert attack.advantage([1, 2, 3, 4], [0, 1, 1.5, 2]) == pytest.approx(0.5)
    assert attack.advantage([0, 0], [1, 1]) == 0.0


def _separation(before: list[np.ndarray], after: list[np.ndarray], members: tuple,
                non_members: tuple, name: str = "gradient_alignment") -> attack.Separation:
    pair = attack.score_candidates(name, before, after, members, non_members)
    return attack.mean_separation([pair], resamples=300, seed=1)


@pytest.mark.parametrize("name", attack.ATTACKS)
def test_a_memorizing_client_is_detected(name: str) -> None:
    """A client fits 16 records whose labels no model could generalise (drawn at random)
    for 30 epochs: its records stand out of its update."""
    before = _global_model()
    x, _ = _data(400, 5)
    y = np.random.default_rng(5).integers(0, 2, 400)
    members, non_members = (x[:16], y[:16]), (x[16:], y[16:])
    after = model.train(before, *members, learning_rate=0.05, epochs=30, batch_size=8, seed=2)
    result = _separation(before, after, members, non_members, name)
    assert result.auc > 0.75
    assert result.auc_ci[0] > 0.65
    assert result.advantage > 0.4


@pytest.mark.parametrize("name", attack.ATTACKS)
def test_a_client_returning_the_global_model_reveals_nothing(name: str) -> None:
    before = _global_model()
    x, y = _data(200, 6)
    result = _separation(before, [w.copy() for w in before], (x[:50], y[:50]),
                         (x[50:], y[50:]), name)
    assert result.auc == pytest.approx(0.5)
    assert result.auc_ci[0] <= 0.5 <= result.auc_ci[1]
    assert result.advantage == 0.0


@pytest.mark.parametrize("name", attack.ATTACKS)
def test_an_update_trained_on_other_records_gives_chance(name: str) -> None:
    """Scored members were never trained on: the update must not single them out."""
    before = _global_model()
    aucs = []
    for seed in range(8):
        x, y = _data(300, 100 + seed)
        trained_on, scored_in, scored_out = (x[:100], y[:100]), (x[100:200], y[100:200]), \
            (x[200:], y[200:])
        after = model.train(before, *trained_on, learning_rate=0.05, epochs=5,
                            batch_size=16, seed=seed)
        aucs.append(_separation(before, after, scored_in, scored_out, name).auc)
    assert abs(float(np.mean(aucs)) - 0.5) < 0.05


def test_one_gradient_step_is_decomposed_into_exactly_its_records() -> None:
    """One full-batch step (FedSGD) is minus the learning rate times the mean of the
    members' gradients: with fewer candidates than weights (97), the decomposition gives
    every member its share and every non-member none."""
    before = _global_model()
    x, y = _data(60, 7)
    members, non_members = (x[:20], y[:20]), (x[20:], y[20:])
    after = model.train(before, *members, learning_rate=0.01, epochs=1, batch_size=20,
                        seed=0)
    inside, outside = attack.score_candidates("gradient_decomposition", before, after,
                                              members, non_members)
    assert attack.roc_auc(inside, outside) == 1.0
    np.testing.assert_allclose(inside, 0.01 / 20, rtol=0.1)  # float32 weights
    assert float(np.max(outside)) < 0.25 * 0.01 / 20


def test_candidates_are_scored_together_and_split_back_in_order() -> None:
    """The per-record scores do not depend on the other candidates; the split keeps the
    members' and non-members' order."""
    before = _global_model()
    x, y = _data(30, 8)
    after = model.train(before, x[:10], y[:10], learning_rate=0.05, epochs=3, batch_size=5,
                        seed=1)
    inside, outside = attack.score_candidates("loss_difference", before, after,
                                              (x[:10], y[:10]), (x[10:], y[10:]))
    np.testing.assert_array_equal(inside, attack.loss_difference(before, after, x[:10], y[:10]))
    np.testing.assert_array_equal(outside, attack.loss_difference(before, after, x[10:], y[10:]))


def test_bootstrap_interval_brackets_the_mean_and_is_seeded() -> None:
    rng = np.random.default_rng(4)
    pairs = [(rng.normal(0.5, 1, 30), rng.normal(0, 1, 20)) for _ in range(4)]
    first = attack.mean_separation(pairs, groups=[0, 1, 0, 1], resamples=200, seed=9)
    again = attack.mean_separation(pairs, groups=[0, 1, 0, 1], resamples=200, seed=9)
    assert first == again
    assert first.auc_ci[0] < first.auc < first.auc_ci[1]
    assert first.members == 120 and first.non_members == 80


def test_bootstrap_refuses_groups_of_different_records() -> None:
    pairs = [(np.zeros(3), np.zeros(2)), (np.zeros(4), np.zeros(2))]
    with pytest.raises(ValueError, match="group 0"):
        attack.mean_separation(pairs, groups=[0, 0])


def test_bootstrap_auc_with_multiplicities_is_the_auc_of_the_repeated_records() -> None:
    rng = np.random.default_rng(11)
    members = np.round(rng.normal(0.4, 1, 25), 1)
    others = np.round(rng.normal(0, 1, 15), 1)
    wm = rng.integers(0, 3, (4, 25)).astype(float)
    wn = rng.integers(1, 3, (4, 15)).astype(float)
    got = attack._weighted_auc(members, others, wm, wn)
    for row in range(4):
        pos = np.repeat(members, wm[row].astype(int))
        neg = np.repeat(others, wn[row].astype(int))
        expected = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
        # the resample's weights sum to len() in the bootstrap; here scale to compare
        scale = (wm[row].sum() * wn[row].sum()) / (25 * 15)
        assert got[row] == pytest.approx(expected * scale, abs=1e-12)
