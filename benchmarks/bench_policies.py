"""The cost of guardrails: ``network-spread`` with a chain of 8 policies on vs off.

The 8 policies (:data:`sim.bench.PERMISSIVE_CHAIN`) inspect every action and event they
subscribe to but let everything through (their thresholds are out of reach), so both runs
make the same trial and the ratio is the chain's own overhead. Runs alternate on / off with
the same seeds; the figure is the median over repeats of (time on) / (time off), the trial's
set-up and run in this process, without writing files. ``replisim bench engine`` prints the
same figures (``replisim bench policies`` only them); this script is kept as a shortcut.

    python -m benchmarks.bench_policies [--repeats 5]      (from the repository root)
"""

from __future__ import annotations

import argparse

from sim.bench import PERMISSIVE_CHAIN, SCENARIOS, policy_overhead, policy_ratios

__all__ = ["PERMISSIVE_CHAIN", "SCENARIOS", "policy_overhead"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ratios = policy_ratios(args.repeats)
    for name, key in (("wall-time", "wall"), ("CPU-time", "cpu")):
        ratio = ratios[key]
        print(
            f"network-spread, {len(PERMISSIVE_CHAIN)} policies on / off: {name} ratio "
            f"{ratio:.3f} (median of {args.repeats}; overhead {100 * (ratio - 1):+.1f}%)"
        )


if __name__ == "__main__":
    main()
