"""The Control API poller against a loopback server speaking Flower's wire format."""

from __future__ import annotations

import time

import pytest

from flmon.harness.control_api import SyntheticControlApi, synthetic_nodes, synthetic_runs
from flmon.harness.ports import free_port
from flmon.watch.control import ControlPoller, PollError


def test_a_poll_reads_every_node_and_every_page_of_runs() -> None:
    now = time.time()
    with SyntheticControlApi(synthetic_nodes(30, now), synthetic_runs(2500, now)) as api:
        poller = ControlPoller(api.address, insecure=True, page_size=1000)
        snapshot = poller.poll()
        poller.close()
    assert len(snapshot.nodes) == 30
    assert len(snapshot.runs) == 2500
    assert len({r.run_id for r in snapshot.runs}) == 2500
    assert api.calls == {"/v1/control/list-nodes": 1, "/v1/control/list-runs": 3}
    statuses = {r.status for r in snapshot.runs}
    assert statuses == {"running", "completed", "failed", "stopped"}
    assert abs(snapshot.now - now) < 60


def test_an_http_error_is_a_poll_error_with_a_bounded_reason() -> None:
    with SyntheticControlApi(status=503) as api:
        poller = ControlPoller(api.address, insecure=True)
        with pytest.raises(PollError) as info:
            poller.poll()
    assert info.value.reason == "http_5xx"


def test_a_superlink_that_does_not_answer_in_time_is_a_timeout() -> None:
    # The server would answer after 10 s: had the call no timeout, it would succeed.
    with SyntheticControlApi(delay=10.0) as api:
        poller = ControlPoller(api.address, insecure=True, timeout=0.3)
        with pytest.raises(PollError) as info:
            poller.poll()
    assert info.value.reason == "timeout"


def test_nothing_listening_is_unreachable() -> None:
    poller = ControlPoller(f"127.0.0.1:{free_port()}", insecure=True, timeout=1.0)
    with pytest.raises(PollError) as info:
        poller.poll()
    assert info.value.reason == "unreachable"


def test_tls_against_a_plain_http_superlink_is_a_tls_error() -> None:
    with SyntheticControlApi() as api:
        poller = ControlPoller(api.address, insecure=False, timeout=1.0)
        with pytest.raises(PollError) as info:
            poller.poll()
    assert info.value.reason == "tls"


def test_insecure_and_root_certificates_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        ControlPoller("127.0.0.1:1", insecure=True, root_certificates="ca.pem")
