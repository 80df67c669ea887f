"""``flmon watch`` as a real process on loopback, for the end-to-end tests and the demo."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from flmon.stack.ports import LOOPBACK, free_port, is_listening
from flmon.stack.process import ManagedProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, timeout: float = 5.0) -> Samples:
    """The samples of an exposition: ``(name, labels) -> value``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of ``name`` with exactly ``labels``, None when absent."""
    return samples.get((name, frozenset(labels.items())))


class WatchProcess:
    """``python -m flmon.cli.main watch --superlink ADDRESS --insecure`` on a free port.

    Parameters
    ----------
    superlink
        ``host:port`` of the SuperLink.
    log_path
        The process's log (ECS JSON).
    args
        Further ``flmon watch`` arguments (``--interval 1s``, ``--pushgateway ...``).
    port
        Listen port; a free one when omitted.
    env
        Environment of the process.
    """

    def __init__(self, superlink: str, log_path: Path, args: Sequence[str] = (),
                 port: int | None = None, env: Mapping[str, str] | None = None,
                 root_certificates: Path | None = None) -> None:
        self.port = port or free_port()
        # A SuperLink serving TLS is watched over TLS, trusting its CA; else plain HTTP.
        transport = (["--root-certificates", str(root_certificates)]
                     if root_certificates is not None else ["--insecure"])
        argv = [sys.executable, "-m", "flmon.cli.main", "watch", "--superlink", superlink,
                *transport, "--addr", LOOPBACK, "--port", str(self.port), *args]
        self.process = ManagedProcess("flmon-watch", argv, log_path, env=env)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/metrics"

    def start(self, timeout: float = 30.0) -> WatchProcess:
        self.process.start()
        self.process.wait_until(lambda: is_listening(self.port), timeout, "listening")
        return self

    def stop(self) -> None:
        self.process.stop()

    def metrics(self) -> Samples:
        return scrape(self.url)

    def wait_for(self, name: str, expected: float, timeout: float = 30.0,
                 **labels: str) -> Samples:
        """Wait until ``name{labels}`` reads ``expected``; return that scrape."""
        last: list[Samples] = [{}]

        def ready() -> bool:
            last[0] = self.metrics()
            return value(last[0], name, **labels) == expected

        self.process.wait_until(ready, timeout, f"showing {name}{labels} == {expected}",
                                interval=0.25)
        return last[0]

    def __enter__(self) -> WatchProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
