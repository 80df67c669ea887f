"""A real Prometheus Pushgateway on loopback.

No persistence file (the Debian default points at ``/var/lib``), the admin API on so a
test can wipe it, its log in a work directory.
"""

from __future__ import annotations

from pathlib import Path

from flmon.stack import http
from flmon.stack.ports import LOOPBACK, is_listening
from flmon.stack.server import LoopbackServer


class Pushgateway(LoopbackServer):
    """Pushgateway on ``127.0.0.1:port``.

    Parameters
    ----------
    workdir
        Where the log goes; a fresh temporary directory (removed on stop) when omitted.
    port
        Listen port; a free one when omitted.
    binary
        The Pushgateway program (``prometheus-pushgateway`` on Debian).
    """

    process_name = "pushgateway"
    display_name = "Pushgateway"

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        port: int | None = None,
        binary: str = "prometheus-pushgateway",
        ready_timeout: float = 30.0,
        web_config: Path | None = None,
    ) -> None:
        super().__init__(workdir=workdir, port=port, binary=binary, ready_timeout=ready_timeout)
        self.web_config = web_config

    @property
    def address(self) -> str:
        """``host:port``, the form ``instrument(pushgateway=...)`` takes."""
        return f"{LOOPBACK}:{self.port}"

    def argv(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--web.listen-address={LOOPBACK}:{port}",
            "--persistence.file=",
            "--web.enable-admin-api",
            "--log.level=info",
            *([f"--web.config.file={self.web_config}"] if self.web_config else []),
        ]

    def is_ready(self, port: int) -> bool:
        if self.web_config is not None:  # every path needs credentials then
            return is_listening(port)
        return super().is_ready(port)

    def metrics_text(self) -> str:
        """The exposition the Pushgateway serves on ``/metrics`` (all groups)."""
        return http.get_text(f"{self.url}/metrics")

    def push_text(self, job: str, text: str, **grouping: str) -> None:
        """PUT an exposition (text format) into the group ``job`` + ``grouping``."""
        path = "/".join(f"{k}/{v}" for k, v in grouping.items())
        url = f"{self.url}/metrics/job/{job}" + (f"/{path}" if path else "")
        status, body = http.request(
            "PUT", url, body=text.encode(), headers={"Content-Type": "text/plain"}
        )
        if status not in (200, 202):
            raise http.HTTPError(url, status, body.decode(errors="replace"))

    def wipe(self) -> None:
        """Delete every group (admin API)."""
        url = f"{self.url}/api/v1/admin/wipe"
        status, body = http.request("PUT", url)
        if status not in (200, 202):
            raise http.HTTPError(url, status, body.decode(errors="replace"))
