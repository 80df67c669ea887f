"""``flmon render``: render flmon.yaml into rules, AlertManager, dashboards and more."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from flmon.render_targets import TARGET_NAMES, targets_help

_DEFAULT_CONFIGS = ("flmon.yaml", "examples/flmon.yaml")

_EPILOG = targets_help() + """
Every target is rendered and validated in memory first; files are written only when all
of them pass, and a bad flmon.yaml writes nothing.

exit status: 0 success (or --check: up to date), 1 --check found stale files,
2 invalid configuration or arguments.

examples:
  flmon render --config flmon.yaml --out build/
  flmon render --config flmon.yaml --out build/ --only prometheus,alertmanager
  flmon render --check            # CI: exit 1 if the committed files are stale
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "render",
        help="render flmon.yaml into rules, AlertManager, dashboards, Datadog and ES config",
        description=(
            "Render one flmon.yaml into Prometheus rules (with promtool tests), an "
            "AlertManager configuration with Slack templates, Grafana and Kibana dashboards, "
            "Datadog check, monitors and dashboard, Elasticsearch index template and ILM "
            "policy, and the files of the Helm chart. Deterministic: the same flmon.yaml "
            "gives the same bytes."),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", metavar="PATH",
        help="flmon.yaml to read (default: $FLMON_CONFIG, else ./flmon.yaml if it exists, "
             "else ./examples/flmon.yaml)")
    parser.add_argument(
        "--out", metavar="DIR", default=".",
        help="directory to write into, created if missing (default: the current directory)")
    parser.add_argument(
        "--only", metavar="TARGETS",
        help=f"comma-separated targets to render (default: all): {','.join(TARGET_NAMES)}")
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 and list the files under --out that differ from a "
             "fresh render (missing, changed or no longer rendered)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(func=run)


def _config_path(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    env = os.environ.get("FLMON_CONFIG")
    if env:
        return Path(env)
    for candidate in _DEFAULT_CONFIGS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def _fail(message: str) -> int:
    print(f"flmon render: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from flmon.config import ConfigError, load_config
    from flmon.render import RenderError, check, render, write

    path = _config_path(args.config)
    if path is None:
        return _fail("no configuration: pass --config PATH (looked for "
                     f"{' and '.join(_DEFAULT_CONFIGS)})")
    only = None
    if args.only is not None:
        only = [t.strip() for t in args.only.split(",") if t.strip()]
        unknown = [t for t in only if t not in TARGET_NAMES]
        if unknown or not only:
            return _fail(f"--only: unknown target(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {','.join(TARGET_NAMES)}")
    try:
        cfg = load_config(path)
        files = render(cfg, only)
    except (ConfigError, RenderError) as exc:
        return _fail(str(exc))
    out = Path(args.out)
    if args.check:
        stale = check(files, out)
        if stale:
            print(f"flmon render --check: {len(stale)} file(s) under {out} are stale; run "
                  f"`flmon render --config {path} --out {out}`:", file=sys.stderr)
            for rel, why in stale:
                print(f"  {rel} ({why})", file=sys.stderr)
            return 1
        if not args.quiet:
            print(f"flmon render --check: {len(files)} file(s) under {out} are up to date")
        return 0
    try:
        changed = write(files, out)
    except OSError as exc:
        return _fail(f"cannot write under {out}: {exc}")
    if not args.quiet:
        print(f"flmon render: {len(files)} file(s) under {out} from {path}, "
              f"{len(changed)} changed")
        for rel in changed:
            print(f"  {rel}")
    return 0
