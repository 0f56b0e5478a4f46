"""Wall time of ``replisim report`` on a 10,000-trial sweep (a script, not a test).

It runs a small real sweep (the shipped ``branching`` and ``network-spread`` scenarios),
then synthesises a trials table of ``--trials`` rows by resampling the real rows under new
trial ids, spread over five parameter points, with about 1% of the trials marked as errors.
Only the real trials have folders, unless ``--all-folders`` links every synthetic trial to
the folder of the real trial it was drawn from: the worst case, where every folder that the
report may sample exists.

Usage::

    python benchmarks/bench_report.py                 # 10,000 trials, a few folders
    python benchmarks/bench_report.py --all-folders   # every trial has a folder
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.config import load_scenario  # noqa: E402
from sim.report import build_report  # noqa: E402
from sim.sweep import expand, read_rows, run_sweep, write_table  # noqa: E402

PARAM = "param.agents.0.success_probability"
POINTS = [0.3, 0.4, 0.5, 0.6, 0.7]


def real_sweep(out: Path) -> list[dict]:
    """A small real sweep whose trial folders the synthetic rows borrow."""
    scenarios = ROOT / "scenarios.yaml"
    trials = expand(load_scenario(scenarios, "branching"), list(range(20)))
    trials += expand(load_scenario(scenarios, "network-spread"), [0, 1, 2, 3])
    run_sweep(trials, out, workers=min(2, os.cpu_count() or 1))
    return read_rows(out)


def synthesise(out: Path, rows: list[dict], total: int, all_folders: bool) -> None:
    """Write a ``total``-row trials table into ``out`` (real rows first, then resampled)."""
    rng = np.random.default_rng(7)
    table = list(rows)
    for i in range(total - len(rows)):
        source = rows[int(rng.integers(len(rows)))]
        row = dict(source)
        row["trial_id"] = hashlib.sha256(f"synthetic-{i}".encode()).hexdigest()[:16]
        row["seed"] = 1000 + i
        if row["scenario"] == "branching":
            row[PARAM] = POINTS[i % len(POINTS)]
        if rng.random() < 0.01:
            row = {k: row[k] for k in ("trial_id", "scenario", "seed", PARAM) if k in row} | {
                "status": "error",
                "error": "worker failed: synthetic",
            }
        elif all_folders:
            (out / "trials" / row["trial_id"]).symlink_to(
                (out / "trials" / source["trial_id"]).resolve()
            )
        table.append(row)
    write_table(table, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all-folders", action="store_true")
    parser.add_argument("--keep", help="build the sweep in this folder and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.keep or scratch) / "sweep"
        started = time.perf_counter()
        rows = real_sweep(out)
        synthesise(out, rows, args.trials, args.all_folders)
        table = pd.read_parquet(out / "trials.parquet")
        folders = sum(1 for _ in (out / "trials").iterdir())
        print(
            f"sweep: {len(table):,} trials ({(table['status'] != 'ok').sum():,} errors), "
            f"{folders:,} trial folders; built in {time.perf_counter() - started:.1f} s"
        )
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            report = build_report(out, quiet=True)
            times.append(time.perf_counter() - started)
        print(
            f"report: {len(report.rows)} groups, {len(report.plot_paths)} plots, "
            f"report.html {report.html_path.stat().st_size / 1e6:.1f} MB"
        )
        print(
            f"wall time of the report, median of {args.repeats}: {statistics.median(times):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in times)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
