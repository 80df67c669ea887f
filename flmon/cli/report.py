"""``flmon report``: write one run's report as a self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Query a Prometheus (and, with --alertmanager, an AlertManager) and write one run of a
federation as a single self-contained HTML file: the run's identity (federation, run id,
strategy, Flower and flmon versions, start, end, result), what the flmon Grafana
dashboards show, drawn as static SVG from the dashboards' own queries (rounds and their
durations, training, evaluation and centralized accuracy and loss, per-client
participation and failures, anomaly scores against the alert threshold, quarantined
replies, rejected telemetry, the DP budget), and a timeline of the alerts that fired and
resolved, with their severity, on the same time axis. Signals without data say "no data".

The file needs nothing when opened: no script, no font, image or style is fetched; it
can be attached to a ticket or a Slack thread. Label values (client names come from
federation members) are escaped.

The run is the most recent one of the federation seen within --since before --until
(24h when --since is not given), or the one named by --run; the window spans that run
(from its start to a little after its end) unless --since is given.

Exit codes: 0 written; 1 Prometheus or AlertManager unreachable, a query refused, or no
data for the run (nothing is written); 2 bad arguments or configuration."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write a run's report (charts and alert timeline) as one HTML file",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prometheus", required=True, metavar="URL",
                        help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--alertmanager", metavar="URL",
                        help="AlertManager base URL; adds the alerts it holds at report time "
                             "(state, receivers)")
    parser.add_argument("--federation", metavar="NAME",
                        help="federation label to report on (default: the only federation "
                             "with flmon series; required when there are several)")
    parser.add_argument("--config", type=Path, metavar="FLMON_YAML",
                        help="the flmon.yaml the rules and dashboards were rendered from "
                             "(job names, thresholds); default: flmon's defaults")
    parser.add_argument("--run", metavar="RUN",
                        help="Flower run id (the run_id label of fl_run_info); default: the "
                             "most recent run")
    parser.add_argument("--since", metavar="DURATION",
                        help="Prometheus duration (30m, 2h, 1d): the window starts this long "
                             "before --until; default: at the run's start")
    parser.add_argument("--until", metavar="TIME",
                        help="end of the window: 'now' (default), Unix seconds or an ISO 8601 "
                             "time such as 2026-03-01T12:00:00Z")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                        help="HTML file to write (replaced whole; untouched on error)")
    parser.set_defaults(func=run)


def parse_until(value: str | None) -> float | None:
    """``now``/None -> None; Unix seconds; ISO 8601 (``Z`` or an offset; naive is UTC)."""
    from flmon.cli.main import UsageError

    if value is None or value == "now":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--until {value!r}: not 'now', Unix seconds or an ISO 8601 "
                         "time") from None
    if parsed.tzinfo is None:
        from datetime import timezone

        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def run(args: argparse.Namespace) -> int:
    from flmon.cli.main import UsageError
    from flmon.config import ConfigError, duration_seconds, load_config
    from flmon.report import ReportError, ReportRequest, write_report
    from flmon.report.client import check_url
    from flmon.report.collect import RUN_ID_RE

    since: float | None = None
    if args.since is not None:
        try:
            since = duration_seconds(args.since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    until = parse_until(args.until)
    try:
        check_url(args.prometheus, "--prometheus")
        if args.alertmanager is not None:
            check_url(args.alertmanager, "--alertmanager")
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if args.run is not None and not RUN_ID_RE.match(args.run):
        raise UsageError(f"--run {args.run!r}: a run id is letters, digits, '_', '.', ':' "
                         "or '-'")
    if not (args.out.parent if str(args.out.parent) else Path(".")).is_dir():
        raise UsageError(f"--out {args.out}: directory {args.out.parent} does not exist")
    config = None
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    req = ReportRequest(prometheus=args.prometheus, alertmanager=args.alertmanager,
                        federation=args.federation, run=args.run, since=since, until=until,
                        config=config)
    started = time.monotonic()
    try:
        report = write_report(req, args.out)
    except ReportError as exc:
        print(f"flmon report: error: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB, run {report.identity.run_id} of "
          f"{report.identity.federation}, {len(report.alerts)} alert span(s)) in "
          f"{time.monotonic() - started:.1f}s")
    return 0
