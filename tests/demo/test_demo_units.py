"""The demo's pieces that need no process: CLI errors, fault selection, data splits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flmon.demo import scenarios
from flmon.reference import faults, tabular


def _flmon(*args: str) -> subprocess.CompletedProcess[str]:
    flmon = Path(sys.executable).parent / "flmon"  # the console script, as users run it
    return subprocess.run([str(flmon), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_demo_help_lists_every_scenario_and_option() -> None:
    done = _flmon("demo", "--help")
    assert done.returncode == 0
    for word in (*faults.SCENARIOS, "--example", "--nodes", "--rounds", "--dp", "--hold",
                 "healthcare", "fraud", "Ctrl-C"):
        assert word in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--nodes", "2"), "--nodes must be at least 3"),
    (("--scenario", "node-killed", "--rounds", "3"), "needs --rounds 5 or more"),
    (("--scenario", "nope"), "invalid choice"),
])
def test_demo_refuses_bad_arguments_on_stderr(args: tuple[str, ...], message: str) -> None:
    done = _flmon("demo", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_every_scenario_is_described_and_consistent() -> None:
    assert tuple(scenarios.SCENARIO_TABLE) == faults.SCENARIOS
    for sc in scenarios.SCENARIO_TABLE.values():
        assert sc.description
        end = int(sc.run_config.get("fault-end-round", 3))
        if sc.resolves and sc.expected_alerts:
            assert sc.min_rounds > end, f"{sc.name}: no recovery round after the fault"


def test_faults_hit_only_the_offending_partition_within_the_window() -> None:
    run = {"scenario": "poisoned", "fault-partition": 1, "fault-start-round": 2,
           "fault-end-round": 3, "poison-scale": -100.0}
    hits = {(p, r) for p in range(3) for r in range(1, 6)
            if faults.fault_for(run, {"partition-id": p}, r).active}
    assert hits == {(1, 2), (1, 3)}
    assert faults.fault_for(run, {"partition-id": 1}, 2).poison_scale == -100.0
    collapse = {"scenario": "accuracy-collapse", "fault-start-round": 2, "fault-end-round": 2}
    assert [faults.fault_for(collapse, {"partition-id": p}, 2).flip_labels
            for p in range(3)] == [True, True, True]
    assert not faults.fault_for({"scenario": "node-killed"}, {"partition-id": 1}, 2).active
    # A node's own config makes it faulty whatever the run says.
    own = faults.fault_for({"scenario": "healthy"}, {"partition-id": 0, "fault": "straggler"}, 2)
    assert own.kind == "straggler" and own.delay_seconds == 20.0
    with pytest.raises(ValueError, match="unknown scenario"):
        faults.fault_for({"scenario": "meteor"}, {}, 1)


def test_poison_flips_and_scales_the_update() -> None:
    global_ = [np.ones(3, dtype=np.float32)]
    local = [np.array([2.0, 1.0, 0.0], dtype=np.float32)]
    out = faults.poison(local, global_, -10.0)
    assert np.allclose(out[0], [-9.0, 1.0, 11.0])


def test_dirichlet_split_is_deterministic_disjoint_and_complete() -> None:
    y = np.array([0] * 200 + [1] * 300, dtype=np.int64)
    a = tabular.dirichlet_label_partition(y, 4, 0.5, seed=3, min_size=20)
    b = tabular.dirichlet_label_partition(y, 4, 0.5, seed=3, min_size=20)
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    joined = np.concatenate(a)
    assert sorted(joined.tolist()) == list(range(500))
    assert min(len(p) for p in a) >= 20
    # Label skew: the partitions' positive shares differ.
    shares = [float(y[p].mean()) for p in a]
    assert max(shares) - min(shares) > 0.2


def test_numpy_network_matches_its_weights_layout() -> None:
    weights = tabular.init_weights(5, 4, seed=1)
    assert [w.shape for w in weights] == [(5, 4), (4,), (4, 1), (1,)]
    x = np.zeros((3, 5), dtype=np.float32)
    assert np.allclose(tabular.predict_proba(weights, x), 0.5)
    split = tabular.Split(x, np.array([1, 1, 0], dtype=np.int64))
    scores = tabular.evaluate(weights, split)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["loss"] == pytest.approx(np.log(2), rel=1e-4)


def test_demo_refuses_a_workdir_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    done = _flmon("demo", "--workdir", str(tmp_path), "--no-baseline")
    assert done.returncode == 2
    assert "not made by flmon demo" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_empties_its_own_workdir_before_a_new_run(tmp_path: Path) -> None:
    from flmon.demo.stack import MARKER, DemoStack

    (tmp_path / MARKER).write_text("")
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "old-block").write_text("stale")
    (tmp_path / "keep.txt").write_text("not ours")
    stack = DemoStack("hospitals", 3, workdir=tmp_path)
    stack._prepare_workdir()
    assert not (tmp_path / "prometheus").exists()
    assert (tmp_path / "keep.txt").read_text() == "not ours"
