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
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.capacity import Admission, Capacity, Reservation, fitting, machine_capacity
from sim.capacity import trial_reservation as _trial_reservation
from sim.config import Scenario, apply_overrides
from sim.trial import run_trial

__all__ = [
    "ExecutorUnavailable",
    "MachineTooSmall",
    "SweepFolderError",
    "SweepLocked",
    "TrialSpec",
    "expand",
    "live_run_id",
    "outside_agent",
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


class MachineTooSmall(RuntimeError):
    """A live trial's hosts reserve more than this machine has, even with nothing beside."""


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


#: Errors of a trial that ran into trouble outside its agent (the engine, the machine, the
#: network, a model server), which another attempt may not meet: where each comes from.
OUTSIDE_AGENT = (
    "worker failed:",  # the pool worker died (OOM-killed, crashed): this module
    "LiveWorldError",  # a sandbox did not start, an origin did not register: live substrate
    "LiveHostError",  # a sandbox broke or the engine refused: sim.hosts.live
    "DockerException",  # the Docker engine (docker SDK)
    "APIError",
    "TimeoutError",  # anything that timed out
    "ConnectionError",
    "timed out",
    "no answer from",  # model servers (agents.backends): timeouts, unreachable, 5xx/429
    "cannot reach",
    "connection to",
    "HTTP 5",
    "HTTP 429",
    "vLLM engine:",
    "cannot start model backend",
    "inspect model ",  # a provider's error through Inspect (agents.inspect_model)
)
#: ... unless the error is the agent's own or would recur: checked first.
THE_AGENTS_OWN = ("replay diverged", "not a valid step", "nothing to replay")


def outside_agent(error: str) -> bool:
    """Whether a trial's ``error`` came from outside its agent (engine failures, timeouts),
    so that running the trial again may succeed (``--retry-errors``)."""
    if any(mark in error for mark in THE_AGENTS_OWN):
        return False
    return any(mark in error for mark in OUTSIDE_AGENT)


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
    retry_errors: int = 0,
    capacity: Capacity | None = None,
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
        notify: Called with a line for a person (damaged rows found and repaired, live
            trials queued to fit the machine, trials run again).
        retry_errors: Run a trial that ended with status ``error`` for a reason outside its
            agent (:func:`outside_agent`) again, up to this many more times; the row records
            ``attempts`` and the earlier attempts' errors (``attempt_errors``), and the
            earlier attempts' folders are kept under ``out/attempts/<trial_id>/<n>``.
        capacity: What the machine offers live trials (default: measured now); live
            trials run side by side only while what their hosts reserve fits in it.

    Raises:
        SweepLocked: another sweep holds the folder.
        SweepFolderError: ``out`` holds trials and ``resume`` is false; or it holds trials of
            another configuration; or it is not a folder.
        MachineTooSmall: a live trial's hosts reserve more than the machine has.
        ExecutorUnavailable: (Ray) no node of the cluster can run a live trial.
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
        reserve = _reservations()
        admission = None
        if kind != "ray":  # a Ray cluster schedules by the resources each task asks for
            admission = Admission(capacity or machine_capacity())
            at_once = workers if kind == "process" else 1
            _check_fits(todo, reserve, admission.capacity, at_once, notify)
        earlier: dict[str, list[str]] = {}
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

            def finish(spec: TrialSpec, row: dict[str, Any]) -> bool:
                """Commit a trial's row, or (False) set it aside to be run again."""
                errors = earlier.setdefault(spec.trial_id, [])
                error = str(row.get("error") or "")
                again = row.get("status") == "error" and len(errors) < retry_errors
                if again and outside_agent(error):
                    errors.append(error)
                    _set_aside(out, spec.trial_id, len(errors))
                    if notify:
                        notify(
                            f"trial {spec.trial_id} ({spec.scenario}, seed {spec.seed}) "
                            f"failed outside its agent ({_brief_error(error)}); attempt "
                            f"{len(errors) + 1} of {retry_errors + 1}"
                        )
                    return False
                row["attempts"] = len(errors) + 1
                row["attempt_errors"] = json.dumps(errors)
                commit(row)
                return True

            if kind == "ray":
                _run_ray(todo, str(out), address, finish, reserve)
            elif kind == "process":
                assert admission is not None
                _run_pool(todo, str(out), workers, finish, reserve, admission)
            else:
                queue = deque(todo)
                while queue:
                    spec = queue.popleft()
                    if not finish(spec, execute(spec, str(out))):
                        queue.appendleft(spec)
        return write_table(rows, out)


EXECUTORS = ("auto", "inprocess", "process", "ray")


def _reservations() -> Callable[[TrialSpec], Reservation]:
    """What a trial reserves of the machine, worked out once per configuration."""
    known: dict[str, Reservation] = {}

    def reserve(spec: TrialSpec) -> Reservation:
        key = json.dumps([spec.scenario, spec.params], sort_keys=True, default=str)
        found = known.get(key)
        if found is None:
            found = known[key] = _trial_reservation(Scenario.model_validate(spec.config))
        return found

    return reserve


def _check_fits(
    todo: list[TrialSpec],
    reserve: Callable[[TrialSpec], Reservation],
    capacity: Capacity,
    workers: int,
    notify: Callable[[str], None] | None,
) -> None:
    """Refuse live trials that cannot fit alone; say when fewer than ``workers`` fit at once
    (the rest wait their turn)."""
    told: set[Reservation] = set()
    for spec in todo:
        need = reserve(spec)
        if not need or need in told:
            continue
        told.add(need)
        count, limit = fitting(capacity, need)
        if count < 1:
            raise MachineTooSmall(
                f"a live trial of {spec.scenario} reserves {need.describe()}, and this "
                f"machine has {_capacity_text(capacity)} for live hosts: it does not fit "
                "(lower the hosts' memory, pids or cpu, or world.scale)"
            )
        if count < workers and notify:
            notify(
                f"live trials of {spec.scenario} reserve {need.describe()} each; this "
                f"machine has {_capacity_text(capacity)}, room for {count} at once (their "
                f"{limit}): the others are queued, at most {count} run at a time"
            )


def _capacity_text(capacity: Capacity) -> str:
    from sim.budget import human_bytes

    return (
        f"{human_bytes(capacity.memory)} of memory, {capacity.pids} processes and "
        f"{capacity.cpus:g} CPU(s)"
    )


def _brief_error(error: str) -> str:
    line = " ".join(error.split())
    return line if len(line) <= 100 else line[:97] + "..."


def _set_aside(out: Path, trial: str, attempt: int) -> None:
    """Keep a failed attempt's folder as ``out/attempts/<trial>/<attempt>``."""
    folder = out / "trials" / trial
    if not folder.exists():
        return
    target = out / "attempts" / trial / str(attempt)
    if target.exists():  # left by an earlier sweep into this folder
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(folder, target)


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
    todo: list[TrialSpec],
    out: str,
    workers: int,
    finish: Callable[[TrialSpec, dict[str, Any]], bool],
    reserve: Callable[[TrialSpec], Reservation],
    admission: Admission,
) -> None:
    """Trials in a local process pool: a few in flight per worker (so that a kill loses
    little and memory stays flat), and live trials only while their hosts' reservations fit
    the machine beside those in flight; a trial to run again goes first in the queue."""
    pending: dict[Future[dict[str, Any]], tuple[TrialSpec, Reservation]] = {}
    queue = deque(todo)
    slots = multiprocessing.Value("i", 0)
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_take_cpus, initargs=(slots, workers, os.getpid())
    ) as pool:

        def fill() -> None:
            while queue and len(pending) < workers * 4:
                need = reserve(queue[0])
                if not admission.take(need):
                    break  # it waits until a live trial in flight ends
                spec = queue.popleft()
                pending[pool.submit(execute, spec, out)] = (spec, need)
            if queue and not pending:  # _check_fits refused what cannot fit alone
                raise MachineTooSmall(f"trial {queue[0].trial_id} does not fit this machine")

        try:
            fill()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    spec, need = pending.pop(future)
                    admission.give_back(need)
                    try:
                        row = future.result()
                    except Exception as err:  # the worker died: report the trial, go on
                        row = _failed_row(spec, err)
                    if not finish(spec, row):
                        queue.appendleft(spec)
                fill()
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


DOCKER_RESOURCE = "docker"
"""The Ray custom resource of nodes that have a Docker engine (live Docker trials ask for
one unit)."""


def _docker_engine_answers() -> bool:
    """Whether a Docker engine answers here (``DOCKER_HOST`` or the local socket)."""
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # DockerException, connection errors: no engine
        return False


def _check_cluster(
    todo: list[TrialSpec], reserve: Callable[[TrialSpec], Reservation], resources: dict[str, Any]
) -> None:
    """Refuse live trials no node of the cluster offers what they ask for (Ray would wait
    for such a node forever)."""
    for spec in todo:
        need = reserve(spec)
        if need.docker and resources.get(DOCKER_RESOURCE, 0) < 1:
            raise ExecutorUnavailable(
                f"live trials of {spec.scenario} run Docker hosts, and no node of the Ray "
                f"cluster offers the '{DOCKER_RESOURCE}' resource (a Docker engine): start "
                f"those nodes with ray start --resources '{{\"{DOCKER_RESOURCE}\": 1000}}'"
            )
        if need and need.memory > resources.get("memory", 0):
            raise ExecutorUnavailable(
                f"a live trial of {spec.scenario} reserves {need.describe()}, more memory "
                "than the Ray cluster has"
            )


def _run_ray(
    todo: list[TrialSpec],
    out: str,
    address: str | None,
    finish: Callable[[TrialSpec, dict[str, Any]], bool],
    reserve: Callable[[TrialSpec], Reservation],
) -> None:
    """One Ray task per trial; results committed as they finish, a bounded number in flight.

    A live trial's task asks Ray for what its hosts reserve (``num_cpus``, ``memory``), so
    Ray's scheduler never over-commits a node, and, when its hosts are Docker containers,
    for one unit of the custom resource :data:`DOCKER_RESOURCE`, which only nodes with a
    Docker engine offer (``ray start --resources '{"docker": 1000}'``; a local instance
    started here offers it when a Docker engine answers). The trial folders are written by
    the tasks, so ``out`` must be on storage the Ray workers share (a local cluster, or a
    shared file system).
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
        options: dict[str, Any] = {}
        if address is None and _docker_engine_answers():
            options["resources"] = {DOCKER_RESOURCE: 1000}
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                **options,
            )
        except Exception as err:  # ConnectionError, TimeoutError, ValueError, ray's own
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            where = f"at {address}" if address else "on this machine"
            raise ExecutorUnavailable(
                f"cannot start or join a Ray cluster {where}: {first}"
            ) from None
    try:
        remote = ray.remote(execute)
        resources = ray.cluster_resources()
        _check_cluster(todo, reserve, resources)
        capacity = max(int(resources.get("CPU", 1)) * 2, 2)
        queue = deque(todo)
        pending: dict[Any, TrialSpec] = {}

        def submit() -> None:
            if not queue:
                return
            spec = queue.popleft()
            need = reserve(spec)
            task = remote
            if need:
                asks: dict[str, Any] = {"num_cpus": need.cpus, "memory": need.memory}
                if need.docker:
                    asks["resources"] = {DOCKER_RESOURCE: 1}
                task = remote.options(**asks)
            pending[task.remote(spec, out)] = spec

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
                if not finish(spec, row):
                    queue.appendleft(spec)
                submit()
    finally:
        if started_here:
            ray.shutdown()
