"""The reference deployment as real processes on loopback.

:class:`DemoStack` starts, in order: the Slack-compatible receiver, a Pushgateway, the
rendered configuration (``flmon render`` of the demo's ``flmon.yaml``), AlertManager with
the rendered ``alertmanager.yml`` (its ``api_url_file`` holds the receiver's URL),
Prometheus with the rendered ``prometheus.yml`` and rules, and a Flower federation
(SuperLink and SuperNodes) with ``flmon watch`` polling its SuperLink. It stops them in
reverse order, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from flmon.config import FlmonConfig, parse_config
from flmon.demo.config import demo_config, with_watch, write_config
from flmon.render import render
from flmon.stack.alertmanager import AlertManager
from flmon.stack.flower import FlowerFederation
from flmon.stack.ports import LOOPBACK, free_port
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.slack_receiver import SlackMessage, SlackReceiver
from flmon.stack.watch import WatchProcess

ConfigValue = bool | int | float | str
NodeConfigFn = Callable[[int, int], Mapping[str, ConfigValue]]

RENDER_TARGETS = ("prometheus", "alertmanager", "grafana")

MARKER = ".flmon-demo"
"""File that marks a work directory as the demo's own."""
OWN_ENTRIES = frozenset({
    "alertmanager", "prometheus", "pushgateway", "flower", "render", "secrets", "flmon.yaml",
    "report.html",
    "watch.log",
})

FLOWER_ENV = {
    # Pick up SuperNode tasks faster than the 1 s default.
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
    # TensorFlow's C++ start-up chatter would fill the SuperNode logs.
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def render_into(cfg: FlmonConfig, out: Path) -> dict[str, Path]:
    """Render the Prometheus, AlertManager and Grafana outputs of ``cfg`` under ``out``."""
    written: dict[str, Path] = {}
    for rel, text in render(cfg, only=RENDER_TARGETS).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written[rel] = path
    return written


class DemoStack:
    """Slack receiver, Pushgateway, AlertManager, Prometheus and Flower on loopback.

    Parameters
    ----------
    federation
        Federation name (``hospitals``, ``banks``): the ``federation`` label everywhere.
    num_nodes
        SuperNodes to start.
    node_config
        ``(index, count) -> --node-config`` of each SuperNode.
    workdir
        Where configuration, renders and logs go; a temporary directory (removed on
        stop) when omitted.
    on_slack
        Called with each Slack message the receiver accepts.
    alert_overrides
        Per-alert settings replacing the demo's (see :func:`flmon.demo.config.demo_config`).
    secure
        The SuperLink serves TLS and accepts only registered SuperNodes (certificates
        and keys made in the work directory at start); ``False`` runs it ``--insecure``.
    """

    def __init__(
        self,
        federation: str,
        num_nodes: int = 3,
        *,
        node_config: NodeConfigFn | None = None,
        workdir: Path | None = None,
        on_slack: Callable[[SlackMessage], None] | None = None,
        alert_overrides: dict[str, dict[str, Any]] | None = None,
        secure: bool = True,
    ) -> None:
        self.federation = federation
        self.secure = secure
        self.num_nodes = num_nodes
        self.node_config = node_config
        self.alert_overrides = alert_overrides
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="flmon-demo-")) if workdir is None \
            else Path(workdir).resolve()
        self.exporter_port = free_port()
        self.watch_port = free_port()
        self.watch: WatchProcess | None = None
        self._with_flower = True
        self.slack = SlackReceiver(on_message=on_slack)
        self.pushgateway = Pushgateway(workdir=self.workdir / "pushgateway")
        self.alertmanager: AlertManager | None = None
        self.prometheus: Prometheus | None = None
        self.flower: FlowerFederation | None = None
        self.config: FlmonConfig | None = None
        self.rendered: dict[str, Path] = {}
        self._stack = contextlib.ExitStack()

    @property
    def render_dir(self) -> Path:
        return self.workdir / "render"

    @property
    def dashboards_dir(self) -> Path:
        return self.render_dir / "dashboards" / "grafana"

    @property
    def exporter_address(self) -> str:
        return f"{LOOPBACK}:{self.exporter_port}"

    @property
    def watch_address(self) -> str:
        return f"{LOOPBACK}:{self.watch_port}"

    def start(self, with_flower: bool = True) -> DemoStack:
        """Start everything (Flower last); on failure stop what was started and raise."""
        self._with_flower = with_flower
        self._prepare_workdir()
        try:
            self._stack.enter_context(self.slack)
            self._stack.enter_context(self.pushgateway)
            webhook_file = self.workdir / "secrets" / "slack-webhook-url"
            webhook_file.parent.mkdir(exist_ok=True)
            webhook_file.write_text(self.slack.url + "\n")
            webhook_file.chmod(0o600)
            # AlertManager's own file does not name AlertManager's port: render, start it
            # on a port it gets for sure, then render again with that port for Prometheus.
            self._render(webhook_file, f"{LOOPBACK}:9093")
            am_dir = self.render_dir / "alertmanager"
            self.alertmanager = self._stack.enter_context(AlertManager(
                am_dir / "alertmanager.yml",
                templates=sorted(am_dir.glob("*.tmpl")),
                workdir=self.workdir / "alertmanager",
            ))
            self._render(webhook_file, f"{LOOPBACK}:{self.alertmanager.port}")
            self.prometheus = self._stack.enter_context(Prometheus(
                self.render_dir / "prometheus" / "prometheus.yml",
                rules=[self.render_dir / "rules" / "flmon-rules.yaml"],
                workdir=self.workdir / "prometheus",
            ))
            if with_flower:
                self.start_flower()
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_workdir(self) -> None:
        """Create the work directory, or empty one a previous demo left.

        A directory that holds anything but a previous demo's files is refused, so a
        mistyped ``--workdir`` cannot cost anyone their files. A previous demo's TSDB
        would otherwise feed old series into this run's queries.
        """
        marker = self.workdir / MARKER
        if self.workdir.exists() and any(self.workdir.iterdir()):
            if not marker.exists():
                raise FileExistsError(
                    f"{self.workdir} is not empty and was not made by flmon demo; "
                    "choose another --workdir")
            for child in self.workdir.iterdir():
                if child.name in OWN_ENTRIES:
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        self.workdir.mkdir(parents=True, exist_ok=True)
        marker.write_text("made by flmon demo; emptied by the next demo run here\n")

    def _render(self, webhook_file: Path, alertmanager_target: str) -> None:
        raw = demo_config(
            self.federation,
            live_target=self.exporter_address,
            pushgateway_target=self.pushgateway.address,
            alertmanager_target=alertmanager_target,
            webhook_url_file=webhook_file,
            alert_overrides=self.alert_overrides,
        )
        if self._with_flower:  # flmon watch runs next to the demo's SuperLink
            raw = with_watch(raw, self.watch_address)
        config_path = write_config(raw, self.workdir / "flmon.yaml")
        self.config = parse_config(raw, str(config_path))
        shutil.rmtree(self.render_dir, ignore_errors=True)
        self.rendered = render_into(self.config, self.render_dir)

    def start_flower(self) -> FlowerFederation:
        """Start the SuperLink and SuperNodes."""
        kwargs: dict[str, Any] = {}
        if self.node_config is not None:
            kwargs["node_config"] = self.node_config
        self.flower = self._stack.enter_context(FlowerFederation(
            self.num_nodes, workdir=self.workdir / "flower", env=FLOWER_ENV,
            secure=self.secure, **kwargs
        ))
        # flmon watch next to the SuperLink, as the Helm chart deploys it.
        self.watch = self._stack.enter_context(WatchProcess(
            self.flower.address, self.workdir / "watch.log",
            ["--interval", "1s", "--pushgateway", self.pushgateway.address],
            port=self.watch_port, root_certificates=self.flower.root_certificates))
        return self.flower

    def stop(self) -> None:
        """Stop every process, newest first; remove the work directory if temporary."""
        self._stack.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def flmon_run_config(self) -> dict[str, ConfigValue]:
        """Run-config keys that point the ServerApp at this stack's exporter and gateway."""
        from flmon.demo.scenarios import ANOMALY_THRESHOLD

        return {
            "flmon-exporter-port": self.exporter_port,
            "flmon-exporter-addr": LOOPBACK,
            "flmon-pushgateway": self.pushgateway.address,
            "flmon-federation": self.federation,
            "flmon-anomaly-threshold": ANOMALY_THRESHOLD,
            "num-nodes": self.num_nodes,
        }

    def selector(self, extra: str = "") -> str:
        """Label matchers of this federation's pushed ``fl_*`` series, in braces."""
        from flmon.demo.config import PUSHED_JOB

        inner = f'job="{PUSHED_JOB}",federation="{self.federation}"'
        return "{" + inner + (f",{extra}" if extra else "") + "}"

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
