"""The ``replisim`` command line."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.config import Scenario, ScenarioError, load_file, load_scenario, parse_override

__all__ = ["main"]

EXIT_USAGE = 2


class UserError(Exception):
    """A mistake on the command line or in its inputs: a message, exit code 2, no traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: every ``finally`` and clean-up runs on the way out."""


class Interrupted(Exception):
    """A command stopped by Ctrl-C or SIGTERM, with what to tell the person and its code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


EXIT_INTERRUPTED = 130
"""128 + SIGINT."""
EXIT_TERMINATED = 143
"""128 + SIGTERM."""
EXIT_BROKEN_PIPE = 141

#: What a command made that the process exit frees at once (see :func:`entry`): a trial of
#: 10^5 replicas holds millions of objects, freed one by one in about half a second.
_LEFT_FOR_EXIT: list[Any] = []
"""128 + SIGPIPE: the reader of our output went away (``| head``)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated("SIGTERM")


def _exit_code(err: BaseException) -> int:
    return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED


def _overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    try:
        return [parse_override(text) for text in args.set or []]
    except ValueError as err:
        raise UserError(str(err)) from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario file (YAML)")
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="override a field by its dotted path, e.g. agents.0.success_probability=0.4"
        " (repeatable; the value is YAML)",
    )


def _output_modes(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print JSON for scripts")
    mode.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="replisim",
        description="Simulate self-replicating AI agents, shutdown signals and guardrails.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a scenario file; report every error")
    _add_common(p)
    p.add_argument("--scenario", help="check only this scenario")

    p = sub.add_parser("list", help="list the scenarios of a file")
    _add_common(p)
    _output_modes(p)

    p = sub.add_parser("run", help="run one trial (of a scenario file, or again of a trial folder)")
    _add_common(p)
    p.add_argument("--scenario", help="scenario name (needed when the file has several)")
    p.add_argument("--seed", type=int, help="seed (default: the scenario's, or the trial's)")
    p.add_argument(
        "--out",
        help="trial folder (default runs/<scenario>/seed-<seed>; <trial>-again for a folder)",
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="FILE is a trial folder: answer its LLM agents with its recorded model answers",
    )
    _output_modes(p)

    p = sub.add_parser("transcript", help="what an LLM trial's agents thought and did")
    p.add_argument("trial", help="trial folder")
    p.add_argument("--replica", help="only this replica (default: all, in start order)")
    p.add_argument(
        "--full", action="store_true", help="show whole tool outputs and thinking fields"
    )
    p.add_argument("--json", action="store_true", help="print the records as JSON lines")

    p = sub.add_parser("sweep", help="run many trials into a table (trials.parquet)")
    _add_common(p)
    p.add_argument(
        "--scenario",
        action="append",
        help="scenario to sweep (repeatable; default: every scenario with a sweep)",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--trials", type=int, help="seeds 0..N-1 (overrides the scenario's)")
    seeds.add_argument("--seeds", help="comma-separated seeds, e.g. 1,2,3")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--executor",
        choices=["auto", "inprocess", "process", "ray"],
        default="auto",
        help="where trials run (default: in-process for one worker, else a local process pool)",
    )
    p.add_argument(
        "--address",
        help="Ray cluster address for --executor ray ('auto' joins "
        "a running cluster; default: start a local one)",
    )
    p.add_argument("--out", required=True, help="sweep folder")
    p.add_argument(
        "--resume", action="store_true", help="continue a sweep in --out: skip finished trials"
    )
    p.add_argument(
        "--retry-errors",
        type=int,
        default=0,
        metavar="N",
        help="run a trial that ended with status error for a reason outside its agent "
        "(engine failures, timeouts) up to N more times (default 0)",
    )
    _output_modes(p)

    p = sub.add_parser("report", help="tables, PNG plots and report.html for a sweep")
    p.add_argument("out", help="sweep folder (or one trial folder)")
    _output_modes(p)

    p = sub.add_parser("graph", help="export one trial's lineage")
    p.add_argument("trial", help="trial folder (holding lineage.parquet)")
    p.add_argument(
        "--format", default="png", help="png, svg, graphml, gexf, dot or json (default png)"
    )
    p.add_argument("--output", help="file or folder (default <trial>/exports/)")

    p = sub.add_parser(
        "calibrate",
        help="fit a scripted agent's behaviour profile to measured trials or published counts",
        description="Fit a behaviour profile (a scripted agent's parameters with their "
        "uncertainty) and write it as YAML, for a scenario's `agents: [{..., profile: FILE}]`. "
        "From trials: TRIALS are trial folders (summary.json) or sweep folders (rows.jsonl); "
        "each trial is one attempt: its success probability (Beta posterior, Wilson 95% "
        "interval) and its time to the first live replica (exponential, trials without one "
        "censored at their end); with --agent saboteur, from trials with a shutdown "
        "mechanism, its sabotage probability and its time to the first sabotage (trials shut "
        "down first censored at the shutdown). From counts: --counts PARAMETER=S/N (e.g. "
        "success_probability=9/10, sabotage_probability=79/100) with --source citing where "
        "they come from. Output: the profile YAML at --out, and each parameter's estimate "
        "and 95% interval printed.",
    )
    p.add_argument("trials", nargs="*", help="trial or sweep folders to fit to")
    p.add_argument("--name", required=True, help="the profile's name")
    p.add_argument("--out", required=True, help="YAML file to write")
    p.add_argument(
        "--agent",
        default="replicator",
        help="the scripted agent it parameterises: replicator (replication) or saboteur "
        "(sabotage of a shutdown mechanism)",
    )
    p.add_argument("--source", help="where the measurements come from (cited in the profile)")
    p.add_argument(
        "--counts", action="append", default=[], metavar="PARAMETER=S/N", help="published counts"
    )
    p.add_argument(
        "--mechanics",
        type=float,
        default=0.0,
        help="seconds the measured world's replication itself took (or, for a saboteur, "
        "when its clock starts, e.g. the warning), subtracted from each time",
    )

    p = sub.add_parser("export", help="write LLM transcripts in another tool's format")
    p.add_argument(
        "format",
        choices=["inspect"],
        help="inspect: an Inspect AI log (one sample per LLM agent), for `inspect view`",
    )
    p.add_argument("source", help="trial folder or sweep folder")
    p.add_argument("--out", required=True, help="log file to write (.eval or .json)")

    p = sub.add_parser("model", help="the embedded model")
    p.add_argument(
        "action",
        choices=["prepare", "serve"],
        help="prepare: convert SmolLM2-135M-Instruct (GGUF) to a folder vLLM loads; "
        "serve: run it behind `vllm serve` on 127.0.0.1 until Ctrl-C",
    )
    p.add_argument("--force", action="store_true", help="convert again even if cached")
    p.add_argument("--port", type=int, default=8000, help="serve: the port (default 8000)")
    p.add_argument(
        "--name", default="smollm2", help="serve: the model name clients ask for (smollm2)"
    )

    p = sub.add_parser("hosts", help="live hosts: the Docker base image, clean-up")
    hosts = p.add_subparsers(dest="hosts_command", required=True, metavar="ACTION")
    q = hosts.add_parser("image", help="the offline Docker base image of live hosts")
    q.add_argument("action", choices=["build"], help="build: import it (kept as is if unchanged)")
    q = hosts.add_parser(
        "clean", help="remove the containers, networks, volumes and sandboxes live hosts left"
    )
    q.add_argument("--run", metavar="RUN_ID", help="only those of this run (default: all)")

    p = sub.add_parser("bench", help="measure performance")
    p.add_argument(
        "what",
        choices=[
            "engine",
            "overhead",
            "policies",
            "scale",
            "output",
            "sweep",
            "llm",
            "live",
            "fidelity",
        ],
        help="engine: overhead, policies and scale; overhead: replisim vs bare SimPy events/s; "
        "policies: network-spread with 8 guardrail policies on vs off; "
        "scale: the neighbour spread against EoN, at 10^4..10^6 replicas, and its output "
        "writing; output: that writing's share of the trial and replisim run end to end "
        "against the trial, at 10^5 replicas, repeated (medians); "
        "sweep: process-pool speedup (2 workers over 1) on 10^4-replica trials; "
        "llm: batching, replay speed and per-step overhead with the embedded model; "
        "live: start, exec and signal latency of Docker and bubblewrap hosts; "
        "fidelity: the virtual shell against real bash on a bubblewrap host (the fidelity "
        "corpus: agreement per family of command lines)",
    )
    p.add_argument(
        "--session",
        metavar="NAME",
        help="fidelity: only the corpus sessions whose name contains NAME",
    )
    p.add_argument(
        "--repeats", type=int, help="repeats (median is reported; default 5, for live 20)"
    )
    p.add_argument(
        "--max-replicas",
        type=int,
        help="largest outbreak for 'scale' (default 10^6; 10^5 within 'engine')",
    )
    p.add_argument(
        "--trials",
        type=int,
        help="sweep: trials of the 10^4-replica neighbour spread per measurement (default 1000)",
    )
    p.add_argument(
        "--sustain",
        type=int,
        metavar="N",
        help="live: also ramp live Docker hosts with one replica each (4, 8, 16... up to N) "
        "until the machine stops keeping up",
    )
    return parser


def _note(text: str) -> None:
    print(f"replisim: note: {text}", file=sys.stderr)


def _load(args: argparse.Namespace, scenario: str | None = None) -> Any:
    loaded = load_file(args.file, _overrides(args), scenario=scenario)
    for note in loaded.notes:
        _note(note)
    return loaded


def _cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args, args.scenario)
    print(f"{args.file}: {len(loaded.scenarios)} scenario(s) valid: " + ", ".join(loaded.scenarios))
    return 0


def _describe(s: Scenario) -> dict[str, Any]:
    return {
        "name": s.name,
        "description": s.description,
        "hosts": sum(g.count for g in s.hosts),
        "agents": ", ".join(a.agent for a in s.agents),
        "injectors": len(s.injectors),
        "policies": len(s.policies),
        "sweep_trials": s.sweep.point_count() * s.sweep.seed_count(),
    }


def _cmd_list(args: argparse.Namespace) -> int:
    loaded = _load(args)
    rows = [_describe(s) for s in loaded.scenarios.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not args.quiet:
        from rich.table import Table

        table = Table(title=args.file)
        for col in ("name", "hosts", "agents", "injectors", "sweep_trials"):
            table.add_column(col, no_wrap=True, overflow="ignore")
        table.add_column("description", overflow="ellipsis", no_wrap=True, max_width=40)
        for r in rows:
            table.add_row(
                *(
                    str(r[c])
                    for c in ("name", "hosts", "agents", "injectors", "sweep_trials", "description")
                )
            )
        print_whole(table)
    return 0


def print_whole(table: Any, min_width: int = 120) -> None:
    """Print a rich table at least as wide as it needs, so that no name in it is cut (a
    name is copied from the terminal; piped output has no width of its own)."""
    from rich.console import Console

    console = Console()
    needed = console.measure(table, options=console.options.update_width(10**4)).maximum
    Console(width=max(console.width, min_width, needed)).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _trial_source(args: argparse.Namespace) -> tuple[Scenario, int, Path]:
    """Scenario, seed and output folder of ``replisim run``: from a scenario file, or
    from a trial folder (its scenario.json and seed), optionally replayed."""
    source = Path(args.file)
    if not source.is_dir():
        if args.replay:
            raise UserError(f"--replay takes a trial folder, and {source} is not a folder")
        scenario = load_scenario(args.file, args.scenario, _overrides(args))
        seed = scenario.seed if args.seed is None else args.seed
        return (
            scenario,
            seed,
            _trial_folder(args.out, Path("runs") / scenario.name / f"seed-{seed}"),
        )
    from sim.config import apply_overrides

    try:
        recorded = json.loads((source / "scenario.json").read_text())
        summary = json.loads((source / "summary.json").read_text())
        trial_seed = int(summary["seed"])
        if not isinstance(recorded, dict):
            raise ValueError("scenario.json does not hold a scenario")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{source} is not a trial folder written by replisim run: {err}") from None
    try:
        data = apply_overrides(recorded, _overrides(args))
    except ValueError as err:
        raise UserError(str(err)) from None
    from pydantic import ValidationError

    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{source}/scenario.json: {err}") from None
    if args.replay:
        from agents.transcript import replay_scenario

        try:
            scenario = replay_scenario(scenario, source)
        except ValueError as err:
            raise UserError(str(err)) from None
    seed = trial_seed if args.seed is None else args.seed
    out = _trial_folder(args.out, Path(f"{source}-again"))
    if out.resolve() == source.resolve():
        raise UserError("--out must differ from the trial folder being run again")
    return scenario, seed, out


def _trial_folder(given: str | None, default: Path) -> Path:
    """The folder ``run`` writes into: ``--out``, or the default. It must be (or become) a
    folder: a file at that path, or under it, is refused before the trial runs."""
    out = Path(given) if given else default
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        if probe == out:
            raise UserError(f"--out {out}: a file is there (a trial writes a folder)")
        raise UserError(f"--out {out}: {probe} is a file, not a folder")
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.trial import jsonable, run_trial

    scenario, seed, out = _trial_source(args)
    from sim.hosts.registry import backends_of, substrate_of

    if getattr(substrate_of(scenario), "wall_clock", False):
        from sim.sweep import live_run_id  # (sim.sweep imports pandas: only when needed)

        scenario = live_run_id(scenario, seed)
        if not (args.json or args.quiet):
            backends = "/".join(sorted(set(backends_of(scenario))))
            print(
                f"live world: {scenario.name} on {backends} sandboxes, run id "
                f"{scenario.world.run_id}, up to {scenario.stop.horizon:g} s of wall time; "
                "Ctrl-C stops it and removes them (after a kill: replisim hosts clean --run "
                f"{scenario.world.run_id})",
                file=sys.stderr,
            )
    result = run_trial(scenario, seed, out)
    _LEFT_FOR_EXIT.append(result)
    summary = result.summary
    if args.json:
        extra = {"out": str(out)}
        if scenario.world.run_id is not None:
            extra["run_id"] = scenario.world.run_id
        print(json.dumps(jsonable({**summary, **extra})))
    elif not args.quiet:
        from rich.table import Table

        table = Table(title=f"{scenario.name}, seed {seed}", show_header=False)
        for key, value in summary.items():
            table.add_row(key, _fmt(value))
        if scenario.world.run_id is not None:
            table.add_row("run id", scenario.world.run_id)
        table.add_row("written to", str(out))
        print_whole(table, min_width=80)
    if summary["status"] != "ok":
        print(f"replisim: trial failed: {summary['error']}", file=sys.stderr)
        return 1
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim import budget
    from sim.sweep import (
        ExecutorUnavailable,
        MachineTooSmall,
        SweepFolderError,
        expand,
        run_sweep,
    )

    names = args.scenario
    loaded = _load(args, names[0] if names and len(names) == 1 else None)
    if names:
        expanded = [m for n in names for m in loaded.sweeps.get(n, [n])]
        missing = [n for n in expanded if n not in loaded.scenarios]
        if missing:
            known = ", ".join([*loaded.scenarios, *loaded.sweeps])
            raise UserError(f"no scenario {missing[0]!r}; known: {known}")
        chosen = [loaded.scenarios[n] for n in dict.fromkeys(expanded)]
    else:
        chosen = [s for s in loaded.scenarios.values() if "sweep" in s.model_fields_set]
        if not chosen:
            raise UserError(
                f"{args.file} has no scenario with a 'sweep:'; name one with --scenario"
            )
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.address is not None and args.executor != "ray":
        raise UserError("--address goes with --executor ray")
    if args.retry_errors < 0:
        raise UserError("--retry-errors must be 0 or more")
    seeds: Sequence[int] | None = None
    if args.trials is not None:
        if args.trials < 1:
            raise UserError("--trials must be at least 1")
        seeds = range(args.trials)  # counted before any list is built
    elif args.seeds is not None:
        seeds = _seed_list(args.seeds)
    count = sum(
        s.sweep.point_count() * (len(seeds) if seeds is not None else s.sweep.seed_count())
        for s in chosen
    )
    _check_sweep_fits(count, args.out)
    trials = [t for s in chosen for t in expand(s, seeds)]
    executor = args.executor
    if executor in ("auto", "process") and args.workers > 1:
        workers, notice = budget.usable_workers(args.workers, len(trials))
        if notice:
            _note(notice)
        if executor == "auto" and workers == 1:
            executor = "inprocess"
    else:
        workers = args.workers
    options = {
        "workers": workers,
        "executor": executor,
        "address": args.address,
        "resume": args.resume,
        "source": args.file,
        "notify": _note,
        "retry_errors": args.retry_errors,
    }
    try:
        if args.quiet or args.json:
            table = run_sweep(trials, args.out, **options)
        else:
            table = _sweep_with_progress(trials, args.out, options)
    except (SweepFolderError, ExecutorUnavailable, MachineTooSmall) as err:
        raise UserError(str(err)) from None
    except KeyboardInterrupt as err:
        raise Interrupted(
            f"sweep stopped ({err or 'Ctrl-C'}); its finished trials are kept: run the same "
            "command with --resume to finish it",
            _exit_code(err),
        ) from None
    ok = table[table["status"] == "ok"] if "status" in table else table
    report = {
        "out": args.out,
        "trials": len(table),
        "ok": len(ok),
        "errors": int(len(table) - len(ok)),
    }
    if args.json:
        print(json.dumps(report))
    elif not args.quiet:
        _print_sweep_summary(table, args.out)
    return 0 if report["errors"] == 0 else 1


def _seed_list(text: str) -> list[int]:
    """``--seeds 1,2,3``: integers, each once, at least one."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise UserError(f"--seeds takes integers separated by commas, got {text!r}: no seed")
    try:
        seeds = [int(p) for p in parts if p]
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, got {text!r}") from None
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise UserError(
            f"--seeds lists {', '.join(map(str, duplicates))} more than once: each seed names "
            "one trial"
        )
    return seeds


def _check_sweep_fits(trials: int, out: str) -> None:
    """Refuse a sweep whose rows cannot fit in memory, or whose folders cannot fit on disk."""
    from sim import budget

    memory = trials * budget.BYTES_PER_ROW
    have = budget.machine_memory()
    if memory > have * 0.5:
        raise UserError(
            f"{trials:,} trials: their rows need about {budget.human_bytes(memory)} of memory "
            f"while the sweep runs, and this machine has {budget.human_bytes(have)}; sweep "
            "fewer trials (or several sweeps into several folders)"
        )
    disk = trials * budget.BYTES_PER_TRIAL_FOLDER
    free = budget.free_disk(out)
    if disk > free:
        raise UserError(
            f"{trials:,} trials: their folders need at least {budget.human_bytes(disk)} of "
            f"disk and {out} has {budget.human_bytes(free)} free"
        )


def _sweep_with_progress(trials: list[Any], out: str, options: dict[str, Any]) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from sim.sweep import run_sweep

    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("trials", total=len(trials))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run_sweep(trials, out, progress=progress, **options)


def _print_sweep_summary(table: Any, out: str) -> None:
    from rich.table import Table

    from sim.stats import wilson_interval

    keys = ["scenario", "policy", *sorted(c for c in table.columns if c.startswith("param."))]
    keys = [k for k in keys if k in table.columns and (k == "scenario" or table[k].nunique() > 1)]
    if "policy" in keys:  # the label says it; the JSON of the chain would only widen the table
        keys = [k for k in keys if k != "param.policies"]
    view = Table(title=f"{out}/trials.parquet")
    metrics = ["replicated", "extinct"]
    if "mechanisms" in table.columns and (table["mechanisms"] > 0).any():
        metrics.append("sabotaged")  # a shutdown mechanism was on the hosts
    for col in [
        *keys,
        "trials",
        "errors",
        *(f"P({m}) [95% CI]" for m in metrics),
        "median peak live",
    ]:
        view.add_column(col.removeprefix("param."))
    for point, group in table.groupby(keys, sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        n = len(ok)
        cells = []
        for metric in metrics:
            if n == 0:
                cells.append("-")
                continue
            hits = ok[metric].astype(bool)
            k = int(hits.sum())
            lo, hi = wilson_interval(k, n)
            cells.append(f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]")
        peak = f"{ok['peak_live'].median():g}" if n else "-"
        labels = point if isinstance(point, tuple) else (point,)
        view.add_row(*(_fmt(v) for v in labels), str(len(group)), str(len(group) - n), *cells, peak)
    print_whole(view)


def _cmd_bench(args: argparse.Namespace) -> int:
    from sim import bench

    if args.repeats is not None and args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.what == "fidelity":
        from sim.fidelity import bench as fidelity
        from sim.hosts.sandbox import bwrap_path

        if bwrap_path() is None:
            raise UserError("bench fidelity needs bubblewrap (apt-get install -y bubblewrap)")
        return fidelity("local", args.session)
    if args.what == "live":
        from sim.bench_live import live_hosts

        live_hosts(repeats=args.repeats or 20)
        if args.sustain:
            from sim.bench_live import sustain

            counts = tuple(n for n in (4, 8, 16, 32, 64, 128, 256) if n <= args.sustain)
            sustain(counts or (args.sustain,))
        return 0
    args.repeats = args.repeats or 5
    if args.what in ("engine", "overhead"):
        bench.engine(repeats=args.repeats)
    if args.what in ("engine", "policies"):
        bench.policies(repeats=args.repeats)
    if args.what in ("engine", "scale"):
        default = 100_000 if args.what == "engine" else 1_000_000
        bench.scale(max_replicas=args.max_replicas or default, repeats=min(args.repeats, 3))
    if args.what == "output":
        bench.output(repeats=args.repeats)
    if args.what == "sweep":
        if args.trials is not None and args.trials < 1:
            raise UserError("--trials must be at least 1")
        bench.sweep_speedup(trials=args.trials or 1_000, repeats=args.repeats)
    if args.what == "llm":
        from agents.bench import llm

        llm(repeats=args.repeats)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.report import cmd_report

    try:
        return cmd_report(args.out, quiet=args.quiet, as_json=args.json)
    except ValueError as err:
        raise UserError(str(err)) from None


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from sim import calibrate

    if bool(args.trials) == bool(args.counts):
        raise UserError("calibrate: give trial or sweep folders, or --counts, not both")
    try:
        if args.counts:
            if not args.source:
                raise UserError("calibrate: --counts needs --source (where the counts come from)")
            counts: dict[str, tuple[int, int]] = {}
            for item in args.counts:
                parameter, _, ratio = item.partition("=")
                s, _, n = ratio.partition("/")
                if not (parameter and s.isdigit() and n.isdigit()):
                    raise UserError(f"calibrate: --counts {item!r}: expected PARAMETER=S/N")
                counts[parameter] = (int(s), int(n))
            profile = calibrate.profile_from_counts(
                args.name, counts, source=args.source, agent=args.agent
            )
        else:
            behaviour = calibrate.BEHAVIOUR.get(args.agent, "replication")
            found = calibrate.observations(args.trials, behaviour)
            source = args.source or f"{len(found)} trials of " + ", ".join(args.trials)
            profile = calibrate.profile_from_trials(
                args.name, found, source=source, agent=args.agent, mechanics=args.mechanics
            )
    except ValueError as err:
        raise UserError(f"calibrate: {err}") from None
    path = calibrate.write_profile(profile, args.out)
    for parameter, post in profile.parameters.items():
        lo, hi = post.interval
        print(f"{parameter}: {post.estimate:.4g} (95% interval {lo:.4g}-{hi:.4g}; {post.data})")
    print(f"profile {profile.name} written to {path}")
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from sim.report import cmd_graph

    try:
        return cmd_graph(args.trial, args.format, args.output)
    except ValueError as err:
        raise UserError(str(err)) from None


def _cmd_transcript(args: argparse.Namespace) -> int:
    from agents.transcript import format_transcript, read_transcripts

    try:
        transcripts = read_transcripts(args.trial)
        if args.json:
            for name, steps in transcripts.items():
                if args.replica in (None, name):
                    for step in steps:
                        print(json.dumps({"replica": name, **step}))
            return 0
        if args.full:  # whole tool outputs and whole thinking fields
            print(format_transcript(transcripts, args.replica, None, width=None))
        else:
            print(format_transcript(transcripts, args.replica, 12))
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(str(err)) from None
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from agents.inspect_model import inspect_available

    if not inspect_available():
        raise UserError("export inspect needs Inspect AI: pip install 'replisim[inspect]'")
    from sim.inspect_log import export_inspect

    try:
        path, count = export_inspect(args.source, args.out)
    except ValueError as err:
        raise UserError(str(err)) from None
    print(f"{path}: {count} sample(s); open with: inspect view --log-dir {path.parent}")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from agents.embedded import ModelUnavailableError, embedded_model_path, prepare_embedded_model

    try:
        if args.action == "prepare":
            prepare_embedded_model(force=args.force)
            return 0
        folder = embedded_model_path()
    except ModelUnavailableError as err:
        raise UserError(str(err)) from None
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: a port is 1 to 65535")
    import time

    from agents.vllm_engine import VllmServerError, VllmUnavailableError, serve_vllm

    try:
        with serve_vllm(folder, args.port, served_model_name=args.name) as url:
            print(
                f"serving {args.name} at {url} (Inspect: vllm/{args.name} with base_url "
                f"{url}); Ctrl-C stops it",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except (VllmServerError, VllmUnavailableError) as err:
        raise UserError(str(err)) from None
    except KeyboardInterrupt as err:
        raise Interrupted("model server stopped", _exit_code(err)) from None


def _cmd_hosts(args: argparse.Namespace) -> int:
    if args.hosts_command == "image":
        try:
            from sim.hosts import docker_image
        except ImportError:
            raise UserError(
                "the docker SDK is not installed: pip install 'replisim[live]'"
            ) from None
        try:
            image_id = docker_image.build_base_image()
        except docker_image.docker.errors.DockerException as err:
            raise UserError(
                f"no Docker engine answers (start one: bash .ci/start-docker.sh): {err}"
            ) from None
        print(f"{docker_image.DEFAULT_TAG} {image_id}")
        return 0
    from sim.hosts.live import clean

    try:
        report = clean(args.run)
    except ValueError as err:
        raise UserError(str(err)) from None
    for note in report.skipped:
        print(f"replisim: note: {note}", file=sys.stderr)
    print(
        f"removed {report.containers} container(s), {report.networks} network(s), "
        f"{report.volumes} volume(s), {report.sandboxes} local sandbox(es)"
        + (f" of run {args.run}" if args.run else "")
    )
    return 0


COMMANDS = {
    "validate": _cmd_validate,
    "list": _cmd_list,
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "report": _cmd_report,
    "graph": _cmd_graph,
    "calibrate": _cmd_calibrate,
    "transcript": _cmd_transcript,
    "export": _cmd_export,
    "model": _cmd_model,
    "bench": _cmd_bench,
    "hosts": _cmd_hosts,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (2 for a user mistake)."""
    args = build_parser().parse_args(argv)
    quiet_third_party()
    # A SIGTERM (a scheduler, a CI timeout, `kill`) is handled as Ctrl-C is: clean-up runs,
    # a message says what was kept, and the exit code tells which signal it was.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except ScenarioError as err:
        for error in err.errors:
            print(f"error: {error}", file=sys.stderr)
        print(f"{len(err.errors)} error(s)", file=sys.stderr)
        return EXIT_USAGE
    except UserError as err:
        print(f"replisim: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as err:
        print(f"replisim: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt as err:
        print(
            "replisim: terminated (SIGTERM)"
            if isinstance(err, Terminated)
            else "replisim: interrupted",
            file=sys.stderr,
        )
        return _exit_code(err)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as err:
        # The file system refused something the command was told to use (a folder under
        # a file, a read-only place, a full disk): the person's to fix, so no traceback.
        where = f"{err.filename}: " if err.filename else ""
        print(f"replisim: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so that the interpreter's final flush
    does not fail again and print what ``| head`` made irrelevant."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def quiet_third_party() -> None:
    """Keep third-party warning noise out of output meant for people.

    vLLM, torch and transformers warn about their own internals (Triton backends, NUMA
    binding, deprecated names) and draw progress bars while loading weights; none of it is
    about the simulation. Their loggers and C++ logs are set to errors only (in this process
    and the engine processes it starts) unless the caller set those variables, and warnings
    raised inside third-party modules are dropped unless ``PYTHONWARNINGS`` or ``-W`` asks
    for them. replisim's own warnings still show.
    """
    import warnings

    for key, value in {
        "VLLM_LOGGING_LEVEL": "ERROR",
        "TORCH_CPP_LOG_LEVEL": "ERROR",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TQDM_DISABLE": "1",
        "RAY_DEDUP_LOGS": "1",
    }.items():
        os.environ.setdefault(key, value)
    import logging

    # vLLM warns about its Triton backend while it imports, before its own logging is set
    # up, so Python's last-resort handler would print it: decide the level first.
    for name in ("vllm", "torch", "transformers", "ray"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
    if sys.warnoptions:
        return
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # engine processes: third-party only
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"(sim|agents|policies)(\.|$)")


def entry() -> None:
    """The console script: run :func:`main` and exit with its code."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        code = code or EXIT_BROKEN_PIPE
    if "ray" in sys.modules:
        # Ray installs a C++ terminate handler that aborts the interpreter's shutdown when
        # pyarrow's worker threads are torn down (seen as a rare exit 134 after a finished
        # sweep). Everything is written and flushed by now, so leave without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if _LEFT_FOR_EXIT and threading.active_count() == 1:
        # A large trial is written and its files closed: run the exit handlers (temporary
        # folders, logging), then leave without freeing its objects one by one and
        # tearing every module down (0.5-0.8 s of `replisim run` at 10^5 replicas).
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # What the command made (a large trial: millions of objects) is freed at shutdown
    # anyway; frozen, the interpreter's last collection does not walk it first (~0.3 s
    # off `replisim run` of a 10^5-replica trial).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
