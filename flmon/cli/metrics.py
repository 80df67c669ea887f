"""``flmon metrics``: print the metric catalog."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flmon import catalog

_FORMATS = {"table": catalog.as_table, "markdown": catalog.as_markdown, "json": catalog.as_json}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "metrics",
        help="print the metric catalog",
        description="Print every fl_* metric flmon exports: name, type, unit, labels, help.",
    )
    parser.add_argument(
        "--format", choices=sorted(_FORMATS), default="table",
        help="output format (default: table; markdown is docs/metrics.md)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(_FORMATS[args.format]())
    return 0
