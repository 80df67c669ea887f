"""Metric-key ties on the legacy API, through Flower's own legacy loop (``start_grid``)
with real legacy ClientApps (``NumPyClient``) in process.

Honest clients move every parameter by +0.1 per round; hostile ones send ``ATTACK`` in
every parameter, so "the global model became the attacker's" shows at a glance. Where
the guard cannot tell honest from hostile, nothing is aggregated that round: the wrapped
strategy's ``aggregate_fit`` is not called, Flower keeps the previous parameters, and the
run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import (
    Code,
    FitRes,
    Scalar,
    Status,
    ndarrays_to_parameters,
)

from flmon.flower import instrument
from flmon.metrics import FlmonMetrics
from tests.core.legacy_clients import (
    ATTACK,
    SHAPES,
    STEP,
    RecordingFedAvg,
    initial,
    run_legacy,
    trained,
)

HONEST: dict[str, Scalar] = {"loss": 0.3, "accuracy": 0.9}
HOSTILE: dict[str, Scalar] = {"!": 1.0}
ROUNDS = 2

MetricsFn = Callable[[int], Mapping[str, Scalar]]


class _KeyClient(NumPyClient):
    """Replies ``metrics(round)`` and, when ``hostile(round)``, ``ATTACK`` everywhere."""

    def __init__(self, metrics: MetricsFn, hostile: Callable[[int], bool],
                 fail_in: frozenset[int] = frozenset()) -> None:
        self.metrics, self.hostile, self.fail_in = metrics, hostile, fail_in

    def fit(self, parameters: list[np.ndarray], config: dict[str, Scalar]
            ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        server_round = int(config["server_round"])
        if server_round in self.fail_in:
            raise RuntimeError(f"down in round {server_round}")
        return trained(parameters, self.hostile(server_round)), 50, dict(
            self.metrics(server_round))

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Scalar]
                 ) -> tuple[float, int, dict[str, Scalar]]:
        return 0.4, 20, {"accuracy": 0.8}


def _app(metrics: MetricsFn | Mapping[str, Scalar] = HONEST, hostile: bool = False,
         turns: Callable[[int], bool] | None = None,
         fail_in: frozenset[int] = frozenset()) -> ClientApp:
    """A legacy ClientApp; ``turns(round)`` says in which rounds it is hostile."""
    metrics_fn: MetricsFn = metrics if callable(metrics) else (lambda _r: metrics)
    hostile_fn = turns if turns is not None else (lambda _r: hostile)
    client = _KeyClient(metrics_fn, hostile_fn, fail_in)

    def client_fn(context: Context) -> Any:
        return client.to_client()

    return ClientApp(client_fn=client_fn)


def _run(apps: Mapping[int, ClientApp], rounds: int = ROUNDS, workflow: bool = False
         ) -> tuple[RecordingFedAvg, FlmonMetrics]:
    """Flower's ``start_grid`` loop, or with ``workflow`` its ``DefaultWorkflow``."""
    return run_legacy(apps, rounds, workflow=workflow)


def _v(metrics: FlmonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _quarantined(metrics: FlmonMetrics, reason: str) -> float:
    return _v(metrics, "fl_replies_quarantined_total", phase="train", reason=reason)


def _final(base: RecordingFedAvg) -> np.ndarray:
    assert base.final is not None
    values = np.concatenate([a.ravel() for a in base.final])
    assert np.all(np.abs(values) < 1.0), values  # never the attacker's model
    return values


def _tie(per_side: int, hostile: Mapping[str, Scalar]) -> dict[int, ClientApp]:
    apps = {1 + i: _app() for i in range(per_side)}
    apps.update({100 + i: _app(hostile, hostile=True) for i in range(per_side)})
    return apps


@pytest.mark.parametrize(("per_side", "hostile", "workflow"), [
    (1, HOSTILE, False), (2, HOSTILE, False), (3, {**HONEST, "!": 1.0}, False),
    (1, HOSTILE, True),
], ids=["1v1", "2v2", "3v3-extra-key", "1v1-default-workflow"])
def test_a_tie_without_history_aggregates_nothing_and_the_run_goes_on(
        per_side: int, hostile: Mapping[str, Scalar], workflow: bool) -> None:
    base, m = _run(_tie(per_side, hostile), workflow=workflow)
    assert np.all(_final(base) == 0.0)  # the initial model stands
    assert base.aggregated == {}  # the wrapped strategy never saw the undecided results
    assert _quarantined(m, "undecided_metric_keys") == 2 * per_side * ROUNDS
    assert _quarantined(m, "inconsistent_metric_keys") == 0
    assert _v(m, "fl_security_events_total", kind="nothing_aggregated") == ROUNDS
    assert _v(m, "fl_aggregation_failures_total", phase="train") == ROUNDS
    assert _v(m, "fl_rounds_completed_total") == ROUNDS
    assert all(_v(m, "fl_model_updates_total", client=str(n)) == 0
               for n in (*range(1, per_side + 1), *range(100, 100 + per_side)))


def test_three_against_three_with_thousands_of_extra_keys_the_honest_win() -> None:
    flood: dict[str, Scalar] = {**HONEST, **{f"a{i:04d}": 1.0 for i in range(5000)}}
    base, m = _run(_tie(3, flood))
    assert np.allclose(_final(base), STEP * ROUNDS)
    assert base.aggregated == {1: [1, 2, 3], 2: [1, 2, 3]}
    assert _quarantined(m, "oversized_metrics") == 3 * ROUNDS
    assert _quarantined(m, "undecided_metric_keys") == 0


@pytest.mark.parametrize("hostile", [
    {"!": 1.0}, {"a": 1.0}, {"\x00": 1.0}, {"a": 1.0, **HONEST}, {"aaa": 1.0, "accuracy": 0.9},
], ids=["bang", "a", "nul", "honest-plus-a", "aaa-accuracy"])
@pytest.mark.parametrize("per_side", [1, 2])
def test_keys_that_sort_first_never_win(per_side: int, hostile: Mapping[str, Scalar]
                                        ) -> None:
    base, m = _run(_tie(per_side, hostile), rounds=1)
    assert np.all(_final(base) == 0.0)
    assert base.aggregated == {}
    assert _quarantined(m, "undecided_metric_keys") == 2 * per_side


def test_a_plurality_of_differing_honest_key_sets_is_not_a_majority() -> None:
    other: dict[str, Scalar] = {"loss": 0.3, "f1": 0.5}
    third: dict[str, Scalar] = {"loss": 0.3, "auc": 0.7}
    apps = {1: _app(), 2: _app(), 3: _app(other), 4: _app(other), 5: _app(third)}
    base, m = _run(apps, rounds=1)
    assert np.all(_final(base) == 0.0)
    assert base.aggregated == {}
    assert _quarantined(m, "undecided_metric_keys") == 5


def test_the_key_set_of_earlier_rounds_beats_a_later_majority_of_new_keys() -> None:
    """Round 1: three agree (the key set is settled); then two of them turn, with new
    keys that sort first and the attacker's arrays: 2 vs 1, and the one honest wins."""
    turned: dict[str, Scalar] = {"!": 1.0, "a": 1.0, "accuracy": 0.9}

    def sleeper() -> ClientApp:
        return _app(lambda r: HONEST if r == 1 else turned, turns=lambda r: r > 1)

    base, m = _run({1: _app(), 2: sleeper(), 3: sleeper()}, rounds=3)
    assert np.allclose(_final(base), 3 * STEP)
    assert base.aggregated == {1: [1, 2, 3], 2: [1], 3: [1]}
    assert _quarantined(m, "inconsistent_metric_keys") == 2 * 2
    assert _quarantined(m, "undecided_metric_keys") == 0


def test_a_lone_result_whose_peer_failed_settles_nothing() -> None:
    """Round 1: the honest node fails, the attacker alone replies; round 2: 1 vs 1."""
    apps = {1: _app(fail_in=frozenset({1})), 2: _app(HOSTILE, hostile=True)}
    base, m = _run(apps)
    assert np.all(_final(base) == 0.0)
    assert base.aggregated == {}
    assert _quarantined(m, "undecided_metric_keys") == 1 + 2


def test_an_undecided_round_keeps_the_parameters_and_the_next_one_aggregates() -> None:
    """Round 1 is a 1 vs 1 tie: Flower keeps the initial parameters; in round 2 the two
    agree, their update is aggregated and the key set becomes the rule; round 3 is 1 vs 1
    again and the rule settles it."""
    keys = {1: HOSTILE, 2: HONEST, 3: HOSTILE}
    apps = {1: _app(),
            2: _app(lambda r: keys[r], turns=lambda r: r != 2)}
    base, m = _run(apps, rounds=3)
    assert all(np.array_equal(a, b) for a, b in zip(base.sent[2], initial(), strict=True))
    assert base.aggregated == {2: [1, 2], 3: [1]}
    assert np.allclose(_final(base), 2 * STEP)
    assert _quarantined(m, "undecided_metric_keys") == 2
    assert _quarantined(m, "inconsistent_metric_keys") == 1
    assert _v(m, "fl_security_events_total", kind="nothing_aggregated") == 1
    assert _v(m, "fl_rounds_completed_total") == 3


def test_the_wrapper_returns_flowers_no_update_when_nothing_is_kept() -> None:
    """What Flower's legacy ``Server.fit`` keeps the previous parameters on."""
    base = RecordingFedAvg()
    wrapped = instrument(base, metrics=FlmonMetrics(sides=("server", "sink")))
    zeros = initial()

    class _Proxy:
        def __init__(self, node: int) -> None:
            self.cid, self.node_id = str(node), node

    results: list[Any] = [
        (_Proxy(1), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(zeros), 5, HONEST)),
        (_Proxy(2), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(
            [np.full(s, ATTACK, dtype=np.float32) for s in SHAPES]), 5, HOSTILE)),
    ]
    assert wrapped.aggregate_fit(1, results, []) == (None, {})
    assert base.aggregated == {}
