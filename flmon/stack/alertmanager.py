"""A real AlertManager on loopback, with an API helper.

Started with clustering off (``--cluster.listen-address=`` empty), its storage in a work
directory, and the configuration written there; notification templates given to the
constructor are copied next to it and the configuration's ``templates`` points at them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flmon.stack import http
from flmon.stack.ports import LOOPBACK
from flmon.stack.server import LoopbackServer

T = TypeVar("T")


class AlertManager(LoopbackServer):
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

    process_name = "alertmanager"
    display_name = "AlertManager"

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
        super().__init__(workdir=workdir, port=port, binary=binary, ready_timeout=ready_timeout)
        self.config_path = self.workdir / "alertmanager.yml"

    def prepare(self) -> None:
        """Write the configuration and copy the templates next to it."""
        super().prepare()
        config = dict(self._config)
        if self._templates:
            tdir = self.workdir / "templates"
            tdir.mkdir(exist_ok=True)
            for template in self._templates:
                shutil.copyfile(template, tdir / template.name)
            config["templates"] = [str((tdir / "*.tmpl").resolve())]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--web.external-url=http://{LOOPBACK}:{port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ]

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
