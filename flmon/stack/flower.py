"""A real Flower federation on loopback: one SuperLink, N SuperNodes, ``flwr run``.

Flower 1.42's SuperLink serves its Runtime, Control and Fleet APIs on one HTTP port
(``--host``/``--port``); each SuperNode needs a port of its own for its Runtime API.
``flwr run APP CONNECTION`` reads the connection from ``$FLWR_HOME/config.toml``, which
the stack writes into its work directory, so nothing outside it is touched. The
SuperLink starts each run's ServerApp in a fresh subprocess.

With ``secure=True`` the SuperLink serves TLS (a CA and server certificate made at run
time in the work directory, :mod:`flmon.stack.tls`) and accepts only registered
SuperNodes (``--enable-supernode-auth``): each SuperNode gets its own key pair, its
public key is registered with ``flwr supernode register``, and it connects with
``--root-certificates`` and ``--auth-supernode-private-key``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from flmon.stack.ports import LOOPBACK, free_port, wait_listening
from flmon.stack.process import ManagedProcess, ProcessError
from flmon.stack.tls import NodeKey, Pki, make_node_key, make_pki

ConfigValue = int | float | str | bool
NodeConfig = Callable[[int, int], Mapping[str, ConfigValue]]
CONNECTION = "flmon-local"


def _bin(name: str) -> str:
    """The Flower program next to this interpreter (the venv's), else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def format_config(values: Mapping[str, ConfigValue]) -> str:
    """``key=value`` pairs as Flower's ``--node-config`` / ``--run-config`` expect (TOML)."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            text = f'"{escaped}"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def default_node_config(index: int, count: int) -> Mapping[str, ConfigValue]:
    return {"partition-id": index, "num-partitions": count}


@dataclass
class RunResult:
    """What ``flwr run --stream`` returned."""

    returncode: int
    output: str
    seconds: float


class FlowerFederation:
    """SuperLink and SuperNodes as real processes on ``127.0.0.1``.

    Parameters
    ----------
    num_supernodes
        How many SuperNodes to start.
    node_config
        ``(index, count) -> mapping`` giving each SuperNode's ``--node-config``;
        ``partition-id`` and ``num-partitions`` by default.
    workdir
        Where logs and ``FLWR_HOME`` go; a temporary directory (removed on stop) when
        omitted.
    env
        Extra environment for every process (e.g. ``FLMON_PUSHGATEWAY``).
    secure
        TLS and SuperNode authentication (see the module docstring); plain HTTP and
        any SuperNode accepted (``--insecure``) otherwise.
    """

    def __init__(
        self,
        num_supernodes: int = 3,
        node_config: NodeConfig = default_node_config,
        workdir: Path | None = None,
        env: Mapping[str, str] | None = None,
        secure: bool = False,
    ) -> None:
        if num_supernodes < 1:
            raise ValueError("num_supernodes must be >= 1")
        self.num_supernodes = num_supernodes
        self.node_config = node_config
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="flmon-flower-"))
        self.flwr_home = self.workdir / "flwr-home"
        self.env = {**os.environ, "FLWR_HOME": str(self.flwr_home), **(env or {})}
        # The SuperLink and SuperNodes start Flower's other programs (flower-superexec,
        # flwr-serverapp...) by name: the interpreter's bin directory goes first.
        bindir = str(Path(sys.executable).parent)
        self.env["PATH"] = os.pathsep.join([bindir, self.env.get("PATH", "")])
        # Flower's own telemetry would try to reach the internet.
        self.env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
        self.superlink_port = 0
        self.superlink: ManagedProcess | None = None
        self.supernodes: list[ManagedProcess] = []
        self.secure = secure
        self.pki: Pki | None = None
        self.node_keys: list[NodeKey] = []

    @property
    def root_certificates(self) -> Path | None:
        """The CA certificate clients of a secure SuperLink verify it with."""
        return self.pki.ca_cert if self.pki is not None else None

    def _transport_args(self) -> list[str]:
        if self.pki is None:
            return ["--insecure"]
        return ["--ssl-certfile", str(self.pki.server_cert),
                "--ssl-keyfile", str(self.pki.server_key),
                "--ssl-ca-certfile", str(self.pki.ca_cert),
                "--enable-supernode-auth"]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.superlink_port}"

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> FlowerFederation:
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.pki = make_pki(self.workdir / "pki", hosts=(LOOPBACK, "localhost"))
        self.superlink_port = free_port()
        self.superlink = ManagedProcess(
            "superlink",
            [_bin("flower-superlink"), *self._transport_args(), "--host", LOOPBACK,
             "--port", str(self.superlink_port),
             # Apps run in this interpreter's environment, where flmon is installed.
             "--disable-runtime-dependency-installation"],
            self.workdir / "superlink.log", env=self.env, cwd=self.workdir,
        ).start()
        try:
            self._wait(self.superlink, self.superlink_port, timeout)
            transport = ("insecure = true\n" if self.pki is None else
                         f'root-certificates = "{self.pki.ca_cert}"\n')
            (self.flwr_home / "config.toml").write_text(
                f'[superlink]\ndefault = "{CONNECTION}"\n\n'
                f'[superlink.{CONNECTION}]\naddress = "{self.address}"\n{transport}'
            )
            for index in range(self.num_supernodes):
                self.supernodes.append(self._start_supernode(index))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, proc: ManagedProcess, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.check_running()
            try:
                wait_listening(port, timeout=0.5)
                return
            except TimeoutError:
                continue
        raise ProcessError(f"{proc.name} did not listen on {port}:\n{proc.log_tail()}")

    def register_supernode(self, public_key: Path) -> str:
        """``flwr supernode register KEY.pub``: allow a SuperNode's key; returns the output."""
        completed = subprocess.run(
            [_bin("flwr"), "supernode", "register", str(public_key), CONNECTION],
            env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120,
            check=False)
        output = completed.stdout + completed.stderr
        if completed.returncode != 0:
            raise ProcessError(f"flwr supernode register {public_key} failed "
                               f"({completed.returncode}):\n{output}")
        return output

    def _node_args(self, index: int) -> list[str]:
        if self.pki is None:
            return ["--insecure"]
        while len(self.node_keys) <= index:
            key = make_node_key(self.workdir / "keys", f"supernode-{len(self.node_keys)}")
            self.register_supernode(key.public)
            self.node_keys.append(key)
        return ["--root-certificates", str(self.pki.ca_cert),
                "--auth-supernode-private-key", str(self.node_keys[index].private)]

    def _start_supernode(self, index: int) -> ManagedProcess:
        port = free_port()
        config = format_config(self.node_config(index, self.num_supernodes))
        proc = ManagedProcess(
            f"supernode-{index}",
            [_bin("flower-supernode"), *self._node_args(index), "--superlink", self.address,
             "--host", LOOPBACK, "--port", str(port), "--node-config", config],
            self.workdir / f"supernode-{index}.log", env=self.env, cwd=self.workdir,
        ).start()
        self._wait(proc, port, 60.0)
        return proc

    def kill_supernode(self, index: int) -> None:
        """Kill SuperNode ``index`` at once (SIGKILL), as a crashed host would."""
        self.supernodes[index].kill()

    def restart_supernode(self, index: int) -> None:
        """Start SuperNode ``index`` again with its node config.

        Without authentication it gets a new node id; with it, it comes back with its
        registered key and so its node id."""
        self.supernodes[index].stop()
        self.supernodes[index] = self._start_supernode(index)

    def kill_superlink(self) -> None:
        """Kill the SuperLink at once (SIGKILL); its in-memory state is lost."""
        if self.superlink is not None:
            self.superlink.kill()

    def restart_superlink(self, timeout: float = 60.0) -> None:
        """Start the SuperLink again on the same port (after :meth:`kill_superlink`)."""
        if self.superlink is None:
            raise ProcessError("the SuperLink was never started")
        self.superlink.stop()
        self.superlink = ManagedProcess(
            "superlink", self.superlink.argv, self.workdir / "superlink.log", env=self.env,
            cwd=self.workdir,
        ).start()
        self._wait(self.superlink, self.superlink_port, timeout)

    def stop(self) -> None:
        for proc in reversed(self.supernodes):
            proc.stop(timeout=10)
        if self.superlink is not None:
            self.superlink.stop(timeout=10)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FlowerFederation:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- runs --------------------------------------------------------------------------
    def run(
        self,
        app_dir: Path,
        run_config: Mapping[str, ConfigValue] | None = None,
        timeout: float = 600.0,
        extra_args: Sequence[str] = (),
    ) -> RunResult:
        """``flwr run APP CONNECTION --stream``: submit a run and wait for its end."""
        argv = [_bin("flwr"), "run", str(Path(app_dir).resolve()), CONNECTION, "--stream",
                *extra_args]
        if run_config:
            argv += ["--run-config", format_config(run_config)]
        start = time.monotonic()
        completed = subprocess.run(
            argv, env=self.env, cwd=self.workdir, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
        output = completed.stdout + completed.stderr
        (self.workdir / "flwr-run.log").open("a").write(output)
        return RunResult(completed.returncode, output, time.monotonic() - start)

    def logs(self) -> str:
        """Tails of every process log, for failure messages."""
        procs = [p for p in [self.superlink, *self.supernodes] if p is not None]
        return "\n".join(f"--- {p.name}\n{p.log_tail(40)}" for p in procs)
