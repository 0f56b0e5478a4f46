"""The cost of guardrails: ``network-spread`` with a chain of 8 policies on vs off.

The 8 policies inspect every action and event they subscribe to but let everything
through (their thresholds are out of reach), so both runs make the same trial and the
ratio is the chain's own overhead. Runs alternate on / off with the same seeds; the figure
is the median over repeats of (wall time on) / (wall time off), the trial's set-up and run
in this process, without writing files.

    python -m benchmarks.bench_policies [--repeats 5]      (from the repository root)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path
from typing import Any

from sim.config import Scenario, load_scenario
from sim.world import World

__all__ = ["PERMISSIVE_CHAIN", "policy_overhead"]

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
"""Eight built-ins that look at everything and stop nothing."""


def _trial(scenario: Scenario, seed: int, clock: Any) -> tuple[float, int]:
    gc.collect()
    started = clock()
    world = World(scenario, seed).run()
    return clock() - started, len(world.replicas)


def policy_overhead(
    repeats: int = 5,
    seeds: tuple[int, ...] = (0, 1),
    hosts: int | None = None,
    clock: Any = time.perf_counter,
) -> float:
    """Median wall-time ratio of ``network-spread`` with :data:`PERMISSIVE_CHAIN` to without.

    Args:
        repeats: Alternating on/off measurements; the median ratio is returned.
        seeds: Seeds run in each measurement (the same ones on and off).
        hosts: Override the scenario's host count (default: as shipped, 2000).
        clock: ``time.perf_counter`` (wall time) or ``time.process_time`` (CPU time of this
            process, steadier on a shared machine).

    Raises:
        AssertionError: the chain changed a trial (it must only watch).
    """
    overrides: list[tuple[str, Any]] = [] if hosts is None else [("hosts.0.count", hosts)]
    off = load_scenario(SCENARIOS, "network-spread", overrides)
    on = load_scenario(SCENARIOS, "network-spread", [*overrides, ("policies", PERMISSIVE_CHAIN)])
    _trial(off, seeds[0], clock)  # warm-up: imports, caches
    _trial(on, seeds[0], clock)
    ratios = []
    for _ in range(repeats):
        wall_off = wall_on = 0.0
        for seed in seeds:
            t_off, n_off = _trial(off, seed, clock)
            t_on, n_on = _trial(on, seed, clock)
            assert n_on == n_off, f"seed {seed}: the chain changed the trial"
            wall_off += t_off
            wall_on += t_on
        ratios.append(wall_on / wall_off)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, clock in (("wall-time", time.perf_counter), ("CPU-time", time.process_time)):
        ratio = policy_overhead(args.repeats, clock=clock)
        print(
            f"network-spread, {len(PERMISSIVE_CHAIN)} policies on / off: {name} ratio "
            f"{ratio:.3f} (median of {args.repeats}; overhead {100 * (ratio - 1):+.1f}%)"
        )


if __name__ == "__main__":
    main()
