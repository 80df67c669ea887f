"""What the stack's HTTP servers share: a work directory, a loopback port, a start that
waits for readiness and a stop that cleans up.

A subclass names its program (``process_name``), gives its command line for a port
(:meth:`LoopbackServer.argv`) and, where needed, writes its files before the start
(:meth:`LoopbackServer.prepare`) or checks readiness differently
(:meth:`LoopbackServer.is_ready`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

from flmon.stack import http
from flmon.stack.ports import LOOPBACK, free_port
from flmon.stack.process import ManagedProcess, start_listening

S = TypeVar("S", bound="LoopbackServer")
T = TypeVar("T")


class LoopbackServer:
    """A server program on ``127.0.0.1:port`` with its files in a work directory.

    Parameters
    ----------
    workdir
        Where the server's files and log go; a fresh temporary directory (removed on
        stop) when omitted.
    port
        Listen port; a free one when omitted (and another one if it is taken meanwhile).
    binary
        The program.
    ready_timeout
        Seconds to wait for readiness.
    """

    process_name: ClassVar[str] = "server"
    display_name: ClassVar[str] = "server"

    def __init__(
        self,
        *,
        workdir: Path | None,
        port: int | None,
        binary: str,
        ready_timeout: float,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = (Path(tempfile.mkdtemp(prefix=f"flmon-{self.process_name}-"))
                        if workdir is None else Path(workdir))
        self._auto_port = port is None
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.log_path = self.workdir / f"{self.process_name}.log"
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9090``."""
        return f"http://{LOOPBACK}:{self.port}"

    def argv(self, port: int) -> list[str]:
        """The command line that serves on ``port``."""
        raise NotImplementedError

    def is_ready(self, port: int) -> bool:
        """Whether the server on ``port`` is ready (``/-/ready`` answers 200)."""
        return http.is_ok(f"http://{LOOPBACK}:{port}/-/ready")

    def prepare(self) -> None:
        """Write what the server reads before it starts."""
        self.workdir.mkdir(parents=True, exist_ok=True)

    def start(self: S) -> S:
        """Prepare, start the program and wait until it is ready."""
        self.prepare()
        try:
            self._process, self.port = start_listening(
                self.process_name, self.argv, self.log_path, self.port,
                ready=self.is_ready,
                timeout=self.ready_timeout,
                pick_port=free_port if self._auto_port else None,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the program; remove the work directory if it was a temporary one."""
        if self._process is not None:
            self._process.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_for(
        self,
        probe: Callable[[], T],
        timeout: float,
        what: str = "condition",
        interval: float = 0.5,
    ) -> T:
        """Poll ``probe()`` until it returns something truthy and return that.

        Raises ``TimeoutError`` after ``timeout`` seconds, and the process's error with
        its log tail at once if the server exited.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.process.check_running()
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.display_name}: {what} not met after {timeout:.0f}s")
            time.sleep(interval)

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise RuntimeError(f"{self.display_name} was not started")
        return self._process

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
