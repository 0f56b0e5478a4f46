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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config import Scenario, apply_overrides
from sim.trial import run_trial

__all__ = [
    "ExecutorUnavailable",
    "SweepFolderError",
    "SweepLocked",
    "TrialSpec",
    "expand",
    "live_run_id",
    "read_rows",
    "run_sweep",
    "scan_rows",
    "trial_id",
    "write_table",
]


class SweepFolderError(RuntimeError):
    """The sweep folder cannot be used as asked: it holds trials (and ``resume`` is off),
    a different configuration's trials, or it is not a folder at all."""


class ExecutorUnavailable(RuntimeError):
    """The executor asked for cannot run trials here (Ray missing, no cluster at the address)."""


class SweepLocked(SweepFolderError):
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


def expand(scenario: Scenario, seeds: Sequence[int] | None = None) -> list[TrialSpec]:
    """Expand a scenario's sweep into trials: grid × zip × seeds.

    Args:
        scenario: The scenario; its ``sweep`` gives the axes.
        seeds: Seeds to use instead of the scenario's own.

    Raises:
        sim.config.ScenarioError: a parameter point gives an invalid scenario.
    """
    from pydantic import ValidationError

    from sim.config import ConfigError, ScenarioError

    # Through pydantic's JSON so that infinities become "Infinity": strict JSON, valid input.
    base = json.loads(scenario.model_dump_json(exclude={"sweep"}))
    seed_list = seeds if seeds is not None else scenario.sweep.seed_list()
    trials = []
    for point in _points(scenario):
        try:
            data = apply_overrides(base, list(point.items()))
            config = json.loads(Scenario.model_validate(data).model_dump_json())
        except (ValueError, TypeError) as err:
            if isinstance(err, ValidationError):
                first = err.errors(include_url=False)[0]
                field = ".".join(str(p) for p in first["loc"] if "[" not in str(p))
                err_text = f"{field}: {first['msg'].removeprefix('Value error, ')}"
            else:
                err_text = str(err).splitlines()[0]
            raise ScenarioError(
                [
                    ConfigError(
                        "sweep",
                        f"scenarios.{scenario.name}.sweep",
                        f"point {json.dumps(point, default=str)}: {err_text}",
                    )
                ]
            ) from None
        for seed in seed_list:
            trials.append(
                TrialSpec(trial_id(scenario.name, point, seed), scenario.name, point, seed, config)
            )
    return trials


def live_run_id(scenario: Scenario, seed: int) -> Scenario:
    """``scenario`` with a live world's run id set (when it runs live and has none), so the
    id is known before the run, printed, and recorded in the trial's ``scenario.json``: it is
    what ``replisim hosts clean --run RUN_ID`` takes after a killed run."""
    import uuid

    from sim.hosts.registry import substrate_of

    if scenario.world.run_id is not None or not getattr(substrate_of(scenario), "wall_clock", 0):
        return scenario
    stem = "".join(c if c.isalnum() else "-" for c in scenario.name)[:24].strip("-")
    run_id = f"{stem or 'run'}-{seed}-{uuid.uuid4().hex[:6]}"[:41]
    world = scenario.world.model_copy(update={"run_id": run_id})
    return scenario.model_copy(update={"world": world})


def execute(spec: TrialSpec, out: str | None) -> dict[str, Any]:
    """Run one trial and return its table row (runs in a worker process)."""
    scenario = live_run_id(Scenario.model_validate(spec.config), spec.seed)
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
    """Hold ``out/.lock`` while a sweep writes into ``out``.

    A POSIX record lock (``fcntl.lockf``): the kernel drops it when the process that took
    it ends, and forked pool workers do not inherit it, so a sweep killed on its own never
    leaves the folder locked by its orphans.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        fh = (out / ".lock").open("a+")
    except (NotADirectoryError, FileExistsError):
        raise SweepFolderError(f"--out {out}: a file is in the way (it must be a folder)") from None
    except OSError as err:
        raise SweepFolderError(f"--out {out}: cannot make or use it: {err.strerror}") from None
    key = str(out.resolve())
    if key in _HELD:  # POSIX locks do not exclude the process that holds them
        fh.close()
        raise SweepLocked(f"another sweep is writing into {out}: this process ({os.getpid()})")
    try:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _lock_holder(fh)
        fh.close()
        raise SweepLocked(f"another sweep is writing into {out}: {holder}") from None
    _HELD.add(key)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
    finally:
        _HELD.discard(key)
        with contextlib.suppress(OSError):
            fcntl.lockf(fh, fcntl.LOCK_UN)
        fh.close()


_HELD: set[str] = set()
"""Sweep folders this process holds the lock of."""


def _lock_holder(fh: Any) -> str:
    """Who holds the lock on ``fh``'s file: its pid (asked of the kernel) and whether it
    still runs."""
    import struct

    try:
        request = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fh.fileno(), fcntl.F_GETLK, request)
        pid = struct.unpack("hhqqi", answer)[4]
    except OSError:
        pid = 0
    if pid <= 0:
        fh.seek(0)
        text = fh.read().strip()
        pid = int(text) if text.isdigit() else 0
    if pid <= 0:
        return "its lock is held by a process the kernel does not name (a shared file system?)"
    import psutil

    try:
        proc = psutil.Process(pid)
        state = proc.status()
        command = " ".join(" ".join(proc.cmdline()).split())[:120]
    except psutil.Error:
        return f"pid {pid} holds its lock and no longer runs"
    if state == psutil.STATUS_ZOMBIE:
        return f"pid {pid} holds its lock and has exited (a zombie its parent has not reaped)"
    return (
        f"pid {pid} holds its lock and is still running ({command}); wait for it, or stop it "
        "(kill it, then --resume)"
    )


def read_rows(out: str | Path) -> list[dict[str, Any]]:
    """Read the committed rows of a sweep folder, skipping damaged lines (see
    :func:`scan_rows` for which ones)."""
    return scan_rows(out)[0]


def scan_rows(out: str | Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows of ``out/rows.jsonl`` and the numbers of its damaged lines.

    A line is damaged when it is not a JSON object with a ``trial_id``, or repeats a trial
    already read (the first row of a trial is kept). A last line without its newline is the
    row that was being written when a sweep was killed: it is left out, and not counted as
    damaged.
    """
    path = Path(out) / "rows.jsonl"
    rows: list[dict[str, Any]] = []
    damaged: list[int] = []
    seen: set[str] = set()
    if not path.is_file():
        return rows, damaged
    with path.open("rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("trial_id"), str):
            damaged.append(number)
            continue
        if row["trial_id"] in seen:
            damaged.append(number)
            continue
        seen.add(row["trial_id"])
        rows.append(row)
    del torn  # the row being written when a sweep was killed: its trial runs again
    return rows, damaged


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


def _manifest(
    out: Path, trials: list[TrialSpec], source: str | None, executor: dict[str, Any]
) -> None:
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
        "executor": executor,
        "scenario_file": source,
        "scenario_file_sha256": (
            hashlib.sha256(Path(source).read_bytes()).hexdigest()
            if source and Path(source).is_file()
            else None
        ),
        "trials": [
            {"trial_id": t.trial_id, "scenario": t.scenario, "params": t.params, "seed": t.seed}
            for t in trials
        ],
        "scenarios": {t.scenario: t.config for t in trials},
        "configs": resolved_configs(trials),
    }
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    os.replace(tmp, out / "manifest.json")


def resolved_configs(trials: list[TrialSpec]) -> dict[str, Any]:
    """Each scenario's resolved configuration without its swept fields: what every trial of
    the scenario shares, whatever its parameter point and seed."""
    configs: dict[str, Any] = {}
    swept: dict[str, set[str]] = {}
    first: dict[str, TrialSpec] = {}
    for t in trials:
        swept.setdefault(t.scenario, set()).update(t.params)
        first.setdefault(t.scenario, t)
    for name, t in first.items():
        configs[name] = _without(t.config, swept[name])
    return configs


def _without(config: Any, paths: set[str]) -> Any:
    """A copy of ``config`` with each dotted path removed."""
    config = json.loads(json.dumps(config, default=str))
    for path in paths:
        parts = path.split(".")
        node = config
        for part in parts[:-1]:
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = None
                break
        last = parts[-1]
        if isinstance(node, dict):
            node.pop(last, None)
        elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = None
    return config


def config_differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Every field path where two configurations differ, as ``path: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"{where}: (unset) -> {_brief(new[key])}")
            elif key not in new:
                out.append(f"{where}: {_brief(old[key])} -> (unset)")
            else:
                out += config_differences(old[key], new[key], where)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in config_differences(a, b, f"{path}.{i}" if path else str(i))
        ]
    if old != new:
        return [f"{path or '(all)'}: {_brief(old)} -> {_brief(new)}"]
    return []


def _brief(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _previous_configs(out: Path) -> dict[str, Any] | None:
    """The resolved configurations of the sweep already in ``out`` (None: no manifest)."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    if isinstance(manifest.get("configs"), dict):
        return manifest["configs"]
    # A manifest from before "configs": its scenarios hold one point's config.
    swept: dict[str, set[str]] = {}
    for t in manifest.get("trials") or []:
        if isinstance(t, dict) and isinstance(t.get("params"), dict):
            swept.setdefault(str(t.get("scenario")), set()).update(t["params"])
    scenarios = manifest.get("scenarios")
    if not isinstance(scenarios, dict):
        return None
    return {name: _without(c, swept.get(name, set())) for name, c in scenarios.items()}


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
    notify: Callable[[str], None] | None = None,
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
            it, a folder that already holds trials is refused, so nothing is lost by
            mistake. With it, the folder's trials must come from the same configuration.
        source: The scenario file, for the manifest.
        progress: Called with (done, total) after each trial.
        notify: Called with a line for a person (damaged rows found and repaired).

    Raises:
        SweepLocked: another sweep holds the folder.
        SweepFolderError: ``out`` holds trials and ``resume`` is false; or it holds trials of
            another configuration; or it is not a folder.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    kind = executor
    if kind == "auto":
        kind = "process" if workers > 1 else "inprocess"
    out = Path(out)
    with _lock(out):
        rows, damaged = scan_rows(out)
        held = _held_trials(out, rows, damaged)
        if held and not resume:
            raise SweepFolderError(
                f"{out} already holds {held}; use --resume to continue it or pick another --out"
            )
        if resume and held:
            _check_same_configuration(out, trials)
        path = out / "rows.jsonl"
        if resume and not path.exists() and (out / "trials.parquet").exists():
            raise SweepFolderError(
                f"{out} holds trials.parquet but not rows.jsonl, the log a sweep resumes "
                "from; sweep into another --out"
            )
        if damaged:
            lines = ", ".join(map(str, damaged[:10])) + (" ..." if len(damaged) > 10 else "")
            if notify:
                notify(
                    f"{path}: {len(damaged)} damaged line(s) ({lines}) removed; "
                    "their trials run again"
                )
            _rewrite_rows(path, rows)
        done = {r["trial_id"] for r in rows}
        wanted = {t.trial_id for t in trials}
        rows = [r for r in rows if r["trial_id"] in wanted]
        todo = [t for t in trials if t.trial_id not in done]
        used = {"kind": kind, "workers": workers if kind == "process" else 1}
        if kind == "ray":
            used = {"kind": "ray", "address": address or "local"}
        _manifest(out, trials, source, used)
        total = len(trials)
        if progress:
            progress(len(rows), total)
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

            if kind == "ray":
                _run_ray(todo, str(out), address, commit)
            elif kind == "process":
                _run_pool(todo, str(out), workers, commit)
            else:
                for spec in todo:
                    commit(execute(spec, str(out)))
        return write_table(rows, out)


EXECUTORS = ("auto", "inprocess", "process", "ray")


def _held_trials(out: Path, rows: list[dict[str, Any]], damaged: list[int]) -> str | None:
    """What trials ``out`` holds already, in words (None: none)."""
    if rows or damaged:
        return f"{len(rows) + len(damaged)} trials (rows.jsonl)"
    if (out / "trials.parquet").exists():
        return "a trials table (trials.parquet)"
    folders = out / "trials"
    if folders.is_dir() and any(folders.iterdir()):
        return "trial folders (trials/)"
    return None


def _check_same_configuration(out: Path, trials: list[TrialSpec]) -> None:
    """Refuse to resume ``out`` with a configuration other than the one its trials ran."""
    before = _previous_configs(out)
    if before is None:
        raise SweepFolderError(
            f"{out} has no readable manifest.json, so what its trials ran cannot be "
            "compared; sweep into another --out"
        )
    now = resolved_configs(trials)
    differences = []
    for name in sorted(set(before) & set(now)):
        differences += [f"{name}: {d}" for d in config_differences(before[name], now[name])]
    if differences:
        shown = "; ".join(differences[:5]) + (
            f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
        )
        raise SweepFolderError(
            f"--resume: {out} holds trials of another configuration ({shown}); resume "
            "with the configuration it ran, or sweep into another --out"
        )


def _rewrite_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``rows.jsonl`` by its good rows (atomically)."""
    tmp = path.with_name(".rows.jsonl.tmp")
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _truncate_torn_line(path: Path, log: Any) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log.truncate(keep)
        log.seek(keep)


def _take_cpus(slots: Any, workers: int, parent: int | None = None) -> None:
    """Pool worker start: die with the sweep, and pin to a share of the CPUs.

    The worker asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so
    a sweep killed on its own (the OOM killer, a scheduler) leaves no orphan running trials.
    Then, with at least as many CPUs as workers, it pins itself to its own share of them:
    scripted trials are single-threaded and do not care, but a multi-threaded engine in a
    trial (vLLM's CPU engine binds OpenMP threads to the CPUs it may use) would otherwise
    spin on the same cores as its sibling and slow both down."""
    if parent is not None:
        _die_with_parent(parent)
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= workers and slot < workers:
        share = cpus[slot * len(cpus) // workers : (slot + 1) * len(cpus) // workers]
        os.sched_setaffinity(0, share)


def _die_with_parent(parent: int) -> None:
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    # Ctrl-C reaches the whole process group: the sweep stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _run_pool(
    todo: list[TrialSpec], out: str, workers: int, commit: Callable[[dict[str, Any]], None]
) -> None:
    # Keep only a few trials in flight so that a kill loses little and memory stays flat.
    pending: dict[Future[dict[str, Any]], TrialSpec] = {}
    queue = iter(todo)
    slots = multiprocessing.Value("i", 0)
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_take_cpus, initargs=(slots, workers, os.getpid())
    ) as pool:

        def submit() -> bool:
            spec = next(queue, None)
            if spec is None:
                return False
            pending[pool.submit(execute, spec, out)] = spec
            return True

        try:
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
        except BaseException:
            # Ctrl-C or SIGTERM: stop now rather than wait for the trials in flight (they
            # are not committed, so --resume runs them again).
            for process in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    process.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


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


def _answers(address: str) -> None:
    """Refuse at once a Ray address where nothing listens (``ray.init`` would retry for
    minutes)."""
    import socket

    if "://" in address:  # a Ray client address: ray.init knows how to reach it
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorUnavailable(
            f"--address {address}: expected host:port (the head node's GCS), or 'auto'"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise ExecutorUnavailable(
            f"no Ray cluster answers at {address}: {err.strerror or err}"
        ) from None


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
        raise ExecutorUnavailable(
            "the Ray executor needs Ray: pip install 'replisim[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here and address not in (None, "auto", "local"):
        _answers(address)
    if started_here:
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as err:  # ConnectionError, TimeoutError, ValueError, ray's own
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            where = f"at {address}" if address else "on this machine"
            raise ExecutorUnavailable(
                f"cannot start or join a Ray cluster {where}: {first}"
            ) from None
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
