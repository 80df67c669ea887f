"""False-positive and detection rates of flmon's update anomaly score.

Each run is a small federation driven in-process by Flower's own ``Strategy.start``
loop (FedAvg wrapped by ``flmon.flower.instrument``), with real ``ClientApp`` objects
that train a logistic regression on non-IID partitions of a generated data set:

- feature skew: each client's features are centred on a shift of its own;
- label skew: each client's class balance comes from a Dirichlet draw;
- quantity skew: each client holds between 40 and 400 examples;
- local training: a few epochs of mini-batch SGD, so update sizes differ with the
  amount of data.

Honest runs give the false-positive rate (honest updates at or above the threshold,
over all honest updates). Runs with one attacker (its honest update sign-flipped, or
scaled) give the detection rate (attacker updates flagged) and how often the attacker
was flagged in each of the first two rounds while no honest client was.

Run it with ``python -m benchmarks.anomaly_fpr`` (``--help`` for the sizes); it prints
the figures as JSON. :func:`measure` returns them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from flmon.flower import instrument
from flmon.metrics import FlmonMetrics
from flmon.security.updates import DEFAULT_THRESHOLD, UpdateStats
from tests.core.ingrid import InProcessGrid

FEATURES = 20
ATTACKS = ("sign-flip", "scaled")
SCALE_FACTOR = 10.0


@dataclass(frozen=True)
class Partition:
    """One client's data."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Skew:
    """How non-IID the partitions are."""

    shift: float
    """Standard deviation of each client's feature shift."""
    alpha: float
    """Dirichlet concentration of each client's class balance (smaller: more skewed)."""
    min_share: float
    """Class shares are clipped to ``[min_share, 1 - min_share]``."""


SKEWS: dict[str, Skew] = {
    "moderate": Skew(shift=0.3, alpha=2.0, min_share=0.15),
    "strong": Skew(shift=1.0, alpha=0.5, min_share=0.05),
}


def make_partitions(seed: int, clients: int, skew: Skew = SKEWS["moderate"]
                    ) -> list[Partition]:
    """Non-IID partitions of one generated binary classification task."""
    rng = np.random.default_rng(seed)
    true_w = rng.normal(size=FEATURES)
    out = []
    for _ in range(clients):
        n = int(rng.integers(40, 401))
        shift = rng.normal(scale=skew.shift, size=FEATURES)
        positive = float(rng.dirichlet([skew.alpha, skew.alpha])[0])
        positive = min(max(positive, skew.min_share), 1.0 - skew.min_share)
        x = rng.normal(loc=shift, size=(n, FEATURES))
        score = x @ true_w + rng.normal(scale=1.0, size=n)
        # label skew: the client's positives are its top `positive` share of scores
        cut = np.quantile(score, 1.0 - positive)
        y = (score > cut).astype(np.float64)
        out.append(Partition(x=x, y=y))
    return out


def _sgd(weights: list[np.ndarray], part: Partition, rng: np.random.Generator,
         epochs: int = 2, lr: float = 0.05, batch: int = 32) -> float:
    w, b = weights[0], weights[1]
    loss = 0.0
    for _ in range(epochs):
        order = rng.permutation(len(part.y))
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            x, y = part.x[idx], part.y[idx]
            p = 1.0 / (1.0 + np.exp(-np.clip(x @ w + b[0], -30, 30)))
            w -= lr * x.T @ (p - y) / len(y)
            b -= lr * np.array([np.mean(p - y)])
    p = np.clip(1.0 / (1.0 + np.exp(-np.clip(part.x @ w + b[0], -30, 30))), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(part.y * np.log(p) + (1 - part.y) * np.log(1 - p)))
    return loss


def make_client(part: Partition, seed: int, behaviour: str = "honest") -> ClientApp:
    """A real ClientApp training on ``part``; ``behaviour`` may poison its update."""
    app = ClientApp()
    rng = np.random.default_rng(seed)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        sent = msg.content["arrays"].to_numpy_ndarrays()
        weights = [a.astype(np.float64).copy() for a in sent]
        loss = _sgd(weights, part, rng)
        if behaviour == "sign-flip":
            weights = [s - (w - s) for w, s in zip(weights, sent, strict=True)]
        elif behaviour == "scaled":
            weights = [s + SCALE_FACTOR * (w - s) for w, s in zip(weights, sent, strict=True)]
        metrics = MetricRecord({"loss": loss, "num-examples": len(part.y)})
        content = RecordDict({"arrays": ArrayRecord(weights), "metrics": metrics})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        metrics = MetricRecord({"loss": 0.0, "num-examples": len(part.y)})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


@dataclass
class RunScores:
    """Scores of one run: per round, per node id."""

    rounds: list[dict[int, UpdateStats]] = field(default_factory=list)


def run_federation(seed: int, clients: int, rounds: int, attacker: str | None = None,
                   threshold: float = DEFAULT_THRESHOLD, skew: str = "moderate",
                   ) -> tuple[RunScores, FlmonMetrics]:
    """One instrumented run; the attacker (if any) is node ``clients``."""
    parts = make_partitions(seed, clients, SKEWS[skew])
    apps: dict[int, ClientApp | None] = {}
    for node in range(1, clients + 1):
        behaviour = attacker if (attacker is not None and node == clients) else "honest"
        apps[node] = make_client(parts[node - 1], seed * 1000 + node, behaviour)
    metrics = FlmonMetrics(sides=("server", "sink"))
    strategy = instrument(
        FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1,
               fraction_evaluate=0.0),
        metrics=metrics, anomaly_threshold=threshold,
    )
    scores = RunScores()
    original = strategy.recorder.update_stats

    def capture(stats: Mapping[int, UpdateStats], median: float) -> list[int]:
        scores.rounds.append(dict(stats))
        return original(stats, median)

    strategy.recorder.update_stats = capture  # type: ignore[method-assign]
    initial = ArrayRecord([np.zeros(FEATURES), np.zeros(1)])
    strategy.start(grid=InProcessGrid(apps), initial_arrays=initial, num_rounds=rounds)
    return scores, metrics


@dataclass
class Figures:
    """What :func:`measure` reports."""

    skew: str
    seeds: int
    clients: int
    rounds: int
    threshold: float
    honest_updates: int
    honest_flagged: int
    false_positive_rate: float
    honest_runs_with_a_false_positive: float
    honest_score_p99: float
    honest_score_max: float
    attack: dict[str, dict[str, float]]


@contextmanager
def _quiet() -> Iterator[None]:
    """Flower's and flmon's loggers at ERROR for the block (security events are many)."""
    loggers = [logging.getLogger(name) for name in ("flwr", "flmon")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def measure(seeds: Sequence[int] | int = 40, clients: int = 6, rounds: int = 5,
            threshold: float = DEFAULT_THRESHOLD,
            attacks: Sequence[str] = ATTACKS, skew: str = "moderate") -> Figures:
    """False-positive rate over honest runs, detection rates over attacked runs.

    Parameters
    ----------
    seeds
        Seeds of the runs (or how many: ``range(n)``); each seed is one data set and
        one honest run plus one run per attack.
    clients, rounds
        Federation size and rounds per run.
    threshold
        The anomaly threshold.
    attacks
        Attacks to run: ``sign-flip``, ``scaled``.
    skew
        A key of :data:`SKEWS`: ``moderate`` or ``strong``.
    """
    if skew not in SKEWS:
        raise ValueError(f"skew must be one of {sorted(SKEWS)}")
    with _quiet():
        return _measure(seeds, clients, rounds, threshold, attacks, skew)


def _measure(seeds: Sequence[int] | int, clients: int, rounds: int, threshold: float,
             attacks: Sequence[str], skew: str) -> Figures:
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    honest_scores: list[float] = []
    runs_with_fp = 0
    for seed in seed_list:
        scores, _ = run_federation(seed, clients, rounds, None, threshold, skew)
        round_scores = [s.score for stats in scores.rounds for s in stats.values()]
        honest_scores.extend(round_scores)
        runs_with_fp += any(s >= threshold for s in round_scores)
    attack_figures: dict[str, dict[str, float]] = {}
    for attack in attacks:
        flagged = total = early = honest_flagged = honest_total = 0
        for seed in seed_list:
            scores, _ = run_federation(seed, clients, rounds, attack, threshold, skew)
            attacker = clients
            for stats in scores.rounds:
                total += 1
                flagged += stats[attacker].score >= threshold
                for node, s in stats.items():
                    if node != attacker:
                        honest_total += 1
                        honest_flagged += s.score >= threshold
            first_two = scores.rounds[:2]
            early += all(
                stats[attacker].score >= threshold
                and all(s.score < threshold for n, s in stats.items() if n != attacker)
                for stats in first_two
            )
        attack_figures[attack] = {
            "attacker_updates": total,
            "detection_rate": flagged / total if total else math.nan,
            "runs_isolated_in_first_two_rounds": early / len(seed_list),
            "honest_false_positive_rate": (honest_flagged / honest_total
                                           if honest_total else math.nan),
        }
    flagged_honest = sum(s >= threshold for s in honest_scores)
    ordered = sorted(honest_scores)
    return Figures(
        skew=skew, seeds=len(seed_list), clients=clients, rounds=rounds, threshold=threshold,
        honest_updates=len(honest_scores), honest_flagged=flagged_honest,
        false_positive_rate=flagged_honest / len(honest_scores) if honest_scores else math.nan,
        honest_runs_with_a_false_positive=runs_with_fp / len(seed_list),
        honest_score_p99=float(np.quantile(ordered, 0.99)) if ordered else math.nan,
        honest_score_max=max(ordered) if ordered else math.nan,
        attack=attack_figures,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.anomaly_fpr",
        description="False-positive and detection rates of flmon's update anomaly score "
                    "on in-process non-IID federations.")
    parser.add_argument("--seeds", type=int, default=40, help="runs per kind (default 40)")
    parser.add_argument("--clients", type=int, default=6, help="clients per run (default 6)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per run (default 5)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"anomaly threshold (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--skew", choices=sorted(SKEWS), default="moderate",
                        help="how non-IID the partitions are (default moderate)")
    args = parser.parse_args(argv)
    figures = measure(args.seeds, args.clients, args.rounds, args.threshold,
                      skew=args.skew)
    json.dump(asdict(figures), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
