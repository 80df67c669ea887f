"""A real AlertManager on loopback, with an API helper.

Started with clustering off (``--cluster.listen-address=`` empty), its storage in a work
directory, and the configuration written there; notification templates given to the
constructor are copied next to it and the configuration's ``templates`` points at them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from flmon.harness import http
from flmon.harness.ports import LOOPBACK, free_port
from flmon.harness.process import ManagedProcess, start_listening

T = TypeVar("T")


def check_config(path: Path, amtool: str = "amtool") -> str:
    """Run ``amtool check-config`` on ``path``; return its output, raise if it fails."""
    done = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ValueError(f"amtool check-config {path}:\n{done.stdout}{done.stderr}")
    return done.stdout


class AlertManager:
    """AlertManager on ``127.0.0.1:port``.

    Parameters
    ----------
    config
        The configuration, as a mapping or a YAML file.
    templates
        Notification template files; copied to ``WORKDIR/templates`` and named in the
        configuration's ``templates`` instead of what it had.
    workdir
        Where configuration, templates, storage and log go; a fresh temporary directory
        (removed on stop) when omitted.
    port
        Listen port; a free one when omitted.
    binary
        The AlertManager program (``prometheus-alertmanager`` on Debian).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | Path,
        *,
        templates: Sequence[Path] = (),
        workdir: Path | None = None,
        port: int | None = None,
        binary: str = "prometheus-alertmanager",
        ready_timeout: float = 30.0,
    ) -> None:
        if isinstance(config, Path):
            loaded = yaml.safe_load(config.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config}: not an AlertManager configuration")
            config = loaded
        self._config: dict[str, Any] = dict(config)
        self._templates = [Path(t) for t in templates]
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="flmon-alertmanager-")) if workdir is None \
            else Path(workdir)
        self._auto_port = port is None
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.config_path = self.workdir / "alertmanager.yml"
        self.log_path = self.workdir / "alertmanager.log"
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9093``."""
        return f"http://{LOOPBACK}:{self.port}"

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = dict(self._config)
        if self._templates:
            tdir = self.workdir / "templates"
            tdir.mkdir(exist_ok=True)
            for template in self._templates:
                shutil.copyfile(template, tdir / template.name)
            config["templates"] = [str((tdir / "*.tmpl").resolve())]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> AlertManager:
        """Write the configuration, start AlertManager and wait for ``/-/ready``."""
        self._write_config()

        def argv(port: int) -> list[str]:
            return [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                f"--web.external-url=http://{LOOPBACK}:{port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ]

        try:
            self._process, self.port = start_listening(
                "alertmanager", argv, self.log_path, self.port,
                ready=lambda p: http.is_ok(f"http://{LOOPBACK}:{p}/-/ready"),
                timeout=self.ready_timeout,
                pick_port=free_port if self._auto_port else None,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop AlertManager; remove the work directory if it was a temporary one."""
        if self._process is not None:
            self._process.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise RuntimeError("AlertManager was not started")
        return self._process

    # --- API -------------------------------------------------------------------------

    def alerts(self, *, active: bool = True, alertname: str | None = None) -> list[dict[str, Any]]:
        """Alerts as ``/api/v2/alerts`` lists them (labels, annotations, status...)."""
        params = {"active": str(active).lower()}
        if alertname:
            params["filter"] = f'alertname="{alertname}"'
        alerts: list[dict[str, Any]] = http.get_json(f"{self.url}/api/v2/alerts", params)
        return alerts

    def status(self) -> dict[str, Any]:
        """``/api/v2/status``: configuration as loaded, cluster status, version."""
        status: dict[str, Any] = http.get_json(f"{self.url}/api/v2/status")
        return status

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Send alerts the way Prometheus does (``POST /api/v2/alerts``)."""
        status, body = http.post_json(f"{self.url}/api/v2/alerts", list(alerts))
        if status != 200:
            raise http.HTTPError(f"{self.url}/api/v2/alerts", status, body.decode(errors="replace"))

    def wait_for(
        self,
        probe: Callable[[], T],
        timeout: float,
        what: str = "condition",
        interval: float = 0.5,
    ) -> T:
        """Poll ``probe()`` until it returns something truthy and return that."""
        deadline = time.monotonic() + timeout
        while True:
            self.process.check_running()
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"AlertManager: {what} not met after {timeout:.0f}s")
            time.sleep(interval)

    def __enter__(self) -> AlertManager:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
