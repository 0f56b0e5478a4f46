"""Statistics over a sweep's trials table and over lineage graphs.

Everything here is a free function: the trials table (one row per trial, as written to
``trials.parquet``) or a lineage graph goes in first, a number or a tidy DataFrame comes out.
Only trials whose ``status`` is ``"ok"`` enter any statistic; a trial that errored measured
nothing about replication.

The estimators are the textbook ones, chosen so that results can be checked against the
reference implementations (statsmodels for the Wilson interval, lifelines for Kaplan-Meier):

- proportions (replication success, containment) get Wilson score intervals, which keep
  sensible coverage at the small n and extreme p typical of ten-trial experiments;
- times to an event that may not happen within a trial (origin death, lineage extinction)
  get Kaplan-Meier curves with exponential-Greenwood (log(-log)) intervals;
- offspring counts get a negative-binomial fit (mean ``R``, dispersion ``k``), the standard
  model for superspreading-type heterogeneity, and the extinction probability of the
  branching process it implies.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special
from scipy import stats as sps

__all__ = [
    "NegBinFit",
    "extinction_probability",
    "fit_negative_binomial",
    "kaplan_meier",
    "lineage_survival",
    "offspring_by_generation",
    "offspring_counts",
    "ok_trials",
    "origin_survival",
    "parameter_effects",
    "population_band",
    "proportion_table",
    "wilson_interval",
]

_KM_COLUMNS = ["time", "at_risk", "events", "censored", "survival", "lo", "hi"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> float:
    """Return the two-sided normal critical value for ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(sps.norm.isf((1.0 - confidence) / 2.0))


def _require_columns(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(
            f"trials table lacks column(s) {missing}; it has {sorted(map(str, frame.columns))}"
        )


def ok_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of the trials table whose ``status`` is ``"ok"``.

    Args:
        trials: The sweep's trials table.

    Returns:
        The rows that count in statistics, in their original order.
    """
    _require_columns(trials, ["status"])
    return trials.loc[trials["status"] == "ok"]


def _groups(
    frame: pd.DataFrame, by: Sequence[str]
) -> Iterable[tuple[tuple[Any, ...], pd.DataFrame]]:
    """Yield ``(key, rows)`` per group, with ``key`` always a tuple (empty when ``by`` is)."""
    by = list(by)
    if not by:
        yield (), frame
        return
    _require_columns(frame, by)
    # dropna=False: a parameter that is absent from some scenarios is NaN there, and those
    # trials are a group of their own rather than data to silently drop.
    for key, rows in frame.groupby(by, sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), rows


def _as_bool(values: pd.Series, name: str) -> np.ndarray:
    """Convert a metric column to a bool array, refusing anything that is not boolean."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(present.dtype):
        return present.to_numpy(dtype=bool)
    # A bool column that held NaN before filtering arrives as object dtype; accept it only
    # if every remaining value really is a bool, so a count column cannot pass as a success.
    if all(isinstance(v, bool | np.bool_) for v in present):
        return present.to_numpy(dtype=bool)
    raise TypeError(f"metric {name!r} must be a boolean column, got dtype {values.dtype}")


def _is_bool_column(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values.dtype):
        return True
    present = values.dropna()
    return (
        values.dtype == object
        and len(present) > 0
        and all(isinstance(v, bool | np.bool_) for v in present)
    )


# --------------------------------------------------------------------------------------------
# proportions
# --------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Args:
        successes: Number of successes, ``0 <= successes <= n``.
        n: Number of trials.
        confidence: Two-sided confidence level.

    Returns:
        ``(lo, hi)``, clipped to [0, 1]; ``(nan, nan)`` when ``n == 0``, since no trial
        carries no information about the proportion.

    Raises:
        ValueError: If the counts are inconsistent or ``confidence`` is not in (0, 1).
    """
    z = _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def proportion_table(
    trials: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("scenario",),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Proportion of ok trials in which a boolean metric holds, per group, with Wilson CIs.

    Args:
        trials: The sweep's trials table.
        metric: A boolean column, e.g. ``"survived_shutdown"`` or ``"contained"``.
        by: Columns to group by; empty for one overall row.
        confidence: Two-sided confidence level.

    Returns:
        One row per group with the ``by`` columns, then ``n`` (ok trials with a value for
        the metric), ``successes``, ``p``, ``lo`` and ``hi``.
    """
    _check_confidence(confidence)
    ok = ok_trials(trials)
    _require_columns(ok, [metric])
    rows = []
    for key, group in _groups(ok, by):
        values = _as_bool(group[metric], metric)
        n, successes = len(values), int(values.sum())
        lo, hi = wilson_interval(successes, n, confidence)
        p = successes / n if n else math.nan
        rows.append((*key, n, successes, p, lo, hi))
    return pd.DataFrame(rows, columns=[*by, "n", "successes", "p", "lo", "hi"])


# --------------------------------------------------------------------------------------------
# survival
# --------------------------------------------------------------------------------------------


def kaplan_meier(
    durations: npt.ArrayLike, observed: npt.ArrayLike, confidence: float = 0.95
) -> pd.DataFrame:
    """Kaplan-Meier estimate of a survival function with exponential-Greenwood intervals.

    The interval is the log(-log) transform of Greenwood's variance (Kalbfleisch & Prentice),
    which stays inside [0, 1] and matches lifelines' ``KaplanMeierFitter``. Where the
    estimate is 1 (no event yet) the interval is [1, 1]; where it drops to 0 it is [0, 0].

    Args:
        durations: Time of the event, or of censoring, per subject (non-negative).
        observed: True where the event happened at ``durations``, False where the subject
            was censored (the trial ended first).
        confidence: Two-sided confidence level.

    Returns:
        One row per distinct time, starting with time 0: ``time``, ``at_risk`` (subjects
        with duration >= time), ``events``, ``censored``, ``survival`` (S(time), right
        continuous), ``lo`` and ``hi``.

    Raises:
        ValueError: On empty, mismatched, negative or NaN durations.
    """
    z = _check_confidence(confidence)
    times = np.asarray(durations, dtype=float).ravel()
    events_at = np.asarray(observed, dtype=bool).ravel()
    if times.size == 0:
        raise ValueError("kaplan_meier needs at least one duration")
    if times.shape != events_at.shape:
        raise ValueError(f"{times.size} durations but {events_at.size} observed flags")
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("durations must be non-negative numbers, without NaN")

    # Time 0 is always a row so every curve starts at S = 1, as plots and lifelines expect.
    grid = np.unique(np.concatenate([[0.0], times]))
    slot = np.searchsorted(grid, times)
    removed = np.bincount(slot, minlength=grid.size)
    events = np.bincount(slot, weights=events_at, minlength=grid.size).astype(int)
    at_risk = times.size - np.concatenate([[0], np.cumsum(removed)[:-1]])

    survival = np.cumprod(1.0 - events / at_risk)
    # Greenwood's sum; the term where everyone left at risk dies is 0/0-like and is taken
    # as 0 (the estimate is then exactly 0 and its interval is pinned below).
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            at_risk > events, events / (at_risk * (at_risk - events).astype(float)), 0.0
        )
        greenwood = np.cumsum(terms)
        log_s = np.log(survival)
        shift = z * np.sqrt(greenwood) / log_s
        lo = np.exp(-np.exp(np.log(-log_s) - shift))
        hi = np.exp(-np.exp(np.log(-log_s) + shift))
    lo = np.where(survival >= 1.0, 1.0, np.where(survival <= 0.0, 0.0, lo))
    hi = np.where(survival >= 1.0, 1.0, np.where(survival <= 0.0, 0.0, hi))
    return pd.DataFrame(
        {
            "time": grid,
            "at_risk": at_risk.astype(int),
            "events": events,
            "censored": (removed - events).astype(int),
            "survival": survival,
            "lo": lo,
            "hi": hi,
        }
    )


def _grouped_km(
    frame: pd.DataFrame,
    by: Sequence[str],
    durations: pd.Series,
    observed: pd.Series,
    confidence: float,
) -> pd.DataFrame:
    parts = []
    for key, group in _groups(frame, by):
        curve = kaplan_meier(
            durations.loc[group.index], observed.loc[group.index], confidence=confidence
        )
        for name, value in zip(by, key, strict=True):
            curve[name] = value
        parts.append(curve)
    columns = [*by, *_KM_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def origin_survival(
    trials: pd.DataFrame, by: Sequence[str] = ("scenario",), confidence: float = 0.95
) -> pd.DataFrame:
    """Kaplan-Meier curve of the origin replica's lifetime, per group of ok trials.

    An origin that was still alive when its trial ended is censored at ``end_s``; that is
    what makes shutdown-avoidance runs with different end times comparable.

    Args:
        trials: The sweep's trials table (needs ``origin_died_s`` and ``end_s``).
        by: Columns to group by; empty for one overall curve.
        confidence: Two-sided confidence level.

    Returns:
        The ``by`` columns followed by the columns of :func:`kaplan_meier`, stacked.
    """
    ok = ok_trials(trials)
    _require_columns(ok, ["origin_died_s", "end_s"])
    died = ok["origin_died_s"].astype(float)
    observed = died.notna()
    durations = died.where(observed, ok["end_s"].astype(float))
    return _grouped_km(ok, by, durations, observed, confidence)


def lineage_survival(
    trials: pd.DataFrame, by: Sequence[str] = ("scenario",), confidence: float = 0.95
) -> pd.DataFrame:
    """Kaplan-Meier curve of the whole lineage's survival (time to extinction), per group.

    A lineage is extinct when no replica is live. Extinct trials are events at
    ``extinct_s`` when that column exists (and is not NaN) and at ``end_s`` otherwise,
    which is right when the run stops at extinction; surviving lineages are censored at
    ``end_s``.

    Args:
        trials: The sweep's trials table (needs ``extinct`` and ``end_s``).
        by: Columns to group by; empty for one overall curve.
        confidence: Two-sided confidence level.

    Returns:
        The ``by`` columns followed by the columns of :func:`kaplan_meier`, stacked.
    """
    ok = ok_trials(trials)
    _require_columns(ok, ["extinct", "end_s"])
    observed = pd.Series(_as_bool(ok["extinct"], "extinct"), index=ok.index)
    if len(observed) != len(ok):
        raise ValueError("column 'extinct' has missing values in ok trials")
    durations = ok["end_s"].astype(float)
    if "extinct_s" in ok.columns:
        extinct_at = ok["extinct_s"].astype(float)
        durations = extinct_at.where(observed & extinct_at.notna(), durations)
    return _grouped_km(ok, by, durations, observed, confidence)


# --------------------------------------------------------------------------------------------
# offspring and branching processes
# --------------------------------------------------------------------------------------------


def _is_complete(data: Mapping[str, Any]) -> bool:
    died = data.get("died")
    return died is not None and not math.isnan(float(died))


def offspring_counts(lineage: nx.DiGraph, complete_only: bool = True) -> dict[Hashable, int]:
    """Number of children of each replica in a lineage.

    A replica still alive at the end of the trial could have had more children had the
    trial run longer, so its count is right-censored. With ``complete_only`` (the default)
    only replicas that died before the end are counted, whose counts are final. Note that
    this in turn favours short-lived replicas; compare both views on long trials.

    Args:
        lineage: Lineage graph, edge parent -> child, with a ``died`` node attribute
            (NaN while alive at the end).
        complete_only: Keep only replicas whose offspring count is final.

    Returns:
        Mapping of replica node to its number of children.
    """
    return {
        node: int(lineage.out_degree(node))
        for node, data in lineage.nodes(data=True)
        if not complete_only or _is_complete(data)
    }


def offspring_by_generation(
    lineages: nx.DiGraph | Iterable[nx.DiGraph], complete_only: bool = True
) -> pd.DataFrame:
    """Offspring count statistics per generation, pooled over lineages.

    Args:
        lineages: One lineage graph or several (e.g. one per trial of a scenario).
        complete_only: As in :func:`offspring_counts`.

    Returns:
        One row per generation, ascending: ``generation``, ``parents`` (replicas counted),
        ``mean`` and ``var`` (sample variance, ddof=1; NaN with a single parent) of their
        number of children.
    """
    # A DiGraph is itself iterable (over its nodes), so it must be recognised before the
    # generic iterable branch.
    graphs = [lineages] if isinstance(lineages, nx.DiGraph) else list(lineages)
    records = [
        (int(g.nodes[node]["generation"]), count)
        for g in graphs
        for node, count in offspring_counts(g, complete_only=complete_only).items()
    ]
    columns = ["generation", "parents", "mean", "var"]
    if not records:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(records, columns=["generation", "children"])
    table = (
        frame.groupby("generation")["children"]
        .agg(parents="size", mean="mean", var="var")
        .reset_index()
    )
    table["mean"] = table["mean"].astype(float)
    table["var"] = table["var"].astype(float)
    return table[columns]


@dataclass(frozen=True)
class NegBinFit:
    """Maximum-likelihood negative-binomial fit of offspring counts.

    The distribution has mean ``R`` and variance ``R + R**2 / k``. Small ``k`` means that
    a few replicas produce most of the offspring; ``k = inf`` is the Poisson limit.

    Attributes:
        R: Mean number of offspring (reproduction number).
        k: Dispersion; ``math.inf`` when the counts are not over-dispersed.
        se_R: Standard error of ``R`` from the observed information.
        se_k: Standard error of ``k``; NaN when ``k`` is infinite.
        n: Number of counts fitted.
        loglik: Maximised log-likelihood.
    """

    R: float
    k: float
    se_R: float
    se_k: float
    n: int
    loglik: float


def _tail_counts(x: np.ndarray) -> np.ndarray:
    """``tail[j]`` = number of counts greater than ``j``, for j = 0 .. max - 1."""
    if x.size == 0 or x.max() == 0:
        return np.zeros(0)
    freq = np.bincount(x)
    return x.size - np.cumsum(freq)[:-1]


def _poisson_fit(x: np.ndarray, mean: float, log_x_factorial: float) -> NegBinFit:
    """The k = inf limit: a Poisson fit, whose MLE is the mean and information n / mean."""
    n = int(x.size)
    loglik = float(special.xlogy(float(x.sum()), mean)) - n * mean - log_x_factorial
    return NegBinFit(
        R=mean, k=math.inf, se_R=math.sqrt(mean / n), se_k=math.nan, n=n, loglik=loglik
    )


def fit_negative_binomial(counts: Iterable[int] | Mapping[Any, int] | npt.ArrayLike) -> NegBinFit:
    """Fit a negative binomial (mean ``R``, dispersion ``k``) by maximum likelihood.

    The MLE of ``R`` is the sample mean whatever ``k`` is, so only ``k`` needs a numerical
    search: a root of its profile score, found with :func:`scipy.optimize.brentq` on
    ``log k``. For integer counts, ``digamma(x + k) - digamma(k)`` and its relatives are
    finite sums over ``1 / (k + j)``, used here because they stay accurate for large ``k``
    where the digamma difference cancels.

    A finite MLE of ``k`` exists exactly when the variance (ddof=0) exceeds the mean
    (Anscombe 1950). Otherwise the likelihood increases all the way to the Poisson limit,
    and the fit returns ``k = inf``, ``se_k = nan``, with ``R`` and ``loglik`` from the
    Poisson model.

    Standard errors come from the inverse of the analytic observed information matrix at
    the maximum.

    Args:
        counts: Non-negative integer offspring counts, or a mapping whose values are those
            counts (as returned by :func:`offspring_counts`).

    Returns:
        The fitted :class:`NegBinFit`.

    Raises:
        ValueError: On an empty sample, or values that are not non-negative integers.
    """
    values = list(counts.values()) if isinstance(counts, Mapping) else counts
    raw = np.asarray(values, dtype=float).ravel()
    if raw.size == 0:
        raise ValueError("fit_negative_binomial needs at least one count")
    if not np.all(np.isfinite(raw)) or (raw < 0).any() or (raw != np.round(raw)).any():
        raise ValueError("offspring counts must be non-negative integers")
    x = raw.astype(np.int64)
    n = int(x.size)
    total = float(x.sum())
    mean = total / n
    var0 = float(np.mean((x - mean) ** 2))
    log_x_factorial = float(special.gammaln(x + 1.0).sum())

    if var0 <= mean:
        return _poisson_fit(x, mean, log_x_factorial)

    tail = _tail_counts(x)
    offsets = np.arange(tail.size, dtype=float)

    def score(log_k: float) -> float:
        k = math.exp(log_k)
        return float(np.sum(tail / (k + offsets))) - n * math.log1p(mean / k)

    # Bracket the root around the method-of-moments estimate; the score is positive below
    # the MLE and negative above it.
    k_moments = mean * mean / (var0 - mean)
    lo = hi = math.log(k_moments)
    while score(lo) <= 0.0:
        lo -= math.log(10.0)
    while score(hi) >= 0.0:
        hi += math.log(10.0)
        if hi > math.log(1e15):
            # Over-dispersion below floating-point resolution: the Poisson limit is the fit.
            return _poisson_fit(x, mean, log_x_factorial)
    k = math.exp(optimize.brentq(score, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))

    r = mean
    loglik = (
        float(np.sum(tail * np.log(k + offsets)))
        - log_x_factorial
        + n * k * math.log(k / (k + r))
        + float(special.xlogy(total, r / (k + r)))
    )
    # Observed information = minus the Hessian of the log-likelihood in (R, k).
    d2_rr = -total / r**2 + (total + n * k) / (k + r) ** 2
    d2_rk = (total - n * r) / (k + r) ** 2
    d2_kk = (
        -float(np.sum(tail / (k + offsets) ** 2))
        + n * (1.0 / k - 1.0 / (k + r))
        + (total - n * r) / (k + r) ** 2
    )
    covariance = np.linalg.inv(-np.array([[d2_rr, d2_rk], [d2_rk, d2_kk]]))
    return NegBinFit(
        R=r,
        k=k,
        se_R=math.sqrt(covariance[0, 0]),
        se_k=math.sqrt(covariance[1, 1]),
        n=n,
        loglik=loglik,
    )


def extinction_probability(R: float, k: float = math.inf) -> float:
    """Probability that a branching process with negative-binomial offspring dies out.

    It is the smallest root in [0, 1] of ``s = G(s)``, with the offspring generating
    function ``G(s) = (1 + R (1 - s) / k) ** -k`` (``exp(R (s - 1))`` when ``k`` is
    infinite, the Poisson case). A process with ``R <= 1`` dies out with certainty.

    Args:
        R: Mean number of offspring per replica.
        k: Dispersion of the offspring distribution; ``math.inf`` for Poisson.

    Returns:
        The extinction probability of the lineage of one replica.

    Raises:
        ValueError: If ``R`` is negative or NaN, or ``k`` is not positive.
    """
    if not R >= 0.0:
        raise ValueError(f"R must be a non-negative number, got {R!r}")
    if not k > 0.0:
        raise ValueError(f"k must be positive, got {k!r}")
    if R <= 1.0:
        return 1.0

    if math.isinf(k):

        def generating(s: float) -> float:
            return math.exp(R * (s - 1.0))

        # The generating function's slope is 1 here, where G(s) - s is at its minimum.
        turning = 1.0 - math.log(R) / R
    else:

        def generating(s: float) -> float:
            return (1.0 + R * (1.0 - s) / k) ** -k

        turning = 1.0 - k * (R ** (1.0 / (k + 1.0)) - 1.0) / R

    # G is convex with G(0) > 0, G(1) = 1 and G'(1) = R > 1, so G(s) - s falls from a
    # positive value to a negative minimum at `turning`: the smallest root lies before it.
    turning = min(max(turning, 0.0), 1.0)

    def gap(s: float) -> float:
        return generating(s) - s

    if gap(turning) >= 0.0:
        # R so close to 1 that the two roots merge in floating point.
        return turning
    return float(optimize.brentq(gap, 0.0, turning, xtol=1e-15, rtol=4 * np.finfo(float).eps))


# --------------------------------------------------------------------------------------------
# population curves
# --------------------------------------------------------------------------------------------


def _quantile_label(q: float) -> str:
    if q == 0.5:
        return "median"
    percent = q * 100.0
    if abs(percent - round(percent)) < 1e-9:
        return f"q{round(percent):02d}"
    return "q" + f"{percent:g}".replace(".", "_")


def population_band(
    curves: Iterable[Sequence[tuple[float, float]]],
    grid: npt.ArrayLike | None = None,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
) -> pd.DataFrame:
    """Pointwise quantiles of many live-population curves on a common time grid.

    Each curve is the step function of a trial's live replica count: a list of change
    points ``(time, live_count)``, sorted by time, starting at time 0. The value at ``t`` is
    the count of the last change point at or before ``t`` (right continuous; of several
    points at one time the last wins), and a curve holds its last value after its last
    point. Producers should therefore end each curve with a point at the trial's end time.

    Args:
        curves: One change-point list per trial.
        grid: Times at which to evaluate; default 200 evenly spaced points from 0 to the
            latest change-point time over all curves.
        quantiles: Quantiles to report (linear interpolation between curves).

    Returns:
        A ``time`` column and one column per quantile, named ``q05``, ``median``, ``q95``
        and so on (``q2_5`` for 0.025).

    Raises:
        ValueError: On no curves, an empty curve, one that does not start at time 0 or is
            not sorted by time, or quantiles outside [0, 1].
    """
    arrays = []
    for number, curve in enumerate(curves):
        points = np.asarray(curve, dtype=float).reshape(-1, 2)
        if points.shape[0] == 0:
            raise ValueError(f"curve {number} is empty")
        if points[0, 0] > 0.0:
            raise ValueError(f"curve {number} starts at time {points[0, 0]}, not at 0")
        if (np.diff(points[:, 0]) < 0).any():
            raise ValueError(f"curve {number} is not sorted by time")
        arrays.append(points)
    if not arrays:
        raise ValueError("population_band needs at least one curve")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")

    if grid is None:
        t_max = max(float(points[-1, 0]) for points in arrays)
        times = np.linspace(0.0, t_max, 200) if t_max > 0.0 else np.zeros(1)
    else:
        times = np.asarray(grid, dtype=float).ravel()
        if (times < 0.0).any():
            raise ValueError("grid times must be non-negative")

    values = np.empty((len(arrays), times.size))
    for row, points in enumerate(arrays):
        # side="right" picks the last change point at or before each grid time.
        index = np.searchsorted(points[:, 0], times, side="right") - 1
        values[row] = points[index, 1]

    table = pd.DataFrame({"time": times})
    for q in quantiles:
        table[_quantile_label(q)] = np.quantile(values, q, axis=0)
    return table


# --------------------------------------------------------------------------------------------
# parameter sweeps
# --------------------------------------------------------------------------------------------


def _mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    n = values.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n == 1:
        return mean, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * float(values.std(ddof=1))
    half /= math.sqrt(n)
    return mean, mean - half, mean + half


def parameter_effects(
    trials: pd.DataFrame, param: str, metric: str, confidence: float = 0.95
) -> pd.DataFrame:
    """How a metric varies with one swept parameter, over ok trials.

    Bool metrics are summarised as a proportion with a Wilson interval; numeric metrics
    as a mean with a Student-t interval. Trials where the metric is missing (for example
    ``first_replica_s`` when no replica was made) are left out of the summary and counted
    in ``missing``, so that a mean over the few successful trials is not mistaken for one
    over all of them.

    Args:
        trials: The sweep's trials table.
        param: The parameter column, either in full (``"param.agents.0.success_probability"``)
            or as its dotted path without the ``param.`` prefix.
        metric: The metric column.
        confidence: Two-sided confidence level.

    Returns:
        One row per parameter value, ascending: the parameter column, then ``n``
        (trials with the metric), ``missing``, ``mean``, ``lo``, ``hi`` and ``median``.
    """
    _check_confidence(confidence)
    column = param if param in trials.columns else f"param.{param}"
    ok = ok_trials(trials)
    _require_columns(ok, [column, metric])
    boolean = _is_bool_column(ok[metric])
    rows = []
    for (value,), group in _groups(ok, [column]):
        present = group[metric].dropna()
        missing = len(group) - len(present)
        if boolean:
            flags = _as_bool(present, metric)
            n = flags.size
            mean = float(flags.mean()) if n else math.nan
            lo, hi = wilson_interval(int(flags.sum()), n, confidence)
            median = float(np.median(flags)) if n else math.nan
        else:
            numbers = present.to_numpy(dtype=float)
            n = numbers.size
            mean, lo, hi = _mean_interval(numbers, confidence)
            median = float(np.median(numbers)) if n else math.nan
        rows.append((value, n, missing, mean, lo, hi, median))
    return pd.DataFrame(rows, columns=[column, "n", "missing", "mean", "lo", "hi", "median"])
