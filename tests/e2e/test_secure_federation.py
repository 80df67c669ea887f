"""The secure reference federation: TLS and SuperNode authentication, as real processes.

``FlowerFederation(secure=True)`` (what ``flmon demo`` runs) makes a CA, a server
certificate and one key pair per SuperNode in its work directory, registers the public
keys with ``flwr supernode register`` and starts everything without ``--insecure``.
A run of tests/apps/tinyfl goes through; a SuperNode whose key was never registered,
and one that talks plain HTTP, are refused and never become nodes.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flmon.stack.flower import FlowerFederation, _bin
from flmon.stack.ports import LOOPBACK, free_port
from flmon.stack.process import ManagedProcess
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.tls import make_node_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
NODES = 3


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    workdir = tmp_path_factory.mktemp("secure")
    with Pushgateway(workdir=workdir / "pushgateway") as gateway, FlowerFederation(
            NODES, workdir=workdir / "flower", secure=True) as fed:
        result = fed.run(APP, {"num-server-rounds": 1, "pushgateway": gateway.address},
                         timeout=300)
        assert result.returncode == 0, result.output[-4000:] + fed.logs()
        assert fed.pki is not None and fed.superlink is not None
        outsiders = {}
        stranger = make_node_key(fed.workdir / "keys", "never-registered")
        for name, args in (
            ("unregistered", ["--root-certificates", str(fed.pki.ca_cert),
                              "--auth-supernode-private-key", str(stranger.private)]),
            ("plaintext", ["--insecure"]),
        ):
            proc = ManagedProcess(
                name, [_bin("flower-supernode"), *args, "--superlink", fed.address,
                       "--host", LOOPBACK, "--port", str(free_port()), "--max-retries", "1"],
                fed.workdir / f"{name}.log", env=fed.env).start()
            outsiders[name] = (proc.wait(timeout=120), proc.log_tail(60))
        pushed = {}
        for family in text_string_to_metric_families(gateway.metrics_text()):
            for sample in family.samples:
                pushed[sample.name] = pushed.get(sample.name, 0.0) + sample.value
        yield {"fed": fed, "outsiders": outsiders, "pushed": pushed,
               "superlink_log": fed.superlink.log_tail(400)}


def test_the_superlink_serves_tls_with_supernode_auth(secure: dict[str, object]) -> None:
    fed: FlowerFederation = secure["fed"]  # type: ignore[assignment]
    assert fed.superlink is not None and fed.pki is not None
    argv = fed.superlink.argv
    assert "--insecure" not in argv and "--enable-supernode-auth" in argv
    assert f"https://{fed.address}" in str(secure["superlink_log"])
    for node in fed.supernodes:
        assert "--insecure" not in node.argv and "--auth-supernode-private-key" in node.argv
    # private keys are readable by their owner only
    for path in [fed.pki.server_key, *(k.private for k in fed.node_keys)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    config = (fed.flwr_home / "config.toml").read_text()
    assert "insecure" not in config and str(fed.pki.ca_cert) in config


def test_a_run_goes_through_over_tls(secure: dict[str, object]) -> None:
    pushed: dict[str, float] = secure["pushed"]  # type: ignore[assignment]
    assert pushed["fl_rounds_completed_total"] == 1
    assert pushed["fl_nodes_connected"] == NODES
    assert pushed["fl_model_updates_total"] == NODES  # every train reply came over TLS
    assert pushed["fl_telemetry_received_total"] == 2 * NODES


def test_unregistered_and_plaintext_supernodes_are_refused(secure: dict[str, object]) -> None:
    outsiders: dict[str, tuple[int, str]] = secure["outsiders"]  # type: ignore[assignment]
    code, log = outsiders["unregistered"]
    assert code != 0 and "Failed to activate SuperNode" in log, log
    code, log = outsiders["plaintext"]
    assert code != 0 and "could not establish a connection" in log, log
    assert "ApiError:2004" in str(secure["superlink_log"])  # the refused activation
