"""One child process with its own log file, stopped for sure.

:class:`ManagedProcess` is what every stack component runs on: the process gets its
own arguments, its stdout and stderr go to a log file, and :meth:`ManagedProcess.stop`
sends SIGTERM, waits, then SIGKILL. Children run in their own session, so a Ctrl-C in
the terminal reaches only the Python process, which then stops them in order (context
managers, ``finally`` blocks). As a last resort, on Linux each child is asked to get
SIGTERM when its parent dies, and an ``atexit`` hook stops whatever is still running.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class ProcessError(RuntimeError):
    """A stack process failed to start or exited early; the message has its log tail."""


class ManagedProcess:
    """A child process with a log file and a reliable :meth:`stop`.

    Parameters
    ----------
    name
        Short name used in messages.
    argv
        Program and arguments.
    log_path
        File that receives the process' stdout and stderr (appended).
    env
        Environment; the parent's when omitted.
    cwd
        Working directory.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Start the process; raise :class:`ProcessError` if the program is missing."""
        if self._proc is not None:
            raise ProcessError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            except FileNotFoundError as exc:
                raise ProcessError(f"{self.name}: program not found: {self.argv[0]}") from exc
        with _live_lock:
            _live.add(self)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate the process (and its process group), kill it after ``timeout`` s.

        Returns the exit code, or ``None`` if the process was never started. Safe to call
        more than once.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=timeout)
        # Reap anything the process left behind in its own group.
        self._signal(signal.SIGKILL)
        with _live_lock:
            _live.discard(self)
        return proc.returncode

    def kill(self) -> None:
        """Kill the process with SIGKILL at once (a crash, as a fault scenario wants it)."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGKILL)
            self._proc.wait(timeout=10)

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)
        # The group may already be gone while the leader is not yet reaped.
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    # --- state -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id, ``None`` before :meth:`start`."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once exited, else ``None``."""
        return self._proc.poll() if self._proc is not None else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit and return its exit code."""
        if self._proc is None:
            raise ProcessError(f"{self.name} was not started")
        return self._proc.wait(timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log file."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        """Raise :class:`ProcessError` with the log tail if the process has exited."""
        if not self.running:
            raise ProcessError(
                f"{self.name} exited with code {self.returncode}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float,
        what: str = "ready",
        interval: float = 0.1,
    ) -> None:
        """Poll ``ready()`` until true; raise if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            if ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.name} not {what} after {timeout:.0f}s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def __enter__(self) -> ManagedProcess:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited={self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


def stop_all(timeout: float = 5.0) -> None:
    """Stop every process started through this module that is still running."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=timeout)


atexit.register(stop_all)


def start_listening(
    name: str,
    argv_for: Callable[[int], Sequence[str]],
    log_path: Path,
    port: int,
    *,
    ready: Callable[[int], bool],
    timeout: float,
    pick_port: Callable[[], int] | None = None,
    attempts: int = 3,
) -> tuple[ManagedProcess, int]:
    """Start a server on ``port`` and wait until ``ready(port)``.

    When the port was picked automatically (``pick_port`` given) and another program took
    it in the meantime ("address already in use" in the log), pick another and try again.
    Returns the running process and the port it listens on.
    """
    for attempt in range(attempts):
        proc = ManagedProcess(name, argv_for(port), log_path).start()
        try:
            proc.wait_until(lambda p=port: ready(p), timeout, "ready")  # type: ignore[misc]
            return proc, port
        except BaseException:
            in_use = "address already in use" in proc.log_tail(50).lower()
            proc.stop()
            if pick_port is None or not in_use or attempt == attempts - 1:
                raise
            port = pick_port()
    raise ProcessError(f"{name}: no attempt left")  # pragma: no cover
