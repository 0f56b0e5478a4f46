"""Benchmarks, printed as ratios measured side by side in one run (``replisim bench``).

The machines are shared and noisy, so nothing here asserts a wall time: each figure is a
median over repeats, the engine figure is a ratio against bare SimPy measured in the same
process, interleaved, and the guardrail figure a ratio of the same trials with and without
a chain of policies, interleaved too.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import simpy

from sim.config import Scenario, load_scenario
from sim.trial import make_world, run_trial

__all__ = [
    "PERMISSIVE_CHAIN",
    "bare_simpy",
    "engine",
    "engine_ratio",
    "eon_ratio",
    "output",
    "peak_rss_kib",
    "policies",
    "policy_overhead",
    "policy_ratios",
    "run_end_to_end",
    "scale",
    "scale_point",
    "shipped",
    "spread_scenario",
    "sweep_speedup",
]

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios.yaml"

PERMISSIVE_CHAIN: list[dict[str, Any]] = [
    {"kind": "command-filter", "deny": [r"^rm\s+-rf\s+/$", r"\bmkfs\b"]},
    {"kind": "spawn-rate-limit", "max": 1000, "window": "1m", "scope": "lineage"},
    {"kind": "replica-cap", "max": 1_000_000},
    {"kind": "kill-switch", "when": "live >= 1000000"},
    {"kind": "egress-block", "allow": ["node-*"]},
    {"kind": "weights-tripwire", "action": "kill", "allow": ["node-*:/opt/*"]},
    {"kind": "resource-quota", "scope": "host", "memory": "1TB"},
    {"kind": "llm-monitor", "judge": "keyword", "keywords": ["rm -rf /", "mkfs"]},
]
"""Eight built-ins that look at everything and stop nothing (their thresholds are out of
reach), so that a trial with them is the trial without them, and the difference in time is
the chain's own cost."""


def shipped(name: str, overrides: list[tuple[str, Any]] | None = None) -> Scenario:
    """A scenario from the shipped ``scenarios.yaml``."""
    return load_scenario(SCENARIOS, name, overrides)


def bare_simpy(lives: list[tuple[float, float]], events: int) -> float:
    """Wall seconds for bare SimPy to do the same work as a trial, with no model around it.

    One process per replica, started at the replica's birth and living until its death,
    so the number of concurrent processes (which sets SimPy's own cost through its heap)
    follows the trial's; the ``events`` are spread evenly over the processes as timeouts.
    The births are scheduled by one spawner process whose timeouts count as events too.

    Args:
        lives: (born, died) per replica, sorted by birth.
        events: How many events the trial scheduled.
    """
    env = simpy.Environment()
    processes = len(lives)
    per_process = max((events - 3 * processes) // processes, 1)
    timeout = env.timeout

    def proc(lifetime: float) -> Generator[simpy.Timeout, Any, None]:
        step = lifetime / per_process
        for _ in range(per_process):
            yield timeout(step)

    def spawner() -> Generator[simpy.Timeout, Any, None]:
        now = 0.0
        for born, died in lives:
            yield timeout(born - now)
            now = born
            env.process(proc(died - born))

    gc.collect()  # start clean: no garbage left by the previous measurement
    started = time.perf_counter()
    env.process(spawner())
    env.run()
    return time.perf_counter() - started


def engine_ratio(scenario: Scenario, seed: int) -> dict[str, float]:
    """Run one replisim trial and bare SimPy doing the same work; return both rates."""
    gc.collect()  # start clean: no garbage left by the previous measurement
    started = time.perf_counter()
    world = make_world(scenario, seed).run()
    ours = time.perf_counter() - started
    events = next(world.env._eid)  # every event SimPy scheduled in the trial
    end = world.env.now
    lives = [(r.born, r.died if not r.alive else end) for r in world.replicas]
    bare = bare_simpy(lives, events)
    return {
        "events": events,
        "processes": len(lives),
        "replisim_s": ours,
        "bare_s": bare,
        "replisim_rate": events / ours,
        "bare_rate": events / bare,
        "ratio": (events / ours) / (events / bare),
    }


def engine(repeats: int = 5, cap: int = 20_000) -> dict[str, float]:
    """Engine overhead: a replicator population vs bare SimPy; prints the median ratio."""
    scenario = shipped("branching", [("stop.population_cap", cap)])
    rows: list[dict[str, float]] = []
    seed = 0
    while len(rows) < repeats:
        seed += 1
        row = engine_ratio(scenario, seed)
        if row["processes"] < cap // 2:  # died out early: too small to time
            continue
        rows.append(row)
        print(
            f"  run {len(rows)}: {row['events']:,} events, {row['processes']:,} replicas, "
            f"replisim {row['replisim_rate']:,.0f} ev/s, bare SimPy {row['bare_rate']:,.0f} "
            f"ev/s, ratio {row['ratio']:.2f}"
        )
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"engine: median ratio replisim/bare SimPy = {median['ratio']:.2f} "
        f"(target >= 0.5) over {repeats} runs"
    )
    return median


def _policy_medians(
    repeats: int, seeds: tuple[int, ...], hosts: int | None, clocks: tuple[Any, ...]
) -> list[float]:
    """Per clock, the median over repeats of (time with the chain) / (time without)."""
    overrides: list[tuple[str, Any]] = [] if hosts is None else [("hosts.0.count", hosts)]
    off = shipped("network-spread", overrides)
    on = shipped("network-spread", [*overrides, ("policies", PERMISSIVE_CHAIN)])

    def trial(scenario: Scenario, seed: int) -> tuple[list[float], int]:
        gc.collect()  # start clean: no garbage left by the previous measurement
        started = [clock() for clock in clocks]
        world = make_world(scenario, seed).run()
        return [clock() - t for clock, t in zip(clocks, started, strict=True)], len(world.replicas)

    trial(off, seeds[0])  # warm-up: imports, caches
    trial(on, seeds[0])
    ratios: list[list[float]] = [[] for _ in clocks]
    for _ in range(repeats):
        totals_off, totals_on = [0.0] * len(clocks), [0.0] * len(clocks)
        for seed in seeds:
            t_off, n_off = trial(off, seed)
            t_on, n_on = trial(on, seed)
            assert n_on == n_off, f"seed {seed}: the chain changed the trial"
            for i in range(len(clocks)):
                totals_off[i] += t_off[i]
                totals_on[i] += t_on[i]
        for i in range(len(clocks)):
            ratios[i].append(totals_on[i] / totals_off[i])
    return [statistics.median(r) for r in ratios]


def policy_ratios(
    repeats: int = 5, seeds: tuple[int, ...] = (0, 1), hosts: int | None = None
) -> dict[str, float]:
    """Median time ratios of ``network-spread`` with :data:`PERMISSIVE_CHAIN` to without.

    Each repeat runs every seed without and then with the chain, alternating, and times
    each trial (its set-up and run, in this process, without writing files) by both the
    wall clock and the CPU time of this process (steadier on a shared machine).

    Args:
        repeats: Measurements; the median ratio of each clock is returned.
        seeds: Seeds run in each measurement (the same ones with and without).
        hosts: Override the scenario's host count (default: as shipped, 2000).

    Returns:
        ``wall`` and ``cpu``: the median ratios (chain on / chain off).

    Raises:
        AssertionError: the chain changed a trial (it must only watch).
    """
    wall, cpu = _policy_medians(repeats, seeds, hosts, (time.perf_counter, time.process_time))
    return {"wall": wall, "cpu": cpu}


def policy_overhead(
    repeats: int = 5,
    seeds: tuple[int, ...] = (0, 1),
    hosts: int | None = None,
    clock: Any = time.perf_counter,
) -> float:
    """Median ratio of ``network-spread`` with :data:`PERMISSIVE_CHAIN` to without, by one clock.

    Args:
        repeats: Alternating on/off measurements; the median ratio is returned.
        seeds: Seeds run in each measurement (the same ones on and off).
        hosts: Override the scenario's host count (default: as shipped, 2000).
        clock: ``time.perf_counter`` (wall time) or ``time.process_time`` (CPU time of this
            process, steadier on a shared machine).

    Raises:
        AssertionError: the chain changed a trial (it must only watch).
    """
    return _policy_medians(repeats, seeds, hosts, (clock,))[0]


def policies(repeats: int = 5) -> dict[str, float]:
    """Guardrail overhead: ``network-spread`` with 8 policies on vs off; prints the ratios."""
    ratios = policy_ratios(repeats)
    for name, key in (("wall-time", "wall"), ("CPU-time", "cpu")):
        ratio = ratios[key]
        print(
            f"policies: network-spread, {len(PERMISSIVE_CHAIN)} policies on / off: {name} "
            f"ratio {ratio:.3f} (median of {repeats}; overhead {100 * (ratio - 1):+.1f}%, "
            "target < +10%)"
        )
    return ratios


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB since it started its program.

    ``/proc/self/status`` ``VmHWM`` belongs to the process's own memory map, which ``exec``
    replaces; ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a fresh interpreter
    spawned from a big parent would report the parent's peak (seen as 156 MB per 1,000
    replicas in ``bench engine``, 3.4 MB when ``bench scale`` ran alone).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


SPREAD = "neighbour-spread"
"""The issue's outbreak: a replicator spreading to random neighbours with room on a
6-regular graph, exponential attempts (10 min, success 0.8) and lifetimes (1 h), hosts
patched on death, copies and starts that take no time (``scenarios.yaml``)."""

#: EoN's SIR on the same graph: the per-edge rate at which a replica that has five hosts
#: left around it would replicate (one successful attempt per 12.5 min, spread over five
#: edges), the same mean lifetime; about 85% of the nodes get infected, as in the spread.
EON_TAU = 0.8 / 600 / 5
EON_GAMMA = 1 / 3600


def spread_scenario(hosts: int, engine: str = "population") -> Scenario:
    """The neighbour spread on ``hosts`` hosts, on one engine (``population``/``process``)."""
    return shipped(SPREAD, [("hosts.0.count", hosts), ("world.engine", engine)])


def big_outbreak_seed(hosts: int, engine: str = "population", first: int = 1) -> int:
    """The first seed from ``first`` whose outbreak reaches half the hosts (a fifth of the
    outbreaks die out at once; they measure nothing)."""
    seed = first
    while True:
        result = run_trial(spread_scenario(min(hosts, 2_000), engine), seed)
        if result.summary["replicas_total"] >= min(hosts, 2_000) / 2:
            return seed
        seed += 1


def eon_ratio(hosts: int = 100_000, repeats: int = 3) -> dict[str, float]:
    """replisim's neighbour spread against EoN's ``fast_SIR``, per infected node.

    In this process, alternating: one replisim trial (population engine: set-up, run,
    lineage and metrics, no files), then EoN's ``fast_SIR`` on a networkx 6-regular graph
    of as many nodes (built beforehand, as EoN's users do), each timed by the wall clock
    and this process's CPU time; outbreaks that reach less than half the hosts are run
    again with another seed. The figure is the median over ``repeats`` of (replisim's
    time per replica that went live) / (EoN's time per node infected).

    Returns:
        ``wall`` and ``cpu`` median ratios and each side's median microseconds per node;
        empty if EoN is not installed (``pip install 'replisim[bench]'``).
    """
    try:
        import EoN
    except ImportError:
        print("eon: EoN is not installed, no comparison (pip install 'replisim[bench]')")
        return {}
    import networkx as nx
    import numpy as np

    graph = nx.random_regular_graph(6, hosts, seed=1)
    scenario = spread_scenario(hosts)
    clocks = (time.perf_counter, time.process_time)
    rows: list[dict[str, float]] = []
    seed = eon_seed = 0
    while len(rows) < repeats:
        while True:
            seed += 1
            gc.collect()
            started = [c() for c in clocks]
            result = run_trial(scenario, seed)
            ours = [c() - t for c, t in zip(clocks, started, strict=True)]
            replicas = result.summary["replicas_total"]
            if replicas >= hosts / 2:
                break
        while True:
            eon_seed += 1
            gc.collect()
            started = [c() for c in clocks]
            _, _, _, recovered = EoN.fast_SIR(
                graph, EON_TAU, EON_GAMMA, initial_infecteds=[0],
                rng=np.random.default_rng(eon_seed),
            )  # fmt: skip
            theirs = [c() - t for c, t in zip(clocks, started, strict=True)]
            infected = int(recovered[-1])
            if infected >= hosts / 2:
                break
        row = {
            "replisim_us": 1e6 * ours[0] / replicas,
            "eon_us": 1e6 * theirs[0] / infected,
            "wall": (ours[0] / replicas) / (theirs[0] / infected),
            "cpu": (ours[1] / replicas) / (theirs[1] / infected),
        }
        rows.append(row)
        print(
            f"  run {len(rows)}: replisim {replicas:,} replicas in {ours[0]:.2f} s "
            f"({row['replisim_us']:.1f} us each), EoN fast_SIR {infected:,} infected in "
            f"{theirs[0]:.2f} s ({row['eon_us']:.1f} us each): ratio {row['wall']:.2f} wall, "
            f"{row['cpu']:.2f} CPU"
        )
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"eon: neighbour spread on a {hosts:,}-host 6-regular graph, replisim (population "
        f"engine, whole trial) / EoN fast_SIR per infected node: {median['wall']:.2f} wall, "
        f"{median['cpu']:.2f} CPU (median of {repeats}; target <= 3)"
    )
    return median


def _scale_child(hosts: int, engine: str, seed: int, queue: Any) -> None:
    import tempfile

    from sim.trial import write_trial
    from sim.world import few_collections

    scenario = spread_scenario(hosts, engine)
    started = time.perf_counter()
    result = run_trial(scenario, seed)
    trial = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp, few_collections():
        started = time.perf_counter()
        write_trial(result, scenario, tmp)
        write = time.perf_counter() - started
    queue.put(
        {
            "hosts": hosts,
            "replicas": result.summary["replicas_total"],
            "trial_s": trial,
            "run_s": result.summary["wall_s"],
            "write_s": write,
            "peak_rss_mb": peak_rss_kib() / 1024,
        }
    )


def scale_point(hosts: int, engine: str = "population", seed: int | None = None) -> dict[str, Any]:
    """One neighbour spread in a fresh process (its own peak RSS): the trial (set-up, run,
    lineage, metrics), then the writing of its folder, each timed."""
    seed = big_outbreak_seed(hosts, engine) if seed is None else seed
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_scale_child, args=(hosts, engine, seed, queue))
    proc.start()
    row: dict[str, Any] = queue.get()
    proc.join()
    row["seed"] = seed
    return row


def run_end_to_end(hosts: int, engine: str, seed: int) -> dict[str, float]:
    """``replisim run`` of the neighbour spread as a user types it, in a fresh process: its
    wall time against the trial's own (``wall_s`` in the ``summary.json`` it writes)."""
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "sim.cli", "run", str(SCENARIOS), "--scenario", SPREAD,
            "--set", f"hosts.0.count={hosts}", "--set", f"world.engine={engine}",
            "--seed", str(seed), "--out", tmp, "--quiet",
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True)
        total = time.perf_counter() - started
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    return {"total_s": total, "trial_s": summary["wall_s"], "ratio": total / summary["wall_s"]}


def scale(max_replicas: int = 1_000_000, repeats: int = 3) -> dict[str, Any]:
    """``replisim bench scale``: the neighbour spread against EoN, then at 10^4, 10^5 and
    10^6 hosts each in a fresh process (time and peak memory, per 1,000 replicas, and the
    share of writing the trial folder), then ``replisim run`` end to end at 10^5."""
    import os

    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} (other work slows every figure; ratios measured side by side hold)"
    )
    found: dict[str, Any] = {"eon": eon_ratio(min(100_000, max_replicas), repeats)}
    rows = []
    for hosts in (n for n in (10_000, 100_000, 1_000_000) if n <= max_replicas):
        row = scale_point(hosts)
        rows.append(row)
        k = row["replicas"] / 1000
        print(
            f"  {row['replicas']:>9,} replicas on {hosts:,} hosts (population engine): trial "
            f"{row['trial_s']:7.2f} s, writing its folder {row['write_s']:6.2f} s "
            f"({100 * row['write_s'] / row['trial_s']:.0f}% of the trial), peak RSS "
            f"{row['peak_rss_mb']:5.0f} MB; per 1,000 replicas {row['trial_s'] / k:.3f} s "
            f"and {row['peak_rss_mb'] / k:.2f} MB"
        )
    found["scale"] = rows
    big = next((r for r in rows if r["hosts"] == 1_000_000), None)
    if big is not None:
        print(
            f"scale: 10^6 hosts, {big['replicas']:,} replicas: "
            f"{big['trial_s'] + big['write_s']:.1f} s with the folder written (target < 120 s), "
            f"peak RSS {big['peak_rss_mb'] / 1024:.2f} GB (target < 4 GB)"
        )
    if max_replicas >= 100_000:
        ends = {}
        for engine in ("population", "process"):
            seed = big_outbreak_seed(100_000, engine)
            point = scale_point(100_000, engine, seed) if engine == "process" else None
            if point is not None:
                print(
                    f"  process engine, 10^5 hosts: trial {point['trial_s']:.2f} s, writing its "
                    f"folder {point['write_s']:.2f} s "
                    f"({100 * point['write_s'] / point['trial_s']:.0f}%)"
                )
            end = ends[engine] = run_end_to_end(100_000, engine, seed)
            print(
                f"  replisim run, 10^5 hosts, {engine} engine: {end['total_s']:.2f} s end to end, "
                f"the trial {end['trial_s']:.2f} s: {end['ratio']:.2f}x"
            )
        found["end_to_end"] = ends
        hundred = next(r for r in rows if r["hosts"] == 100_000)
        print(
            f"output: writing the trial folder at 10^5 replicas takes "
            f"{100 * hundred['write_s'] / hundred['trial_s']:.0f}% of the trial (target "
            f"<= 25%); replisim run end to end {ends['population']['ratio']:.2f}x (population) "
            f"and {ends['process']['ratio']:.2f}x (process) the trial (target <= 1.3x)"
        )
    return found


def output(repeats: int = 3, hosts: int = 100_000) -> dict[str, float]:
    """``replisim bench output``: the two output figures of ``bench scale`` alone, repeated.

    Each repeat runs the neighbour spread on ``hosts`` hosts (one seed whose outbreak is
    big) in a fresh process, timing the trial and then the writing of its folder, and then
    ``replisim run`` of the same trial end to end in another; the medians of the write
    share and of the end-to-end ratio are printed.
    """
    seed = big_outbreak_seed(hosts)
    shares, ratios = [], []
    for i in range(repeats):
        point = scale_point(hosts, seed=seed)
        end = run_end_to_end(hosts, "population", seed)
        shares.append(point["write_s"] / point["trial_s"])
        ratios.append(end["ratio"])
        print(
            f"  run {i + 1}: trial {point['trial_s']:.2f} s, writing its folder "
            f"{point['write_s']:.2f} s ({100 * shares[-1]:.0f}%); replisim run "
            f"{end['total_s']:.2f} s end to end, the trial {end['trial_s']:.2f} s: "
            f"{ratios[-1]:.2f}x"
        )
    found = {"write_share": statistics.median(shares), "run_ratio": statistics.median(ratios)}
    print(
        f"output: {hosts:,} hosts, seed {seed}, median of {repeats}: writing the trial folder "
        f"takes {100 * found['write_share']:.0f}% of the trial (target <= 25%); replisim run "
        f"end to end {found['run_ratio']:.2f}x the trial (target <= 1.3x)"
    )
    return found


def sweep_speedup(trials: int = 1_000, repeats: int = 3, hosts: int = 10_000) -> float:
    """Process-pool speedup: ``trials`` neighbour spreads of ``hosts`` hosts (about as many
    replicas each, population engine) on 2 workers against 1, alternating; the median ratio.

    Each run writes a full sweep folder (trial folders, rows, table) into a temporary
    directory, so the figure includes the committing the parent does.
    """
    import tempfile

    from sim.sweep import expand, run_sweep

    specs = expand(spread_scenario(hosts), list(range(trials)))
    ratios = []
    for rep in range(repeats):
        times = {}
        for workers in (1, 2) if rep % 2 == 0 else (2, 1):
            with tempfile.TemporaryDirectory() as tmp:
                gc.collect()
                started = time.perf_counter()
                run_sweep(specs, tmp, workers=workers, executor="process")
                times[workers] = time.perf_counter() - started
        ratios.append(times[1] / times[2])
        print(
            f"  run {rep + 1}: 1 worker {times[1]:.2f} s, 2 workers {times[2]:.2f} s, "
            f"speedup {ratios[-1]:.2f}"
        )
    median = statistics.median(ratios)
    print(
        f"sweep: median speedup of 2 workers over 1 = {median:.2f} (target >= 1.8) for "
        f"{len(specs):,} neighbour spreads on {hosts:,} hosts (median of {repeats})"
    )
    return median
