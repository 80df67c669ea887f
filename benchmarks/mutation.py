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
as a survivor. Not part of ``make test``: a run of every module takes hours (the rule
builders are reached by the promtool cases); see docs/testing.md.
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
    functions: tuple[str, ...] = ()
    """mutmut function names (``x_name``, ``xǁClassǁmethod``) to mutate; all when empty."""
    at_import: tuple[str, ...] = ()
    """Functions that run only while the module is imported (they build field validators
    and defaults): mutmut switches mutants on in an already imported process, so theirs
    never run. Counted as not run; their bugs are checked by hand (docs/testing.md)."""

    @property
    def dotted(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    def patterns(self) -> list[str]:
        if not self.functions:
            return [f"{self.dotted}.*"]
        return [f"{self.dotted}.{f}__mutmut_*" for f in self.functions]

    def selected(self, mutant: str) -> bool:
        if not self.functions:
            return True
        return any(mutant.startswith(f"{self.dotted}.{f}__mutmut_") for f in self.functions)

    def never_active(self, mutant: str) -> bool:
        return any(mutant.startswith(f"{self.dotted}.{f}__mutmut_") for f in self.at_import)


CONFIG_FILES: tuple[str, ...] = tuple(
    f"flmon/config/{name}.py"
    for name in ("strings", "scrape", "alerts", "notify", "outputs", "schema", "loader"))
"""The files of the configuration schema and its validation (one row each)."""
CONFIG_AT_IMPORT: tuple[str, ...] = ("x_matching", "x__alert_field")
"""Functions of the configuration that run only at import (see :attr:`Module.at_import`)."""

RULE_BUILDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flmon/render/rules.py", ()),
    # What every rule's text and expression is built from; the promtool case builders
    # (``*_cases``) and the Datadog monitors of the same modules are not part of the rules.
    ("flmon/alerts/text.py", ("x_num", "x_percent", "x_seconds_text")),
    ("flmon/alerts/exprs.py", ("x_dedupe", "x_window_increase", "x__seconds")),
    ("flmon/alerts/spec.py", ("x_duration_seconds", "x_runbook_anchor", "xǁCtxǁsel",
                              "xǁCtxǁwatch_sel", "xǁCtxǁfed_sel")),
    ("flmon/alerts/quality.py", ("x__accuracy_expr", "x__low_text", "x__drop_text")),
    ("flmon/alerts/progress.py", ("x__no_updates_expr", "x__no_updates_text", "x__dropout_expr",
                                  "x__dropout_text", "x__stalled_expr", "x__stalled_text")),
    ("flmon/alerts/security.py", ("x__anomaly_expr", "x__anomaly_text", "x__dp",
                                  "x__nearly_text", "x__exhausted_text", "x__rejected_expr",
                                  "x__rejected_text", "x__leakage_text")),
    ("flmon/alerts/federation.py", ("x__exporter_down_expr", "x__superlink_expr",
                                    "x__superlink_text", "x__node_text", "x__run_failed_expr",
                                    "x__run_failed_text")),
)
"""The rule rendering: its module, and the functions of the alert declarations it calls."""

MODULES: tuple[Module, ...] = (
    Module("telemetry", "flmon/telemetry.py"),
    Module("labels", "flmon/labels.py"),
    Module("dp", "flmon/security/dp.py"),
    *(Module("config", path, at_import=CONFIG_AT_IMPORT) for path in CONFIG_FILES),
    *(Module("rules", path, functions) for path, functions in RULE_BUILDERS),
    Module("replies", "flmon/flower/replies.py"),
    Module("replies", "flmon/flower/shapes.py"),
    Module("updates", "flmon/security/updates.py"),
)
"""One row of the table each; a key (the command line's name) may cover several files."""
BY_KEY: dict[str, tuple[Module, ...]] = {
    key: tuple(m for m in MODULES if m.key == key) for key in dict.fromkeys(m.key for m in MODULES)
}

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
    meta = mutants_dir / f"{module.path}.meta"
    if not meta.exists():
        return None
    verdicts = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    codes = [None if module.never_active(name) else code
             for name, code in verdicts.items() if module.selected(name)]
    killed = sum(1 for c in codes if c in KILLED)
    timeout = sum(1 for c in codes if c in TIMEOUT)
    not_run = sum(1 for c in codes if c in NOT_RUN)
    return Score(len(codes), killed, timeout, len(codes) - killed - timeout - not_run, not_run)


def _shown(function: str) -> str:
    """``x_name`` -> ``name``, ``xǁClassǁmethod`` -> ``Class.method``."""
    if function.startswith("x_"):
        return function.removeprefix("x_")
    return function.removeprefix("x").replace("ǁ", ".").strip(".")


def row(module: Module, s: Score | None) -> str:
    scope = "`" + module.path + "`"
    if module.functions:
        scope += " (" + ", ".join(_shown(f) for f in module.functions) + ")"
    if s is None:
        return f"| {scope} | measured separately | | | | |"
    if s.mutants == 0:  # pydantic models and decorated validators only
        return f"| {scope} | 0 | | | | nothing mutmut mutates |"
    return (f"| {scope} | {s.mutants} | {s.killed + s.timeout} | {s.survived} | "
            f"{s.not_run} | {s.percent:.1f} % |")


HEADER = ("| module | mutants | killed | survived | not run | score |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")


def write_table(scores: dict[Module, Score], doc: Path = DOC) -> None:
    """Replace the rows of ``scores`` in ``doc``'s table; keep the other rows."""
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    old = {line.split("|")[1].strip(): line for line in body.strip().splitlines()[2:]}
    lines = []
    for module in MODULES:
        new = row(module, scores[module]) if module in scores else None
        scope = row(module, None).split("|")[1].strip()
        lines.append(new if new is not None else old.get(scope, row(module, None)))
    doc.write_text(f"{head}{BEGIN}\n{HEADER}\n" + "\n".join(lines) + f"\n{END}{tail}",
                   encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="module",
                        help=f"some of: {', '.join(BY_KEY)} (all by default)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2,
                        help="mutmut's parallel workers (default: one per core)")
    parser.add_argument("--report-only", action="store_true",
                        help="do not run mutmut; rewrite the table from mutants/")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(BY_KEY))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(BY_KEY)}")
    chosen = [m for k in args.modules for m in BY_KEY[k]] or list(MODULES)
    if not args.report_only:
        patterns = [p for m in chosen for p in m.patterns()]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                               str(args.max_children), *patterns], cwd=ROOT, env=env,
                              check=False)
        if done.returncode != 0:
            print(f"mutmut exited with {done.returncode}", file=sys.stderr)
            return done.returncode
    scores = {m: score(m, ROOT / "mutants") for m in chosen}
    write_table({m: s for m, s in scores.items() if s is not None})
    for m in chosen:
        print(row(m, scores[m]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
