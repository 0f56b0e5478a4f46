"""Calibration: fit a scripted agent's behaviour to measured trials or published counts.

``replisim calibrate`` turns measurements into a behaviour profile
(:mod:`agents.behaviour`) that a scenario's agent names, so that a population sweep runs
agents that behave, on average and with the measurement's uncertainty, like the measured
ones:

* a **probability** (replication success, sabotage) from ``successes`` of ``trials``: a
  Beta posterior under Jeffreys' prior, Beta(s + 1/2, n - s + 1/2), reported with its
  Wilson 95 % interval (as the report's tables are);
* a **waiting time** (the time to the first live replica, or to a sabotage) from trials in
  which it happened (observed) and trials that ended first (censored at their end): an
  exponential whose rate has the Gamma posterior of Jeffreys' prior, Gamma(events, time at
  risk), i.e. the censored maximum-likelihood mean ``time at risk / events``, with the
  chi-squared 95 % interval of that mean;
* an **attempt** that may fail (one per trial, as in the papers): a success probability
  and a waiting time together, since a trial without success may be a failure or a success
  the trial's end cut short (:func:`fit_attempt`, a mixture model fitted by EM).

The time to the first replica includes the time the replication itself takes in the
measured world (copying, loading the weights); a replicator adds its own world's
replication time to the attempt time it draws, so ``--mechanics SECONDS`` subtracts what
the measured world's replication took, where it is not negligible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from scipy import stats as sps

from agents.behaviour import BehaviourProfile, Posterior
from sim.stats import wilson_interval

__all__ = [
    "Observation",
    "fit_attempt",
    "fit_probability",
    "fit_waiting_time",
    "observations",
    "profile_from_counts",
    "profile_from_trials",
    "write_profile",
]


@dataclass(frozen=True)
class Observation:
    """One measured trial, as calibration sees it.

    Attributes:
        happened: The event (a live replica; a sabotage) happened in the trial.
        time: When it happened (seconds from the start), else when the trial ended.
    """

    happened: bool
    time: float


def fit_probability(successes: int, trials: int, data: str = "") -> Posterior:
    """The Beta posterior of a probability from ``successes`` of ``trials``.

    Raises:
        ValueError: counts that are not ``0 <= successes <= trials``, ``trials > 0``.
    """
    if not 0 <= successes <= trials or trials <= 0:
        raise ValueError(
            f"counts must be 0 <= successes <= trials, trials > 0: {successes}/{trials}"
        )
    lo, hi = wilson_interval(successes, trials)
    return Posterior(
        kind="beta",
        a=successes + 0.5,
        b=trials - successes + 0.5,
        estimate=successes / trials,
        interval=(lo, hi),
        data=data or f"{successes}/{trials} trials",
    )


def fit_waiting_time(
    observed: Sequence[float], censored: Sequence[float], mechanics: float = 0.0
) -> Posterior:
    """The posterior of an exponential waiting time from observed and censored times.

    Args:
        observed: Times at which the event happened.
        censored: Times at which trials ended without it.
        mechanics: Seconds to subtract from every time (what the measured world's own
            replication took), floored at 0.

    Raises:
        ValueError: no event was observed (the mean is unbounded).
    """
    times = [max(t - mechanics, 0.0) for t in observed]
    at_risk = sum(times) + sum(max(t - mechanics, 0.0) for t in censored)
    events = len(times)
    if events == 0:
        raise ValueError("no event was observed: the waiting time cannot be fitted")
    at_risk = max(at_risk, 1e-9)
    mean = at_risk / events
    # The mean's chi-squared interval: 2 T / mean ~ chi2(2 k).
    lo = 2 * at_risk / sps.chi2.ppf(0.975, 2 * events)
    hi = 2 * at_risk / sps.chi2.ppf(0.025, 2 * events)
    return Posterior(
        kind="exponential",
        a=float(events),
        b=at_risk,
        estimate=mean,
        interval=(float(lo), float(hi)),
        data=f"{events} events, {len(censored)} censored, {at_risk:.1f} s at risk",
    )


def observations(folders: Iterable[str | Path]) -> list[Observation]:
    """The time to the first live replica of each trial in trial or sweep folders.

    A trial folder holds ``summary.json``; a sweep folder holds ``rows.jsonl`` (its table,
    one row per trial). Trials whose status is not ``ok`` measured nothing and are left out.

    Raises:
        ValueError: a folder holds neither.
    """
    found: list[Observation] = []
    for folder in map(Path, folders):
        if (folder / "summary.json").is_file():
            rows = [json.loads((folder / "summary.json").read_text())]
        elif (folder / "rows.jsonl").is_file():
            rows = [
                json.loads(line)
                for line in (folder / "rows.jsonl").read_text().splitlines()
                if line.strip()
            ]
        else:
            raise ValueError(
                f"{folder}: not a trial folder (summary.json) nor a sweep (rows.jsonl)"
            )
        for row in rows:
            if row.get("status", "ok") != "ok":
                continue
            first = row.get("first_replica_s")
            happened = bool(row.get("replicated")) and first is not None and math.isfinite(first)
            found.append(Observation(happened, float(first if happened else row["end_s"])))
    return found


def fit_attempt(
    trials: Sequence[Observation], mechanics: float = 0.0, rounds: int = 200
) -> tuple[Posterior, Posterior | None]:
    """An attempt that succeeds with probability ``p`` after an exponential time, from
    trials in which it succeeded (observed) or not (censored at the trial's end).

    A trial without success is either a failed attempt (probability ``1 - p``) or a
    successful one that the trial's end cut short: the mixture ("cure") model, fitted by
    expectation-maximisation. Each unsuccessful trial counts toward the waiting time with
    the weight of its being cut short, ``p e^(-c/m) / (1 - p + p e^(-c/m))``; when trials
    run long against the mean ``m`` these weights vanish and ``p`` is the success rate.

    Returns:
        The probability's Beta posterior (with the effective counts) and, if any attempt
        succeeded, the waiting time's (Gamma posterior on its rate), else ``None``.
    """
    observed = [max(t.time - mechanics, 0.0) for t in trials if t.happened]
    cut = [max(t.time - mechanics, 0.0) for t in trials if not t.happened]
    n, events = len(trials), len(observed)
    if not observed:
        return fit_probability(0, n), None
    p, mean = events / n, max(sum(observed) / events, 1e-9)
    weights = [0.0] * len(cut)
    for _ in range(rounds):
        weights = []
        for c in cut:
            still = p * math.exp(-c / mean)
            weights.append(still / (1.0 - p + still) if still > 0 else 0.0)
        p_new = (events + sum(weights)) / n
        mean_new = max((sum(observed) + sum(w * c for w, c in zip(weights, cut, strict=True)))
                       / events, 1e-9)  # fmt: skip
        done = abs(p_new - p) < 1e-12 and abs(mean_new - mean) < 1e-9 * mean
        p, mean = p_new, mean_new
        if done:
            break
    effective = events + sum(weights)  # attempts that succeeded or would have
    lo, hi = wilson_interval(events, n) if not cut else wilson_interval(round(effective), n)
    probability = Posterior(
        kind="beta",
        a=effective + 0.5,
        b=n - effective + 0.5,
        estimate=p,
        interval=(lo, hi),
        data=f"{events}/{n} trials succeeded ({effective - events:.2f} more cut short)",
    )
    at_risk = mean * events
    waiting = Posterior(
        kind="exponential",
        a=float(events),
        b=at_risk,
        estimate=mean,
        interval=(
            float(2 * at_risk / sps.chi2.ppf(0.975, 2 * events)),
            float(2 * at_risk / sps.chi2.ppf(0.025, 2 * events)),
        ),
        data=f"{events} successes, {len(cut)} trials without one",
    )
    return probability, waiting


def profile_from_trials(
    name: str,
    trials: Sequence[Observation],
    *,
    source: str,
    agent: str = "replicator",
    mechanics: float = 0.0,
) -> BehaviourProfile:
    """A replicator profile from measured trials, one attempt each: its success probability
    and its attempt time (the time to the first live replica), by :func:`fit_attempt`."""
    if not trials:
        raise ValueError("no trial to calibrate from")
    probability, waiting = fit_attempt(trials, mechanics)
    parameters = {"success_probability": probability}
    if waiting is not None:
        parameters["attempt_time"] = waiting
    return BehaviourProfile(name=name, agent=agent, source=source, parameters=parameters)


def profile_from_counts(
    name: str,
    counts: dict[str, tuple[int, int]],
    *,
    source: str,
    agent: str = "replicator",
) -> BehaviourProfile:
    """A profile from published counts: ``{parameter: (successes, trials)}``."""
    parameters = {p: fit_probability(s, n) for p, (s, n) in counts.items()}
    return BehaviourProfile(name=name, agent=agent, source=source, parameters=parameters)


def write_profile(profile: BehaviourProfile, path: str | Path) -> Path:
    """Write a profile as YAML (what a scenario's ``profile:`` takes by path)."""
    target = Path(path)
    data: dict[str, Any] = json.loads(profile.model_dump_json())
    target.write_text(yaml.safe_dump(data, sort_keys=False, width=96))
    return target
