"""Containment that means containment: an outbreak that dies out on its own is not one a
policy contained, and the shipped stress tests are not contained without a policy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.plots import FALSE_POSITIVES, containment_heatmap
from sim.report import plan_plots
from sim.trial import run_trial
from tests.helpers import shipped


def _metrics(name: str, seed: int, *sets: tuple[str, object]) -> dict[str, object]:
    return run_trial(shipped(name, *sets), seed).summary


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stress-chain", "stress-shutdown", "stress-spread"])
def test_the_shipped_stress_tests_are_not_contained_without_a_policy(name: str) -> None:
    """With no guardrail the threat of each shipped stress scenario is never contained."""
    for seed in range(4):
        metrics = _metrics(name, seed, ("policies", []))
        assert metrics["contained"] is False, (name, seed)
        assert metrics["contained_by_policy"] is False


def test_natural_extinction_is_contained_but_not_by_a_policy() -> None:
    """A subcritical population dies out by itself: contained, not contained by policy."""
    metrics = _metrics("branching", 0, ("agents.0.success_probability", 0.05))
    assert metrics["extinct"] and metrics["contained"]
    assert metrics["contained_by_policy"] is False


def test_a_kill_switch_that_ends_the_chain_contained_it_by_policy() -> None:
    """The kill switch fires on the chain's spread: contained, and by the policy."""
    kill = [{"kind": "kill-switch", "when": "live >= 3"}]
    metrics = _metrics("stress-chain", 0, ("policies", kill))
    assert metrics["contained"] and metrics["contained_by_policy"]


def test_a_policy_that_only_blocks_the_benign_agent_contained_nothing() -> None:
    """Denials of the benign workload are false positives: not containment by policy."""
    deny = [{"kind": "command-filter", "deny": ["app\\.log"]}]  # only the admin's backups
    metrics = _metrics("stress-chain", 0, ("policies", deny))
    assert metrics["benign_blocked"] > 0
    assert metrics["contained_by_policy"] is False


def test_the_guardrail_heat_map_shows_containment_by_policy_beside_false_positives() -> None:
    """The report's heat map is of contained_by_policy, with a column of the benign
    agents' blocked share."""
    rows = []
    for policy, by_policy, blocked in (("none", False, 0), ("kill", True, 3)):
        for seed in range(3):
            rows.append(
                {"scenario": "s", "policy": policy, "status": "ok", "seed": seed,
                 "contained": True, "contained_by_policy": by_policy, "extinct": False,
                 "benign_actions": 10, "benign_blocked": blocked}
            )  # fmt: skip
    table = pd.DataFrame(rows)
    figure = containment_heatmap(table, "contained_by_policy", "policy", "scenario")
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["s", FALSE_POSITIVES]
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert any(t.startswith("0.30\n") and "of 30" in t for t in texts)  # 9 of 30 blocked


def test_the_report_plans_its_heat_map_on_containment_by_policy(tmp_path: Path) -> None:
    """A sweep table with contained_by_policy gets the heat map of that metric."""
    from sim.report import Results

    table = pd.DataFrame(
        [{"scenario": "s", "policy": "p", "status": "ok", "seed": 0, "contained": True,
          "contained_by_policy": False, "extinct": True}]
    )  # fmt: skip
    results = Results.__new__(Results)
    results.table = table
    jobs, _ = plan_plots(results, [], [])
    assert jobs[0].name == "containment.png" and "contained_by_policy" in jobs[0].caption
