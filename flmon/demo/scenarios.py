"""The demo's scenarios: run-config overrides, what the demo does to the federation, and
the alerts each one is expected to raise.

Fault timing is chosen so every alert both fires and (where recovery is possible)
resolves within a short run; see :mod:`flmon.reference.faults` for what the ClientApps do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flmon.reference.faults import SCENARIOS

ConfigValue = bool | int | float | str

ANOMALY_THRESHOLD = 10.0
"""Anomaly score line of the demo, for the server (``instrument``) and the alert alike.

flmon's default (3.5) suits federations of many clients; with three non-IID hospitals a
healthy round was measured reaching a score of 4.0 (the norm of the one referral centre
against two screening clinics). With three clients an attacker's robust z-score is bounded
by the spread of the two honest norms: an update flipped and scaled by 10 scored 2.6 on the
hospitals (19.8 on the banks), scaled by 100 about 36. The demo's line sits between.
"""


@dataclass(frozen=True)
class Scenario:
    """One selectable scenario."""

    name: str
    description: str
    run_config: dict[str, ConfigValue] = field(default_factory=dict)
    expected_alerts: tuple[str, ...] = ()
    """Alerts that must fire (all of them) for the scenario to have shown its fault."""
    names_client: bool = False
    """Whether the expected alerts carry the offending client's label."""
    resolves: bool = True
    """Whether the fault ends within the run, so the alerts should resolve."""
    kill_after_round: int = 0
    """node-killed: SIGKILL the offending SuperNode once this many rounds completed."""
    restart_after_round: int = 0
    """node-killed: start it again once this many rounds completed (0: never) and, when
    ``FLNodeOffline`` is expected, once it fired for the killed node (Flower sees a dead
    node only after missed heartbeats, so the restart waits for that rather than racing
    it), or ``offline_timeout`` seconds after the kill."""
    offline_timeout: float = 150.0
    min_rounds: int = 3
    privacy_test: bool = False
    """Run ``flmon privacy-test`` on the example before the run and push its figures."""


SCENARIO_TABLE: dict[str, Scenario] = {
    "healthy": Scenario(
        "healthy",
        "every node trains honestly; no alert should fire",
        min_rounds=2,
    ),
    "node-killed": Scenario(
        "node-killed",
        "the offending SuperNode is killed (SIGKILL) after round 1 and started again "
        "after round 3, once flmon watch saw it offline (FLNodeOffline)",
        {"round-timeout": 45.0, "fault-start-round": 2, "fault-end-round": 3},
        expected_alerts=("FLClientDropout", "FLNodeOffline"),
        names_client=True,
        kill_after_round=1,
        restart_after_round=3,
        min_rounds=5,
    ),
    "straggler": Scenario(
        "straggler",
        "the offending node sleeps 100 s before training in rounds 2-3; the round times "
        "out after 75 s without it",
        {"straggler-delay": 100.0, "round-timeout": 75.0, "fault-start-round": 2,
         "fault-end-round": 3},
        expected_alerts=("FLRoundStalled", "FLClientDropout"),
        names_client=True,
        min_rounds=5,
    ),
    "poisoned": Scenario(
        "poisoned",
        "the offending node sends a sign-flipped update scaled by 100 in round 2",
        {"poison-scale": -100.0, "fault-start-round": 2, "fault-end-round": 2},
        expected_alerts=("FLClientUpdateAnomaly",),
        names_client=True,
        min_rounds=3,
    ),
    "accuracy-collapse": Scenario(
        "accuracy-collapse",
        "every node trains on randomly relabelled data in round 2 (a broken upstream "
        "join), then on clean data again",
        {"fault-start-round": 2, "fault-end-round": 2},
        expected_alerts=("FLModelAccuracyDropped",),
        min_rounds=3,
    ),
    "privacy-budget": Scenario(
        "privacy-budget",
        "central DP with an RDP accountant and a budget of epsilon 7.5: two releases "
        "spend 94 %, the accountant refuses the third and training stops",
        {"dp": True, "dp-max-epsilon": 7.5},
        expected_alerts=("FLPrivacyBudgetNearlyExhausted", "FLPrivacyBudgetExhausted"),
        resolves=False,
        min_rounds=3,
    ),
    "privacy-leak": Scenario(
        "privacy-leak",
        "flmon privacy-test attacks the example's updates (3 clients, 3 rounds, DP off and "
        "central DP) and pushes its figures: the server reads the hospitals' records out "
        "of their updates (AUC above 0.6), and central DP does not hide them from it (the "
        "banks' updates show no measurable leakage: with --example fraud nothing fires)",
        expected_alerts=("FLPrivacyLeakage",),
        resolves=False,
        min_rounds=2,
        privacy_test=True,
    ),
}

assert tuple(SCENARIO_TABLE) == SCENARIOS


def get(name: str) -> Scenario:
    """The scenario ``name``; ``KeyError`` listing the choices otherwise."""
    try:
        return SCENARIO_TABLE[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}") from None
