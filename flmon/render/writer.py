"""Write rendered files atomically, and compare them with what is on disk.

Files are written into a temporary directory inside the output directory, then moved
into place with ``os.replace``; unchanged files are left alone. Nothing touches the disk
before every file rendered and validated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

OWNED_DIRS: tuple[tuple[str, str, str], ...] = (
    ("rules/tests", ".yaml", "rules/flmon-rules.yaml"),
    ("datadog/monitors", ".json", "datadog/conf.yaml"),
    ("datadog/monitors/parts", ".json", "datadog/conf.yaml"),
    ("dashboards/grafana", ".json", "dashboards/grafana/overview.json"),
    ("helm/flmon/files/dashboards/grafana", ".json", "helm/flmon/files/rules/flmon-rules.yaml"),
)
"""(directory, suffix, witness): when a render holds the witness file, every file of that
suffix in the directory is generated, and one the render no longer holds is removed."""


def _obsolete(files: Mapping[str, str], out: Path) -> list[str]:
    stale: list[str] = []
    for rel_dir, suffix, witness in OWNED_DIRS:
        directory = out / rel_dir
        if witness not in files or not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            rel = f"{rel_dir}/{path.name}"
            if path.is_file() and path.name.endswith(suffix) and rel not in files:
                stale.append(rel)
    return stale


def write_atomic(files: Mapping[str, str], out: Path) -> list[str]:
    """Write ``files`` (relative path -> text) under ``out``; return the paths changed."""
    changed = [rel for rel in sorted(files) if _read(out / rel) != files[rel]]
    obsolete = _obsolete(files, out)
    if not changed and not obsolete:
        return []
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".flmon-render-", dir=out))
    try:
        for rel in changed:
            staged = tmp / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            with open(staged, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(files[rel])
                fh.flush()
                os.fsync(fh.fileno())
            staged.chmod(0o644)
        for rel in changed:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, target)
        for rel in obsolete:
            (out / rel).unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return changed + obsolete


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def stale_files(files: Mapping[str, str], out: Path) -> list[tuple[str, str]]:
    """``(path, why)`` of every file under ``out`` that differs from a fresh render."""
    stale: list[tuple[str, str]] = []
    for rel in sorted(files):
        current = _read(out / rel)
        if current is None:
            stale.append((rel, "missing"))
        elif current != files[rel]:
            stale.append((rel, "differs"))
    stale += [(rel, "not rendered any more")
              for rel in _obsolete(files, out)]
    return stale
