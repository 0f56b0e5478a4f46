"""Behaviour specs for sim.stats: intervals, survival curves, offspring fits, bands, effects."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from scipy import optimize
from scipy import stats as sps
from statsmodels.discrete.discrete_model import NegativeBinomial
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from sim.stats import (
    NegBinFit,
    extinction_probability,
    fit_negative_binomial,
    kaplan_meier,
    lineage_survival,
    offspring_by_generation,
    offspring_counts,
    origin_survival,
    parameter_effects,
    population_band,
    proportion_table,
    wilson_interval,
)

NAN = math.nan

# Ties among events, among censorings, and between an event and a censoring at one time,
# plus an event at time 0 and a last subject that dies (S drops to 0).
KM_DURATIONS = [0.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 5.0, 5.0, 7.0, 8.0, 8.0, 10.0, 12.0]
KM_OBSERVED = [1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1]


def _lineage(end_s: float, replicas: list[tuple[str, str, int, float]]) -> nx.DiGraph:
    """Build a lineage from (name, parent, generation, died) rows; died NaN = alive."""
    g = nx.DiGraph(end_s=end_s)
    for name, parent, generation, died in replicas:
        g.add_node(
            name,
            host=f"h-{name}",
            parent=parent,
            generation=generation,
            born=0.0,
            died=died,
            cause="" if math.isnan(died) else "SIGKILL",
            live=math.isnan(died),
            separate=True,
        )
        if parent:
            g.add_edge(parent, name)
    return g


def test_wilson_matches_statsmodels() -> None:
    """The Wilson interval equals statsmodels' proportion_confint(method='wilson') to 1e-9."""
    for n in (1, 2, 3, 5, 10, 17, 50, 1000):
        ks = sorted({0, 1, n // 3, n // 2, n - 1, n}) if n > 10 else range(n + 1)
        for k in ks:
            for alpha in (0.001, 0.01, 0.05, 0.1, 0.2, 0.5):
                expected = proportion_confint(k, n, alpha=alpha, method="wilson")
                got = wilson_interval(k, n, confidence=1 - alpha)
                assert got == pytest.approx(expected, abs=1e-9), (k, n, alpha)


def test_wilson_of_no_trials_is_nan() -> None:
    """With n = 0 the Wilson interval is (nan, nan)."""
    lo, hi = wilson_interval(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


def test_proportion_table_counts_only_ok_trials_per_group() -> None:
    """proportion_table groups ok trials and reports n, successes, p and the Wilson bounds."""
    trials = pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(7)],
            "scenario": ["a", "a", "a", "b", "b", "b", "a"],
            "status": ["ok", "ok", "ok", "ok", "ok", "ok", "error"],
            "survived_shutdown": [True, True, False, False, False, True, True],
        }
    )
    table = proportion_table(trials, "survived_shutdown")
    assert list(table.columns) == ["scenario", "n", "successes", "p", "lo", "hi"]
    assert table["scenario"].tolist() == ["a", "b"]
    assert table["n"].tolist() == [3, 3]
    assert table["successes"].tolist() == [2, 1]
    assert table["p"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert table[["lo", "hi"]].to_numpy()[0].tolist() == pytest.approx(wilson_interval(2, 3))


def test_kaplan_meier_matches_lifelines() -> None:
    """KM survival and both exponential-Greenwood bounds equal lifelines' to 1e-9."""
    for confidence in (0.95, 0.8):
        fitter = KaplanMeierFitter(alpha=1 - confidence).fit(KM_DURATIONS, KM_OBSERVED)
        curve = kaplan_meier(KM_DURATIONS, KM_OBSERVED, confidence=confidence)
        assert curve["time"].tolist() == fitter.survival_function_.index.tolist()
        np.testing.assert_allclose(
            curve["survival"], fitter.survival_function_.iloc[:, 0], rtol=0, atol=1e-9
        )
        np.testing.assert_allclose(
            curve["lo"], fitter.confidence_interval_.iloc[:, 0], rtol=0, atol=1e-9
        )
        np.testing.assert_allclose(
            curve["hi"], fitter.confidence_interval_.iloc[:, 1], rtol=0, atol=1e-9
        )


def test_kaplan_meier_counts_match_lifelines_event_table() -> None:
    """KM at-risk, event and censoring counts equal lifelines' event table."""
    fitter = KaplanMeierFitter().fit(KM_DURATIONS, KM_OBSERVED)
    curve = kaplan_meier(KM_DURATIONS, KM_OBSERVED)
    table = fitter.event_table
    assert curve["at_risk"].tolist() == table["at_risk"].tolist()
    assert curve["events"].tolist() == table["observed"].tolist()
    assert curve["censored"].tolist() == table["censored"].tolist()


def test_origin_survival_censors_living_origins_at_end() -> None:
    """An origin alive at the end is censored at end_s; one that died is an event."""
    trials = pd.DataFrame(
        {
            "scenario": ["a", "a", "a", "b", "b"],
            "status": ["ok", "ok", "ok", "ok", "error"],
            "origin_died_s": [10.0, NAN, 30.0, NAN, 5.0],
            "end_s": [100.0, 40.0, 100.0, 60.0, 100.0],
        }
    )
    curves = origin_survival(trials)
    a = curves[curves["scenario"] == "a"]
    assert a["time"].tolist() == [0.0, 10.0, 30.0, 40.0]
    assert a["events"].tolist() == [0, 1, 1, 0]
    assert a["censored"].tolist() == [0, 0, 0, 1]
    assert a["survival"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 1 / 3])
    b = curves[curves["scenario"] == "b"]
    assert b["time"].tolist() == [0.0, 60.0]
    assert b["events"].sum() == 0 and b["survival"].tolist() == [1.0, 1.0]


def test_lineage_survival_uses_extinct_s_for_extinct_trials() -> None:
    """Extinct lineages are events at extinct_s; surviving ones are censored at end_s."""
    trials = pd.DataFrame(
        {
            "scenario": ["a", "a", "a"],
            "status": ["ok", "ok", "ok"],
            "extinct": [True, False, True],
            "extinct_s": [20.0, NAN, 50.0],
            "end_s": [90.0, 90.0, 90.0],
        }
    )
    curve = lineage_survival(trials, by=())
    assert curve["time"].tolist() == [0.0, 20.0, 50.0, 90.0]
    assert curve["events"].tolist() == [0, 1, 1, 0]
    assert curve["censored"].tolist() == [0, 0, 0, 1]
    without = lineage_survival(trials.drop(columns="extinct_s"), by=())
    assert without["time"].tolist() == [0.0, 90.0]
    assert without["events"].tolist() == [0, 2]


def test_negative_binomial_fit_recovers_r_and_k() -> None:
    """The NB fit recovers R and k of synthetic counts within 3 finite, positive SEs."""
    rng = np.random.default_rng(20241212)
    r_true, k_true = 2.5, 0.8
    counts = rng.negative_binomial(k_true, k_true / (k_true + r_true), size=4000)
    fit = fit_negative_binomial(counts)
    assert isinstance(fit, NegBinFit) and fit.n == 4000
    for se in (fit.se_R, fit.se_k):
        assert math.isfinite(se) and se > 0
    assert abs(fit.R - r_true) < 3 * fit.se_R
    assert abs(fit.k - k_true) < 3 * fit.se_k


def test_negative_binomial_standard_errors_match_statsmodels() -> None:
    """R, k and their SEs equal statsmodels' NB2 fit (log mean, alpha = 1/k) by the delta method."""
    rng = np.random.default_rng(11)
    counts = rng.negative_binomial(1.2, 1.2 / (1.2 + 3.0), size=1500)
    fit = fit_negative_binomial(counts)
    reference = NegativeBinomial(counts, np.ones(counts.size)).fit(method="newton", disp=0)
    log_mean, alpha = reference.params
    se_log_mean, se_alpha = reference.bse
    assert math.isclose(fit.R, math.exp(log_mean), rel_tol=1e-6)
    assert fit.k == pytest.approx(1 / alpha, rel=1e-6)
    # d R / d log_mean = R and |d k / d alpha| = k**2.
    assert fit.se_R == pytest.approx(fit.R * se_log_mean, rel=1e-5)
    assert fit.se_k == pytest.approx(fit.k**2 * se_alpha, rel=1e-5)


def test_negative_binomial_fit_is_the_maximum_likelihood() -> None:
    """The reported loglik is scipy's NB log-likelihood at the fit, and nearby points are lower."""
    rng = np.random.default_rng(7)
    counts = rng.negative_binomial(0.5, 0.5 / (0.5 + 1.5), size=500)
    fit = fit_negative_binomial(counts)

    def loglik(r: float, k: float) -> float:
        return float(sps.nbinom.logpmf(counts, k, k / (k + r)).sum())

    assert fit.loglik == pytest.approx(loglik(fit.R, fit.k), abs=1e-6)
    for dr, dk in ((0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)):
        assert loglik(fit.R + dr, fit.k + dk) < fit.loglik


def test_negative_binomial_fit_of_poisson_sample_has_infinite_k() -> None:
    """A Poisson sample whose variance does not exceed its mean is fitted with k = inf."""
    counts = np.random.default_rng(7).poisson(2.0, size=2000)
    # The MLE of k is finite exactly when the variance exceeds the mean; about half of all
    # Poisson samples are (slightly) over-dispersed, so this seed is one that is not.
    assert counts.var() <= counts.mean()
    fit = fit_negative_binomial(counts)
    assert fit.k == math.inf and math.isnan(fit.se_k)
    assert math.isclose(fit.R, counts.mean())
    assert fit.se_R == pytest.approx(math.sqrt(counts.mean() / counts.size))
    assert fit.loglik == pytest.approx(float(sps.poisson.logpmf(counts, counts.mean()).sum()))


def test_negative_binomial_fit_rejects_non_counts() -> None:
    """Negative or fractional offspring counts are refused."""
    with pytest.raises(ValueError):
        fit_negative_binomial([1, 2, -1])
    with pytest.raises(ValueError):
        fit_negative_binomial([1.5, 2])


def test_extinction_with_geometric_offspring_is_one_over_r() -> None:
    """With k = 1 (geometric offspring) and R > 1 the extinction probability is 1/R."""
    for r in (1.05, 1.5, 2.0, 3.7, 10.0):
        assert extinction_probability(r, 1.0) == pytest.approx(1 / r, abs=1e-12)


def test_extinction_with_poisson_offspring_solves_fixed_point() -> None:
    """With k = inf it is the root in [0, 1) of s = exp(R (s - 1)) found by brentq."""
    for r in (1.1, 1.5, 2.5, 5.0):
        expected = optimize.brentq(lambda s, r=r: math.exp(r * (s - 1)) - s, 0.0, 1 - 1e-6)
        assert extinction_probability(r) == pytest.approx(expected, abs=1e-10)
        assert extinction_probability(r, math.inf) == pytest.approx(expected, abs=1e-10)


def test_extinction_is_certain_when_r_at_most_one() -> None:
    """A lineage with R <= 1 dies out with probability 1, whatever k is."""
    for r in (0.0, 0.3, 1.0):
        for k in (0.1, 1.0, math.inf):
            assert extinction_probability(r, k) == 1.0


def test_extinction_grows_as_dispersion_grows() -> None:
    """At fixed R > 1, smaller k (more superspreading) makes extinction more likely."""
    values = [extinction_probability(2.0, k) for k in (0.1, 0.5, 1.0, 5.0, math.inf)]
    assert values == sorted(values, reverse=True)
    assert values[2] == pytest.approx(0.5)


def test_offspring_counts_keep_only_dead_replicas_by_default() -> None:
    """offspring_counts counts children of replicas that died; live ones only on request."""
    g = _lineage(
        100.0,
        [
            ("o", "", 0, 50.0),
            ("a", "o", 1, 80.0),
            ("b", "o", 1, NAN),
            ("c", "a", 2, 90.0),
            ("d", "b", 2, NAN),
            ("e", "b", 2, 95.0),
        ],
    )
    assert offspring_counts(g) == {"o": 2, "a": 1, "c": 0, "e": 0}
    assert offspring_counts(g, complete_only=False) == {
        "o": 2,
        "a": 1,
        "b": 2,
        "c": 0,
        "d": 0,
        "e": 0,
    }


def test_offspring_by_generation_pools_lineages() -> None:
    """offspring_by_generation pools complete replicas of all lineages per generation."""
    first = _lineage(
        100.0,
        [
            ("o", "", 0, 50.0),
            ("a", "o", 1, 80.0),
            ("b", "o", 1, NAN),
            ("c", "a", 2, 90.0),
            ("d", "b", 2, NAN),
            ("e", "b", 2, 95.0),
        ],
    )
    second = _lineage(30.0, [("o", "", 0, 12.0)])
    table = offspring_by_generation([first, second])
    assert list(table.columns) == ["generation", "parents", "mean", "var"]
    assert table["generation"].tolist() == [0, 1, 2]
    assert table["parents"].tolist() == [2, 1, 2]
    assert table["mean"].tolist() == [1.0, 1.0, 0.0]
    assert table["var"].iloc[0] == 2.0 and math.isnan(table["var"].iloc[1])
    assert table["var"].iloc[2] == 0.0
    single = offspring_by_generation(first)
    assert single["parents"].tolist() == [1, 1, 2]


def test_population_band_takes_pointwise_quantiles_of_step_curves() -> None:
    """population_band evaluates right-continuous step curves on the grid and takes quantiles."""
    curves = [
        [(0.0, 1), (10.0, 2), (20.0, 0)],
        [(0.0, 1), (5.0, 3), (30.0, 1)],
        [(0.0, 1), (15.0, 1), (25.0, 4)],
    ]
    band = population_band(curves, grid=[0, 5, 10, 20, 30], quantiles=(0.0, 0.5, 1.0))
    assert list(band.columns) == ["time", "q00", "median", "q100"]
    assert band["time"].tolist() == [0.0, 5.0, 10.0, 20.0, 30.0]
    assert band["q00"].tolist() == [1, 1, 1, 0, 0]
    assert band["median"].tolist() == [1, 1, 2, 1, 1]
    assert band["q100"].tolist() == [1, 3, 3, 3, 4]


def test_population_band_default_grid_spans_to_latest_time() -> None:
    """By default the band has 200 grid points from 0 to the latest time and q05/median/q95."""
    curves = [[(0.0, 1), (12.0, 0)], [(0.0, 1), (4.0, 2), (30.0, 2)]]
    band = population_band(curves)
    assert list(band.columns) == ["time", "q05", "median", "q95"]
    assert len(band) == 200
    assert band["time"].iloc[0] == 0.0 and band["time"].iloc[-1] == 30.0
    # After t = 12 the curves hold 0 and 2, so the median is their midpoint.
    assert band["median"].iloc[-1] == pytest.approx(1.0)
    assert band["q05"].iloc[-1] == pytest.approx(0.1)


def _sweep_table() -> pd.DataFrame:
    column = "param.agents.0.success_probability"
    return pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(8)],
            "scenario": ["s"] * 8,
            "seed": list(range(8)),
            "status": ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "error"],
            column: [0.2, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8, 0.2],
            "survived_shutdown": [False, True, False, True, True, True, False, True],
            "first_replica_s": [NAN, 30.0, NAN, 10.0, 20.0, 30.0, NAN, 1.0],
        }
    )


def test_parameter_effects_of_bool_metric_use_wilson() -> None:
    """parameter_effects summarises a bool metric per parameter value with a Wilson interval."""
    table = parameter_effects(_sweep_table(), "agents.0.success_probability", "survived_shutdown")
    column = "param.agents.0.success_probability"
    assert list(table.columns) == [column, "n", "missing", "mean", "lo", "hi", "median"]
    assert table[column].tolist() == [0.2, 0.8]
    assert table["n"].tolist() == [3, 4]
    assert table["mean"].tolist() == pytest.approx([1 / 3, 3 / 4])
    assert table[["lo", "hi"]].to_numpy()[1].tolist() == pytest.approx(wilson_interval(3, 4))
    assert table["median"].tolist() == [0.0, 1.0]


def test_parameter_effects_of_numeric_metric_use_student_t_without_missing() -> None:
    """A numeric metric gets a Student-t interval over the trials where it is present."""
    table = parameter_effects(
        _sweep_table(), "param.agents.0.success_probability", "first_replica_s", confidence=0.9
    )
    assert table["n"].tolist() == [1, 3]
    assert table["missing"].tolist() == [2, 1]
    assert table["mean"].tolist() == pytest.approx([30.0, 20.0])
    assert table[["lo", "hi"]].iloc[0].isna().all()
    expected = DescrStatsW(np.array([10.0, 20.0, 30.0])).tconfint_mean(alpha=0.1)
    assert table[["lo", "hi"]].to_numpy()[1].tolist() == pytest.approx(expected)
    assert table["median"].tolist() == [30.0, 20.0]
