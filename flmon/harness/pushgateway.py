"""A real Prometheus Pushgateway on loopback.

No persistence file (the Debian default points at ``/var/lib``), the admin API on so a
test can wipe it, its log in a work directory.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from flmon.harness import http
from flmon.harness.ports import LOOPBACK, free_port, is_listening
from flmon.harness.process import ManagedProcess, start_listening


class Pushgateway:
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

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        port: int | None = None,
        binary: str = "prometheus-pushgateway",
        ready_timeout: float = 30.0,
        web_config: Path | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="flmon-pushgateway-")) if workdir is None \
            else Path(workdir)
        self._auto_port = port is None
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.log_path = self.workdir / "pushgateway.log"
        self.web_config = web_config
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9091``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, the form ``instrument(pushgateway=...)`` takes."""
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Pushgateway:
        """Start the Pushgateway and wait for ``/-/ready``."""
        self.workdir.mkdir(parents=True, exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                self.binary,
                f"--web.listen-address={LOOPBACK}:{port}",
                "--persistence.file=",
                "--web.enable-admin-api",
                "--log.level=info",
                *([f"--web.config.file={self.web_config}"] if self.web_config else []),
            ]

        def ready(port: int) -> bool:
            if self.web_config is not None:  # every path needs credentials then
                return is_listening(port)
            return http.is_ok(f"http://{LOOPBACK}:{port}/-/ready")

        try:
            self._process, self.port = start_listening(
                "pushgateway", argv, self.log_path, self.port,
                ready=ready,
                timeout=self.ready_timeout,
                pick_port=free_port if self._auto_port else None,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the Pushgateway; remove the work directory if it was a temporary one."""
        if self._process is not None:
            self._process.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise RuntimeError("Pushgateway was not started")
        return self._process

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

    def __enter__(self) -> Pushgateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
