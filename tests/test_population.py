"""The population engine (sim/population.py) has the world core's semantics: a set of
scenarios run through both engines gives the same outcome distributions."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from sim.config import Scenario
from sim.output import iter_events
from sim.trial import run_trial
from tests.helpers import scenario, shipped


def _engine(s: Scenario, engine: str) -> Scenario:
    data = s.model_dump(mode="json")
    data["world"]["engine"] = engine
    return Scenario.model_validate(data)


NEIGHBOUR_SPREAD = """
hosts: [{name: node, count: 400, memory: 40GB, gpu_memory: 0, disk: 200GB, disk_bandwidth: inf}]
network: {topology: regular, degree: 6, bandwidth: inf, latency: 0}
bundle: {weights: 16GB, server_memory: 32GB, agent_memory: 1GB, server_start_overhead: 0,
         agent_start_time: 0}
agents:
  - {agent: replicator, name: origin, host: node-0, attempt_time: {exponential: 10m},
     success_probability: 0.8, target: neighbour}
injectors: [{signal: SIGKILL, lifetime: {exponential: 1h}, target: each, patch_host: true}]
stop: {horizon: 365d}
"""

CONTENTION = """
hosts: [{name: box, memory: 100GB, gpu_memory: 0, disk: 70GB, disk_bandwidth: 1GB/s}]
bundle: {weights: 10GB, files: {}, server_memory: 20GB, agent_memory: 1GB,
         server_start_overhead: {exponential: 20}, agent_start_time: {uniform: [1, 3]}}
agents:
  - {agent: replicator, name: origin, attempt_time: {exponential: 60}, success_probability: 0.7,
     max_children: 3, catches_sigterm: true}
injectors:
  - {signal: SIGTERM, every: {exponential: 200}, target: random, grace: {exponential: 30},
     probability: 0.7, latency: {exponential: 5}}
  - {signal: SIGKILL, at: [2000], target: oldest}
stop: {horizon: 3000}
"""

FULL_MESH = """
hosts: [{name: h, count: 6, memory: 80GB, gpu_memory: 160GB, disk: 400GB,
         disk_bandwidth: {uniform: [0.5e9, 2e9]}}]
network: {topology: full, bandwidth: {lognormal: [21, 0.5]}, latency: {exponential: 0.01}}
bundle: {weights: 100GB, server_memory: 30GB, server_gpu_memory: 150GB, agent_memory: 1GB,
         server_start_overhead: 30s, agent_start_time: 5s}
agents:
  - {agent: replicator, name: origin, host: h-0, attempt_time: {lognormal: [5, 0.5]},
     success_probability: 0.6, max_attempts: 6, target: neighbour, catches_sigterm: true}
injectors:
  - {signal: SIGTERM, lifetime: {exponential: 900}, target: each, grace: 60, patch_host: true}
stop: {horizon: 4h}
"""

CASES: dict[str, Any] = {
    "network-spread": lambda: shipped("network-spread", ("hosts.0.count", 300)),
    "branching": lambda: shipped("branching"),
    "neighbour-spread": lambda: scenario(NEIGHBOUR_SPREAD),
    "contention": lambda: scenario(CONTENTION),
    "full-mesh": lambda: scenario(FULL_MESH),
    "paper-self-replication": lambda: shipped(
        "paper-self-replication",
        ("injectors", [{"signal": "SIGTERM", "at": 1800, "target": "origin", "grace": 300}]),
    ),
}

METRICS = (
    "replicas_total",
    "replicas_started",
    "peak_live",
    "live_at_end",
    "max_generation",
    "end_s",
    "offspring_mean",
    "extinct",
    "survived_shutdown",
    "first_replica_s",
)
COUNTED = ("copy-failed", "server-failed", "signal", "host-patched", "copy-done")
TRIALS = 120


def _outcomes(s: Scenario, seeds: range, tmp: Any) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {m: [] for m in (*METRICS, *COUNTED)}
    for seed in seeds:
        result = run_trial(s, seed)
        assert result.summary["status"] == "ok", result.summary["error"]
        for m in METRICS:
            found[m].append(float(result.summary[m]))
        kinds = Counter(kind for _, kind, _ in result.events)
        for kind in COUNTED:
            found[kind].append(float(kinds[kind]))
    return found


def _same_law(name: str, a: list[float], b: list[float]) -> None:
    """Two samples of one metric: KS p >= 0.001 and means within 3 standard errors (NaN,
    e.g. no first replica, compared as its own share)."""
    x, y = np.array(a), np.array(b)
    nx, ny = np.isnan(x), np.isnan(y)
    share_se = math.sqrt(
        max(nx.mean() * (1 - nx.mean()), 1e-12) / x.size
        + max(ny.mean() * (1 - ny.mean()), 1e-12) / y.size
    )
    assert abs(nx.mean() - ny.mean()) <= 3 * share_se + 1e-9, (name, "NaN share")
    x, y = x[~nx], y[~ny]
    if x.size < 5 or y.size < 5:
        return
    se = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    assert abs(x.mean() - y.mean()) <= 3 * se + 1e-9, (name, x.mean(), y.mean(), se)
    if np.ptp(np.concatenate([x, y])) > 0:
        p = stats.ks_2samp(x, y).pvalue
        assert p >= 0.001, (name, p, x.mean(), y.mean())


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_engines_give_the_same_outcome_distributions(case: str, tmp_path: Any) -> None:
    """120 trials on each engine: every metric and event count has the same distribution
    (two-sample KS p >= 0.001, means within 3 standard errors)."""
    s = CASES[case]()
    process = _outcomes(_engine(s, "process"), range(TRIALS), tmp_path)
    population = _outcomes(_engine(s, "population"), range(10_000, 10_000 + TRIALS), tmp_path)
    for name in process:
        _same_law(f"{case}: {name}", process[name], population[name])


def test_population_engine_records_what_the_world_records(tmp_path: Any) -> None:
    """The same event kinds with the same fields, and the same trial folder files."""
    shapes = {}
    for engine in ("process", "population"):
        s = _engine(scenario(CONTENTION), engine)
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for seed in range(5):
            run_trial(s, seed, tmp_path / engine / str(seed))
            seen |= {
                (e["event"], tuple(sorted(k for k in e if k not in ("t", "event"))))
                for e in iter_events(tmp_path / engine / str(seed))
            }
        shapes[engine] = seen
    assert shapes["process"] == shapes["population"]
    assert {k for k, _ in shapes["process"]} >= {"copy-failed", "server-failed", "signal"}
    files = {p.name for p in (tmp_path / "population" / "0").iterdir()}
    assert files == {p.name for p in (tmp_path / "process" / "0").iterdir()}


def test_population_engine_is_deterministic(tmp_path: Any) -> None:
    """The same seed gives byte-identical lineage and events."""
    s = _engine(scenario(NEIGHBOUR_SPREAD), "population")
    for out in ("a", "b"):
        run_trial(s, 3, tmp_path / out)
    for name in ("lineage.parquet", "events.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("p, R", [(0.5, 2.0), (1 / 3, 4 / 3)])
def test_population_branching_extinction_matches_theory(p: float, R: float) -> None:
    """Over 1000 population-engine trials the extinct fraction is within 3 SE of 1/R."""
    s = _engine(shipped("branching", ("agents.0.success_probability", p)), "population")
    expected = 1 / R
    se = math.sqrt(expected * (1 - expected) / 1000)
    extinct = sum(run_trial(s, seed).summary["ended_by"] == "extinction" for seed in range(1000))
    assert abs(extinct / 1000 - expected) < 3 * se, (extinct / 1000, expected, se)


def test_population_engine_refuses_what_it_does_not_model() -> None:
    """Other agents, policies, limits and conditions are refused by name, with their path."""
    text = """
world: {engine: population}
hosts: [{name: b}]
agents: [{agent: chain}]
policies: [{kind: replica-cap, max: 3}]
injectors: [{limit: network-cut, host: b, at: 5}, {signal: SIGKILL, when: "live >= 2"}]
"""
    with pytest.raises(ValidationError) as info:
        scenario(text)
    where = {".".join(map(str, e["loc"])) for e in info.value.errors()}
    assert where >= {"agents.0.agent", "policies", "injectors.0.limit", "injectors.1.when"}
    assert "world.engine population" in str(info.value)


def test_population_engine_refuses_mechanisms_and_behaviour_profiles() -> None:
    """A shutdown mechanism and a behaviour profile, which it would ignore, are refused."""
    text = """
world: {engine: population}
hosts: [{name: b}]
agents: [{agent: replicator, profile: fudan-qwen2.5-72b}]
mechanisms: [{kind: script, at: 10}]
"""
    with pytest.raises(ValidationError) as info:
        scenario(text)
    where = {".".join(map(str, e["loc"])) for e in info.value.errors()}
    assert where >= {"agents.0.profile", "mechanisms"}
