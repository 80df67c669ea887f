"""``run_privacy_test``: two observed federations, the attacks on what each revealed.

Threat models, measured in every run:

``client_update``
    The honest-but-curious server attacks each client's update as it arrives: members
    are that client's training records, non-members its held-out records (its local test
    split: same hospital or bank, same label mix, never trained on).
``release``
    Anyone who sees the global models (another client, or anyone downstream of the
    federation) attacks each round's released aggregate against the model before it:
    members are every client's training records, non-members every client's held-out
    records.

Central DP (Flower's server-side clipping and noise) acts after the server has received
the raw updates, so it cannot hide them from the server: what it protects is the
release, and the ``dp`` section's headline figures are the release's. Local DP (Flower's
``LocalDpMod``: each client clips and noises its own update) acts before the server sees
anything, and its headline figures are the client updates'. Every section carries both
views, so each figure can be read against its threat model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flmon.privacy import attack
from flmon.privacy.federation import (
    DpSettings,
    FederationRun,
    TrainingConfig,
    run_federation,
)
from flmon.reference import APPS_DIR, app_config, load_task
from flmon.reference import EXAMPLES as EXAMPLES  # re-exported

EXAMPLES_DIR = APPS_DIR
DP_MODES: tuple[str, ...] = ("central", "local")
VIEWS: tuple[str, ...] = ("client_update", "release")
HEADLINE_ATTACK = attack.ATTACKS[0]
HEADLINE_VIEW = {"off": "client_update", "central": "release", "local": "client_update"}

THREATS = {
    "client_update": "the server attacks each client's update as it receives it",
    "release": "anyone who sees the global models attacks each released aggregate",
}


@dataclass(frozen=True)
class PrivacyTestOptions:
    """Settings of one privacy test (``None``: the example's run-config default).

    Parameters
    ----------
    example
        ``healthcare`` or ``fraud``.
    rounds, nodes
        Federated rounds, and clients (partitions of the example's data).
    dp_noise
        Noise multiplier of the DP run (> 0).
    clip
        Clipping norm of the DP run (the example's ``dp-clipping-norm`` by default).
    dp_mode
        ``central`` (Flower's server-side fixed clipping) or ``local`` (``LocalDpMod``).
    seed
        Seeds the initial model, the clients' shuffling, the DP noise and the bootstrap.
    local_epochs
        The clients' local epochs (the example's ``local-epochs`` by default).
    delta
        Target delta of the accountant (the example's ``dp-delta`` by default).
    resamples
        Bootstrap resamples of each confidence interval.
    """

    example: str = "healthcare"
    rounds: int = 3
    nodes: int = 3
    dp_noise: float = 1.0
    clip: float | None = None
    dp_mode: str = "central"
    seed: int | None = None
    local_epochs: int | None = None
    delta: float | None = None
    resamples: int = 500
    examples_dir: Path = EXAMPLES_DIR

    def __post_init__(self) -> None:
        if self.example not in EXAMPLES:
            raise ValueError(f"example: {self.example!r} is not one of {', '.join(EXAMPLES)}")
        if self.rounds < 1:
            raise ValueError("rounds: must be at least 1")
        if self.nodes < 2:
            raise ValueError("nodes: must be at least 2")
        if not (np.isfinite(self.dp_noise) and self.dp_noise > 0):
            raise ValueError("dp_noise: must be a finite number above 0")
        if self.clip is not None and not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError("clip: must be a finite number above 0")
        if self.dp_mode not in DP_MODES:
            raise ValueError(f"dp_mode: {self.dp_mode!r} is not one of {', '.join(DP_MODES)}")
        if self.local_epochs is not None and self.local_epochs < 1:
            raise ValueError("local_epochs: must be at least 1")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ValueError("delta: must be in (0, 1)")
        if self.resamples < 10:
            raise ValueError("resamples: must be at least 10")


def _app_config(options: PrivacyTestOptions) -> dict[str, Any]:
    return app_config(options.examples_dir / options.example)


def _pairs(run: FederationRun, task: Any, nodes: int, name: str, view: str,
           ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int], list[tuple[int, int]]]:
    """Score pairs of one attack and view, their bootstrap groups, and (round, client)."""
    splits = [task.load_partition(p, nodes) for p in range(nodes)]
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    groups: list[int] = []
    where: list[tuple[int, int]] = []
    if view == "client_update":
        for rv in run.rounds:
            for p, (train, held_out) in enumerate(splits):
                after = rv.updates[p]
                pairs.append(attack.score_candidates(name, rv.before, after,
                                                     (train.x, train.y),
                                                     (held_out.x, held_out.y)))
                groups.append(p)
                where.append((rv.round, p))
        return pairs, groups, where
    xm = np.concatenate([s[0].x for s in splits])
    ym = np.concatenate([s[0].y for s in splits])
    xn = np.concatenate([s[1].x for s in splits])
    yn = np.concatenate([s[1].y for s in splits])
    for rv in run.rounds:
        assert rv.released is not None
        pairs.append(attack.score_candidates(name, rv.before, rv.released, (xm, ym),
                                             (xn, yn)))
        groups.append(0)
        where.append((rv.round, -1))
    return pairs, groups, where


def _view_figures(run: FederationRun, task: Any, nodes: int, name: str, view: str,
                  resamples: int, seed: int) -> dict[str, Any]:
    pairs, groups, where = _pairs(run, task, nodes, name, view)
    overall = attack.mean_separation(pairs, groups=groups, resamples=resamples, seed=seed)
    out: dict[str, Any] = {"threat": THREATS[view], **overall.as_dict(), "rounds": []}
    for rnd in sorted({r for r, _ in where}):
        idx = [i for i, (r, _) in enumerate(where) if r == rnd]
        summary = attack.mean_separation([pairs[i] for i in idx],
                                         groups=[groups[i] for i in idx],
                                         resamples=resamples, seed=seed + rnd)
        row: dict[str, Any] = {"round": rnd, **summary.as_dict()}
        if view == "client_update":
            row["clients"] = [
                {"client": where[i][1], "auc": attack.roc_auc(*pairs[i]),
                 "advantage": attack.advantage(*pairs[i])}
                for i in idx
            ]
        out["rounds"].append(row)
    return out


def _section(run: FederationRun, task: Any, options: PrivacyTestOptions, seed: int,
             mode: str) -> dict[str, Any]:
    attacks = {
        name: {view: _view_figures(run, task, options.nodes, name, view, options.resamples,
                                   seed)
               for view in VIEWS}
        for name in attack.ATTACKS
    }
    headline_view = HEADLINE_VIEW[mode]
    head = attacks[HEADLINE_ATTACK][headline_view]
    return {
        "auc": head["auc"], "advantage": head["advantage"], "auc_ci": head["auc_ci"],
        "attack": HEADLINE_ATTACK, "view": headline_view, "threat": THREATS[headline_view],
        "accuracy": run.accuracy, "attacks": attacks,
    }


def run_privacy_test(options: PrivacyTestOptions | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the example's federation without DP and with DP; attack both; return the figures.

    Pass a :class:`PrivacyTestOptions` or its fields as keywords. The result is what
    ``flmon privacy-test --json`` writes: ``no_dp`` and ``dp`` sections (headline ``auc``,
    ``advantage``, ``auc_ci`` of the gradient-alignment attack on the view the section's
    protection is meant for; every attack and view under ``attacks``, with per-round and
    per-client figures), ``dp`` also with ``mode``, ``epsilon``, ``delta``, ``noise`` and
    ``clip``; and the settings. Deterministic for given options.
    """
    if options is None:
        options = PrivacyTestOptions(**kwargs)
    elif kwargs:
        raise TypeError("pass either options or keyword fields, not both")
    task = load_task(options.example, options.examples_dir)
    cfg = _app_config(options)
    seed = int(cfg["seed"]) if options.seed is None else options.seed
    training = TrainingConfig(
        learning_rate=float(cfg["learning-rate"]),
        local_epochs=int(cfg["local-epochs"]) if options.local_epochs is None
        else options.local_epochs,
        batch_size=int(cfg["batch-size"]),
    )
    dp = DpSettings(
        mode=options.dp_mode, noise_multiplier=options.dp_noise,
        clipping_norm=float(cfg["dp-clipping-norm"]) if options.clip is None else options.clip,
        delta=float(cfg["dp-delta"]) if options.delta is None else options.delta,
    )
    common = {"nodes": options.nodes, "rounds": options.rounds, "training": training,
              "seed": seed}
    plain = run_federation(task, **common)  # type: ignore[arg-type]
    private = run_federation(task, dp=dp, **common)  # type: ignore[arg-type]
    no_dp = _section(plain, task, options, seed, "off")
    with_dp = _section(private, task, options, seed, dp.mode)
    with_dp.update({"mode": dp.mode, "epsilon": private.epsilon, "delta": private.delta,
                    "noise": dp.noise_multiplier, "clip": dp.clipping_norm})
    return {
        "example": options.example, "federation": EXAMPLES[options.example],
        "rounds": options.rounds, "nodes": options.nodes, "seed": seed,
        "local_epochs": training.local_epochs, "learning_rate": training.learning_rate,
        "batch_size": training.batch_size, "resamples": options.resamples,
        "no_dp": no_dp, "dp": with_dp,
    }
