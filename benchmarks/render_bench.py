"""Render: ``flmon render`` as a whole process, every target and each one alone.

``python -m flmon.cli.main render --config examples/flmon.yaml --out TMP -q`` in a
fresh interpreter, several times; the median wall time includes interpreter start,
imports, rendering, in-memory validation and writing the files. A bare
``python -c pass`` measured in the same loop gives the interpreter's own start-up for
reference.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, spread

TARGETS = ("prometheus", "alertmanager", "grafana", "kibana", "datadog", "elasticsearch",
           "helm")
CONFIG = Path(ROOT) / "examples" / "flmon.yaml"


def available() -> bool:
    """Whether ``flmon render`` is part of this tree."""
    return (Path(ROOT) / "flmon" / "render" / "__init__.py").exists() and CONFIG.exists()


def _once(argv: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300,
                               check=False)
    return time.perf_counter() - start, completed.returncode, completed.stderr[-800:]


def run(quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    if not available():
        return {"available": False, "reason": "flmon render is not in this tree"}
    repeat = repeat or (1 if quick else 5)
    cases: dict[str, list[str] | None] = {"all": None}
    if not quick:
        cases.update({t: [t] for t in TARGETS})
    samples: dict[str, list[float]] = {name: [] for name in cases}
    startup: list[float] = []
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="flmon-render-") as tmp:
        for rep in range(repeat):
            seconds, _, _ = _once([sys.executable, "-c", "pass"])
            startup.append(seconds)
            for name, only in cases.items():
                out = Path(tmp) / f"{name}-{rep}"
                argv = [sys.executable, "-m", "flmon.cli.main", "render", "--config",
                        str(CONFIG), "--out", str(out), "-q"]
                if only:
                    argv += ["--only", ",".join(only)]
                seconds, code, stderr = _once(argv)
                if code != 0:
                    errors[name] = stderr
                    continue
                samples[name].append(seconds)
        files = sum(1 for p in (Path(tmp) / "all-0").rglob("*") if p.is_file()) \
            if (Path(tmp) / "all-0").exists() else 0
    return {
        "available": True,
        "repetitions": repeat,
        "seconds": {name: spread(values) for name, values in samples.items()},
        "python_startup_seconds": spread(startup),
        "files_rendered_all": files,
        "errors": errors,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
