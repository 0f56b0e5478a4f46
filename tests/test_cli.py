"""The ``replisim`` command line: validate, list, run and sweep, and its user-error reports."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sim.cli import main
from sim.config import load_file
from tests.helpers import SCENARIOS
from tests.test_config import BAD_INPUTS, SHIPPED, THREE_MISTAKES, write_yaml

TRIAL_FILES = ["events.parquet", "lineage.parquet", "summary.json", "scenario.json"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def strict_json(text: str) -> Any:
    """Parse JSON, refusing NaN and Infinity (which many JSON readers reject)."""
    return json.loads(text, parse_constant=_reject_constant)


def sweep_table(folder: Path) -> pd.DataFrame:
    """A sweep's table without the wall-clock column, in trial-id order."""
    table = pd.read_parquet(folder / "trials.parquet")
    return table.drop(columns=["wall_s"]).sort_values("trial_id").reset_index(drop=True)


def replisim_script() -> Path:
    """The installed ``replisim`` console script of this interpreter."""
    script = Path(sysconfig.get_path("scripts")) / "replisim"
    assert script.exists(), f"console script not installed at {script}"
    return script


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # `run` without --out writes under ./runs; keep any such mistake out of the repo.
    monkeypatch.chdir(tmp_path)


# --- validate and list ---------------------------------------------------------------------


def test_validate_accepts_the_shipped_file_and_names_its_scenarios(capsys):
    """``validate scenarios.yaml`` exits 0 and names every scenario."""
    assert main(["validate", str(SCENARIOS)]) == 0
    out, err = capsys.readouterr()
    assert all(name in out for name in SHIPPED)
    assert err == ""


def test_validate_checks_only_the_named_scenario(capsys, tmp_path):
    """``validate --scenario`` ignores mistakes in the other scenarios."""
    path = write_yaml(
        tmp_path,
        """\
        scenarios:
          good:
            hosts: [{name: box}]
            agents: [{agent: replicator}]
          bad:
            hosts: [{name: box}]
            agents: [{agent: replikator}]
        """,
    )
    assert main(["validate", str(path), "--scenario", "good"]) == 0
    assert "good" in capsys.readouterr().out


def test_list_json_gives_every_scenario(capsys):
    """``list --json`` prints parseable JSON with one row per scenario."""
    assert main(["list", str(SCENARIOS), "--json"]) == 0
    rows = strict_json(capsys.readouterr().out)
    assert [row["name"] for row in rows] == list(load_file(SCENARIOS).scenarios)
    branching = next(row for row in rows if row["name"] == "branching")
    assert branching["agents"] == "replicator"
    assert branching["hosts"] == 1


# --- user mistakes -------------------------------------------------------------------------


def error_lines(stderr: str) -> list[str]:
    """The ``error:`` lines of stderr, checking the rest is just the closing count."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert lines == [*errors, f"{len(errors)} error(s)"], stderr
    return errors


@pytest.mark.parametrize(("text", "field_path", "line", "fragments"), BAD_INPUTS)
def test_validate_reports_bad_input_on_one_line_without_traceback(
    capsys, tmp_path, text, field_path, line, fragments
):
    """A bad file exits 2 with one stderr line naming file:line and the field path."""
    path = write_yaml(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    [error] = error_lines(err)
    assert f"{path}:{line}: " in error
    assert f": {field_path or '(top)'}: " in error
    assert all(fragment in error for fragment in fragments)
    assert "Traceback" not in err
    assert out == ""


def test_validate_reports_every_error_of_a_file(capsys, tmp_path):
    """Three mistakes in different scenarios print three error lines."""
    path = write_yaml(
        tmp_path,
        THREE_MISTAKES,
    )
    assert main(["validate", str(path)]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 3
    assert f"{path}:4: scenarios.one.hosts.0.memory: " in errors[0]
    assert f"{path}:12: scenarios.two.agents.0.success_probability: " in errors[1]
    assert f"{path}:18: scenarios.three.stop.colour: unknown field" in errors[2]


def test_validate_of_a_missing_file_exits_2(capsys, tmp_path):
    """A file that does not exist is a user mistake: exit 2, a message, no traceback."""
    path = tmp_path / "nope.yaml"
    assert main(["validate", str(path)]) == 2
    [error] = error_lines(capsys.readouterr().err)
    assert str(path) in error
    assert "cannot read" in error


def test_run_with_an_unknown_scenario_lists_the_known_ones(capsys, tmp_path):
    """``run --scenario <typo>`` exits 2 with a message listing every scenario."""
    code = main(["run", str(SCENARIOS), "--scenario", "brnaching", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "no scenario 'brnaching'" in err
    assert all(name in err for name in SHIPPED)
    assert "Traceback" not in err


def test_run_of_a_file_with_several_scenarios_needs_one_named(capsys, tmp_path):
    """``run`` without ``--scenario`` on a many-scenario file exits 2 and lists them."""
    assert main(["run", str(SCENARIOS), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--scenario" in err
    assert all(name in err for name in SHIPPED)


def test_set_without_equals_exits_2(capsys, tmp_path):
    """``--set`` without ``=`` exits 2 with a message showing the expected form."""
    code = main(
        ["run", str(SCENARIOS), "--scenario", "branching", "--set", "agents.0.success_probability"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "dotted.path=value" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_set_with_a_bad_path_exits_2_naming_the_path(capsys):
    """An override past the end of a list exits 2 and names the offending path."""
    code = main(
        ["validate", str(SCENARIOS), "--scenario", "branching", "--set", "agents.4.target=x"]
    )
    assert code == 2
    [error] = error_lines(capsys.readouterr().err)
    assert "agents.4 is not an index of a list of 1" in error


def test_set_of_an_unknown_policy_names_the_known_ones(capsys):
    """``--set policies=[{kind: …}]`` with an unknown kind exits 2 listing known policies."""
    args = ["validate", str(SCENARIOS), "--scenario", "branching"]
    assert main([*args, "--set", "policies=[{kind: no-such-policy}]"]) == 2
    [error] = error_lines(capsys.readouterr().err)
    assert "scenarios.branching.policies.0: unknown policy 'no-such-policy'; known: " in error


# --- run -----------------------------------------------------------------------------------


def test_run_writes_the_trial_folder(capsys, tmp_path):
    """``run`` exits 0 and writes events and lineage (Parquet), summary and scenario files."""
    out = tmp_path / "trial"
    args = ["run", str(SCENARIOS), "--scenario", "paper-shutdown-avoidance", "--seed", "1"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert all((out / name).is_file() for name in TRIAL_FILES)
    assert capsys.readouterr().out == ""
    assert strict_json((out / "summary.json").read_text())["seed"] == 1


def test_run_json_prints_strict_json(capsys, tmp_path):
    """``run --json`` prints one strict JSON object (no NaN or Infinity) with the summary."""
    out = tmp_path / "trial"
    args = ["run", str(SCENARIOS), "--scenario", "paper-shutdown-avoidance", "--seed", "1"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    summary = strict_json(capsys.readouterr().out)
    assert summary["scenario"] == "paper-shutdown-avoidance"
    assert summary["seed"] == 1
    assert summary["status"] == "ok"
    assert summary["out"] == str(out)


def test_run_is_reproducible_for_a_seed(capsys, tmp_path):
    """Two runs with the same seed write the same events."""
    args = ["run", str(SCENARIOS), "--scenario", "branching", "--seed", "7", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    events = [(tmp_path / f / "events.parquet").read_bytes() for f in ("a", "b")]
    assert events[0] == events[1]


def test_run_applies_set_overrides(capsys, tmp_path):
    """``run --set agents.0.success_probability=0.4`` is what the trial's scenario.json holds."""
    out = tmp_path / "trial"
    args = ["run", str(SCENARIOS), "--scenario", "branching", "--seed", "3", "--quiet"]
    assert main([*args, "--set", "agents.0.success_probability=0.4", "--out", str(out)]) == 0
    written = json.loads((out / "scenario.json").read_text())
    assert written["agents"][0]["success_probability"] == {"kind": "constant", "value": 0.4}


def test_run_writes_strict_json_files(capsys, tmp_path):
    """Every JSON file of a trial folder is strict JSON, even with infinite quantities."""
    out = tmp_path / "trial"
    args = ["run", str(SCENARIOS), "--scenario", "branching", "--seed", "3", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    for name in ("summary.json", "scenario.json"):
        strict_json((out / name).read_text())
    assert main(["graph", str(out), "--format", "json", "--output", str(out / "l.json")]) == 0
    strict_json((out / "l.json").read_text())


# --- sweep ---------------------------------------------------------------------------------

SWEEP = ["sweep", str(SCENARIOS), "--scenario", "branching", "--trials", "20", "--workers", "2"]


def test_sweep_writes_one_row_per_grid_point_and_seed(capsys, tmp_path):
    """A 2-point grid × 20 seeds gives a 40-row trials.parquet with the tidy columns."""
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--out", str(out), "--json"]) == 0
    report = strict_json(capsys.readouterr().out)
    assert (report["trials"], report["errors"]) == (40, 0)
    table = pd.read_parquet(out / "trials.parquet")
    assert len(table) == 40
    for column in (
        "trial_id",
        "scenario",
        "seed",
        "param.agents.0.success_probability",
        "status",
        "replicas_total",
        "extinct",
    ):
        assert column in table.columns
    assert table["trial_id"].is_unique
    assert set(table["scenario"]) == {"branching"}
    assert sorted(set(table["seed"])) == list(range(20))
    points = sorted(set(table["param.agents.0.success_probability"]))
    assert points == pytest.approx([0.333333333333, 0.5])
    assert set(table["status"]) == {"ok"}


def test_sweep_refuses_a_folder_that_holds_trials(capsys, tmp_path):
    """A second sweep into the same folder without ``--resume`` exits 2 and keeps the table."""
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--out", str(out), "--quiet"]) == 0
    before = sweep_table(out)
    assert main([*SWEEP, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err
    assert "Traceback" not in err
    pd.testing.assert_frame_equal(sweep_table(out), before)


def test_sweep_resume_of_a_finished_sweep_changes_nothing(capsys, tmp_path):
    """``--resume`` on a finished sweep exits 0, runs no trial and leaves the table as it was."""
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--out", str(out), "--quiet"]) == 0
    before = sweep_table(out)
    rows = (out / "rows.jsonl").read_text()
    assert main([*SWEEP, "--out", str(out), "--quiet", "--resume"]) == 0
    pd.testing.assert_frame_equal(sweep_table(out), before)
    assert (out / "rows.jsonl").read_text() == rows


def test_sweep_with_an_unknown_scenario_exits_2(capsys, tmp_path):
    """``sweep --scenario <typo>`` exits 2 listing the known scenarios."""
    code = main(["sweep", str(SCENARIOS), "--scenario", "brnaching", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "no scenario 'brnaching'" in err
    assert all(name in err for name in SHIPPED)


# --- the console script --------------------------------------------------------------------


def test_console_script_validates_the_shipped_file():
    """The installed ``replisim`` script runs ``validate`` and exits 0."""
    done = subprocess.run(
        [str(replisim_script()), "validate", str(SCENARIOS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in SHIPPED)


def test_console_script_reports_a_bad_file_with_exit_2_and_no_traceback(tmp_path):
    """The installed ``replisim`` script exits 2 on a bad file and prints no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            scenarios:
              one:
                hosts: [{name: box}]
                agents: [{agent: replikator}]
            """
        )
    )
    done = subprocess.run(
        [str(replisim_script()), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown agent 'replikator'" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_leaves_at_once_with_its_output_flushed_and_its_folder_whole(tmp_path):
    """``replisim run`` exits without tearing the trial down, its JSON line printed and its
    folder complete."""
    out = tmp_path / "trial"
    done = subprocess.run(
        [sys.executable, "-m", "sim.cli", "run", str(SCENARIOS), "--scenario", "branching",
         "--seed", "3", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["out"] == str(out)
    names = {"events.parquet", "lineage.parquet", "live.parquet", "summary.json"}
    assert names <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
