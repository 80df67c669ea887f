"""The chart's reference federation is secure by default: TLS and SuperNode authentication.

Certificates and keys come from Secrets (cert-manager's ``tls.crt``/``tls.key``/``ca.crt``
for the SuperLink, a key pair per SuperNode); the SuperNode entrypoint registers its key
with ``flwr supernode register`` before it connects. The entrypoint runs here for real,
with stand-ins for ``flwr`` and ``flower-supernode``.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode
from helmchart import NAMESPACE, manifests, one, render

INSECURE = {"federation": {"tls": {"enabled": False}, "supernodeAuth": {"enabled": False}}}


def _pod(values: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests(render(values)), kind, name)["spec"]["template"]["spec"]
    return spec


def _volumes(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in spec.get("volumes", [])}


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in spec["containers"][0].get("volumeMounts", [])}


def test_certificates_and_keys_come_from_secrets() -> None:
    superlink = _pod({}, "Deployment", "flmon-superlink")
    assert _volumes(superlink)["superlink-tls"]["secret"]["secretName"] == "flmon-superlink-tls"
    assert _mounts(superlink)["superlink-tls"] == "/etc/flwr/tls"
    supernode = _pod({}, "StatefulSet", "flmon-supernode")
    ca = _volumes(supernode)["superlink-ca"]["secret"]
    # SuperNodes get the CA only, never the SuperLink's private key
    assert ca == {"secretName": "flmon-superlink-tls", "items": [{"key": "ca.crt",
                                                                   "path": "ca.crt"}]}
    assert _volumes(supernode)["supernode-keys"]["secret"]["secretName"] == \
        "flmon-supernode-keys"
    assert _volumes(supernode)["supernode-keys"]["secret"]["defaultMode"] == 0o400
    run = _pod({}, "Job", "flmon-run-1")
    assert "superlink-ca" in _volumes(run) and "supernode-keys" not in _volumes(run)


def test_secret_names_can_be_chosen() -> None:
    values = {"federation": {"tls": {"secretName": "sl-cert"},
                             "supernodeAuth": {"secretName": "node-keys"}}}
    assert _volumes(_pod(values, "Deployment", "flmon-superlink"))["superlink-tls"][
        "secret"]["secretName"] == "sl-cert"
    volumes = _volumes(_pod(values, "StatefulSet", "flmon-supernode"))
    assert volumes["superlink-ca"]["secret"]["secretName"] == "sl-cert"
    assert volumes["supernode-keys"]["secret"]["secretName"] == "node-keys"


def test_insecure_is_an_explicit_choice() -> None:
    superlink = _pod(INSECURE, "Deployment", "flmon-superlink")
    args = _parse_args_run_superlink().parse_args(superlink["containers"][0]["args"])
    assert args.insecure is True and args.enable_supernode_auth is False
    assert "superlink-tls" not in _volumes(superlink)
    supernode = _pod(INSECURE, "StatefulSet", "flmon-supernode")
    assert not {"superlink-ca", "supernode-keys"} & set(_volumes(supernode))
    config = one(manifests(render(INSECURE)), "ConfigMap", "flmon-flwr-config")
    assert "insecure = true" in config["data"]["config.toml"]


def test_supernode_auth_without_tls_is_refused() -> None:
    with pytest.raises(Exception, match=r"supernodeAuth\.enabled needs federation\.tls\.enabled"):
        render({"federation": {"tls": {"enabled": False}}})


def test_tls_without_supernode_auth_verifies_the_superlink_only(tmp_path: Path) -> None:
    values = {"federation": {"supernodeAuth": {"enabled": False}}}
    superlink = _pod(values, "Deployment", "flmon-superlink")
    args = _parse_args_run_superlink().parse_args(superlink["containers"][0]["args"])
    assert args.insecure is False and args.enable_supernode_auth is False
    result, _ = _entrypoint(values, tmp_path, flwr_script='exit 9\n')
    assert result.returncode == 0, result.stderr
    node = _parse_args_run_supernode().parse_args(result.stdout.splitlines())
    assert node.root_certificates == "/etc/flwr/ca/ca.crt"
    assert node.auth_supernode_private_key is None


def _entrypoint(values: dict[str, Any], tmp_path: Path, flwr_script: str,
                ordinal: int = 1, fast: bool = False,
                ) -> tuple[subprocess.CompletedProcess[str], Path]:
    [container] = _pod(values, "StatefulSet", "flmon-supernode")["containers"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("flower-supernode", 'for a in "$@"; do printf "%s\\n" "$a"; done\n'),
                       ("flwr", f'echo "$*" >> "{tmp_path}/flwr.log"\n{flwr_script}')):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "FLWR_HOME": str(tmp_path / ".flwr"), "POD_NAME": f"flmon-supernode-{ordinal}"}
    for var in container["env"]:
        if "value" in var and var["name"] not in ("HOME", "FLWR_HOME"):
            env[var["name"]] = var["value"]
    script = container["command"][2]
    if fast:
        assert "sleep 5" in script and '-ge 30' in script
        script = script.replace("sleep 5", "sleep 0").replace("-ge 30", "-ge 3")
    result = subprocess.run(["/bin/sh", "-c", script, *container["command"][3:]], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    return result, tmp_path / "flwr.log"


def test_a_supernode_registers_its_key_then_connects_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, log = _entrypoint({}, tmp_path, flwr_script="exit 0\n", ordinal=2)
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "supernode register /etc/flwr/keys/supernode-2.pub flmon\n"
    node = _parse_args_run_supernode().parse_args(result.stdout.splitlines())
    assert node.insecure is False
    assert node.auth_supernode_private_key == "/etc/flwr/keys/supernode-2"
    # the connection the registration used, read by Flower itself
    from flwr.cli.flower_config import read_superlink_connection

    monkeypatch.setenv("FLWR_HOME", str(tmp_path / ".flwr"))
    connection = read_superlink_connection("flmon")
    assert connection.address == f"flmon-superlink.{NAMESPACE}.svc:9093"
    assert connection.root_certificates == "/etc/flwr/ca/ca.crt"
    assert connection.insecure is False


def test_a_key_registered_before_is_fine(tmp_path: Path) -> None:
    result, log = _entrypoint({}, tmp_path, flwr_script=(
        'echo "Public key already in use while registering node" >&2\nexit 1\n'))
    assert result.returncode == 0, result.stderr
    assert len(log.read_text().splitlines()) == 1
    assert "--auth-supernode-private-key" in result.stdout


def test_a_supernode_that_cannot_register_gives_up_with_the_reason(tmp_path: Path) -> None:
    result, log = _entrypoint({}, tmp_path, fast=True, flwr_script=(
        'echo "SuperLink unreachable" >&2\nexit 1\n'))
    assert result.returncode == 1
    assert "could not register /etc/flwr/keys/supernode-1.pub" in result.stderr
    assert "SuperLink unreachable" in result.stderr
    assert len(log.read_text().splitlines()) == 3  # bounded retries
    assert result.stdout == ""  # flower-supernode never started
