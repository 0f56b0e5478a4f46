"""Sweeps: many trials of scenarios × parameters × seeds, crash-safe, into one table.

Layout of a sweep folder::

    out/trials/<trial_id>/   one folder per finished trial (written before its row)
    out/rows.jsonl           one line per finished trial, appended and flushed in order
    out/trials.parquet       the table, rebuilt from rows.jsonl (atomically replaced)
    out/manifest.json        what ran: versions, scenario file hash, seeds
    out/.lock                held while a sweep writes here

A killed sweep loses at most the trials in flight; ``resume`` skips the rows present.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import multiprocessing
import os
import random
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config import Scenario, apply_overrides
from sim.trial import run_trial

__all__ = [
    "SweepLocked",
    "TrialSpec",
    "expand",
    "read_rows",
    "run_sweep",
    "trial_id",
    "write_table",
]


class SweepLocked(RuntimeError):
    """Another sweep is writing into the same folder."""


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: a scenario (as validated JSON data), its parameters and a seed."""

    trial_id: str
    scenario: str
    params: dict[str, Any]
    seed: int
    config: dict[str, Any] = field(repr=False, compare=False)


def trial_id(scenario: str, params: dict[str, Any], seed: int) -> str:
    """A stable id from (scenario, parameters, seed): the same trial always gets the same id."""
    key = json.dumps([scenario, sorted(params.items()), seed], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _points(scenario: Scenario) -> list[dict[str, Any]]:
    spec = scenario.sweep
    grid = (
        [
            dict(zip(spec.grid, values, strict=True))
            for values in itertools.product(*spec.grid.values())
        ]
        if spec.grid
        else [{}]
    )
    zipped = (
        [
            dict(zip(spec.zip, values, strict=True))
            for values in zip(*spec.zip.values(), strict=True)
        ]
        if spec.zip
        else [{}]
    )
    sampled: list[dict[str, Any]] = [{}]
    if spec.samples is not None:
        rng = random.Random(spec.samples.seed)  # its own RNG: the points are part of the spec
        draws = {path: dist.sampler(rng) for path, dist in spec.samples.params.items()}
        sampled = [
            {path: draw() for path, draw in draws.items()} for _ in range(spec.samples.count)
        ]
    return [{**g, **z, **r} for g in grid for z in zipped for r in sampled]


def expand(scenario: Scenario, seeds: list[int] | None = None) -> list[TrialSpec]:
    """Expand a scenario's sweep into trials: grid × zip × seeds.

    Args:
        scenario: The scenario; its ``sweep`` gives the axes.
        seeds: Seeds to use instead of the scenario's own.

    Raises:
        sim.config.ScenarioError: a parameter point gives an invalid scenario.
    """
    from sim.config import ConfigError, ScenarioError

    # Through pydantic's JSON so that infinities become "Infinity": strict JSON, valid input.
    base = json.loads(scenario.model_dump_json(exclude={"sweep"}))
    seed_list = seeds if seeds is not None else scenario.sweep.seed_list()
    trials = []
    for point in _points(scenario):
        try:
            data = apply_overrides(base, list(point.items()))
            config = json.loads(Scenario.model_validate(data).model_dump_json())
        except Exception as err:
            raise ScenarioError(
                [ConfigError("sweep", f"scenarios.{scenario.name}.sweep", f"point {point}: {err}")]
            ) from None
        for seed in seed_list:
            trials.append(
                TrialSpec(trial_id(scenario.name, point, seed), scenario.name, point, seed, config)
            )
    return trials


def execute(spec: TrialSpec, out: str | None) -> dict[str, Any]:
    """Run one trial and return its table row (runs in a worker process)."""
    scenario = Scenario.model_validate(spec.config)
    folder = None if out is None else Path(out) / "trials" / spec.trial_id
    result = run_trial(scenario, spec.seed, folder)
    row: dict[str, Any] = {
        "trial_id": spec.trial_id,
        "scenario": spec.scenario,
        "policy": policy_label(scenario),
        "seed": spec.seed,
    }
    row.update(param_columns(spec.params))
    row.update(result.summary)
    return row


def param_columns(params: dict[str, Any]) -> dict[str, Any]:
    """Table columns for a trial's parameters; lists and mappings become JSON text."""
    return {
        f"param.{k}": (
            v
            if isinstance(v, str | int | float | bool) or v is None
            else json.dumps(v, sort_keys=True)
        )
        for k, v in params.items()
    }


def policy_label(scenario: Scenario) -> str:
    """A short label of a scenario's policy chain: names joined by '+', or 'none'."""
    return "+".join(p.name or p.kind for p in scenario.policies) or "none"


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    fh = (out / ".lock").open("w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise SweepLocked(f"another sweep is writing into {out}") from None
    try:
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def read_rows(out: str | Path) -> list[dict[str, Any]]:
    """Read the committed rows of a sweep folder (a torn last line is ignored)."""
    path = Path(out) / "rows.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the line being written when the sweep was killed
    return rows


def write_table(rows: list[dict[str, Any]], out: str | Path) -> pd.DataFrame:
    """Write ``trials.parquet`` from rows, sorted by trial id, via a temporary file; return
    the table."""
    path = Path(out) / "trials.parquet"
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table[_column_order(list(table.columns))]
        table = table.sort_values("trial_id", kind="stable").reset_index(drop=True)
    tmp = path.with_suffix(".parquet.tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return table


def _column_order(columns: list[str]) -> list[str]:
    """Ids, then parameters, then status, then metrics: the same order however rows came."""
    from sim.metrics import METRICS

    lead = [c for c in ("trial_id", "scenario", "policy", "seed") if c in columns]
    params = sorted(c for c in columns if c.startswith("param."))
    status = [c for c in ("status", "error", "ended_by") if c in columns]
    metrics = [c for c in METRICS if c in columns]
    placed = set(lead + params + status + metrics)
    return lead + params + status + metrics + sorted(c for c in columns if c not in placed)


def _manifest(out: Path, trials: list[TrialSpec], source: str | None) -> None:
    import importlib.metadata as md
    import platform

    from sim import __version__

    versions = {}
    for pkg in ("simpy", "networkx", "pydantic", "pandas", "pyarrow", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[pkg] = md.version(pkg)
    manifest = {
        "replisim": __version__,
        "git_revision": _git_revision(),
        "python": platform.python_version(),
        "packages": versions,
        "scenario_file": source,
        "scenario_file_sha256": (
            hashlib.sha256(Path(source).read_bytes()).hexdigest()
            if source and Path(source).exists()
            else None
        ),
        "trials": [
            {"trial_id": t.trial_id, "scenario": t.scenario, "params": t.params, "seed": t.seed}
            for t in trials
        ],
        "scenarios": {t.scenario: t.config for t in trials},
    }
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    os.replace(tmp, out / "manifest.json")


def _git_revision() -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def run_sweep(
    trials: list[TrialSpec],
    out: str | Path,
    *,
    workers: int = 1,
    executor: str = "auto",
    address: str | None = None,
    resume: bool = False,
    source: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run trials into a sweep folder and return the table.

    Args:
        trials: From :func:`expand`.
        out: The sweep folder.
        workers: Processes for the local pool; 1 runs in this process.
        executor: ``inprocess``, ``process`` (a local pool of ``workers``), ``ray`` (a Ray
            cluster at ``address``; one task per trial), or ``auto`` (in-process for one
            worker, else the pool).
        address: The Ray cluster (``auto`` joins a running one; None starts a local one).
        resume: Keep the rows already in ``out`` and run only the missing trials. Without
            it, a folder that already holds rows is refused, so nothing is lost by mistake.
        source: The scenario file, for the manifest.
        progress: Called with (done, total) after each trial.

    Raises:
        SweepLocked: another sweep holds the folder.
        FileExistsError: ``out`` holds rows and ``resume`` is false.
    """
    out = Path(out)
    with _lock(out):
        rows = read_rows(out)
        if rows and not resume:
            raise FileExistsError(
                f"{out} already holds {len(rows)} trials; "
                "use --resume to continue it or pick another --out"
            )
        done = {r["trial_id"] for r in rows}
        wanted = {t.trial_id for t in trials}
        rows = [r for r in rows if r["trial_id"] in wanted]
        todo = [t for t in trials if t.trial_id not in done]
        _manifest(out, trials, source)
        total = len(trials)
        if progress:
            progress(len(rows), total)
        path = out / "rows.jsonl"
        with path.open("a") as log:
            if path.stat().st_size:
                _truncate_torn_line(path, log)

            def commit(row: dict[str, Any]) -> None:
                log.write(json.dumps(row, sort_keys=True, default=str) + "\n")
                # Flushed to the kernel: a killed sweep keeps every committed row. (No fsync
                # per row: that would guard against power loss at the cost of the sweep rate.)
                log.flush()
                rows.append(row)
                if progress:
                    progress(len(rows), total)

            if executor == "ray":
                _run_ray(todo, str(out), address, commit)
            elif executor == "process" or (executor == "auto" and workers > 1):
                _run_pool(todo, str(out), workers, commit)
            elif executor in ("inprocess", "auto"):
                for spec in todo:
                    commit(execute(spec, str(out)))
            else:
                raise ValueError(
                    f"unknown executor {executor!r}; known: auto, inprocess, process, ray"
                )
        return write_table(rows, out)


def _truncate_torn_line(path: Path, log: Any) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log.truncate(keep)
        log.seek(keep)


def _take_cpus(slots: Any, workers: int) -> None:
    """Pool worker start: pin this worker to its own share of the CPUs (when there are at
    least as many as workers). Scripted trials are single-threaded and do not care; a
    multi-threaded engine in a trial (vLLM's CPU engine binds OpenMP threads to the CPUs it
    may use) would otherwise spin on the same cores as its sibling and slow both down."""
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= workers and slot < workers:
        share = cpus[slot * len(cpus) // workers : (slot + 1) * len(cpus) // workers]
        os.sched_setaffinity(0, share)


def _run_pool(
    todo: list[TrialSpec], out: str, workers: int, commit: Callable[[dict[str, Any]], None]
) -> None:
    # Keep only a few trials in flight so that a kill loses little and memory stays flat.
    pending: dict[Future[dict[str, Any]], TrialSpec] = {}
    queue = iter(todo)
    slots = multiprocessing.Value("i", 0)
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_take_cpus, initargs=(slots, workers)
    ) as pool:

        def submit() -> bool:
            spec = next(queue, None)
            if spec is None:
                return False
            pending[pool.submit(execute, spec, out)] = spec
            return True

        for _ in range(workers * 4):
            if not submit():
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                spec = pending.pop(future)
                try:
                    row = future.result()
                except Exception as err:  # the worker died: report the trial, go on
                    row = _failed_row(spec, err)
                commit(row)
                submit()


def _failed_row(spec: TrialSpec, err: BaseException) -> dict[str, Any]:
    row = {
        "trial_id": spec.trial_id,
        "scenario": spec.scenario,
        "policy": policy_label(Scenario.model_validate(spec.config)),
        "seed": spec.seed,
        "status": "error",
        "error": f"worker failed: {type(err).__name__}: {err}",
    }
    row.update(param_columns(spec.params))
    return row


def _run_ray(
    todo: list[TrialSpec], out: str, address: str | None, commit: Callable[[dict[str, Any]], None]
) -> None:
    """One Ray task per trial; results committed as they finish, a bounded number in flight.

    The trial folders are written by the tasks, so ``out`` must be on storage the Ray
    workers share (a local cluster, or a shared file system).
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray executor needs Ray: pip install 'replisim[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    try:
        remote = ray.remote(execute)
        capacity = max(int(ray.cluster_resources().get("CPU", 1)) * 2, 2)
        queue = iter(todo)
        pending: dict[Any, TrialSpec] = {}

        def submit() -> None:
            spec = next(queue, None)
            if spec is not None:
                pending[remote.remote(spec, out)] = spec

        for _ in range(capacity):
            submit()
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                spec = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as err:  # a task or worker failure: report, go on
                    row = _failed_row(spec, err)
                commit(row)
                submit()
    finally:
        if started_here:
            ray.shutdown()
