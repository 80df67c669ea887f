"""The Control API poller against a loopback server speaking Flower's wire format."""

from __future__ import annotations

import time

import pytest

from flmon.stack.control_api import SyntheticControlApi, synthetic_nodes, synthetic_runs
from flmon.stack.ports import free_port
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


def test_later_polls_read_only_the_newest_pages_and_still_see_every_change() -> None:
    from flwr.proto.run_pb2 import RunStatus

    now = time.time()
    runs = synthetic_runs(2500, now, running=2)
    # An old run still pending, deep in the list: later polls must read down to it.
    runs[300].status.CopyFrom(RunStatus(status="pending"))
    runs[300].finished_at = ""
    with SyntheticControlApi(synthetic_nodes(3, now), runs) as api:
        poller = ControlPoller(api.address, insecure=True, page_size=1000)
        first = poller.poll()
        full_calls = api.calls["/v1/control/list-runs"]
        second = poller.poll(first)
        incremental_calls = api.calls["/v1/control/list-runs"] - full_calls
        # The old pending run finishes, a newest running one fails.
        old = next(r for r in api.runs if r.run_id == runs[300].run_id)
        old.status.CopyFrom(RunStatus(status="finished", sub_status="stopped"))
        newest = api.runs[0]
        newest.status.CopyFrom(RunStatus(status="finished", sub_status="failed"))
        third = poller.poll(second)
        poller.close()
    assert full_calls == 3
    assert incremental_calls == 4  # 100 newest, then 1000s down to the pending run
    by_id = {r.run_id: r for r in third.runs}
    assert len(by_id) == 2500
    assert by_id[runs[300].run_id].status == "stopped"
    assert by_id[newest.run_id].status == "failed"
    assert {r.run_id: r.status for r in second.runs} == {r.run_id: r.status for r in first.runs}


def test_with_only_new_runs_at_the_front_one_small_page_is_enough() -> None:
    now = time.time()
    with SyntheticControlApi((), synthetic_runs(5000, now, running=3)) as api:
        poller = ControlPoller(api.address, insecure=True, page_size=1000)
        first = poller.poll()
        before = api.calls["/v1/control/list-runs"]
        second = poller.poll(first)
        poller.close()
    assert api.calls["/v1/control/list-runs"] - before == 1
    assert len(second.runs) == 5000
