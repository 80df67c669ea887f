"""``flmon watch`` as a command: help, bad input, and serving while the SuperLink is down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flmon.stack.ports import free_port
from flmon.stack.watch import WatchProcess, value


def _flmon(*args: str) -> subprocess.CompletedProcess[str]:
    flmon = Path(sys.executable).parent / "flmon"  # the console script, as users run it
    return subprocess.run([str(flmon), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_help_names_every_option() -> None:
    result = _flmon("watch", "--help")
    assert result.returncode == 0
    for option in ("--superlink", "--insecure", "--root-certificates", "--port", "--addr",
                   "--interval", "--timeout", "--web-config", "--client-identity",
                   "--pseudonym-key-file", "--max-client-labels", "--pushgateway",
                   "--stale-after", "9463", "ListRuns", "clean up"):
        assert option in result.stdout, option


@pytest.mark.parametrize(("args", "message"), [
    (("--superlink", "nohost"), "--superlink: 'nohost' is not HOST:PORT"),
    (("--superlink", "h:1", "--interval", "5x"), "--interval: '5x' is not a duration"),
    (("--superlink", "h:1", "--timeout", "0s"), "--timeout must be more than 0"),
    (("--superlink", "h:1", "--client-identity", "pseudonym"), "needs --pseudonym-key-file"),
    (("--superlink", "h:1", "--root-certificates", "/nonexistent.pem"),
     "--root-certificates: /nonexistent.pem is not a file"),
    (("--superlink", "h:1", "--max-client-labels", "-1"), "--max-client-labels must be >= 0"),
    (("--superlink", "h:1", "--insecure", "--root-certificates", "x"), "not allowed with"),
])
def test_bad_input_is_refused_on_stderr(args: tuple[str, ...], message: str) -> None:
    result = _flmon("watch", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_short_pseudonym_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("short")
    result = _flmon("watch", "--superlink", "h:1", "--client-identity", "pseudonym",
                    "--pseudonym-key-file", str(key))
    assert result.returncode == 2
    assert "pseudonym_key of >= 16 bytes" in result.stderr


def test_a_taken_port_is_a_clear_error() -> None:
    with WatchProcess(f"127.0.0.1:{free_port()}", Path("/dev/null")) as running:
        result = _flmon("watch", "--superlink", "127.0.0.1:1", "--insecure",
                        "--port", str(running.port))
    assert result.returncode == 2
    assert f"cannot serve on 127.0.0.1:{running.port}" in result.stderr


def test_without_a_superlink_the_watch_serves_up_0_and_logs_why(tmp_path: Path) -> None:
    log = tmp_path / "watch.log"
    with WatchProcess(f"127.0.0.1:{free_port()}", log, ["--interval", "200ms"]) as watch:
        samples = watch.wait_for("fl_watch_poll_errors_total", 2, reason="unreachable")
        assert value(samples, "fl_superlink_up") == 0
        assert value(samples, "fl_supernodes", status="online") is None
    records = [json.loads(line) for line in log.read_text().splitlines()
               if line.startswith("{")]
    errors = [r for r in records if r["log.level"] == "error"]
    # Logged once when the reason changes, not at every poll.
    assert len(errors) == 1
    assert "does not answer the Control API (unreachable)" in errors[0]["message"]
    assert errors[0]["service.name"] == "flmon-watch"


def test_web_config_guards_metrics_but_not_healthz(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    token = "watch-token-" + "x" * 24
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "token").chmod(0o600)
    config = tmp_path / "web.yml"
    config.write_text("bearer_token_file: token\n")
    with WatchProcess(f"127.0.0.1:{free_port()}", tmp_path / "watch.log",
                      ["--web-config", str(config)]) as watch:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(watch.url, timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(watch.url,
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert b"fl_superlink_up" in response.read()
        healthz = watch.url.replace("/metrics", "/healthz")
        assert urllib.request.urlopen(healthz, timeout=5).status == 200


def test_a_bad_web_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users: [nope]\n")
    result = _flmon("watch", "--superlink", "127.0.0.1:1", "--insecure", "--port", "0",
                    "--web-config", str(config))
    assert result.returncode == 2
    assert "--web-config" in result.stderr
