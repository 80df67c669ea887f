"""The reference Flower deployment: its commands run, Flower accepts them, pods are locked down.

The shell entrypoints of the SuperNode and the run Job are executed here for real, with
stand-ins for the Flower binaries that print their arguments; the arguments are then parsed
by Flower's own argument parsers.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from flwr.common.config import parse_config_args
from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode
from helmchart import CHART, NAMESPACE, REPO, by_kind, containers, manifests, one, render

from flmon.reference import app_dir

KPS = yaml.safe_load((CHART / "ci" / "kube-prometheus-stack-values.yaml").read_text())
ECHO_ARGS = '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n'


def _fake_bin(tmp_path: Path, name: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(ECHO_ARGS)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _env(container: dict[str, Any], pod_name: str, tmp_path: Path) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"]}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod_name
    env["HOME"] = str(tmp_path)
    env["FLWR_HOME"] = str(tmp_path / ".flwr")
    return env


def _fake_flwr(bin_dir: Path, log: Path) -> None:
    """A stand-in ``flwr`` that appends its arguments to ``log`` (one call per line)."""
    path = bin_dir / "flwr"
    path.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_entrypoint(container: dict[str, Any], env: dict[str, str], bin_dir: Path,
                    ) -> subprocess.CompletedProcess[str]:
    command = container["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    env = dict(env, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


# --- SuperNodes -----------------------------------------------------------------------------------

def _supernode(values: dict[str, Any]) -> dict[str, Any]:
    return one(manifests(render(values)), "StatefulSet", "flmon-supernode")


@pytest.mark.parametrize("ordinal", [0, 4])
def test_each_supernode_takes_its_partition_from_its_ordinal(tmp_path: Path, ordinal: int,
                                                             ) -> None:
    statefulset = _supernode(KPS)
    assert statefulset["spec"]["replicas"] == 5
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    env = _env(container, f"flmon-supernode-{ordinal}", tmp_path)
    bin_dir = _fake_bin(tmp_path, "flower-supernode")
    _fake_flwr(bin_dir, tmp_path / "flwr.log")
    result = _run_entrypoint(container, env, bin_dir)
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    args = _parse_args_run_supernode().parse_args(argv)
    # secure by default: TLS and this node's registered key
    assert args.insecure is False
    assert args.root_certificates == "/etc/flwr/ca/ca.crt"
    assert args.auth_supernode_private_key == f"/etc/flwr/keys/supernode-{ordinal}"
    assert (tmp_path / "flwr.log").read_text() == (
        f"supernode register /etc/flwr/keys/supernode-{ordinal}.pub flmon\n")
    assert args.superlink == f"flmon-superlink.{NAMESPACE}.svc:9093"
    config = parse_config_args([args.node_config])
    assert config == {"partition-id": ordinal, "num-partitions": 5,
                      "dataset": "fraud", "local-epochs": 2}
    assert args.health_server_address == "0.0.0.0:9098"
    assert args.isolation == "subprocess"


def test_a_supernode_beyond_the_partition_count_refuses_to_start(tmp_path: Path) -> None:
    [container] = _supernode({})["spec"]["template"]["spec"]["containers"]
    env = _env(container, "flmon-supernode-3", tmp_path)
    result = _run_entrypoint(container, env, _fake_bin(tmp_path, "flower-supernode"))
    assert result.returncode == 1
    assert "num-partitions is 3" in result.stderr
    assert "federation.supernodes" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("count", [1, 7])
def test_supernode_count_sets_replicas_and_partitions(count: int) -> None:
    statefulset = _supernode({"federation": {"supernodes": count}})
    assert statefulset["spec"]["replicas"] == count
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NUM_PARTITIONS"] == str(count)


def test_extra_supernode_args_reach_flower(tmp_path: Path) -> None:
    values = {"federation": {"supernode": {"extraArgs": ["--max-retries", "7"]}}}
    [container] = _supernode(values)["spec"]["template"]["spec"]["containers"]
    env = _env(container, "flmon-supernode-0", tmp_path)
    bin_dir = _fake_bin(tmp_path, "flower-supernode")
    _fake_flwr(bin_dir, tmp_path / "flwr.log")
    result = _run_entrypoint(container, env, bin_dir)
    assert result.returncode == 0, result.stderr
    assert _parse_args_run_supernode().parse_args(result.stdout.splitlines()).max_retries == 7


# --- SuperLink ------------------------------------------------------------------------------------

def test_superlink_flags_parse_with_flower() -> None:
    superlink = one(manifests(render()), "Deployment", "flmon-superlink")
    [container] = superlink["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["flower-superlink"]
    args = _parse_args_run_superlink().parse_args(container["args"])
    assert args.insecure is False
    assert (args.ssl_certfile, args.ssl_keyfile, args.ssl_ca_certfile) == (
        "/etc/flwr/tls/tls.crt", "/etc/flwr/tls/tls.key", "/etc/flwr/tls/ca.crt")
    assert args.enable_supernode_auth is True
    assert (args.host, args.port) == ("0.0.0.0", 9093)
    assert args.health_server_address == "0.0.0.0:9098"
    assert args.isolation == "subprocess"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"superlink": 9093, "health": 9098, "metrics": 9464}
    probe_ports = {container[p]["grpc"]["port"] for p in
                   ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probe_ports == {9098}


def test_superlink_service_exposes_the_flower_port() -> None:
    service = one(manifests(render({"federation": {"superlink": {"port": 9200}}})), "Service",
                  "flmon-superlink")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("superlink", 9200)]


# --- the run Job ----------------------------------------------------------------------------------

def test_run_job_waits_for_the_superlink_then_submits(tmp_path: Path) -> None:
    objects = manifests(render(KPS))
    job = one(objects, "Job", "flmon-run-1")
    [container] = job["spec"]["template"]["spec"]["containers"]
    config_map = one(objects, "ConfigMap", "flmon-flwr-config")
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_map["data"]["config.toml"])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        env = _env(container, "flmon-run-1-abcde", tmp_path)
        env["SUPERLINK_ADDRESS"] = f"127.0.0.1:{listener.getsockname()[1]}"
        env["FLWR_CONFIG_FILE"] = str(config_file)
        result = _run_entrypoint(container, env, _fake_bin(tmp_path, "flwr"))
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    assert argv[:5] == ["run", "/app/examples/fraud", "flmon", "--stream", "--run-config"]
    assert parse_config_args([argv[5]]) == {
        "fraction-train": 0.5, "num-server-rounds": 10,
        "flmon-exporter-port": 9464, "flmon-exporter-addr": "0.0.0.0",
        "flmon-pushgateway": f"flmon-pushgateway.{NAMESPACE}.svc:9091", "num-nodes": 5}
    assert len(argv) == 6
    copied = tmp_path / ".flwr" / "config.toml"
    assert copied.read_text() == config_file.read_text()


def test_run_job_gives_up_when_the_superlink_never_answers(tmp_path: Path) -> None:
    job = one(manifests(render()), "Job", "flmon-run-1")
    [container] = job["spec"]["template"]["spec"]["containers"]
    script = container["command"][2]
    assert re.search(r"deadline = time\.monotonic\(\) \+ 300\b", script)
    # Same script, one-second deadline, short pauses, against a closed loopback port.
    assert "time.sleep(5)" in script
    fast = script.replace("time.monotonic() + 300", "time.monotonic() + 1")
    container = dict(container, command=["/bin/sh", "-c",
                                         fast.replace("time.sleep(5)", "time.sleep(0.2)")])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = _env(container, "flmon-run-1-abcde", tmp_path)
    env["SUPERLINK_ADDRESS"] = f"127.0.0.1:{closed_port}"
    config_file = tmp_path / "config.toml"
    config_file.write_text("")
    env["FLWR_CONFIG_FILE"] = str(config_file)
    result = _run_entrypoint(container, env, _fake_bin(tmp_path, "flwr"))
    assert result.returncode != 0
    assert "unreachable" in result.stderr
    assert result.stdout == ""


def test_run_config_keys_exist_in_the_reference_apps() -> None:
    # `flwr run` rejects run-config keys the app does not declare.
    from flwr.common.config import get_project_config

    job = one(manifests(render()), "Job", "flmon-run-1")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    keys = set(parse_config_args([env["RUN_CONFIG"]]))
    assert keys == {"flmon-exporter-port", "flmon-exporter-addr", "flmon-pushgateway",
                    "num-nodes"}
    for app in ("healthcare", "fraud"):
        declared = get_project_config(app_dir(app))["tool"]["flwr"]["app"]["config"]
        assert keys <= set(declared), f"flmon/reference/{app} lacks {keys - set(declared)}"
    user = render({"federation": {"run": {"chartRunConfig": False,
                                          "runConfig": {"num-server-rounds": 3}}}})
    env = {e["name"]: e.get("value") for e in one(manifests(user), "Job", "flmon-run-1")
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert parse_config_args([env["RUN_CONFIG"]]) == {"num-server-rounds": 3}


def test_flower_reads_the_rendered_connection(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.cli.flower_config import read_superlink_connection

    config_map = one(manifests(render()), "ConfigMap", "flmon-flwr-config")
    home = tmp_path / "flwr"
    home.mkdir()
    (home / "config.toml").write_text(config_map["data"]["config.toml"])
    monkeypatch.setenv("FLWR_HOME", str(home))
    connection = read_superlink_connection("flmon")
    assert connection.address == f"flmon-superlink.{NAMESPACE}.svc:9093"
    assert connection.insecure is False
    assert connection.root_certificates == "/etc/flwr/ca/ca.crt"


def test_each_revision_submits_a_new_run_job() -> None:
    first = by_kind(manifests(render(revision=1)), "Job")
    second = by_kind(manifests(render(revision=2)), "Job")
    assert [j["metadata"]["name"] for j in first] == ["flmon-run-1"]
    assert [j["metadata"]["name"] for j in second] == ["flmon-run-2"]
    assert by_kind(manifests(render({"federation": {"run": {"enabled": False}}})), "Job") == []


# --- pod security and resources ------------------------------------------------------------

def test_every_pod_is_non_root_read_only_and_sized(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    workloads = [o for o in manifests(render(values))
                 if o["kind"] in {"Deployment", "StatefulSet", "Job"}]
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            requests = container["resources"]["requests"]
            assert requests.get("cpu") and requests.get("memory"), name
            assert container["resources"]["limits"].get("memory"), name
            if workload["kind"] != "Job":
                assert "readinessProbe" in container and "livenessProbe" in container, name
        mounts = {m["mountPath"] for c in containers(workload)
                  for m in c.get("volumeMounts", [])}
        if workload["kind"] != "Deployment" or "superlink" in name:
            assert "/tmp" in mounts, f"{name}: no writable /tmp on a read-only root"


def test_images_and_resources_are_configurable() -> None:
    values = {"federation": {
        "image": {"server": {"repository": "registry.example/fl/server", "tag": "1.2.3"},
                  "node": {"repository": "registry.example/fl/node", "tag": "1.2.3"}},
        "supernode": {"resources": {"requests": {"cpu": "2", "memory": "3Gi"},
                                    "limits": {"memory": "3Gi"}}},
        "imagePullSecrets": ["regcred"],
    }}
    objects = manifests(render(values))
    superlink = one(objects, "Deployment", "flmon-superlink")["spec"]["template"]["spec"]
    supernode = one(objects, "StatefulSet", "flmon-supernode")["spec"]["template"]["spec"]
    assert superlink["containers"][0]["image"] == "registry.example/fl/server:1.2.3"
    assert supernode["containers"][0]["image"] == "registry.example/fl/node:1.2.3"
    assert supernode["containers"][0]["resources"]["requests"] == {"cpu": "2", "memory": "3Gi"}
    assert supernode["imagePullSecrets"] == [{"name": "regcred"}]
    default = one(manifests(render()), "Deployment", "flmon-superlink")
    assert default["spec"]["template"]["spec"]["containers"][0]["image"] == "flmon/server:0.1.0"


# --- images ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["server", "node"])
def test_dockerfiles_build_non_root_flmon_images(name: str) -> None:
    dockerfile = (CHART / "docker" / f"{name}.Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    froms = [rest for op, *rest in instructions if op == "FROM"]
    assert froms and all(r[0].startswith("python:3.11-slim") for r in froms)
    users = [rest[0].strip() for op, *rest in instructions if op == "USER"]
    uid = render()  # the chart's pods run as the image's user
    pod_user = one(manifests(uid), "Deployment", "flmon-superlink")["spec"]["template"][
        "spec"]["securityContext"]["runAsUser"]
    assert users and users[-1].split(":")[0] == str(pod_user)
    assert re.search(r"pip install[^\n]*\.\[flower,keras\]", dockerfile)
    entry = "flower-superlink" if name == "server" else "flower-supernode"
    assert entry in dockerfile
    # Everything it copies is in the repository (the build context is its root).
    sources = [rest[0].split()[:-1] for op, *rest in instructions
               if op == "COPY" and "--from" not in rest[0]]
    assert sources
    for paths in sources:
        for path in paths:
            assert (REPO / path).exists(), f"{name}.Dockerfile copies missing {path}"
