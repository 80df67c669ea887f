"""Mutation score of the security-critical modules (``make mutation``).

Runs mutmut (configured in ``pyproject.toml``, ``[tool.mutmut]``: the modules, the fast
tests) over the selected modules, reads the verdict of every mutant from ``mutants/``
and writes one row per module into the table of ``docs/testing.md`` (between the
``mutation:begin`` and ``mutation:end`` markers). Rows of modules not run this time
are left as they are, so modules can be measured one at a time::

    python -m benchmarks.mutation                    # every module
    python -m benchmarks.mutation telemetry labels   # some of them
    python -m benchmarks.mutation --report-only      # rewrite the table from mutants/

The score is (killed + timed out) / mutants; a mutant that no fast test reaches counts
as a survivor. Not part of ``make test``: a full run takes tens of minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"


@dataclass(frozen=True)
class Module:
    """A module under mutation, with an optional restriction to some functions."""

    key: str
    path: str
    """A module file (``flmon/labels.py``) or a package folder (``flmon/config/``)."""
    functions: tuple[str, ...] = ()
    """mutmut function names (``x_name``, ``xǁClassǁmethod``) to mutate; all when empty."""

    @property
    def dotted(self) -> str:
        return self.path.removesuffix(".py").rstrip("/").replace("/", ".")

    def patterns(self) -> list[str]:
        if not self.functions:
            return [f"{self.dotted}.*"]
        return [f"{self.dotted}.{f}__mutmut_*" for f in self.functions]

    def selected(self, mutant: str) -> bool:
        if not self.functions:
            return True
        return any(mutant.startswith(f"{self.dotted}.{f}__mutmut_") for f in self.functions)


MODULES: tuple[Module, ...] = (
    Module("telemetry", "flmon/telemetry.py"),
    Module("labels", "flmon/labels.py"),
    Module("dp", "flmon/security/dp.py"),
    Module("config", "flmon/config/"),
    # The helpers every rule is built from (label matchers, thresholds as text, windows,
    # the exporter-down and recording expressions); the alert table itself is checked by
    # the hand-written alert text of tests/render/test_alert_text.py.
    Module("rules", "flmon/render/rules.py", (
        "x__matcher_list", "x_selector", "x_percent", "x_seconds_text", "x_window_increase",
        "x__exporter_down_expr", "x_recording_rules", "x_k8s_name")),
    Module("replies", "flmon/flower/replies.py"),
    Module("updates", "flmon/security/updates.py"),
)
BY_KEY = {m.key: m for m in MODULES}

KILLED = {1, 3}
TIMEOUT = {36, -24, 24, 152, 255}
NOT_RUN = {None, 2, 34}  # not checked, interrupted, skipped


@dataclass(frozen=True)
class Score:
    mutants: int
    killed: int
    timeout: int
    survived: int
    not_run: int

    @property
    def percent(self) -> float:
        judged = self.mutants - self.not_run
        return 100.0 * (self.killed + self.timeout) / judged if judged else 0.0


def score(module: Module, mutants_dir: Path) -> Score | None:
    """The verdicts of ``module``'s mutants, or None when it was never run."""
    if module.path.endswith("/"):
        metas = sorted((mutants_dir / module.path).rglob("*.py.meta"))
    else:
        metas = [mutants_dir / f"{module.path}.meta"]
    metas = [meta for meta in metas if meta.exists()]
    if not metas:
        return None
    verdicts: dict[str, int | None] = {}
    for meta in metas:
        verdicts.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    codes = [code for name, code in verdicts.items() if module.selected(name)]
    killed = sum(1 for c in codes if c in KILLED)
    timeout = sum(1 for c in codes if c in TIMEOUT)
    not_run = sum(1 for c in codes if c in NOT_RUN)
    return Score(len(codes), killed, timeout, len(codes) - killed - timeout - not_run, not_run)


def row(module: Module, s: Score | None) -> str:
    scope = "`" + module.path + "`"
    if module.functions:
        scope += " (" + ", ".join(f.removeprefix("x_") for f in module.functions) + ")"
    if s is None:
        return f"| {scope} | measured separately | | | | |"
    return (f"| {scope} | {s.mutants} | {s.killed + s.timeout} | {s.survived} | "
            f"{s.not_run} | {s.percent:.1f} % |")


HEADER = ("| module | mutants | killed | survived | not run | score |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")


def write_table(scores: dict[str, Score | None], doc: Path = DOC) -> None:
    """Replace the rows of ``scores`` in ``doc``'s table; keep the other rows."""
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    old = {line.split("|")[1].strip(): line for line in body.strip().splitlines()[2:]}
    lines = []
    for module in MODULES:
        new = row(module, scores[module.key]) if module.key in scores else None
        scope = row(module, None).split("|")[1].strip()
        lines.append(new if new is not None else old.get(scope, row(module, None)))
    doc.write_text(f"{head}{BEGIN}\n{HEADER}\n" + "\n".join(lines) + f"\n{END}{tail}",
                   encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="module",
                        help=f"some of: {', '.join(BY_KEY)} (all by default)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report-only", action="store_true",
                        help="do not run mutmut; rewrite the table from mutants/")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(BY_KEY))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(BY_KEY)}")
    chosen = [BY_KEY[k] for k in args.modules] or list(MODULES)
    if not args.report_only:
        patterns = [p for m in chosen for p in m.patterns()]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                               str(args.max_children), *patterns], cwd=ROOT, env=env,
                              check=False)
        if done.returncode != 0:
            print(f"mutmut exited with {done.returncode}", file=sys.stderr)
            return done.returncode
    scores = {m.key: score(m, ROOT / "mutants") for m in chosen}
    write_table({k: v for k, v in scores.items() if v is not None})
    for m in chosen:
        print(row(m, scores[m.key]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
