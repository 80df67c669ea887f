"""``flmon privacy-test`` and ``flmon.privacy.run_privacy_test`` on the hospitals example.

In-process Flower federations of 3 clients and 2 rounds (seconds); the Pushgateway test
starts a real Pushgateway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dp_accounting
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flmon.cli.main import main
from flmon.privacy import PrivacyTestOptions, run_privacy_test
from flmon.privacy.report import push
from flmon.stack.pushgateway import Pushgateway

ARGS = ["privacy-test", "--example", "healthcare", "--rounds", "2", "--nodes", "3",
        "--dp-noise", "1.5"]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("privacy") / "out.json"
    assert main([*ARGS, "--json", str(path)]) == 0
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _check_figures(figures: dict[str, Any]) -> None:
    assert 0.0 <= figures["auc"] <= 1.0
    assert 0.0 <= figures["advantage"] <= 1.0
    low, high = figures["auc_ci"]
    assert 0.0 <= low <= figures["auc"] <= high <= 1.0


def test_json_has_both_sections_with_every_attack_view_and_round(
        written: dict[str, Any]) -> None:
    assert {"example": "healthcare", "rounds": 2, "nodes": 3, "seed": 7}.items() \
        <= written.items()
    for section in ("no_dp", "dp"):
        body = written[section]
        _check_figures(body)
        for views in body["attacks"].values():
            assert set(views) == {"client_update", "release"}
            for view, figures in views.items():
                _check_figures(figures)
                assert [r["round"] for r in figures["rounds"]] == [1, 2]
                for row in figures["rounds"]:
                    _check_figures(row)
                    if view == "client_update":
                        assert sorted(c["client"] for c in row["clients"]) == [0, 1, 2]
        assert set(body["attacks"]) == {"gradient_decomposition", "gradient_alignment",
                                        "loss_difference"}
    # The headline of the no-DP run is the server's view of the client updates, the
    # central-DP run's is the release (what central DP protects).
    assert written["no_dp"]["view"] == "client_update"
    assert written["no_dp"]["attack"] == "gradient_decomposition"
    assert written["no_dp"]["auc"] == \
        written["no_dp"]["attacks"]["gradient_decomposition"]["client_update"]["auc"]
    assert written["dp"]["view"] == "release"
    assert written["dp"]["auc"] == \
        written["dp"]["attacks"]["gradient_decomposition"]["release"]["auc"]
    assert {"mode": "central", "noise": 1.5, "clip": 0.5, "delta": 1e-5}.items() \
        <= written["dp"].items()


def test_epsilon_is_the_rdp_accountant_s(written: dict[str, Any]) -> None:
    """Two Gaussian releases of noise multiplier 1.5, no sampling amplification."""
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(1.5), 2)
    assert written["dp"]["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)


def test_the_library_call_gives_the_same_figures_and_leaves_numpy_s_generator_alone(
        written: dict[str, Any]) -> None:
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    result = run_privacy_test(PrivacyTestOptions(example="healthcare", rounds=2, nodes=3,
                                                 dp_noise=1.5))
    assert np.random.random() == expected_next
    assert json.loads(json.dumps(result)) == written


def test_local_dp_headline_is_the_client_updates_and_reproducible() -> None:
    result = run_privacy_test(example="healthcare", rounds=1, nodes=3, dp_mode="local",
                              resamples=50)
    again = run_privacy_test(example="healthcare", rounds=1, nodes=3, dp_mode="local",
                             resamples=50)
    assert again == result
    assert result["dp"]["mode"] == "local"
    assert result["dp"]["view"] == "client_update"
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(1.0), 1)
    assert result["dp"]["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    # each client's update carries noise of std 1.0 * 0.5 per weight: the model degrades
    assert result["dp"]["accuracy"] < result["no_dp"]["accuracy"]


@pytest.mark.parametrize(("extra", "field"), [
    (["--example", "retail"], "--example"),
    (["--rounds", "0"], "--rounds"),
    (["--nodes", "1"], "--nodes"),
    (["--dp-noise", "0"], "--dp-noise"),
    (["--dp-noise", "nan"], "--dp-noise"),
    (["--clip", "-1"], "--clip"),
    (["--dp-mode", "hybrid"], "--dp-mode"),
])
def test_bad_input_is_refused_on_stderr_and_writes_nothing(
        extra: list[str], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.json"
    code = main(["privacy-test", "--rounds", "1", *extra, "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert field in captured.err
    assert captured.out == ""
    assert not out.exists()


def test_options_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match=r"^rounds:"):
        PrivacyTestOptions(rounds=0)
    with pytest.raises(ValueError, match=r"^example:"):
        PrivacyTestOptions(example="retail")


def test_figures_are_pushed_to_a_real_pushgateway(written: dict[str, Any]) -> None:
    with Pushgateway() as gateway:
        assert push(written, gateway.address)
        text = gateway.metrics_text()
    seen: dict[tuple[str, str, str], float] = {}
    families = list(text_string_to_metric_families(text))
    pushed = {f.name for f in families
              if any(s.labels.get("job") == "flmon-privacy" for s in f.samples)}
    # the group holds the two gauges (and the Pushgateway's own push timestamps) only
    assert pushed == {"fl_privacy_attack_auc", "fl_privacy_attack_advantage",
                      "push_time_seconds", "push_failure_time_seconds"}
    for family in families:
        if family.name.startswith("fl_privacy_attack_"):
            for sample in family.samples:
                assert sample.labels["job"] == "flmon-privacy"
                assert sample.labels["federation"] == "hospitals"
                seen[(sample.name, sample.labels["attack"], sample.labels["dp"])] = sample.value
    no_dp, dp = written["no_dp"], written["dp"]
    assert seen[("fl_privacy_attack_auc", "gradient_decomposition", "off")] == \
        pytest.approx(no_dp["auc"])
    assert seen[("fl_privacy_attack_advantage", "gradient_decomposition", "off")] == \
        pytest.approx(no_dp["advantage"])
    assert seen[("fl_privacy_attack_auc", "gradient_decomposition_release", "on")] == \
        pytest.approx(dp["auc"])
    assert seen[("fl_privacy_attack_auc", "loss_difference", "on")] == \
        pytest.approx(dp["attacks"]["loss_difference"]["client_update"]["auc"])
    assert len(seen) == 2 * 3 * 2 * 2  # 2 metrics x 3 attacks x 2 views x dp off/on


def test_the_table_shows_every_figure_and_says_what_central_dp_protects(
        written: dict[str, Any]) -> None:
    from flmon.privacy.report import table

    text = table(written)
    for attack_name in ("gradient_decomposition", "gradient_alignment", "loss_difference"):
        for view in ("client_update", "release"):
            a = written["no_dp"]["attacks"][attack_name][view]
            b = written["dp"]["attacks"][attack_name][view]
            row = next(line for line in text.splitlines()
                       if line.split()[:2] == [attack_name, view])
            assert f"{a['auc']:.3f} [{a['auc_ci'][0]:.3f}, {a['auc_ci'][1]:.3f}]" in row
            assert f"{b['auc']:.3f} [{b['auc_ci'][0]:.3f}, {b['auc_ci'][1]:.3f}]" in row
    assert f"epsilon {written['dp']['epsilon']:.2f}" in text
    assert "not the client updates from the server" in text


def test_a_pushgateway_that_is_down_fails_the_command_after_the_figures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flmon.stack.ports import free_port

    out = tmp_path / "out.json"
    code = main(["privacy-test", "--rounds", "1", "--json", str(out),
                 "--pushgateway", f"127.0.0.1:{free_port()}"])
    captured = capsys.readouterr()
    assert code == 1
    assert "push to" in captured.err and "failed" in captured.err
    assert "gradient_decomposition" in captured.out
    assert json.loads(out.read_text())["rounds"] == 1
