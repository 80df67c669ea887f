"""Flower's local simulation SuperLink on loopback, and ``flwr run`` against it.

``flwr run APP`` with a connection whose address is ``:local:`` uses a local SuperLink
in simulation mode (the ServerApp in a ``flwr-simulation`` process, ClientApps in Ray
actors, ``num-supernodes`` virtual SuperNodes, given with ``--federation-config``:
the older ``options.num-supernodes`` of ``config.toml`` is deprecated in Flower 1.42).
``flwr`` would start that SuperLink itself, detached, on fixed ports; the stack starts
it instead, with the same arguments, on free ports it passes to ``flwr``
(``FLWR_LOCAL_SUPERLINK_HTTP_API_PORT``, ``FLWR_LOCAL_CONTROL_API_PORT``), so that it
can stop it by PID. Needs the
``simulation`` extra (``flwr[simulation]``: Ray).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from flmon.stack.flower import ConfigValue, RunResult, _bin, format_config
from flmon.stack.ports import LOOPBACK, free_port
from flmon.stack.process import ManagedProcess

CONNECTION = "flmon-sim"


class LocalSimulation:
    """A local simulation SuperLink (``address = ":local:"``) with N virtual SuperNodes.

    Parameters
    ----------
    num_supernodes
        Virtual SuperNodes per run (``num-supernodes``).
    workdir
        Where logs and ``FLWR_HOME`` go; a temporary directory (removed on stop) when
        omitted.
    env
        Extra environment for every process.
    client_cpus
        CPUs Ray reserves per ClientApp actor (``client-resources.num-cpus``).
    """

    def __init__(self, num_supernodes: int, workdir: Path | None = None,
                 env: Mapping[str, str] | None = None, client_cpus: int = 1) -> None:
        if num_supernodes < 1:
            raise ValueError("num_supernodes must be >= 1")
        self.num_supernodes = num_supernodes
        self.client_cpus = client_cpus
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="flmon-sim-"))
        self.flwr_home = self.workdir / "flwr-home"
        self.port = 0
        self.control_port = 0
        self.env = {**os.environ, "FLWR_HOME": str(self.flwr_home), **(env or {})}
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                            self.env.get("PATH", "")])
        self.env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
        # Offline: apps run in this interpreter's environment, where flmon is installed.
        self.env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
        self.superlink: ManagedProcess | None = None

    def start(self, timeout: float = 60.0) -> LocalSimulation:
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self.port, self.control_port = free_port(), free_port()
        self.env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(self.port)
        self.env["FLWR_LOCAL_CONTROL_API_PORT"] = str(self.control_port)
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = ":local:"\n'
        )
        # The arguments flwr's own local SuperLink is started with (flwr/cli/local_superlink.py).
        self.superlink = ManagedProcess(
            "simulation-superlink",
            [_bin("flower-superlink"), "--insecure", "--simulation", "--isolation",
             "subprocess", "--control-api-address", f"{LOOPBACK}:{self.control_port}",
             "--host", LOOPBACK, "--port", str(self.port),
             "--database", str(self.workdir / "state.db")],
            self.workdir / "superlink.log", env=self.env, cwd=self.workdir,
        ).start()
        try:
            self.superlink.wait_until(self._healthy, timeout=timeout,
                                      what="the simulation SuperLink's /health")
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/health",
                                        timeout=0.5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def run(self, app_dir: Path, run_config: Mapping[str, ConfigValue] | None = None,
            timeout: float = 600.0) -> RunResult:
        """``flwr run APP CONNECTION --stream`` on the local simulation SuperLink."""
        argv = [_bin("flwr"), "run", str(Path(app_dir).resolve()), CONNECTION, "--stream",
                "--federation-config", format_config({
                    "num-supernodes": self.num_supernodes,
                    "client-resources-num-cpus": self.client_cpus})]
        if run_config:
            argv += ["--run-config", format_config(run_config)]
        start = time.monotonic()
        completed = subprocess.run(argv, env=self.env, cwd=self.workdir, capture_output=True,
                                   text=True, timeout=timeout, check=False)
        output = completed.stdout + completed.stderr
        with (self.workdir / "flwr-run.log").open("a") as log:
            log.write(output)
        return RunResult(completed.returncode, output, time.monotonic() - start)

    def stop(self) -> None:
        if self.superlink is not None:
            self.superlink.stop(timeout=15)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalSimulation:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
