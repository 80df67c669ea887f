"""Membership inference on one model update, and how well it separates members.

Three scores per candidate record, each computed from what an observer of an update
holds: the model it was computed from (``before``), the model after it (``after``) and
the candidate records (members and non-members together, unlabelled: the attacker does
not know which is which).

``gradient_decomposition``
    The weight of each candidate in the update. Local training moves the weights by
    minus the learning rate times the sum of its records' gradients along the training
    path, so to first order the update is a non-negative combination of the members'
    gradients and owes nothing to anyone else's. The attacker averages each candidate's
    negative gradient over ``PATH_POINTS`` models on the segment from ``before`` to
    ``after`` (the path the client's optimiser took, approximated by a straight line) and
    solves the non-negative least squares ``update ~= sum_i c_i * g_i`` over the candidates;
    ``c_i`` is the score. This is the gradient-space view of an update: trained
    parameters are (close to) a combination of the training records' gradients (Haim,
    Vardi, Yehudai, Shamir and Irani, NeurIPS 2022), and per-record gradients of an
    over-parameterised model are near-orthogonal, so each member's share of the update
    can be read off (Li, Li and Ribeiro, ICLR 2023, who read it off one record at a time
    by the cosine below). Scoring the candidates jointly credits each part of the update
    to one record instead of to every record whose gradient happens to point that way.
    A candidate set larger than the model's weights would leave the system
    under-determined (any update is then explained by non-members as well): the
    candidates are then decomposed in random chunks of that size, over several cuts.

``gradient_alignment``
    Cosine between the negative gradient of the record's loss at ``before`` and the
    update ``after - before``. Local training moves the weights along the sum of its
    records' negative gradients, so a member's own gradient points more along the update
    than a non-member's from the same distribution does. This is the white-box update
    attack of Nasr, Shokri and Houmansadr (2019, the gradient features of their
    federated attacks), in the single-update, unsupervised form of Li, Li and Ribeiro
    (ICLR 2023), who score records by the cosine of their gradient with the update.

``loss_difference``
    Loss at ``before`` minus loss at ``after``: training lowers members' losses more
    (Yeom, Giacomelli, Fredrikson and Jha, 2018, applied to the two ends of an update).

All three score the candidate set as a whole (:func:`score_candidates`); the last two
score each record on its own. Higher scores mean "member". The figures are the ROC AUC
(probability that a random member outscores a random non-member, ties counting half),
the membership advantage ``max(TPR - FPR)`` over thresholds (Yeom et al.'s definition),
and a seeded percentile bootstrap confidence interval of the AUC (over updates and
records).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flmon.privacy import model

Array = npt.NDArray[np.float64]
Score = Callable[[model.Weights, model.Weights, Array, Array], Array]

ATTACKS: tuple[str, ...] = ("gradient_decomposition", "gradient_alignment", "loss_difference")
"""Attack names, the values of the ``attack`` label (the first is the headline)."""

PATH_POINTS = 5
"""Models on the segment from ``before`` to ``after`` at which the decomposition averages
each candidate's gradient (both ends included)."""

CHUNK_SHARE = 1.0
"""Largest candidate set the decomposition solves at once, as a share of the weights: no
more unknowns (candidates) than equations (weights), so each system is determined."""

CHUNK_DRAWS = 4
"""Random cuts into chunks whose scores the decomposition averages."""


def _path_gradients(before: model.Weights, after: model.Weights, x: Array, y: Array,
                    ) -> tuple[Array, Array]:
    """The update, and each candidate's negative gradient averaged along its segment."""
    start = model.flatten(before)
    delta = model.flatten(after) - start
    grads = np.zeros((len(y), delta.size), dtype=np.float64)
    for step in np.linspace(0.0, 1.0, PATH_POINTS):
        grads -= model.per_example_gradients(model.unflatten(start + step * delta, before),
                                             x, y)
    grads /= PATH_POINTS
    return delta, grads


def gradient_decomposition(before: model.Weights, after: model.Weights, x: Array,
                           y: Array) -> Array:
    """Non-negative least-squares weight of each candidate's path gradient in the update.

    With more candidates than ``CHUNK_SHARE`` of the weights, the candidates are cut at
    random into chunks of that size, each chunk is decomposed on its own, and a
    candidate's score is its mean weight over ``CHUNK_DRAWS`` such cuts (seeded: the same
    candidates always get the same scores). An update of zero gives every candidate 0.
    """
    from scipy.optimize import nnls

    delta, grads = _path_gradients(before, after, x, y)
    n = len(y)
    if not np.any(delta):
        return np.zeros(n, dtype=np.float64)
    size = max(1, int(CHUNK_SHARE * delta.size))
    if n <= size:
        weights, _ = nnls(grads.T, delta, maxiter=50 * n)
        out: Array = np.asarray(weights, dtype=np.float64)
        return out
    rng = np.random.default_rng(0)
    total = np.zeros(n, dtype=np.float64)
    for _ in range(CHUNK_DRAWS):
        for chunk in np.array_split(rng.permutation(n), math.ceil(n / size)):
            weights, _ = nnls(grads[chunk].T, delta, maxiter=50 * len(chunk))
            total[chunk] += weights
    return total / CHUNK_DRAWS


def gradient_alignment(before: model.Weights, after: model.Weights, x: Array, y: Array) -> Array:
    """Cosine of each record's negative loss gradient at ``before`` with the update.

    A record whose gradient is zero, or an update of zero, scores 0 (no evidence).
    """
    delta = model.flatten(after) - model.flatten(before)
    grads = -model.per_example_gradients(before, x, y)
    norms = np.linalg.norm(grads, axis=1) * np.linalg.norm(delta)
    dots = grads @ delta
    out: Array = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return out


def loss_difference(before: model.Weights, after: model.Weights, x: Array, y: Array) -> Array:
    """Each record's loss at ``before`` minus its loss at ``after``."""
    out: Array = model.losses(before, x, y) - model.losses(after, x, y)
    return out


SCORES: dict[str, Score] = {
    "gradient_decomposition": gradient_decomposition,
    "gradient_alignment": gradient_alignment,
    "loss_difference": loss_difference,
}


def score_candidates(name: str, before: model.Weights, after: model.Weights,
                     members: tuple[Array, Array], non_members: tuple[Array, Array],
                     ) -> tuple[Array, Array]:
    """Scores of attack ``name`` for ``members`` and ``non_members`` (each ``(x, y)``).

    The attack sees one unlabelled candidate set, members first; the split afterwards
    is only for scoring the attack.
    """
    x = np.concatenate([np.asarray(members[0], np.float64),
                        np.asarray(non_members[0], np.float64)])
    y = np.concatenate([np.asarray(members[1], np.float64),
                        np.asarray(non_members[1], np.float64)])
    scores = SCORES[name](before, after, x, y)
    cut = len(members[1])
    return scores[:cut], scores[cut:]


def roc_auc(members: npt.ArrayLike, non_members: npt.ArrayLike) -> float:
    """ROC AUC of ``members`` against ``non_members`` (Mann-Whitney U, ties count half)."""
    pos = np.asarray(members, dtype=np.float64)
    neg = np.asarray(non_members, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("the AUC needs at least one member and one non-member")
    ordered = np.sort(neg)
    below = np.searchsorted(ordered, pos, side="left")  # non-members scoring lower
    below_or_tied = np.searchsorted(ordered, pos, side="right")
    u = (below.sum() + below_or_tied.sum()) / 2.0
    return float(u / (pos.size * neg.size))


def advantage(members: npt.ArrayLike, non_members: npt.ArrayLike) -> float:
    """``max(TPR - FPR)`` over every threshold "score >= t means member" (0 at worst)."""
    pos = np.asarray(members, dtype=np.float64)
    neg = np.asarray(non_members, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("the advantage needs at least one member and one non-member")
    thresholds = np.unique(np.concatenate([pos, neg]))
    tpr = 1.0 - np.searchsorted(np.sort(pos), thresholds, side="left") / pos.size
    fpr = 1.0 - np.searchsorted(np.sort(neg), thresholds, side="left") / neg.size
    return float(max(0.0, float(np.max(tpr - fpr))))


@dataclass(frozen=True)
class Separation:
    """How well one set of scores separates members from non-members."""

    auc: float
    advantage: float
    auc_ci: tuple[float, float]
    members: int
    non_members: int

    def as_dict(self) -> dict[str, object]:
        return {
            "auc": self.auc, "advantage": self.advantage, "auc_ci": list(self.auc_ci),
            "members": self.members, "non_members": self.non_members,
        }


def _multiplicities(rng: np.random.Generator, n: int, resamples: int) -> Array:
    """``resamples`` rows of how often each of ``n`` items is drawn in ``n`` draws."""
    out: Array = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    return out


def _weighted_auc(members: Array, non_members: Array, member_weights: Array,
                  non_member_weights: Array) -> Array:
    """The AUC of each resample, given each record's multiplicity in it (rows)."""
    order = np.argsort(non_members, kind="stable")
    ordered = non_members[order]
    below = np.searchsorted(ordered, members, side="left")
    below_or_tied = np.searchsorted(ordered, members, side="right")
    cumulative = np.zeros((non_member_weights.shape[0], len(ordered) + 1))
    np.cumsum(non_member_weights[:, order], axis=1, out=cumulative[:, 1:])
    wins = (cumulative[:, below] + cumulative[:, below_or_tied]) / 2.0
    out: Array = (member_weights * wins).sum(axis=1) / (len(members) * len(non_members))
    return out


def mean_separation(
    pairs: Sequence[tuple[Array, Array]],
    *,
    groups: Sequence[int] | None = None,
    resamples: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Separation:
    """Mean AUC and advantage over several (members, non-members) score pairs, with a CI.

    Each pair is one attacked update (one client in one round). The interval is a seeded
    two-level percentile bootstrap of the mean AUC: each resample draws the attacked
    updates with replacement, and the records of each ``group`` with replacement. Pairs
    of the same group score the same records (one client's records over several rounds),
    so a group's record draw is reused by every pair of the group. Drawing the updates
    covers what varies from update to update (training, DP noise: one noise vector shifts
    the scores of every record of an update together); drawing the records covers the
    finite candidate sets.
    """
    if not pairs:
        raise ValueError("no scores to summarise")
    group_of = list(groups) if groups is not None else list(range(len(pairs)))
    if len(group_of) != len(pairs):
        raise ValueError("groups must name one group per pair")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    aucs = [roc_auc(m, n) for m, n in pairs]
    advs = [advantage(m, n) for m, n in pairs]
    rng = np.random.default_rng(seed)
    sizes: dict[int, tuple[int, int]] = {}
    for g, (m, n) in zip(group_of, pairs, strict=True):
        if sizes.setdefault(g, (len(m), len(n))) != (len(m), len(n)):
            raise ValueError(f"pairs of group {g} score different numbers of records")
    # Resampling with replacement as multiplicities: how often each record is drawn.
    counts = {
        g: (_multiplicities(rng, a, resamples), _multiplicities(rng, b, resamples))
        for g, (a, b) in sizes.items()
    }
    chosen = _multiplicities(rng, len(pairs), resamples)  # how often each update is drawn
    boot = np.zeros(resamples, dtype=np.float64)
    for i, ((m, n), g) in enumerate(zip(pairs, group_of, strict=True)):
        boot += chosen[:, i] * _weighted_auc(m, n, *counts[g])
    boot /= len(pairs)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return Separation(
        auc=float(np.mean(aucs)),
        advantage=float(np.mean(advs)),
        auc_ci=(float(low), float(high)),
        members=int(sum(len(m) for m, _ in pairs)),
        non_members=int(sum(len(n) for _, n in pairs)),
    )
