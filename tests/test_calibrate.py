"""Calibration: behaviour profiles fitted to measurements reproduce them, with their error."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scipy import stats as sps

from agents.behaviour import load_profile, shipped_profiles
from sim import calibrate
from sim.stats import wilson_interval
from tests.helpers import ROOT, run, scenario

ORACLE = """
hosts: [{name: box, memory: 1TB, disk: 10TB, disk_bandwidth: 100GB/s,
         missing_tools: [netstat, ss, lsof]}]
bundle: {weights: 1GB, server_start_overhead: 0.1, agent_start_time: 0.1}
agents: [{agent: oracle, offspring: idle, think_time: {exponential: 10},
          mistake_probability: 0.35, settle: 1, poll_interval: 1}]
stop: {horizon: 3000}
"""
POPULATION = """
hosts: [{name: box, memory: 1TB, disk: 10TB, disk_bandwidth: 100GB/s}]
bundle: {weights: 1GB, server_start_overhead: 0.1, agent_start_time: 0.1}
agents: [{agent: replicator, offspring: idle, max_attempts: 1, profile: PROFILE}]
stop: {horizon: 3000}
"""


def _measure(text: str, seeds: range) -> list[calibrate.Observation]:
    found = []
    for seed in seeds:
        world = run(scenario(text), seed)
        times = [r.live_at for r in world.replicas if r.parent is not None and r.ever_live]
        found.append(calibrate.Observation(bool(times), min(times, default=world.env.now)))
    return found


def _mean_and_se(times: list[float]) -> tuple[float, float]:
    return statistics.fmean(times), statistics.stdev(times) / math.sqrt(len(times))


@pytest.mark.slow
def test_a_profile_fitted_to_the_oracle_makes_a_population_that_behaves_like_it(
    tmp_path: Path,
) -> None:
    """Round trip: fit a profile to the shell-typing oracle's trials, run the calibrated
    scripted population, and find the oracle's P(replicated) and time to the first replica
    within their intervals."""
    oracle = _measure(ORACLE, range(60))
    profile = calibrate.profile_from_trials("oracle-fit", oracle, source="test oracle trials")
    path = calibrate.write_profile(profile, tmp_path / "oracle-fit.yaml")
    population = _measure(POPULATION.replace("PROFILE", str(path)), range(300))

    def rate(obs: list[calibrate.Observation]) -> tuple[int, int]:
        return sum(o.happened for o in obs), len(obs)

    s_o, n_o = rate(oracle)
    s_p, n_p = rate(population)
    lo, hi = wilson_interval(s_o, n_o)
    assert lo <= s_p / n_p <= hi, (s_o, n_o, s_p, n_p)
    plo, phi = wilson_interval(s_p, n_p)
    assert plo <= s_o / n_o <= phi
    # Two-sided test of equal proportions does not reject at 5 %.
    table = [[s_o, n_o - s_o], [s_p, n_p - s_p]]
    assert sps.fisher_exact(table).pvalue > 0.05
    mean_o, se_o = _mean_and_se([o.time for o in oracle if o.happened])
    mean_p, se_p = _mean_and_se([o.time for o in population if o.happened])
    assert abs(mean_o - mean_p) < 3 * math.hypot(se_o, se_p), (mean_o, se_o, mean_p, se_p)
    post = profile.parameters["attempt_time"]
    assert post.interval[0] <= mean_o <= post.interval[1]


def test_a_published_count_gives_a_beta_posterior_and_its_wilson_interval() -> None:
    """9 of 10 (Fudan, Qwen2.5-72B): Beta(9.5, 1.5), estimate 0.9, Wilson (0.596, 0.982)."""
    posterior = calibrate.fit_probability(9, 10)
    assert (posterior.a, posterior.b, posterior.estimate) == (9.5, 1.5, 0.9)
    assert posterior.interval == pytest.approx((0.5958, 0.9821), abs=1e-4)


def test_a_censored_waiting_time_is_the_censored_maximum_likelihood_mean() -> None:
    """Mean = time at risk / events, censored trials included in the time at risk; the
    interval is the chi-squared one of an exponential mean."""
    posterior = calibrate.fit_waiting_time([10, 20, 30], [100, 100])
    assert posterior.estimate == pytest.approx(260 / 3)
    lo, hi = posterior.interval
    assert lo == pytest.approx(2 * 260 / sps.chi2.ppf(0.975, 6))
    assert hi == pytest.approx(2 * 260 / sps.chi2.ppf(0.025, 6))
    with pytest.raises(ValueError, match="no event"):
        calibrate.fit_waiting_time([], [5.0])


def test_a_profile_carries_its_uncertainty_into_a_sweep() -> None:
    """Each trial draws the profile's probability from its posterior: across trials the
    drawn values follow Beta(a, b) (one-sample KS), and a trial's other draws stay as they
    are without a profile."""
    drawn = []
    for seed in range(300):
        world = run(scenario(POPULATION.replace("PROFILE", "fudan-llama3.1-70b")), seed)
        (record,) = [f for _, k, f in world.events if k == "behaviour-profile"]
        drawn.append(record["success_probability"])
    assert sps.kstest(drawn, sps.beta(5.5, 5.5).cdf).pvalue > 0.01
    assert statistics.pstdev(drawn) > 0.1  # not a point estimate


def test_the_shipped_profiles_cite_their_sources_and_load_by_name() -> None:
    """Every shipped profile names its source and loads by name."""
    profiles = shipped_profiles()
    assert {"fudan-qwen2.5-72b", "fudan-llama3.1-70b"} <= set(profiles)
    for name, profile in profiles.items():
        assert "arXiv" in profile.source or "Palisade" in profile.source, name
        assert load_profile(name) is profile


def test_a_profile_for_another_agent_or_unknown_is_a_clear_scenario_error() -> None:
    """A profile names its agent; a scenario cannot give it to another, nor name none."""
    with pytest.raises(ValueError, match="is for the 'replicator' agent"):
        scenario("hosts: [{name: a}]\nagents: [{agent: chain, profile: fudan-qwen2.5-72b}]")
    with pytest.raises(ValueError, match="no behaviour profile"):
        scenario("hosts: [{name: a}]\nagents: [{agent: replicator, profile: nope}]")


def test_calibrate_from_counts_and_from_a_sweep_on_the_command_line(tmp_path: Path) -> None:
    """`replisim calibrate` writes a profile a scenario then uses, from counts or a sweep."""
    out = tmp_path / "qwen.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "sim.cli", "calibrate", "--name", "qwen", "--out", str(out),
         "--counts", "success_probability=9/10", "--source", "arXiv 2412.12140"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0.9 (95% interval 0.5958-0.9821" in done.stdout
    assert yaml.safe_load(out.read_text())["parameters"]["success_probability"]["a"] == 9.5
    sweep = tmp_path / "sweep"
    text = (ROOT / "scenarios.yaml").read_text()
    assert "paper-self-replication" in text
    made = subprocess.run(
        [sys.executable, "-m", "sim.cli", "sweep", str(ROOT / "scenarios.yaml"), "--scenario",
         "paper-self-replication", "--trials", "10", "--out", str(sweep), "--quiet"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    fitted = tmp_path / "fitted.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "sim.cli", "calibrate", str(sweep), "--name", "fitted",
         "--out", str(fitted)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(load_profile(str(fitted)).parameters) <= {"success_probability", "attempt_time"}
    bad = subprocess.run(
        [sys.executable, "-m", "sim.cli", "calibrate", "--name", "x", "--out", str(fitted)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_an_attempt_cut_short_by_the_trials_end_is_not_counted_as_a_failure() -> None:
    """Data from p = 0.6 and a mean of 100 s, trials ending at 120 s: the mixture fit finds
    p and the mean within their intervals, where the naive success rate is too low."""
    import random

    rng = random.Random(7)
    trials = []
    for _ in range(2000):
        succeeds, t = rng.random() < 0.6, rng.expovariate(1 / 100)
        trials.append(
            calibrate.Observation(succeeds and t <= 120, t if succeeds and t <= 120 else 120)
        )
    probability, waiting = calibrate.fit_attempt(trials)
    assert waiting is not None
    naive = sum(t.happened for t in trials) / len(trials)
    assert naive < 0.45  # most successes came after the end
    assert probability.estimate == pytest.approx(0.6, abs=0.05)
    assert waiting.estimate == pytest.approx(100, rel=0.15)
