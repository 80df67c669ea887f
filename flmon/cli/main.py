"""Entry point of the ``flmon`` command: one module per subcommand.

Each module in ``COMMANDS`` (``-`` in a command name is ``_`` in its module name) defines
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed namespace and returning an exit code.
Modules are imported only to build the parser; heavy imports happen inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flmon import __version__

COMMANDS: tuple[str, ...] = ("metrics", "render", "demo", "watch", "privacy-test", "report")


class UsageError(Exception):
    """A problem with the user's input; printed to stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flmon",
        description="Monitoring and alerting for federated learning (Flower).",
    )
    parser.add_argument("--version", action="version", version=f"flmon {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"flmon.cli.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"flmon {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flmon {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    # Run the module under its own name, so that subcommands raise the UsageError this
    # function catches (``python -m`` would otherwise load this file twice).
    from flmon.cli import main as _cli

    sys.exit(_cli.main())
