"""``flmon demo``: the reference deployment on loopback, one scenario, a summary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flmon.reference import EXAMPLE_NAMES as EXAMPLES
from flmon.reference.faults import SCENARIOS


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a monitored Flower federation with Prometheus, AlertManager and Slack",
        description=(
            "Start the reference deployment as real processes on 127.0.0.1: a Flower "
            "SuperLink and SuperNodes running the hospitals (healthcare) or banks (fraud) "
            "example instrumented with flmon, a Pushgateway, Prometheus loaded with the "
            "rendered rules, AlertManager loaded with the rendered configuration, and a "
            "Slack-compatible receiver that prints each notification. Shows progress per "
            "round and ends with a summary: rounds, final global accuracy next to a "
            "centralized baseline, alerts fired and resolved, Slack messages, URLs, the "
            "rendered dashboards and report.html (flmon report of the run, written to the "
            "work directory before Prometheus stops). Ctrl-C stops every process it "
            "started. Exit code 0 when "
            "the scenario showed what it should (its alerts fired and, after recovery, "
            "resolved; no unexpected critical alert), 1 otherwise."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenario", choices=SCENARIOS, default="healthy",
        help="fault to inject: healthy (none), node-killed (a SuperNode is SIGKILLed after "
             "round 1 and restarted after round 3, once FLNodeOffline fired for it), "
             "straggler (a node sleeps past the round timeout), poisoned (a sign-flipped, "
             "scaled update), accuracy-collapse "
             "(relabelled data at every node for a round), privacy-budget (central DP whose "
             "epsilon budget runs out), privacy-leak (flmon privacy-test's membership-"
             "inference figures pushed: FLPrivacyLeakage)",
    )
    parser.add_argument("--example", choices=EXAMPLES, default="healthcare",
                        help="hospitals (breast-cancer data) or banks (generated fraud data)")
    parser.add_argument("--nodes", type=int, default=3, help="SuperNodes to start (>= 3)")
    parser.add_argument("--rounds", type=int, default=5, help="federated rounds")
    parser.add_argument("--dp", action="store_true",
                        help="central DP (Flower's server-side fixed clipping with an RDP "
                             "accountant) in any scenario, so fl_dp_epsilon_spent moves")
    parser.add_argument("--workdir", type=Path, default=Path(".flmon-demo"),
                        help="configuration, rendered files and process logs")
    parser.add_argument("--hold", action="store_true",
                        help="after the summary keep Prometheus and AlertManager up until Ctrl-C")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip training the centralized baseline")
    parser.add_argument("--insecure", action="store_true",
                        help="run the SuperLink without TLS and accept any SuperNode; by "
                             "default it serves TLS (a CA, server certificate and SuperNode "
                             "keys made in the work directory) and accepts only SuperNodes "
                             "registered with `flwr supernode register`"),
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flmon.cli.main import UsageError
    from flmon.demo.app import DemoOptions, run_demo

    if args.nodes < 3:
        raise UsageError("--nodes must be at least 3")
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    from flmon.demo.scenarios import get

    needed = get(args.scenario).min_rounds
    if args.rounds < needed:
        raise UsageError(f"scenario {args.scenario} needs --rounds {needed} or more")
    options = DemoOptions(
        scenario=args.scenario, example=args.example, nodes=args.nodes, rounds=args.rounds,
        dp=args.dp, workdir=args.workdir, hold=args.hold, baseline=args.baseline,
        insecure=args.insecure,
    )
    try:
        return run_demo(options)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
