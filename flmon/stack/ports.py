"""Free TCP ports on the loopback interface.

Every process the stack starts listens on ``127.0.0.1`` only. A port is picked by
binding to port 0 and reading back what the kernel chose; the socket is closed before
the port is handed out, so there is a short window in which another program could take
it. :func:`free_port` never returns the same port twice within one Python process,
which removes the race between our own processes.
"""

from __future__ import annotations

import socket
import threading
import time

LOOPBACK = "127.0.0.1"
"""The only address the stack binds to or connects to."""

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free now and not handed out before."""
    _require_loopback(host)
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free loopback port found after 100 attempts")


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct free ports (see :func:`free_port`)."""
    return [free_port(host) for _ in range(count)]


def is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    _require_loopback(host)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(port: int, timeout: float = 10.0, host: str = LOOPBACK) -> None:
    """Wait until ``host:port`` accepts connections; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(port, host):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def _require_loopback(host: str) -> None:
    if host not in (LOOPBACK, "localhost", "::1"):
        raise ValueError(f"the stack only uses loopback addresses, not {host!r}")
