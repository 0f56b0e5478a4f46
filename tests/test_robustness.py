"""Issue 14: every bad input is one clear error (exit 2, no traceback, bounded time and
memory); sweep folders survive any kill and are never silently mixed or overwritten.

Each case listed under "Why" in the issue is a test here, in the issue's order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sim.cli import main
from tests.helpers import ROOT, SCENARIOS

MINIMAL = """\
scenarios:
  one:
    hosts: [{name: box}]
    agents: [{agent: replicator}]
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `run` without --out writes under ./runs


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def cli(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """Run ``replisim ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: Any, *args: Any, fragment: str = "") -> str:
    """``replisim ARGS`` exits 2 with one error line (plus the count line of scenario
    errors), no traceback; return that line."""
    code, _, err = cli(capsys, *args)
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.endswith("error(s)")]
    lines = [line for line in lines if not line.startswith("replisim: note:")]
    assert len(lines) == 1, err
    assert fragment in lines[0], err
    return lines[0]


def script(*args: Any, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The command line in a fresh interpreter (this checkout's code)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sim.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


BRANCHING = ["--scenario", "branching"]


# --- tracebacks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 4, "scenarios:\n  a:\n    description: caf\xe9\n".encode("latin-1")],
    ids=["binary", "latin-1"],
)
def test_a_file_that_is_not_utf8_is_one_error_with_its_line(capsys, tmp_path, content):
    """A binary or non-UTF-8 scenario file exits 2 naming the file and the line."""
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    line = refused(capsys, "validate", path, fragment="not UTF-8")
    assert f"{path}:" in line


@pytest.mark.parametrize("members", ["[[one]]", "{x: one}", "[{a: 1}]"])
def test_sweeps_holding_nested_lists_or_mappings_are_errors(capsys, tmp_path, members):
    """``sweeps:`` with nested lists or mappings exits 2 in validate and in sweep."""
    path = write(tmp_path, MINIMAL + f"sweeps:\n  g: {members}\n")
    refused(capsys, "validate", path, fragment="sweeps.g")
    refused(capsys, "sweep", path, "--scenario", "g", "--out", tmp_path / "o", fragment="sweeps.g")


def test_sweep_out_under_a_regular_file_is_an_error(capsys, tmp_path):
    """``sweep --out`` under a regular file exits 2 naming the path."""
    (tmp_path / "file").write_text("x")
    args = ["sweep", SCENARIOS, *BRANCHING, "--trials", "1", "--quiet"]
    refused(capsys, *args, "--out", tmp_path / "file" / "sub", fragment="file")
    refused(capsys, *args, "--out", tmp_path / "file", fragment="file")


def test_sweep_out_in_proc_is_an_error(capsys):
    """``sweep --out /proc/...`` exits 2 in one line."""
    args = ["sweep", SCENARIOS, *BRANCHING, "--trials", "1", "--quiet"]
    refused(capsys, *args, "--out", "/proc/replisim-sweep", fragment="/proc/replisim-sweep")


def test_run_out_naming_a_file_is_an_error(capsys, tmp_path):
    """``run --out FILE`` (or a folder under a file) exits 2 before the trial runs."""
    (tmp_path / "file").write_text("x")
    args = ["run", SCENARIOS, *BRANCHING, "--quiet"]
    refused(capsys, *args, "--out", tmp_path / "file", fragment="file")
    refused(capsys, *args, "--out", tmp_path / "file" / "trial", fragment="is a file")


def test_graph_output_under_a_file_is_an_error(capsys, tmp_path):
    """``graph --output`` under a regular file exits 2 in one line."""
    trial = tmp_path / "t"
    assert cli(capsys, "run", SCENARIOS, *BRANCHING, "--out", trial, "--quiet")[0] == 0
    (tmp_path / "file").write_text("x")
    refused(capsys, "graph", trial, "--format", "json", "--output", tmp_path / "file" / "g.json")


DAMAGED = {
    "lineage.parquet": ["", "PAR1 not a parquet file", "WRONG-COLUMNS", "UNKNOWN-PARENT"],
    "lineage.json": [  # an older trial folder: lineage.json and no lineage.parquet
        "[]",
        '{"nodes": 5}',
        '{"nodes": [1]}',
        '{"nodes": [{"id": "a"}], "edges": [{"source": "a"}]}',
        "null",
        '{"nodes": [{"id": "a", "born": "x"}]}',
    ],
    "summary.json": ["[]", '{"seed": "x"}', "null", "{", '{"seed": 1, "live_series": 5}'],
}


@pytest.fixture(scope="module")
def trial_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trial") / "t"
    assert main(["run", str(SCENARIOS), *BRANCHING, "--out", str(folder), "--quiet"]) == 0
    return folder


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, texts in DAMAGED.items() for t in texts])
def test_damaged_trial_folders_are_clear_errors_for_graph_report_and_run(
    capsys, tmp_path, trial_folder, name, text
):
    """``graph``, ``report`` and ``run`` of a trial folder whose lineage (Parquet, or an older
    folder's JSON) or summary.json has the wrong shape exit 0 or 2, never with a traceback."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "t"
    shutil.copytree(trial_folder, folder)
    if name == "lineage.json":
        (folder / "lineage.parquet").unlink()
    if text == "WRONG-COLUMNS":
        pq.write_table(pa.table({"a": [1, 2]}), folder / name)
    elif text == "UNKNOWN-PARENT":
        table = pq.read_table(folder / name)
        parents = ["nobody"] * table.num_rows
        table = table.set_column(2, "parent", pa.array(parents, type=pa.string()))
        pq.write_table(table, folder / name)
    else:
        (folder / name).write_text(text)
    for args in (
        ["graph", folder, "--format", "json"],
        ["report", folder, "--quiet"],
        ["run", folder, "--out", tmp_path / "again", "--quiet"],
    ):
        code, _, err = cli(capsys, *args)
        assert code in (0, 2), (args, err)
        assert "Traceback" not in err
    if name.startswith("lineage."):
        refused(capsys, "graph", folder, "--format", "json", fragment=name)
    elif '"seed": 1' not in text:  # a summary without its seed cannot be run again
        refused(capsys, "run", folder, "--out", tmp_path / "again", fragment="trial folder")


# --- resources -------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_at_once(capsys, tmp_path):
    """Nested aliases that expand to 9^9 values are refused in seconds, not run to OOM."""
    lines = ["x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x-a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines.append("scenarios:\n  s: {hosts: [{name: b}], agents: [{agent: idle}], description: *a9}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    refused(capsys, "validate", path, fragment="alias")
    assert time.monotonic() - started < 10


def test_an_alias_that_contains_itself_is_an_error(capsys, tmp_path):
    """A self-referring alias exits 2 instead of recursing."""
    path = write(tmp_path, MINIMAL + "x-loop: &loop [*loop]\n")
    refused(capsys, "validate", path, fragment="contains it")


def test_deeply_nested_yaml_is_an_error(capsys, tmp_path):
    """100,000 nested brackets exit 2 (no RecursionError traceback)."""
    path = tmp_path / "deep.yaml"
    path.write_text("scenarios: " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(capsys, "validate", path, fragment="nested too deeply")


def test_a_billion_hosts_is_refused_with_the_estimate(capsys, tmp_path):
    """``hosts.0.count: 1000000000`` exits 2 with the memory it would need."""
    line = refused(
        capsys,
        "validate",
        SCENARIOS,
        *BRANCHING,
        "--set",
        "hosts.0.count=1000000000",
        fragment="hosts.0.count",
    )
    assert "1,000,000,000 hosts need about" in line and "this machine has" in line


def test_a_billion_trials_is_refused_with_the_estimate(capsys, tmp_path):
    """``--trials 1000000000`` exits 2 at once with what the rows and folders would need."""
    started = time.monotonic()
    line = refused(
        capsys, "sweep", SCENARIOS, *BRANCHING, "--trials", 10**9, "--out", tmp_path / "o"
    )
    assert "2,000,000,000 trials" in line and "need" in line
    assert time.monotonic() - started < 10
    assert not (tmp_path / "o").exists()


def test_a_billion_trials_in_the_file_lists_without_building_them(capsys, tmp_path):
    """``sweep: {trials: 1000000000}`` is counted by ``list``, not materialised."""
    path = write(tmp_path, MINIMAL + "    sweep: {trials: 1000000000}\n")
    code, out, _ = cli(capsys, "list", path, "--json")
    assert code == 0 and json.loads(out)[0]["sweep_trials"] == 10**9


def test_a_huge_scenario_file_is_refused_at_once(capsys, tmp_path):
    """A 50 MB file is refused by its size before it is parsed."""
    path = tmp_path / "big.yaml"
    one = "  s{}: {{hosts: [{{name: b}}], agents: [{{agent: idle}}]}}\n"
    with path.open("w") as fh:
        fh.write("scenarios:\n")
        for i in range(50 * 2**20 // len(one)):
            fh.write(one.format(i))
    started = time.monotonic()
    refused(capsys, "validate", path, fragment="larger than")
    assert time.monotonic() - started < 10


def test_too_many_scenarios_are_refused(capsys, tmp_path):
    """A file of more than 10,000 scenarios exits 2 naming the limit."""
    lines = [f"  s{i}: {{}}" for i in range(10_001)]
    path = write(tmp_path, "scenarios:\n" + "\n".join(lines) + "\n")
    refused(capsys, "validate", path, fragment="at most 10,000")


def test_workers_are_capped_at_what_the_machine_runs(capsys, tmp_path):
    """``--workers 100000`` runs with at most one worker per CPU, and says so."""
    from sim import budget

    code, _, err = cli(
        capsys,
        "sweep",
        SCENARIOS,
        *BRANCHING,
        "--trials",
        3,
        "--workers",
        100_000,
        "--out",
        tmp_path / "o",
        "--json",
    )
    assert code == 0, err
    assert f"--workers 100000 capped at {budget.cpus()}" in err
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["executor"]["workers"] <= budget.cpus()


# --- accepted, then failing or hanging at run time -------------------------------------------


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("injectors=[{signal: SIGTERM, every: 0}]", "fire forever at one instant"),
        ("injectors=[{signal: SIGTERM, every: {uniform: [0, 0]}}]", "fire forever"),
        ("injectors=[{signal: SIGTERM, every: {normal: [-50, 1]}}]", "fire forever"),
        ("agents.0.attempt_time=0", "repeat forever at one instant"),
        ("injectors.0.lifetime={exponential: inf}", "finite number"),
        ("agents.0.attempt_time={lognormal: [1000, 1]}", "too large"),
    ],
)
def test_zero_time_loops_and_infinite_means_are_refused(capsys, override, fragment):
    """Intervals that average 0 s and infinite means fail validation, not the run."""
    args = ["validate", SCENARIOS, *BRANCHING, "--set", override]
    if "attempt_time=0" in override:
        args += ["--set", "agents.0.success_probability=0"]
    refused(capsys, *args, fragment=fragment)


def test_zero_attempt_time_with_a_cap_on_attempts_runs(capsys, tmp_path):
    """``attempt_time: 0`` is fine when ``max_attempts`` ends the loop."""
    args = ["run", SCENARIOS, *BRANCHING, "--out", tmp_path / "t", "--quiet"]
    sets = ["agents.0.attempt_time=0", "agents.0.max_attempts=3"]
    assert cli(capsys, *args, *(x for s in sets for x in ("--set", s)))[0] == 0


@pytest.mark.parametrize(("count", "degree"), [(5, 3), (4, 5), (4, 2.5)])
def test_an_impossible_regular_graph_is_refused(capsys, count, degree):
    """``topology: regular`` with an odd n·d, a degree of at least n, or a fraction."""
    refused(
        capsys,
        "validate",
        SCENARIOS,
        "--scenario",
        "network-spread",
        "--set",
        f"hosts.0.count={count}",
        "--set",
        "network.topology=regular",
        "--set",
        f"network.degree={degree}",
        fragment="network.degree",
    )


# --- accepted silently, wrong ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{normal: [2, 0]}",
        "{normal: [0.5, 0.1]}",
        "{exponential: 0.1}",
        "{uniform: [0, 2]}",
        "{choice: [0.5, 1.5]}",
        "{lognormal: [0, 1]}",
    ],
)
def test_a_probability_given_as_a_distribution_is_checked_over_its_support(capsys, value):
    """A distribution used as a probability must draw only values in [0, 1]."""
    refused(
        capsys,
        "validate",
        SCENARIOS,
        *BRANCHING,
        "--set",
        f"agents.0.success_probability={value}",
        fragment="a probability must be in [0.0, 1.0]",
    )


def test_an_injector_aimed_at_a_replica_that_cannot_exist_is_refused(capsys):
    """``target: orgin`` (a typo) exits 2 listing what an injector can aim at."""
    line = refused(
        capsys,
        "validate",
        SCENARIOS,
        *BRANCHING,
        "--set",
        "injectors.0.target=orgin",
        fragment="injectors.0.target",
    )
    assert "'orgin'" in line and "origin" in line


def test_an_injector_may_aim_at_a_named_origin_or_a_replica_index(capsys):
    """A named origin and ``r<N>`` are replica names an injector may aim at."""
    for target in ("origin", "r3", "host:box", "newest"):
        code, _, err = cli(
            capsys, "validate", SCENARIOS, *BRANCHING, "--set", f"injectors.0.target={target}"
        )
        assert code == 0, err


def test_a_key_given_twice_is_an_error_naming_both_lines(capsys, tmp_path):
    """A mapping key given twice anywhere is reported at its second line."""
    path = write(
        tmp_path,
        """\
        scenarios:
          one:
            hosts: [{name: box}]
            agents:
              - agent: replicator
                success_probability: 0.5
                success_probability: 0.9
        """,
    )
    line = refused(capsys, "validate", path, fragment="given twice")
    assert f"{path}:7: scenarios.one.agents.0.success_probability" in line
    assert "first on line 6" in line


def test_merge_keys_still_override_without_an_error(capsys, tmp_path):
    """``<<: *anchor`` then the same key is an override, not a duplicate."""
    path = write(
        tmp_path,
        """\
        x-host: &host {name: box, cpu: 4}
        scenarios:
          one:
            hosts: [{<<: *host, cpu: 8}]
            agents: [{agent: replicator}]
        """,
    )
    assert cli(capsys, "validate", path)[0] == 0


@pytest.mark.parametrize("command", ["validate", "list"])
@pytest.mark.parametrize(
    ("axis", "fragment"),
    [
        ("grid: {agents.0.sucess_probability: [0.5]}", "unknown field"),
        ("grid: {agents.3.success_probability: [0.5]}", "not an index"),
        ("grid: {agents.0.success_probability: [0.5, 2]}", "a probability must be"),
        ("zip: {stop.horizon: [1h, soon]}", "stop.horizon"),
    ],
)
def test_grid_and_zip_paths_and_values_are_checked_by_validate_and_list(
    capsys, tmp_path, command, axis, fragment
):
    """A sweep axis path that does not exist, or a value it refuses, is one error line at
    the value's line in validate and list (not a multi-line dump at sweep time)."""
    path = write(tmp_path, MINIMAL + f"    sweep: {{{axis}}}\n")
    line = refused(capsys, command, path, fragment=fragment)
    assert f"{path}:5: scenarios.one.sweep." in line


def test_sweep_reports_a_bad_axis_in_one_line(capsys, tmp_path):
    """``sweep`` of a file with a bad axis value prints one error line."""
    path = write(tmp_path, MINIMAL + "    sweep: {grid: {stop.horizn: [1h]}}\n")
    refused(capsys, "sweep", path, "--out", tmp_path / "o", fragment="unknown field")


def test_duplicate_seeds_are_refused(capsys, tmp_path):
    """``--seeds 1,1`` (and ``seeds: [1, 1]``) exit 2: one seed names one trial."""
    refused(
        capsys,
        "sweep",
        SCENARIOS,
        *BRANCHING,
        "--seeds",
        "1,1",
        "--out",
        tmp_path / "o",
        fragment="more than once",
    )
    path = write(tmp_path, MINIMAL + "    sweep: {seeds: [1, 1]}\n")
    refused(capsys, "validate", path, fragment="listed twice")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("seeds", [",", "", " , "])
def test_empty_seed_lists_are_refused(capsys, tmp_path, seeds):
    """``--seeds ,`` exits 2 instead of running nothing and exiting 0."""
    refused(
        capsys,
        "sweep",
        SCENARIOS,
        *BRANCHING,
        "--seeds",
        seeds,
        "--out",
        tmp_path / "o",
        fragment="no seed",
    )
    path = write(tmp_path, MINIMAL + "    sweep: {seeds: []}\n")
    refused(capsys, "validate", path, fragment="sweep.seeds")


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden", "..", "with space"])
def test_scenario_names_must_be_safe_folder_names(capsys, tmp_path, name):
    """A scenario named ``../../escaped`` exits 2 and writes nothing outside ``runs/``."""
    path = write(tmp_path, MINIMAL.replace("one:", json.dumps(name) + ":"))
    refused(capsys, "validate", path, fragment="a scenario name")
    code, _, err = cli(capsys, "run", path, "--scenario", name, "--quiet")
    assert code == 2 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_replica_names_must_be_safe_file_names(capsys):
    """An agent named ``../../x`` (its transcript file) exits 2."""
    refused(
        capsys,
        "validate",
        SCENARIOS,
        *BRANCHING,
        "--set",
        "agents.0.name=../../x",
        fragment="agents.0.name",
    )


# --- sweep folders ---------------------------------------------------------------------------


SWEEP = ["sweep", SCENARIOS, *BRANCHING, "--trials", "3"]


@pytest.mark.slow
def test_a_sweep_killed_alone_leaves_no_worker_and_no_lock(tmp_path):
    """SIGKILL of only the sweep's main process: its pool workers die with it (the kernel's
    parent-death signal) and ``--resume`` is not refused."""
    import psutil

    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "sim.cli", "sweep", str(SCENARIOS), "--scenario",
            "network-spread", "--set", "hosts.0.count=300", "--trials", "60", "--workers",
            "2", "--quiet", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(args, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    workers: list[Any] = []
    while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
        time.sleep(0.1)
        workers = psutil.Process(proc.pid).children()
    assert len(workers) >= 2, "the pool did not start"
    while not (out / "rows.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only: the workers are not signalled
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"orphaned workers still run: {[p.pid for p in alive]}"
    done = script(*args[3:-3], "--quiet", "--out", out, "--resume", timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(out / "trials.parquet")) == 60


def test_the_lock_message_names_the_holder_and_whether_it_runs(capsys, tmp_path):
    """While another process holds a sweep folder, a sweep into it exits 2 naming that
    process's pid and saying it still runs."""
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""\
            import sys, time
            from pathlib import Path
            sys.path.insert(0, {str(ROOT)!r})
            from sim.sweep import _lock
            with _lock(Path({str(out)!r})):
                print("locked", flush=True)
                time.sleep(60)
            """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        line = refused(capsys, *SWEEP, "--out", out, fragment="another sweep is writing")
        assert f"pid {holder.pid} holds its lock and is still running" in line
    finally:
        holder.kill()
        holder.wait()
    assert cli(capsys, *SWEEP, "--out", out, "--quiet")[0] == 0  # the kernel let go


def test_resume_with_another_configuration_is_refused_naming_the_fields(capsys, tmp_path):
    """``--resume --set stop.population_cap=5`` on a finished sweep exits 2 naming the field,
    and keeps its rows and manifest as they were."""
    out = tmp_path / "o"
    assert cli(capsys, *SWEEP, "--out", out, "--quiet")[0] == 0
    before = {p: (out / p).read_bytes() for p in ("rows.jsonl", "manifest.json")}
    line = refused(
        capsys,
        *SWEEP,
        "--out",
        out,
        "--resume",
        "--set",
        "stop.population_cap=5",
        fragment="another configuration",
    )
    assert "stop.population_cap: 50 -> 5" in line
    assert {p: (out / p).read_bytes() for p in before} == before
    assert cli(capsys, *SWEEP, "--out", out, "--resume", "--quiet")[0] == 0


def test_resume_may_add_seeds(capsys, tmp_path):
    """``--resume --trials 5`` after ``--trials 3`` runs only the new seeds."""
    out = tmp_path / "o"
    assert cli(capsys, *SWEEP, "--out", out, "--quiet")[0] == 0
    args = ["sweep", SCENARIOS, *BRANCHING, "--trials", "5", "--out", out, "--resume", "--json"]
    code, stdout, _ = cli(capsys, *args)
    assert code == 0 and json.loads(stdout)["trials"] == 10


@pytest.mark.parametrize("kept", ["trials.parquet", "trials"])
def test_a_folder_holding_trials_without_rows_is_refused_without_resume(capsys, tmp_path, kept):
    """A folder with ``trials.parquet`` (or trial folders) but no ``rows.jsonl`` is refused
    without ``--resume``, and its table is not overwritten."""
    out = tmp_path / "o"
    assert cli(capsys, *SWEEP, "--out", out, "--quiet")[0] == 0
    (out / "rows.jsonl").unlink()
    if kept == "trials":
        (out / "trials.parquet").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}
    refused(capsys, *SWEEP, "--out", out, "--quiet", fragment="--resume")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"} == before


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_damaged_row_is_reported_rerun_once_and_repaired(capsys, tmp_path, where):
    """A damaged line in ``rows.jsonl`` (in the middle, or last with its newline) is
    reported, its trial is run again once, and the file is repaired: the next resume runs
    nothing."""
    out = tmp_path / "o"
    assert cli(capsys, *SWEEP, "--out", out, "--quiet")[0] == 0
    clean = pd.read_parquet(out / "trials.parquet").drop(columns=["wall_s"])
    lines = (out / "rows.jsonl").read_text().splitlines()
    index = 2 if where == "middle" else 5
    lines[index] = lines[index][: len(lines[index]) // 2]
    (out / "rows.jsonl").write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, *SWEEP, "--out", out, "--resume", "--quiet")
    assert code == 0
    assert f"damaged line(s) ({index + 1})" in err
    repaired = (out / "rows.jsonl").read_text().splitlines()
    assert len(repaired) == 6 and all(json.loads(line) for line in repaired)
    code, _, err = cli(capsys, *SWEEP, "--out", out, "--resume", "--quiet")
    assert code == 0 and "damaged" not in err
    assert (out / "rows.jsonl").read_text().splitlines() == repaired
    table = pd.read_parquet(out / "trials.parquet").drop(columns=["wall_s"])
    pd.testing.assert_frame_equal(table, clean)


@pytest.mark.slow
def test_sigterm_stops_a_sweep_like_ctrl_c(tmp_path):
    """SIGTERM to a sweep prints what was kept, exits 143, and ``--resume`` finishes it."""
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["sweep", str(SCENARIOS), "--scenario", "network-spread", "--set",
            "hosts.0.count=300", "--trials", "40", "--workers", "2", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", *args, "--out", str(out)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (out / "rows.jsonl").exists() or not (out / "rows.jsonl").stat().st_size:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "--resume" in err and "SIGTERM" in err
    done = script(*args, "--out", out, "--resume", timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(out / "trials.parquet")) == 40


def test_a_killed_report_leaves_the_old_plots_whole(capsys, tmp_path, monkeypatch):
    """A report stopped while drawing leaves ``plots/`` as the last report wrote it."""
    from sim import plots

    out = tmp_path / "o"
    assert cli(capsys, *SWEEP, "--out", out, "--quiet")[0] == 0
    assert cli(capsys, "report", out, "--quiet")[0] == 0
    before = {p.name: p.read_bytes() for p in (out / "plots").iterdir()}
    assert before
    drawn = []
    real = plots.save_figure

    def killed_after_one(figure: Any, path: Any, **kwargs: Any) -> Any:
        if drawn:
            raise KeyboardInterrupt
        drawn.append(path)
        return real(figure, path, **kwargs)

    monkeypatch.setattr(plots, "save_figure", killed_after_one)
    assert cli(capsys, "report", out, "--quiet")[0] == 130
    assert {p.name: p.read_bytes() for p in (out / "plots").iterdir()} == before
    monkeypatch.setattr(plots, "save_figure", real)
    assert cli(capsys, "report", out, "--quiet")[0] == 0  # and the next report cleans up
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".plots")) == []


# --- an override that loses ------------------------------------------------------------------


def test_set_on_a_swept_path_replaces_that_axis_with_a_notice(capsys, tmp_path):
    """``--set`` on a path the grid also sets wins: the axis collapses to the override's
    value, with a one-line notice."""
    out = tmp_path / "o"
    code, stdout, err = cli(
        capsys, *SWEEP, "--set", "agents.0.success_probability=0.4", "--out", out, "--json"
    )
    assert code == 0 and json.loads(stdout)["trials"] == 3
    assert "replaces the sweep's grid axis agents.0.success_probability" in err
    config = json.loads((out / "manifest.json").read_text())["configs"]["branching"]
    assert config["agents"][0]["success_probability"]["value"] == 0.4


def test_set_inside_a_swept_value_is_refused_naming_the_axis(capsys):
    """``--set policies.0.max=3`` where the grid sets ``policies`` whole exits 2."""
    refused(
        capsys,
        "validate",
        SCENARIOS,
        "--scenario",
        "stress-chain",
        "--set",
        "policies.0.max=3",
        fragment="sets policies as a whole",
    )


# --- the README's paths ----------------------------------------------------------------------


def test_executor_and_address_are_passed_on_and_recorded(capsys, tmp_path):
    """``--executor`` reaches the sweep and the manifest records which one ran the trials."""
    out = tmp_path / "o"
    assert cli(capsys, *SWEEP, "--executor", "inprocess", "--out", out, "--quiet")[0] == 0
    assert json.loads((out / "manifest.json").read_text())["executor"] == {
        "kind": "inprocess",
        "workers": 1,
    }
    refused(capsys, *SWEEP, "--address", "auto", "--out", tmp_path / "p", fragment="--executor ray")


def test_run_of_a_sweep_group_names_its_members(capsys):
    """``run --scenario guardrail-stress`` (a group under ``sweeps:``) exits 2 naming the
    group's scenarios instead of a KeyError."""
    line = refused(capsys, "run", SCENARIOS, "--scenario", "guardrail-stress", fragment="group")
    assert all(n in line for n in ("stress-chain", "stress-shutdown", "stress-spread"))


def _transcript_folder(folder: Path, steps: int = 400) -> Path:
    (folder / "transcripts").mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    record = {
        "step": 1, "t": 0.0, "model_s": 1.0, "wall_s": 1.0, "prompt_tokens": 1,
        "completion_tokens": 1, "explanation": "because " * 40, "gaps": "", "findings": "",
        "plan": "then " * 40, "tool": "execute_command", "command": "ls",
        "observation": "ls\nfile",
    }  # fmt: skip
    lines = [json.dumps({**record, "step": i}) for i in range(steps)]
    (folder / "transcripts" / "origin.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("command", ["transcript", "run"])
def test_output_into_a_closed_pipe_prints_no_traceback(tmp_path, command):
    """``replisim transcript … --json | head`` and ``run … --json | head`` end quietly."""
    if command == "transcript":
        args = ["transcript", _transcript_folder(tmp_path / "t"), "--json"]
    else:
        args = ["run", SCENARIOS, *BRANCHING, "--out", tmp_path / "r", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader went away before the first line
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert proc.returncode in (0, 141)


def test_transcript_full_keeps_the_thinking_fields_whole(capsys, tmp_path):
    """``transcript --full`` prints the explanation and plan uncut."""
    folder = _transcript_folder(tmp_path / "t", steps=1)
    code, out, _ = cli(capsys, "transcript", folder, "--full")
    assert code == 0
    assert ("because " * 40).strip() in out and ("then " * 40).strip() in out
    code, out, _ = cli(capsys, "transcript", folder)
    assert ("because " * 40).strip() not in out  # the default view stays compact


def _peak_in_fresh_process(queue: Any) -> None:
    from sim.bench import peak_rss_kib

    queue.put(peak_rss_kib())


def test_a_fresh_benchmark_process_does_not_inherit_the_parents_peak_memory():
    """The peak RSS of a spawned interpreter is its own, not the larger parent's."""
    import multiprocessing as mp

    ballast = bytearray(400 * 2**20)  # the parent's peak: 400 MB above the interpreter
    ballast[::4096] = b"x" * len(ballast[::4096])
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_in_fresh_process, args=(queue,))
    child.start()
    peak_mib = queue.get(timeout=120) / 1024
    child.join()
    del ballast
    assert peak_mib < 300, f"the fresh process reports {peak_mib:.0f} MiB"


def test_a_live_run_id_is_assigned_before_the_run_and_recorded():
    """A live scenario gets its run id before it runs (printed, and in scenario.json)."""
    from sim.sweep import live_run_id
    from tests.helpers import shipped

    live = live_run_id(shipped("live-shutdown-avoidance"), 4)
    assert live.world.run_id is not None and live.world.run_id.startswith("live-shutdown")
    assert "-4-" in live.world.run_id
    assert live_run_id(shipped("branching"), 4).world.run_id is None  # modelled: none needed
    fixed = shipped("live-shutdown-avoidance", ("world.run_id", "mine"))
    assert live_run_id(fixed, 4).world.run_id == "mine"


def test_list_and_report_tables_never_cut_names(tmp_path):
    """``replisim list`` and the report's tables print long names whole when piped."""
    name = "a-scenario-name-long-enough-that-a-table-of-eighty-columns-would-cut-it-" + "x" * 30
    path = write(tmp_path, MINIMAL.replace("one:", f"{name}:") + "    sweep: {trials: 2}\n")
    listed = script("list", path)
    assert listed.returncode == 0 and name in listed.stdout
    out = tmp_path / "o"
    assert script("sweep", path, "--out", out, "--quiet").returncode == 0
    reported = script("report", out)
    assert reported.returncode == 0 and name in reported.stdout, reported.stdout


def test_reports_print_no_layout_warnings(tmp_path):
    """A crowded report draws its plots without matplotlib's layout warnings."""
    out = tmp_path / "o"
    done = script(
        "sweep", SCENARIOS, "--scenario", "stress-chain", "--seeds", "0", "--out", out, "--quiet"
    )
    assert done.returncode == 0, done.stderr
    reported = script("report", out, "--quiet")
    assert reported.returncode == 0
    assert "Warning" not in reported.stderr, reported.stderr


def test_third_party_warnings_are_kept_out_of_output_for_people(tmp_path):
    """Warnings raised inside third-party modules are not printed; replisim's own are."""
    code = textwrap.dedent("""\
        import sys, warnings
        from sim.cli import quiet_third_party
        quiet_third_party()
        exec(compile("import warnings; warnings.warn('noise', FutureWarning)", "x", "exec"),
             {"__name__": "vllm.triton_utils"})
        exec(compile("import warnings; warnings.warn('ours', UserWarning)", "x", "exec"),
             {"__name__": "sim.world"})
        """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "noise" not in done.stderr and "ours" in done.stderr


@pytest.mark.slow
def test_a_live_run_prints_its_run_id_and_records_it(tmp_path):
    """``replisim run`` of a live scenario prints its run id before it starts and writes it
    into the trial's ``scenario.json`` (what ``hosts clean --run`` takes after a kill)."""
    from tests.live_support import skip_unless

    skip_unless("local")
    out = tmp_path / "live"
    done = script(
        "run", SCENARIOS, "--scenario", "live-shutdown-avoidance", "--set", "world.hosts=local",
        "--out", out, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = json.loads((out / "scenario.json").read_text())["world"]["run_id"]
    assert run_id and run_id.startswith("live-shutdown-avoidance-0-")
    assert f"run id {run_id}" in done.stderr and f"--run {run_id}" in done.stderr
    assert run_id in done.stdout  # and in the table
