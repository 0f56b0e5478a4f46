"""Sweeps: expansion, stable ids, executors, crash safety and the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from sim.sweep import SweepFolderError, SweepLocked, _lock, expand, read_rows, run_sweep, trial_id
from tests.helpers import ROOT, shipped


def _table(path):
    table = pd.read_parquet(path)
    return table.drop(columns=["wall_s"]).sort_values("trial_id").reset_index(drop=True)


def test_expand_crosses_grid_with_seeds_and_ids_are_stable():
    """A 2-point grid × 3 seeds gives 6 trials whose ids depend only on their inputs."""
    s = shipped("branching")
    trials = expand(s, [0, 1, 2])
    assert len(trials) == 6
    assert len({t.trial_id for t in trials}) == 6
    assert [t.trial_id for t in expand(s, [0, 1, 2])] == [t.trial_id for t in trials]
    first = trials[0]
    assert first.trial_id == trial_id("branching", first.params, first.seed)
    assert first.config["agents"][0]["success_probability"]["value"] == 0.5


def test_zip_pairs_lists_instead_of_crossing_them():
    """'zip' axes pair values index by index."""
    s = shipped(
        "branching",
        (
            "sweep",
            {"zip": {"agents.0.success_probability": [0.5, 0.6], "stop.population_cap": [10, 20]}},
        ),
    )
    points = sorted(
        (t.params["agents.0.success_probability"], t.params["stop.population_cap"])
        for t in expand(s, [0])
    )
    assert points == [(0.5, 10), (0.6, 20)]


def test_a_sweep_point_that_breaks_the_scenario_is_reported():
    """A grid value that makes the scenario invalid is one error naming the point, from
    loading the file and from expanding a scenario built without it."""
    from sim.config import Scenario, ScenarioError

    grid = ("sweep", {"grid": {"agents.0.success_probability": [1.5]}})
    with pytest.raises(ScenarioError, match=r"1\.5"):
        shipped("branching", grid)
    data = shipped("branching").model_dump(mode="json")
    s = Scenario.model_validate({**data, "sweep": dict([grid])["sweep"]})
    with pytest.raises(ScenarioError, match=r"1\.5") as caught:
        expand(s, [0])
    [error] = caught.value.errors
    assert "\n" not in str(error)


def test_process_pool_gives_the_same_table_as_in_process(tmp_path):
    """--workers 2 and the in-process executor give identical tables."""
    trials = expand(shipped("branching"), list(range(15)))
    one = run_sweep(trials, tmp_path / "one", workers=1)
    run_sweep(trials, tmp_path / "two", workers=2)
    assert len(one) == 30 and (one["status"] == "ok").all()
    pd.testing.assert_frame_equal(
        _table(tmp_path / "one/trials.parquet"), _table(tmp_path / "two/trials.parquet")
    )


def test_every_trial_gets_a_folder_and_a_row(tmp_path):
    """Each finished trial has its folder and one row with params and metrics."""
    trials = expand(shipped("branching"), [0, 1])
    table = run_sweep(trials, tmp_path)
    assert sorted(table["trial_id"]) == sorted(t.trial_id for t in trials)
    for t in trials:
        folder = tmp_path / "trials" / t.trial_id
        assert (folder / "summary.json").exists() and (folder / "lineage.parquet").exists()
    assert {"param.agents.0.success_probability", "extinct", "peak_live", "seed"} <= set(table)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["trials"]) == 4 and manifest["packages"]["simpy"]


def test_a_folder_with_rows_is_refused_without_resume(tmp_path):
    """Sweeping again into a used folder is refused unless resuming."""
    trials = expand(shipped("branching"), [0])
    run_sweep(trials, tmp_path)
    with pytest.raises(SweepFolderError, match="--resume"):
        run_sweep(trials, tmp_path)
    assert len(run_sweep(trials, tmp_path, resume=True)) == 2


def test_two_sweeps_into_one_folder_are_refused(tmp_path):
    """While one sweep holds the folder's lock a second one is refused."""
    with _lock(tmp_path), pytest.raises(SweepLocked):
        run_sweep(expand(shipped("branching"), [0]), tmp_path)


def test_a_torn_last_row_is_dropped_on_resume(tmp_path):
    """A row half-written at a crash is ignored and its trial re-run."""
    trials = expand(shipped("branching"), [0, 1])
    run_sweep(trials, tmp_path)
    rows = (tmp_path / "rows.jsonl").read_text().splitlines()
    (tmp_path / "rows.jsonl").write_text("\n".join(rows[:-1]) + "\n" + rows[-1][:20])
    assert len(read_rows(tmp_path)) == 3
    table = run_sweep(trials, tmp_path, resume=True)
    assert len(table) == 4 and table["trial_id"].is_unique


@pytest.mark.slow
def test_sweep_killed_midway_and_resumed_gives_the_uninterrupted_table(tmp_path):
    """SIGKILL midway then --resume yields the same trials.parquet as one clean sweep."""
    args = [
        sys.executable,
        "-m",
        "sim.cli",
        "sweep",
        str(ROOT / "scenarios.yaml"),
        "--scenario",
        "network-spread",
        "--set",
        "hosts.0.count=400",
        "--trials",
        "40",
        "--workers",
        "2",
        "--quiet",
    ]
    crashed = tmp_path / "crashed"
    proc = subprocess.Popen([*args, "--out", str(crashed)], cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(read_rows(crashed)) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-flight
    proc.wait()
    done_before = len(read_rows(crashed))
    assert 10 <= done_before < 40
    subprocess.run([*args, "--out", str(crashed), "--resume"], check=True, cwd=tmp_path)
    clean = tmp_path / "clean"
    subprocess.run([*args, "--out", str(clean)], check=True, cwd=tmp_path)
    pd.testing.assert_frame_equal(
        _table(crashed / "trials.parquet"), _table(clean / "trials.parquet")
    )


def test_samples_draw_stable_random_points_and_repetitions_multiply_seeds():
    """'samples' draws points from distributions (stable per spec); repetitions add seeds."""
    spec = {
        "trials": 2,
        "repetitions": 2,
        "samples": {
            "count": 3,
            "seed": 5,
            "params": {"agents.0.success_probability": {"uniform": [0.3, 0.7]}},
        },
    }
    s = shipped("branching", ("sweep", spec))
    trials = expand(s)
    points = sorted({t.params["agents.0.success_probability"] for t in trials})
    assert len(trials) == 12 and len(points) == 3
    assert all(0.3 <= p <= 0.7 for p in points)
    assert sorted({t.seed for t in trials}) == [0, 1, 1_000_000, 1_000_001]
    assert [t.trial_id for t in expand(s)] == [t.trial_id for t in trials]
    other = shipped("branching", ("sweep", {**spec, "samples": {**spec["samples"], "seed": 6}}))
    assert {t.params["agents.0.success_probability"] for t in expand(other)} != set(points)


def _affinity_after_a_moment() -> list[int]:
    time.sleep(0.5)  # keep this worker busy so the other task lands on the other worker
    return sorted(os.sched_getaffinity(0))


def test_pool_workers_get_disjoint_shares_of_the_cpus():
    """Each pool worker is pinned to its own CPUs (multi-threaded engines do not collide)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from sim.sweep import _take_cpus

    cpus = sorted(os.sched_getaffinity(0))
    workers = 2
    if len(cpus) < workers:
        pytest.skip(f"needs {workers} CPUs, this machine lets the test use {len(cpus)}")
    slots = multiprocessing.Value("i", 0)
    with ProcessPoolExecutor(workers, initializer=_take_cpus, initargs=(slots, workers)) as pool:
        shares = [f.result() for f in [pool.submit(_affinity_after_a_moment) for _ in range(2)]]
    assert sorted(shares) == [cpus[: len(cpus) // 2], cpus[len(cpus) // 2 :]]
