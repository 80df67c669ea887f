"""The privacy test's figures as a terminal table and as ``fl_privacy_attack_*`` gauges."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from flmon import catalog
from flmon.privacy.attack import ATTACKS
from flmon.privacy.runner import THREATS, VIEWS

SECTIONS: dict[str, str] = {"no_dp": "off", "dp": "on"}
"""JSON section -> value of the ``dp`` label."""


def attack_label(attack: str, view: str) -> str:
    """``attack`` label of a figure: the attack's name, ``_release`` for the release view."""
    return attack if view == "client_update" else f"{attack}_release"


def registry_of(result: dict[str, Any]) -> CollectorRegistry:
    """A registry holding ``fl_privacy_attack_auc`` and ``_advantage`` for every figure,
    and nothing else (the test's group in a Pushgateway carries only these)."""
    registry = CollectorRegistry()

    def gauge(name: str) -> Gauge:
        spec = catalog.get(name)
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)

    auc = gauge("fl_privacy_attack_auc")
    adv = gauge("fl_privacy_attack_advantage")
    for section, dp in SECTIONS.items():
        for attack, views in result[section]["attacks"].items():
            for view, figures in views.items():
                label = attack_label(attack, view)
                auc.labels(attack=label, dp=dp).set(figures["auc"])
                adv.labels(attack=label, dp=dp).set(figures["advantage"])
    return registry


def push(result: dict[str, Any], gateway: str, job: str = "flmon-privacy",
         timeout: float = 5.0) -> bool:
    """Push the figures to a Pushgateway (group ``job``, ``federation``); True if it took."""
    from flmon.push import Pusher

    pusher = Pusher(gateway, registry_of(result), job=job,
                    grouping_key={"federation": result["federation"]}, timeout=timeout)
    return pusher.close(timeout) and pusher.errors == 0


def _ci(figures: dict[str, Any]) -> str:
    low, high = figures["auc_ci"]
    return f"{figures['auc']:.3f} [{low:.3f}, {high:.3f}]"


def table(result: dict[str, Any]) -> str:
    """The readable summary ``flmon privacy-test`` prints."""
    dp = result["dp"]
    mode = "central DP (server-side clipping + noise)" if dp["mode"] == "central" \
        else "local DP (each client clips and noises its update)"
    eps = "n/a" if dp["epsilon"] is None else f"{dp['epsilon']:.2f}"
    lines = [
        f"flmon privacy-test: {result['example']} ({result['federation']}), "
        f"{result['nodes']} clients, {result['rounds']} rounds, "
        f"{result['local_epochs']} local epochs, seed {result['seed']}",
        f"DP run: {mode}, noise multiplier {dp['noise']:g}, clipping norm {dp['clip']:g}, "
        f"epsilon {eps} at delta {dp['delta']:g} (Flower's RDP accountant)",
        "",
        "Membership-inference ROC AUC [95% bootstrap CI] (0.5 = chance), mean over "
        "attacked updates; advantage = max(TPR - FPR)",
        f"{'attack':<22} {'view':<14} {'no DP':<22} {'adv':>5}   {'with DP':<22} {'adv':>5}",
    ]
    for attack in ATTACKS:
        for view in VIEWS:
            a = result["no_dp"]["attacks"][attack][view]
            b = dp["attacks"][attack][view]
            lines.append(f"{attack:<22} {view:<14} {_ci(a):<22} {a['advantage']:>5.3f}   "
                         f"{_ci(b):<22} {b['advantage']:>5.3f}")
    lines += [
        "",
        f"Per round ({ATTACKS[0]}, client_update view, no DP): "
        + ", ".join(f"r{r['round']} {r['auc']:.3f}"
                    for r in result["no_dp"]["attacks"][ATTACKS[0]]["client_update"]["rounds"]),
        f"Final global accuracy: {result['no_dp']['accuracy']:.3f} without DP, "
        f"{dp['accuracy']:.3f} with DP",
        "",
        f"client_update: {THREATS['client_update']}.",
        f"release: {THREATS['release']}.",
    ]
    if dp["mode"] == "central":
        lines.append("Central DP clips and noises after the server has received each raw "
                     "update: it protects the release, not the client updates from the "
                     "server itself (use --dp-mode local for that).")
    else:
        lines.append("Local DP noises each update before it leaves the client: it "
                     "protects the client updates from the server and, with them, the release.")
    return "\n".join(lines)
