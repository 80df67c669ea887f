"""A loopback server that answers Flower's Control API calls from a synthetic state.

It speaks the real wire format (protobuf over HTTP, ``POST /v1/control/list-nodes`` and
``/v1/control/list-runs`` with ``application/protobuf`` bodies) with Flower's own message
classes, and pages ``ListRuns`` as the SuperLink does (newest ``pending_at`` first,
``limit`` default 20, ``skip``). It lets benchmarks size a federation no machine here
could run (1,000 nodes, 10,000 runs) and tests make a SuperLink answer slowly or with
an HTTP error. It is not a SuperLink: everything else answers 404.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flmon.stack.ports import LOOPBACK

MEDIA_TYPE = "application/protobuf"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def synthetic_nodes(count: int, now: float, offline_every: int = 10) -> list[Any]:
    """``count`` NodeInfo messages: every ``offline_every``-th node offline."""
    from flwr.proto.node_pb2 import NodeInfo

    nodes = []
    for i in range(count):
        offline = offline_every > 0 and i % offline_every == offline_every - 1
        nodes.append(NodeInfo(
            node_id=1_000_000 + i, owner_aid="sys_noauth", owner_name="sys_noauth",
            status="offline" if offline else "online",
            registered_at=_iso(now - 86400 + i), last_activated_at=_iso(now - 3600),
            online_until=now + (-30.0 if offline else 45.0), heartbeat_interval=30.0,
        ))
    return nodes


def synthetic_runs(count: int, now: float, running: int = 2) -> list[Any]:
    """``count`` Run messages: ``running`` in progress, the rest finished (mostly
    completed, every 20th failed, every 50th stopped)."""
    from flwr.proto.run_pb2 import Run, RunStatus

    runs = []
    for i in range(count):
        pending = now - (count - i) * 120.0
        if i >= count - running:
            status = RunStatus(status="running")
            finished = ""
        else:
            sub = "failed" if i % 20 == 0 else "stopped" if i % 50 == 1 else "completed"
            status = RunStatus(status="finished", sub_status=sub)
            finished = _iso(pending + 100.0)
        runs.append(Run(
            run_id=10_000_000 + i, fab_id="flmon/bench", fab_version="1.0.0",
            pending_at=_iso(pending), starting_at=_iso(pending + 1.0),
            running_at=_iso(pending + 2.0), finished_at=finished, status=status,
            federation="default", bytes_sent=1_000_000 + i, bytes_recv=2_000_000 + i,
            clientapp_runtime=50.0 + i % 7,
        ))
    return runs


class SyntheticControlApi:
    """Serve ``nodes`` and ``runs`` on ``127.0.0.1:port`` (0 picks a free port).

    ``delay`` seconds are slept before each answer; ``status`` other than 200 makes
    every call answer that HTTP status.
    """

    def __init__(self, nodes: Sequence[Any] = (), runs: Sequence[Any] = (),
                 port: int = 0, delay: float = 0.0, status: int = 200) -> None:
        self.nodes = list(nodes)
        # The SuperLink lists runs newest first.
        self.runs = sorted(runs, key=lambda r: r.pending_at, reverse=True)
        self.delay = delay
        self.status = status
        self.calls: dict[str, int] = {}
        self._server = ThreadingHTTPServer((LOOPBACK, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> SyntheticControlApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SyntheticControlApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, path: str, body: bytes) -> bytes | None:
        from flwr.proto.control_pb2 import (
            ListNodesResponse,
            ListRunsRequest,
            ListRunsResponse,
        )

        now = _iso(time.time())
        if path == "/v1/control/list-nodes":
            nodes: bytes = ListNodesResponse(nodes_info=self.nodes, now=now).SerializeToString()
            return nodes
        if path == "/v1/control/list-runs":
            request = ListRunsRequest()
            request.ParseFromString(body)
            limit = request.limit if request.HasField("limit") else 20
            skip = request.skip if request.HasField("skip") else 0
            page = self.runs[skip:skip + limit]
            runs: bytes = ListRunsResponse(run_dict={r.run_id: r for r in page},
                                           now=now).SerializeToString()
            return runs
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                api.calls[self.path] = api.calls.get(self.path, 0) + 1
                if api.delay:
                    time.sleep(api.delay)
                payload = api.answer(self.path, body) if api.status == 200 else None
                if payload is None:
                    code = api.status if api.status != 200 else 404
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", MEDIA_TYPE)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flmon.stack.control_api --nodes N --runs M --port P``: serve until
    killed (benchmarks run it in a process of its own)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    now = time.time()
    api = SyntheticControlApi(synthetic_nodes(args.nodes, now), synthetic_runs(args.runs, now),
                              port=args.port).start()
    print(api.address, flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
