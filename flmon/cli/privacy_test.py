"""``flmon privacy-test``: membership inference on a reference federation, DP off and on."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flmon.reference import EXAMPLE_NAMES as EXAMPLES


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except ``None`` ones (their help says what the default is)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "privacy-test",
        help="measure what a curious server learns from the updates, with and without DP",
        description=(
            "Run a reference federation (the hospitals or banks example: its model, data "
            "partitions and training settings) in this process twice, once without DP "
            "and once with DP, while an honest-but-curious server keeps every update. "
            "Membership-inference attacks (the headline: each candidate record's weight "
            "in a non-negative least-squares decomposition of the update into the "
            "candidates' loss gradients; also the alignment of each record's gradient "
            "with the update, and the loss difference across it) then score each "
            "client's training records against its held-out records, per client and "
            "round, on two views: each client's update as the server receives it, and "
            "each aggregate the server releases. Prints the ROC AUC (0.5 = chance) with a "
            "bootstrap confidence interval and the advantage max(TPR - FPR), next to the "
            "RDP accountant's epsilon. Central DP (Flower's server-side fixed clipping) "
            "protects the release, not the updates from the server; local DP (Flower's "
            "LocalDpMod) protects both. Exit code 0 when the test ran."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--example", default="healthcare",
                        help="reference app: healthcare (breast-cancer data) or fraud "
                             "(generated card transactions)")
    parser.add_argument("--rounds", type=int, default=3, help="federated rounds (>= 1)")
    parser.add_argument("--nodes", type=int, default=3,
                        help="clients, each one partition of the example's data (>= 2)")
    parser.add_argument("--dp-noise", type=float, default=1.0,
                        help="noise multiplier of the DP run (> 0)")
    parser.add_argument("--clip", type=float, default=None,
                        help="clipping norm of the DP run (default: the example's "
                             "dp-clipping-norm)")
    parser.add_argument("--dp-mode", default="central",
                        help="central (Flower's server-side fixed clipping) or local "
                             "(Flower's LocalDpMod on every client)")
    parser.add_argument("--local-epochs", type=int, default=None,
                        help="clients' local epochs (default: the example's local-epochs)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the model, shuffling, DP noise and bootstrap "
                             "(default: the example's seed)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write every figure as JSON to PATH (written whole, or "
                             "not at all)")
    parser.add_argument("--pushgateway", default=None, metavar="URL",
                        help="push fl_privacy_attack_auc and fl_privacy_attack_advantage "
                             "to this Pushgateway (job flmon-privacy, federation label of "
                             "the example; default: no push)")
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> Any:
    from flmon.cli.main import UsageError
    from flmon.privacy import PrivacyTestOptions

    if args.example not in EXAMPLES:
        raise UsageError(f"--example must be one of {', '.join(EXAMPLES)}, not {args.example!r}")
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    if args.nodes < 2:
        raise UsageError("--nodes must be at least 2")
    if not (math.isfinite(args.dp_noise) and args.dp_noise > 0):
        raise UsageError("--dp-noise must be a finite number above 0")
    if args.clip is not None and not (math.isfinite(args.clip) and args.clip > 0):
        raise UsageError("--clip must be a finite number above 0")
    if args.dp_mode not in ("central", "local"):
        raise UsageError(f"--dp-mode must be central or local, not {args.dp_mode!r}")
    if args.local_epochs is not None and args.local_epochs < 1:
        raise UsageError("--local-epochs must be at least 1")
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"--json: directory {args.json.parent} does not exist")
    return PrivacyTestOptions(
        example=args.example, rounds=args.rounds, nodes=args.nodes, dp_noise=args.dp_noise,
        clip=args.clip, dp_mode=args.dp_mode, seed=args.seed, local_epochs=args.local_epochs,
    )


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` to ``path`` atomically (a temporary file renamed into place)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from flmon.cli.main import UsageError

    options = _options(args)
    from flmon.privacy import run_privacy_test
    from flmon.privacy.report import push, table

    started = time.monotonic()
    try:
        result = run_privacy_test(options)
    except FileNotFoundError as exc:
        raise UsageError(f"{exc} (run from the flmon repository)") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"needs {exc.name}: install flmon[flower] and scikit-learn") from None
    print(table(result))
    print(f"\n{time.monotonic() - started:.1f} s")
    if args.json is not None:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.pushgateway:
        if push(result, args.pushgateway):
            print(f"pushed to {args.pushgateway}")
        else:
            print(f"flmon privacy-test: push to {args.pushgateway} failed", file=sys.stderr)
            return 1
    return 0
