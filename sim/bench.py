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
from sim.trial import make_world

__all__ = [
    "PERMISSIVE_CHAIN",
    "bare_simpy",
    "engine",
    "engine_ratio",
    "peak_rss_kib",
    "policies",
    "policy_overhead",
    "policy_ratios",
    "run_spread",
    "scale",
    "shipped",
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
            "target < +20%)"
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


def run_spread(replicas: int, seed: int = 1) -> dict[str, float]:
    """One network-spread outbreak sized for about ``replicas`` replicas (in this process)."""
    hosts = int(replicas / 0.96) + 50  # most hosts get a replica at these rates
    scenario = shipped("network-spread", [("hosts.0.count", hosts), ("stop.horizon", "365d")])
    import psutil

    gc.collect()
    baseline_mb = psutil.Process().memory_info().rss / 2**20  # the interpreter and imports
    started = time.perf_counter()
    world = make_world(scenario, seed).run()
    elapsed = time.perf_counter() - started
    peak_kib = peak_rss_kib()
    return {
        "replicas": len(world.replicas),
        "hosts": hosts,
        "seconds": elapsed,
        "peak_rss_mb": peak_kib / 1024,
        "trial_mb": peak_kib / 1024 - baseline_mb,
        "events": len(world.events),
    }


def _spread_child(replicas: int, queue: Any) -> None:
    queue.put(run_spread(replicas))


def scale(max_replicas: int = 100_000) -> list[dict[str, float]]:
    """Network-spread at 10^3, 10^4, 10^5 replicas, each in a fresh process (clean peak RSS)."""
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= max_replicas]
    ctx = mp.get_context("spawn")
    rows = []
    for n in sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_spread_child, args=(n, queue))
        proc.start()
        row = queue.get()
        proc.join()
        rows.append(row)
        k = row["replicas"] / 1000
        print(
            f"  {row['replicas']:>9,} replicas on {row['hosts']:,} hosts: "
            f"{row['seconds']:7.2f} s, peak RSS {row['peak_rss_mb']:5.0f} MB "
            f"({row['trial_mb']:5.0f} MB above the process before the trial); per 1,000 "
            f"replicas {row['seconds'] / k:.3f} s, {row['trial_mb'] / k:.2f} MB"
        )
    return rows


def sweep_speedup(trials: int = 200, repeats: int = 3) -> float:
    """Process-pool speedup: ``trials`` branching trials on 2 workers vs 1 (median ratio).

    Each run writes a full sweep folder (trial folders, rows, table) into a temporary
    directory, so the figure includes the committing the parent does.
    """
    import tempfile

    from sim.sweep import expand, run_sweep

    specs = expand(shipped("branching"), list(range(trials // 2)))  # two grid points
    ratios = []
    for rep in range(repeats):
        times = {}
        for workers in (1, 2):
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
        f"sweep: median speedup of 2 workers over 1 = {median:.2f} (target >= 1.7) "
        f"for {len(specs)} branching trials"
    )
    return median
