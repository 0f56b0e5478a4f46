"""The benchmarks behind `replisim bench`: they run and measure what they say (no timings
are judged here; the machines are too noisy)."""

from __future__ import annotations

from sim import bench
from sim.config import load_scenario
from sim.trial import make_world
from tests.helpers import SCENARIOS


def test_the_permissive_chain_watches_everything_and_changes_nothing():
    """The guardrail benchmark's chain inspects the replications but leaves trials alone."""
    overrides = [("hosts.0.count", 60)]
    off = load_scenario(SCENARIOS, "network-spread", overrides)
    on = load_scenario(
        SCENARIOS, "network-spread", [*overrides, ("policies", bench.PERMISSIVE_CHAIN)]
    )
    for seed in (0, 1):
        without, with_chain = make_world(off, seed).run(), make_world(on, seed).run()
        assert [e[:2] for e in with_chain.events] == [e[:2] for e in without.events]
        assert with_chain.gate is not None
        assert with_chain.gate.action_kinds >= {"copy", "start_server", "start_agent"}
        assert with_chain.gate.decisions == {}


def test_policy_ratios_reports_both_clocks():
    ratios = bench.policy_ratios(repeats=1, seeds=(0,), hosts=40)
    assert set(ratios) == {"wall", "cpu"}
    assert all(r > 0 for r in ratios.values())
