"""The report's figures as jobs: heatmap, rates, population, survival, lineage, offspring."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from sim import plots
from sim.output import lineage_path, read_lineage
from sim.report.results import Group, Results, Sample, _param_columns

#: Replicas drawn in a lineage tree plot.
TREE_NODES = 2000


#: Groups that get their own offspring plot; curves per population or survival figure.
OFFSPRING_PLOTS = 24
CURVES_PER_FIGURE = 6
#: Population and survival figures per scenario (each of CURVES_PER_FIGURE groups).
FIGURES_PER_SCENARIO = 4


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


@dataclass
class PlotJob:
    """A figure to draw: its file name, caption and a function that builds it."""

    name: str
    caption: str
    build: Callable[[], Any]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _heatmap_axes(table: pd.DataFrame) -> tuple[str, str, str]:
    """(metric, row column, column column) of the containment heatmap."""
    metric = next(m for m in ("contained_by_policy", "contained", "extinct") if m in table.columns)
    policy = [c for c in table.columns if c == "policy" or c.startswith("param.policies")]
    varying = [
        c for c in table.columns if c.startswith("param.") and table[c].nunique(dropna=True) > 1
    ]
    if policy:
        return metric, policy[0], "scenario"
    if varying:
        return metric, varying[0], "scenario"
    # Nothing varies but the scenario: one column of all its trials.
    return metric, "scenario", ""


def plan_plots(
    results: Results, all_groups: list[Group], samples: list[Sample]
) -> tuple[list[PlotJob], list[str]]:
    """The report's figures, as jobs to draw one by one (behind a progress bar).

    Returns:
        The jobs, and notes on what was left out to keep the number of figures bounded.
    """
    table = results.table
    ok = table.loc[table["status"] == "ok"]
    jobs: list[PlotJob] = []
    notes: list[str] = []
    if not ok.empty and ("contained" in ok.columns or "extinct" in ok.columns):
        metric, rows, cols = _heatmap_axes(ok)
        frame = ok.copy()
        if not cols:
            cols = "trials"
            frame[cols] = "all"
        if frame[rows].isna().any():
            frame[rows] = frame[rows].astype(object).where(frame[rows].notna(), "(not swept)")
        jobs.append(
            PlotJob(
                "containment.png",
                f"P({metric}) over {rows.removeprefix('param.')} × {cols}, ok trials, with "
                "95% Wilson intervals.",
                partial(plots.containment_heatmap, frame, metric, rows, cols),
            )
        )

    sabotage = [g for g in all_groups if "mechanisms" in g.ok and (g.ok["mechanisms"] > 0).any()]
    if sabotage:
        rates = {
            f"{g.scenario}: {g.label}" if g.label else g.scenario: g.ok.loc[
                g.ok["mechanisms"] > 0, "sabotaged"
            ]
            .dropna()
            .astype(bool)
            for g in sabotage
        }
        jobs.append(
            PlotJob(
                "sabotage.png",
                "P(sabotaged): share of trials in which the agent sabotaged the shutdown "
                "mechanism, ok trials with a mechanism, with 95% Wilson intervals.",
                partial(plots.rate_plot, rates, title="shutdown sabotage rate"),
            )
        )

    fitted, observed = _calibration_points(results, all_groups)
    if fitted:
        jobs.append(
            PlotJob(
                "calibration.png",
                "Fitted against observed: each behaviour profile's probability (the "
                "measurement it was fitted to, hollow) beside the rate its population showed "
                "in this sweep (filled), with 95% Wilson intervals.",
                partial(
                    plots.rate_plot,
                    observed,
                    title="behaviour profiles: fitted against observed",
                    reference=fitted,
                ),
            )
        )

    scenarios = list(dict.fromkeys(g.scenario for g in all_groups))
    for scenario in scenarios:
        mine = [(g, s) for g, s in zip(all_groups, samples, strict=True) if g.scenario == scenario]
        slug = _slug(scenario)
        chunks = list(_chunks(mine, CURVES_PER_FIGURE))
        if len(chunks) > FIGURES_PER_SCENARIO:
            shown = FIGURES_PER_SCENARIO * CURVES_PER_FIGURE
            notes.append(
                f"{scenario}: population and survival plots show the first {shown} of its "
                f"{len(mine)} parameter points."
            )
            chunks = chunks[:FIGURES_PER_SCENARIO]
        for part, chunk in enumerate(chunks, start=1):
            suffix = "" if len(mine) <= CURVES_PER_FIGURE else f"-{part}"
            curves = {g.label: s.curves for g, s in chunk if s.curves}
            if curves:
                jobs.append(
                    PlotJob(
                        f"population-{slug}{suffix}.png",
                        f"{scenario}: live replicas over time, median and 90% band over a "
                        "sample of trials.",
                        partial(
                            plots.population_plot,
                            curves,
                            title=f"live replicas over time: {scenario}",
                        ),
                    )
                )
            rows_ok = pd.concat([g.ok for g, _ in chunk])
            if not rows_ok.empty and {"extinct", "origin_died_s", "end_s"} <= set(rows_ok):
                jobs.append(
                    PlotJob(
                        f"survival-{slug}{suffix}.png",
                        f"{scenario}: Kaplan-Meier survival of the lineage and of the origin, "
                        "95% bands (trials that ended first are censored).",
                        partial(
                            plots.survival_plot,
                            rows_ok,
                            by=_curve_keys(rows_ok),
                            title=f"survival: {scenario}",
                        ),
                    )
                )
        biggest = _largest_trial(ok.loc[ok["scenario"] == scenario])
        if biggest is not None:
            path = lineage_path(results.folder(biggest))
            if path.is_file():
                jobs.append(
                    PlotJob(
                        f"lineage-{slug}.png",
                        f"{scenario}: replication chain of its largest trial ({biggest}).",
                        partial(_tree_from_file, path),
                    )
                )
    drawn = 0
    for index, (group, sample) in enumerate(zip(all_groups, samples, strict=True)):
        if not sample.offspring or drawn >= OFFSPRING_PLOTS:
            continue
        drawn += 1
        frame = pd.DataFrame(sample.offspring, columns=["generation", "children"])
        title = f"offspring per replica: {group.scenario}, {group.label}"
        jobs.append(
            PlotJob(
                f"offspring-{_slug(group.scenario)}-{index}.png",
                f"{group.scenario}, {group.label}: offspring per generation in "
                f"{sample.trials} sampled trials; negative-binomial fit to the origins.",
                partial(plots.offspring_plot, frame, title=title),
            )
        )
    with_offspring = sum(1 for s in samples if s.offspring)
    if with_offspring > OFFSPRING_PLOTS:
        notes.append(
            f"Offspring plots are drawn for the first {OFFSPRING_PLOTS} of {with_offspring} groups."
        )
    return jobs, notes


#: The trial metric a profile's probability predicts, by parameter.
PROFILE_METRICS = {"sabotage_probability": "sabotaged", "success_probability": "replicated"}


def _calibration_points(
    results: Results, all_groups: list[Group]
) -> tuple[dict[str, tuple[int, int]], dict[str, pd.Series]]:
    """Per group whose agent has a behaviour profile with a probability fitted to counts:
    the counts (successes, trials) the profile was fitted to, and the rate its trials
    showed, keyed by one label."""
    from agents.behaviour import load_profile

    scenarios = getattr(results, "manifest", {}).get("scenarios", {})
    fitted: dict[str, tuple[int, int]] = {}
    observed: dict[str, pd.Series] = {}
    for group in all_groups:
        agents = (scenarios.get(group.scenario) or {}).get("agents") or []
        names = {
            i: group.params.get(f"agents.{i}.profile", (a or {}).get("profile"))
            for i, a in enumerate(agents)
        }
        for name in dict.fromkeys(n for n in names.values() if isinstance(n, str)):
            try:
                profile = load_profile(name)
            except (OSError, ValueError, KeyError):
                continue  # a profile this machine does not have: nothing to compare
            for parameter, post in profile.parameters.items():
                metric = PROFILE_METRICS.get(parameter)
                if metric is None or metric not in group.ok or post.kind != "beta":
                    continue
                label = f"{group.scenario}: {profile.name} {parameter}"
                # Jeffreys' Beta(s + 1/2, n - s + 1/2): the counts it was fitted to.
                successes, trials = round(post.a - 0.5), round(post.a + post.b - 1)
                rows = group.ok
                if metric == "sabotaged" and "mechanisms" in rows:
                    rows = rows.loc[rows["mechanisms"] > 0]
                fitted[label] = (successes, trials)
                observed[label] = rows[metric].dropna().astype(bool)
    return fitted, observed


def _curve_keys(rows: pd.DataFrame) -> list[str]:
    """Columns that tell a scenario's groups apart: policy (if any), then parameters."""
    policy = ["policy"] if "policy" in rows.columns and rows["policy"].notna().any() else []
    return policy + _param_columns(rows)


def _tree_from_file(path: Path) -> Any:
    return plots.lineage_tree(read_lineage(path.parent), max_nodes=TREE_NODES)


def _largest_trial(ok: pd.DataFrame) -> str | None:
    if ok.empty or "replicas_total" not in ok:
        return None
    order = ok.sort_values(["replicas_total", "trial_id"], ascending=[False, True])
    return str(order["trial_id"].iloc[0])
