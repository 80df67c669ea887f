"""``flmon watch``: export a Flower federation's state from its SuperLink's Control API."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Any

from flmon.ports import WATCH_PORT as DEFAULT_PORT
from flmon.ports import live_ports

DESCRIPTION = """\
Poll a Flower SuperLink's Control API (ListNodes and ListRuns, the calls behind
`flwr supernode ls` and `flwr ls`) every --interval and serve the federation's state on
/metrics (and /healthz): fl_superlink_up, fl_supernodes{status}, fl_supernode_online{client},
heartbeat ages, fl_runs{status}, fl_runs_finished_total{result}, histograms of finished runs'
durations, bytes and ClientApp runtime, and the watch's own health (polls, poll errors by
reason, poll duration). Run one watch per federation, next to its SuperLink: it sees nodes and
runs between runs too, when no ServerApp exists.

The watch only reads. Note that ListRuns, like `flwr ls`, makes the SuperLink clean up the
left-over messages and objects of runs that have finished. Every call has --timeout; while the
SuperLink does not answer, fl_superlink_up is 0, node and run counts are absent, the per-node
series and fl_run_running keep their last known values, the reason is logged (ECS JSON on
stderr) and the watch keeps serving. A node the SuperLink stops listing (a SuperLink restarted
with in-memory state) stays offline until --stale-after after its last heartbeat.

With --pushgateway it also deletes the Pushgateway groups (keyed by run_id) of runs that ended
more than --stale-after ago.
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watch", help="export a federation's nodes and runs from its SuperLink's Control API",
        description=DESCRIPTION, formatter_class=_Formatter,
    )
    parser.add_argument("--superlink", required=True, metavar="HOST:PORT",
                        help="the SuperLink's address (its one HTTP port: Control, Fleet and "
                             "Runtime APIs)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true",
                     help="plain HTTP to the SuperLink (a SuperLink started with --insecure)")
    tls.add_argument("--root-certificates", metavar="CA.pem",
                     help="PEM file of the CA that signed the SuperLink's certificate "
                          "(default: the system's CAs)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to serve /metrics and /healthz on; flmon's watch port is "
                             "below the ServerApps' live exporter ports "
                             f"{live_ports()[0]}-{live_ports()[-1]}, so concurrent runs on "
                             "the host never take it")
    parser.add_argument("--addr", default="127.0.0.1",
                        help="address to bind (0.0.0.0 in a pod)")
    parser.add_argument("--interval", default="5s",
                        help="time between polls (Prometheus duration: 500ms, 5s, 1m)")
    parser.add_argument("--timeout", default="5s",
                        help="timeout of each HTTP call to the SuperLink or Pushgateway")
    parser.add_argument("--web-config", metavar="FILE",
                        help="web configuration file (Prometheus exporter-toolkit format: TLS, "
                             "client certificates, basic auth, bearer token) for /metrics")
    parser.add_argument("--client-identity", choices=("node_id", "pseudonym", "none"),
                        default="node_id",
                        help="value of the client label of per-node series: the node id, a keyed "
                             "pseudonym (same key as the ServerApp's, so series join) or none")
    parser.add_argument("--pseudonym-key-file", metavar="FILE",
                        help="file holding the pseudonym key (>= 16 bytes); needed with "
                             "--client-identity pseudonym")
    parser.add_argument("--max-client-labels", type=int, default=50, metavar="N",
                        help="nodes with a client label of their own (in registration order); "
                             "the rest are counted in fl_supernodes only")
    parser.add_argument("--pushgateway", metavar="URL",
                        default=os.environ.get("FLMON_PUSHGATEWAY") or None,
                        help="Pushgateway whose ended runs' groups are deleted after "
                             "--stale-after (default: $FLMON_PUSHGATEWAY; unset: no cleanup)")
    parser.add_argument("--pushgateway-username", metavar="USER",
                        default=os.environ.get("FLMON_PUSHGATEWAY_USERNAME") or None,
                        help="basic-auth user of a Pushgateway behind a web config (default: "
                             "$FLMON_PUSHGATEWAY_USERNAME)")
    parser.add_argument("--pushgateway-password-file", metavar="FILE",
                        default=os.environ.get("FLMON_PUSHGATEWAY_PASSWORD_FILE") or None,
                        help="file holding that user's password (default: "
                             "$FLMON_PUSHGATEWAY_PASSWORD_FILE); never logged")
    parser.add_argument("--stale-after", default="30m", metavar="DURATION",
                        help="how long an ended run's Pushgateway group is kept, and a node "
                             "the SuperLink no longer lists is reported offline, after its "
                             "last heartbeat (lifecycle.stale_after in flmon.yaml)")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")
    parser.set_defaults(func=run)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's lines; shows defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _duration(name: str, value: str, allow_zero: bool = False) -> float:
    from flmon.cli.main import UsageError
    from flmon.config import duration_seconds

    try:
        seconds = duration_seconds(value)
    except ValueError:
        raise UsageError(
            f"{name}: {value!r} is not a duration such as 500ms, 5s, 1m, 30m") from None
    if seconds <= 0 and not (allow_zero and seconds == 0):
        raise UsageError(f"{name} must be more than 0")
    return seconds


def _superlink(value: str) -> str:
    from flmon.cli.main import UsageError

    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--superlink: {value!r} is not HOST:PORT")
    return value


def run(args: argparse.Namespace) -> int:
    from flmon.cli.main import UsageError

    superlink = _superlink(args.superlink)
    interval = _duration("--interval", args.interval)
    timeout = _duration("--timeout", args.timeout)
    stale_after = _duration("--stale-after", args.stale_after, allow_zero=True)
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port: {args.port} is not a TCP port")
    if args.max_client_labels < 0:
        raise UsageError("--max-client-labels must be >= 0")
    if args.root_certificates and not Path(args.root_certificates).is_file():
        raise UsageError(f"--root-certificates: {args.root_certificates} is not a file")
    key: bytes | None = None
    if args.client_identity == "pseudonym":
        if not args.pseudonym_key_file:
            raise UsageError("--client-identity pseudonym needs --pseudonym-key-file")
        try:
            key = Path(args.pseudonym_key_file).read_bytes().strip()
        except OSError as exc:
            raise UsageError(f"--pseudonym-key-file: {exc}") from None
    password: str | None = None
    if args.pushgateway_username and args.pushgateway_password_file:
        try:
            password = Path(args.pushgateway_password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--pushgateway-password-file: {exc}") from None
    elif args.pushgateway_username:
        raise UsageError("--pushgateway-username needs --pushgateway-password-file")
    from flmon.exporter import start_exporter
    from flmon.labels import ClientLabeler
    from flmon.logs import configure_logging
    from flmon.watch import Watch, WatchOptions

    try:
        labeler = ClientLabeler(args.max_client_labels, args.client_identity, key)
    except ValueError as exc:
        raise UsageError(f"--pseudonym-key-file: {exc}") from None
    if password is not None and len(password) >= 6:
        from flmon.logs import register_secret

        register_secret(password)
    configure_logging(args.log_level, service_name="flmon-watch", superlink=superlink)
    options = WatchOptions(superlink=superlink, insecure=args.insecure,
                           root_certificates=args.root_certificates, interval=interval,
                           timeout=timeout, pushgateway=args.pushgateway,
                           pushgateway_username=args.pushgateway_username,
                           pushgateway_password=password, stale_after=stale_after)
    try:
        watch = Watch(options, labeler)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        exporter = start_exporter(args.port, addr=args.addr, registry=watch.registry,
                                  health=watch.healthy, web_config=args.web_config)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.addr}:{args.port}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"--web-config: {exc}") from None
    import logging

    logging.getLogger("flmon.watch").info(
        "flmon watch serving %s, polling %s every %ss", exporter.url, superlink, interval)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watch.start()
    try:
        stop.wait()
    finally:
        watch.stop()
        exporter.close()
    return 0
