"""Ctrl-C during ``flmon demo`` stops every process the demo started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _processes_using(workdir: Path) -> list[str]:
    """Processes whose command line or working directory lies under ``workdir``."""
    found: list[str] = []
    root = str(workdir)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, PermissionError, ProcessLookupError, OSError):
            continue
        if state != "Z" and (root in cmdline or cwd.startswith(root)):
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    flmon = Path(sys.executable).parent / "flmon"
    demo = subprocess.Popen(
        [str(flmon), "demo", "--workdir", str(workdir), "--rounds", "3", "--no-baseline"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert demo.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        seen.append(line)
        if "submitted" in line:
            break
    else:
        demo.kill()
        raise AssertionError("demo did not submit its run:\n" + "".join(seen))
    # the run is under way: Prometheus, AlertManager, Pushgateway, SuperLink, SuperNodes,
    # ServerApp... wait until they are all there rather than for a fixed time
    deadline = time.monotonic() + 60
    running = _processes_using(workdir)
    while len(running) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
        running = _processes_using(workdir)
    assert len(running) >= 6, running
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 130, out
    assert "interrupted" in out
    deadline = time.monotonic() + 10
    while _processes_using(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_using(workdir)
