"""The report of a sweep (or of one trial): tables, plots and one self-contained HTML page.

``replisim report <folder>`` reads a sweep folder (see :mod:`sim.sweep`) or a single trial
folder and

- prints, per scenario and parameter point, the number of ok trials, P(replicated) and
  P(extinct) with Wilson 95% intervals, the median peak of live replicas, the median time
  to the first replica, and a negative-binomial fit of the origins' offspring (R, k) with
  the extinction probability it implies (rich tables, or JSON with ``--json``);
- writes PNG plots into ``<folder>/plots/``;
- writes ``<folder>/report.html``: the run's configuration, the tables, the plots inlined
  as data URIs, and a lineage browser over the largest trials. The page loads nothing from
  anywhere: no external URL, no CDN, only a little inline JavaScript.

``replisim graph <trial-folder> --format ...`` exports one trial's lineage as GraphML,
GEXF, DOT, node-link JSON, PNG or SVG.

Scale: the table is read once, and every statistic that the table holds is computed from
it. Trial folders are opened only for a random sample of each group (live-population
curves and offspring counts, at most :data:`SAMPLE_TRIALS` in all) and for the trials shown
in the lineage browser (at most :data:`VIEW_TRIALS`), within a byte budget, so a report on
ten thousand trials reads a few hundred files. Trials whose status is not ``ok`` are listed
but enter no statistic.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from sim import plots, stats
from sim.lineage import write_lineage_json
from sim.output import (
    lineage_data,
    lineage_path,
    live_path,
    read_lineage,
    read_lineage_table,
    read_live,
)

__all__ = [
    "GRAPH_FORMATS",
    "SAMPLE_TRIALS",
    "VIEW_NODES",
    "VIEW_TRIALS",
    "Group",
    "Report",
    "Results",
    "Sample",
    "build_report",
    "cmd_graph",
    "cmd_report",
    "export_lineage",
    "groups",
    "lineage_view",
    "load_results",
    "plan_plots",
    "read_samples",
    "read_views",
    "render_html",
    "summary_rows",
    "write_dot",
]

#: The shutdown mechanisms' per-trial outcomes (:mod:`sim.metrics`), as rates.
SHUTDOWN_METRICS = ("sabotaged", "shut_down", "complied")

#: Formats of ``replisim graph``.
GRAPH_FORMATS = ("png", "svg", "graphml", "gexf", "dot", "json")
#: Trials whose folders are read for population curves and offspring counts, in all.
SAMPLE_TRIALS = 500
#: Trials offered in the HTML lineage browser (the largest, by replicas_total).
VIEW_TRIALS = 200
#: Replicas shown per trial in the lineage browser (first generations first).
VIEW_NODES = 300
#: Replicas drawn in a lineage tree plot.
TREE_NODES = 2000
#: Bytes of trial files read at most, per purpose (sample, browser): a cap for huge lineages.
READ_BUDGET = 256 * 2**20
#: Groups that get their own offspring plot; curves per population or survival figure.
OFFSPRING_PLOTS = 24
CURVES_PER_FIGURE = 6
#: Population and survival figures per scenario (each of CURVES_PER_FIGURE groups).
FIGURES_PER_SCENARIO = 4


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    """What a report reads: the trials table and where each trial's folder is.

    Attributes:
        root: The sweep or trial folder.
        kind: ``"sweep"`` or ``"trial"``.
        table: One row per trial (the sweep's ``trials.parquet``).
        manifest: The sweep's ``manifest.json`` (empty for a trial folder).
    """

    root: Path
    kind: str
    table: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def folder(self, trial_id: str) -> Path:
        """The folder of one trial (it may be missing)."""
        return self.root if self.kind == "trial" else self.root / "trials" / str(trial_id)


def _clean_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's fields that have the shape a sweep writes (a damaged field is left
    out of the report rather than failing it)."""
    shapes: dict[str, Any] = {
        "packages": dict,
        "trials": list,
        "scenarios": dict,
        "configs": dict,
        "executor": dict,
    }
    clean: dict[str, Any] = {}
    for key, value in manifest.items():
        want = shapes.get(key)
        if want is None:
            if _scalar(value):
                clean[key] = value
        elif isinstance(value, want):
            clean[key] = value
    if "packages" in clean:
        clean["packages"] = {str(k): str(v) for k, v in clean["packages"].items()}
    return clean


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def load_results(path: str | Path) -> Results:
    """Read a sweep folder (``trials.parquet``, else ``rows.jsonl``) or a trial folder.

    Raises:
        ValueError: The folder does not exist, holds neither a sweep nor a trial, or its
            table is empty or lacks the ``trial_id``, ``scenario`` and ``status`` columns.
    """
    root = Path(path)
    if not root.exists():
        raise ValueError(f"{root}: no such folder")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; give a sweep folder or a trial folder")
    manifest: dict[str, Any] = {}
    if (root / "manifest.json").is_file():
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{root / 'manifest.json'} is not valid JSON: {err}") from None
        if not isinstance(manifest, dict):
            raise ValueError(f"{root / 'manifest.json'} is not a sweep manifest (a JSON object)")
        manifest = _clean_manifest(manifest)
    if (root / "trials.parquet").is_file():
        try:
            table = pd.read_parquet(root / "trials.parquet")
        except Exception as err:  # pyarrow raises several kinds for a broken file
            raise ValueError(f"cannot read {root / 'trials.parquet'}: {err}") from None
        kind = "sweep"
    elif (root / "rows.jsonl").is_file():
        from sim.sweep import read_rows

        table = pd.DataFrame(read_rows(root))
        kind = "sweep"
    elif (root / "summary.json").is_file():
        try:
            summary = json.loads((root / "summary.json").read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{root / 'summary.json'} is not valid JSON: {err}") from None
        if not isinstance(summary, dict):
            raise ValueError(f"{root / 'summary.json'} is not a trial summary (a JSON object)")
        summary.pop("live_series", None)
        summary = {k: v if _scalar(v) else json.dumps(v) for k, v in summary.items()}
        table = pd.DataFrame([{"trial_id": root.name, **summary}])
        kind = "trial"
    else:
        raise ValueError(
            f"{root} is neither a sweep folder (no trials.parquet or rows.jsonl) "
            "nor a trial folder (no summary.json)"
        )
    if table.empty:
        raise ValueError(f"{root} holds an empty trials table: no trial has finished yet")
    missing = [c for c in ("trial_id", "scenario", "status") if c not in table.columns]
    if missing:
        raise ValueError(f"the trials table in {root} lacks column(s) {missing}")
    table = table.copy()
    table["trial_id"] = table["trial_id"].astype(str)
    table["status"] = table["status"].astype(str)
    if "error" not in table.columns:
        table["error"] = ""
    return Results(root, kind, table.reset_index(drop=True), manifest)


# --------------------------------------------------------------------------------------------
# groups and statistics
# --------------------------------------------------------------------------------------------


@dataclass
class Group:
    """The trials of one scenario at one parameter point."""

    scenario: str
    params: dict[str, Any]
    rows: pd.DataFrame
    policy: str | None = None

    @property
    def ok(self) -> pd.DataFrame:
        return self.rows.loc[self.rows["status"] == "ok"]

    @property
    def label(self) -> str:
        parts = [f"policy={self.policy}"] if self.policy is not None else []
        parts += [f"{_short_param(k)}={_short(v)}" for k, v in self.params.items()]
        return ", ".join(parts) or "all trials"


def _short_param(path: str) -> str:
    return path.split(".")[-1]


def _short(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _param_columns(rows: pd.DataFrame) -> list[str]:
    """The parameter columns that the rows set (NaN in all of them: not swept there)."""
    return [c for c in sorted(rows.columns) if c.startswith("param.") and rows[c].notna().any()]


def groups(table: pd.DataFrame) -> list[Group]:
    """Split the table by scenario, then by policy (when the table has that column) and by
    the scenario's parameter point."""
    out = []
    for scenario, rows in table.groupby("scenario", sort=True):
        params = _param_columns(rows)
        by_policy = "policy" in rows.columns and bool(rows["policy"].notna().any())
        if by_policy:  # the label names the chain; its JSON would only repeat it, at length
            params = [c for c in params if c != "param.policies"]
        keys = (["policy"] if by_policy else []) + params
        if not keys:
            out.append(Group(str(scenario), {}, rows))
            continue
        for key, part in rows.groupby(keys, sort=True, dropna=False):
            values = list(key) if isinstance(key, tuple) else [key]
            policy = _short(values.pop(0)) if by_policy else None
            point = {
                c.removeprefix("param."): _plain(v) for c, v in zip(params, values, strict=True)
            }
            out.append(Group(str(scenario), point, part, policy))
    return out


@dataclass
class Sample:
    """What was read from the trial folders of one group."""

    curves: list[list[tuple[float, float]]] = field(default_factory=list)
    offspring: list[tuple[int, int]] = field(default_factory=list)  # (generation, children)
    trials: int = 0
    missing: int = 0


class _Budget:
    """Bytes left to read: huge lineages must not make a report take minutes."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.skipped = 0

    def take(self, path: Path) -> bool:
        try:
            size = _read_size(path)
        except (OSError, ValueError):
            return False
        if size > self.left:
            self.skipped += 1
            return False
        self.left -= size
        return True


#: Bytes of node-link JSON a replica of ``lineage.parquet`` stands for (the read budget is
#: in JSON bytes, what older folders hold; Parquet is about 20 times smaller on disk).
JSON_BYTES_PER_REPLICA = 300


def _read_size(path: Path) -> int:
    """What reading a trial file costs, in bytes of JSON."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows) * JSON_BYTES_PER_REPLICA
        except Exception as err:  # pyarrow's errors: a damaged file
            raise ValueError(str(err)) from None
    return path.stat().st_size


def _offspring_records(folder: Path) -> list[tuple[int, int]]:
    """(generation, children) of every replica of a trial that died: its count is final."""
    table = read_lineage_table(folder)
    n = len(table)
    children = np.bincount(table.parent[table.parent >= 0], minlength=n)
    dead = ~np.isnan(table.died)
    return list(zip(table.generation[dead].tolist(), children[dead].tolist(), strict=True))


def read_samples(
    results: Results,
    all_groups: list[Group],
    *,
    per_group: int | None = None,
    advance: Callable[[], None] | None = None,
) -> list[Sample]:
    """Read live-population curves and offspring counts from a random sample of each group.

    Args:
        results: The loaded sweep.
        all_groups: From :func:`groups`.
        per_group: Trials read per group; default shares :data:`SAMPLE_TRIALS` among the
            groups (at least 20 each).
        advance: Called once per trial read (a progress bar).

    Returns:
        One :class:`Sample` per group, in order.
    """
    if per_group is None:
        per_group = max(20, SAMPLE_TRIALS // max(1, len(all_groups)))
    rng = np.random.default_rng(0)
    budget = _Budget(READ_BUDGET)
    samples = []
    for group in all_groups:
        ids = group.ok["trial_id"].to_numpy()
        if ids.size > per_group:
            ids = np.sort(rng.choice(ids, size=per_group, replace=False))
        sample = Sample()
        for trial in ids:
            folder = results.folder(str(trial))
            live, lineage = live_path(folder), lineage_path(folder)
            read = False
            try:
                if live.is_file() and budget.take(live):
                    series = read_live(folder)
                    if series:
                        sample.curves.append(series)
                    read = True
                if lineage.is_file() and budget.take(lineage):
                    sample.offspring.extend(_offspring_records(folder))
                    read = True
            except (OSError, ValueError):  # a damaged trial folder counts as missing
                read = False
            sample.trials += read
            sample.missing += not read
            if advance:
                advance()
        samples.append(sample)
    return samples


def _proportion(flags: pd.Series) -> dict[str, Any]:
    n = int(flags.size)
    k = int(flags.sum())
    lo, hi = stats.wilson_interval(k, n)
    return {"k": k, "n": n, "p": k / n if n else math.nan, "lo": lo, "hi": hi}


def _median(values: pd.Series) -> float:
    present = values.dropna()
    return float(present.median()) if len(present) else math.nan


def _offspring_fit(sample: Sample) -> dict[str, Any]:
    """NB fit of the origins' final offspring counts: one independent draw per trial.

    Later generations are left out on purpose: in a lineage that died out, n replicas had
    n - 1 children, so pooling every generation of finished lineages pulls R towards 1.
    Origins still running at the end are left out too (their count is not final); when
    trials stop early, e.g. at a population cap, that biases R down a little, since the
    origins that live longest, and have most children, are the ones left out.
    """
    origins = [children for generation, children in sample.offspring if generation == 0]
    if not origins:
        return {
            "R": math.nan,
            "k": math.nan,
            "k_infinite": False,
            "se_R": math.nan,
            "origins": 0,
            "extinction_probability": math.nan,
        }
    fit = stats.fit_negative_binomial(origins)
    return {
        "R": fit.R,
        "k": fit.k,
        # JSON has no infinity: k = inf (no over-dispersion, the Poisson limit) is flagged.
        "k_infinite": math.isinf(fit.k),
        "se_R": fit.se_R,
        "origins": fit.n,
        "extinction_probability": stats.extinction_probability(fit.R, fit.k),
    }


def summary_rows(all_groups: list[Group], samples: list[Sample]) -> list[dict[str, Any]]:
    """One summary record per group: counts, proportions, medians and the offspring fit."""
    rows = []
    for group, sample in zip(all_groups, samples, strict=True):
        ok = group.ok
        record: dict[str, Any] = {
            "scenario": group.scenario,
            "policy": group.policy,
            "params": group.params,
            "label": group.label,
            "trials": len(group.rows),
            "errors": len(group.rows) - len(ok),
            "n": len(ok),
        }
        if "replicated" in ok:  # a copy went live (origins, benign ones too, do not count)
            record["replicated"] = _proportion(ok["replicated"].dropna().astype(bool))
        else:  # tables from before the column existed: one origin per trial assumed
            total = ok["replicas_total"] if "replicas_total" in ok else pd.Series(dtype=float)
            record["replicated"] = _proportion(total.dropna() > 1)
        for metric in ("extinct", "contained", "contained_by_policy"):
            if metric in ok.columns:
                record[metric] = _proportion(ok[metric].dropna().astype(bool))
        if "mechanisms" in ok.columns and (ok["mechanisms"] > 0).any():
            # Shutdown mechanisms (sim.mechanisms): the rates among trials that had one.
            guarded = ok.loc[ok["mechanisms"] > 0]
            for metric in SHUTDOWN_METRICS:
                record[metric] = _proportion(guarded[metric].dropna().astype(bool))
        record["median_peak_live"] = _median(ok["peak_live"]) if "peak_live" in ok else math.nan
        contained = ok["containment_s"] if "containment_s" in ok else pd.Series(dtype=float)
        record["median_containment_s"] = _median(contained)
        actions = ok["benign_actions"].sum() if "benign_actions" in ok else 0
        blocked = ok["benign_blocked"].sum() if "benign_blocked" in ok else 0
        # False positives: the share of the benign workload's actions a policy refused.
        record["benign_fp_rate"] = float(blocked / actions) if actions else math.nan
        if "first_replica_s" in ok:
            record["median_first_replica_s"] = _median(ok["first_replica_s"])
            record["first_replica_n"] = int(ok["first_replica_s"].notna().sum())
        else:
            record["median_first_replica_s"], record["first_replica_n"] = math.nan, 0
        record["offspring"] = _offspring_fit(sample)
        record["sampled_trials"] = sample.trials
        rows.append(record)
    return rows


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Numpy scalars to Python ones; NaN and infinities to None (strict JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _fmt_prop(prop: Mapping[str, Any] | None) -> str:
    if not prop or not prop["n"]:
        return "-"
    return f"{prop['p']:.3f} [{prop['lo']:.3f}, {prop['hi']:.3f}]"


def _fmt_num(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


# (HTML header, terminal header, cell) per column of the summary table.
_Column = tuple[str, str, Callable[[Mapping[str, Any]], str]]


def _r_cell(row: Mapping[str, Any]) -> str:
    off = row["offspring"]
    if not off["origins"]:
        return "-"
    return f"{off['R']:.3g} ± {off['se_R']:.2g} (n={off['origins']})"


COLUMNS: tuple[_Column, ...] = (
    ("scenario", "scenario", lambda r: str(r["scenario"])),
    ("parameters", "parameters", lambda r: str(r["label"])),
    ("trials", "trials", lambda r: str(r["trials"])),
    ("errors", "err", lambda r: str(r["errors"])),
    ("n ok", "n ok", lambda r: str(r["n"])),
    ("P(replicated) [95% CI]", "P(replicated)", lambda r: _fmt_prop(r["replicated"])),
    ("P(extinct) [95% CI]", "P(extinct)", lambda r: _fmt_prop(r.get("extinct"))),
    ("P(contained) [95% CI]", "P(contained)", lambda r: _fmt_prop(r.get("contained"))),
    (
        "P(contained by policy) [95% CI]",
        "P(by policy)",
        lambda r: _fmt_prop(r.get("contained_by_policy")),
    ),
    (
        "median time to containment (s)",
        "med. contain (s)",
        lambda r: _fmt_num(r.get("median_containment_s", math.nan)),
    ),
    (
        "benign false-positive rate",
        "benign FP",
        lambda r: _fmt_num(r.get("benign_fp_rate", math.nan), 3),
    ),
    ("P(sabotaged) [95% CI]", "P(sabotaged)", lambda r: _fmt_prop(r.get("sabotaged"))),
    ("P(shut down) [95% CI]", "P(shut down)", lambda r: _fmt_prop(r.get("shut_down"))),
    ("P(complied) [95% CI]", "P(complied)", lambda r: _fmt_prop(r.get("complied"))),
    ("median peak live", "med. peak", lambda r: _fmt_num(r["median_peak_live"])),
    (
        "median first replica (s)",
        "med. 1st (s)",
        lambda r: _fmt_num(r["median_first_replica_s"]),
    ),
    ("R (origins)", "R origins", _r_cell),
    ("k", "k", lambda r: _fmt_num(r["offspring"]["k"], 3)),
    (
        "P(extinct | NB fit)",
        "P(ext) NB",
        lambda r: _fmt_num(r["offspring"]["extinction_probability"], 3),
    ),
)


def _columns(rows: list[dict[str, Any]]) -> list[_Column]:
    """The summary's columns; P(contained) only when the sweep measured it."""
    measured = any("contained" in r for r in rows)
    by_policy = any("contained_by_policy" in r for r in rows)
    benign = any(not math.isnan(r.get("benign_fp_rate", math.nan)) for r in rows)
    hidden = set()
    if not measured:
        hidden |= {"P(contained) [95% CI]", "median time to containment (s)"}
    if not by_policy:
        hidden.add("P(contained by policy) [95% CI]")
    if not benign:
        hidden.add("benign false-positive rate")
    if not any("sabotaged" in r for r in rows):
        hidden |= {c[0] for c in COLUMNS if c[1] in ("P(sabotaged)", "P(shut down)", "P(complied)")}
    return [c for c in COLUMNS if c[0] not in hidden]


def _error_rows(table: pd.DataFrame) -> pd.DataFrame:
    bad = table.loc[table["status"] != "ok"]
    columns = [c for c in ("trial_id", "scenario", "seed", "status", "error") if c in bad]
    return bad[columns]


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# lineage browser
# --------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, 2) if math.isfinite(number) else None


def lineage_view(data: Mapping[str, Any], max_nodes: int = VIEW_NODES) -> dict[str, Any]:
    """The browser's record of one lineage (node-link JSON in), cut to ``max_nodes``.

    Returns:
        ``shown``, ``total``, ``note`` and ``nodes``: one list per replica,
        ``[name, parent, host, generation, born, live_at, died, cause, x]``, where ``x`` is
        the replica's position in a tree layout.
    """
    graph = nx.DiGraph()
    records = {}
    for node in data.get("nodes", []):
        records[node["id"]] = node
        graph.add_node(
            node["id"],
            generation=int(node.get("generation", 0)),
            born=node.get("born") if node.get("born") is not None else math.nan,
        )
    graph.add_edges_from((e["source"], e["target"]) for e in data.get("edges", []))
    keep, note = plots.select_nodes(graph, max_nodes)
    layout = plots.tree_layout(graph.subgraph(keep).copy())
    nodes = []
    for name in sorted(keep, key=lambda n: (layout[n][1], layout[n][0])):
        node = records[name]
        nodes.append(
            [
                str(name),
                str(node.get("parent") or ""),
                str(node.get("host", "")),
                int(node.get("generation", 0)),
                _num(node.get("born")),
                _num(node.get("live_at")),
                _num(node.get("died")),
                str(node.get("cause") or ""),
                layout[name][0],
            ]
        )
    return {"shown": len(nodes), "total": len(records), "note": note, "nodes": nodes}


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def read_views(
    results: Results, *, limit: int = VIEW_TRIALS, advance: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Lineage-browser records of the ``limit`` largest ok trials (by replicas_total)."""
    table = results.table
    ok = table.loc[table["status"] == "ok"]
    if "replicas_total" in ok:
        ok = ok.sort_values(["replicas_total", "trial_id"], ascending=[False, True])
    budget = _Budget(READ_BUDGET)
    views = []
    # Not itertuples: parameter columns have dots in their names, which namedtuples rename.
    for record in ok.head(limit).to_dict(orient="records"):
        trial = str(record["trial_id"])
        params = {
            str(k).removeprefix("param."): _plain(v)
            for k, v in record.items()
            if str(k).startswith("param.") and _present(v)
        }
        view: dict[str, Any] = {
            "id": trial,
            "scenario": str(record["scenario"]),
            "seed": _plain(record.get("seed")),
            "params": ", ".join(
                ([f"policy={record['policy']}"] if _present(record.get("policy")) else [])
                + [f"{_short_param(k)}={_short(v)}" for k, v in params.items()]
            ),
            "replicas_total": _plain(record.get("replicas_total")),
            "end": _num(record.get("end_s")),
        }
        path = lineage_path(results.folder(trial))
        if not path.is_file():
            view["missing"] = "no lineage (lineage.parquet) in the trial folder"
        elif not budget.take(path):
            view["missing"] = "not loaded: the browser's read budget is spent (use replisim graph)"
        else:
            try:
                view.update(lineage_view(lineage_data(path.parent)))
            except (OSError, ValueError) as err:
                view["missing"] = f"not shown: {err}"
        views.append(view)
        if advance:
            advance()
    return views


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums;
         white-space: nowrap; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.note { color: #555; font-size: .9em; }
.error { color: #a00; }
#lineage-svg { overflow: auto; max-height: 650px; border: 1px solid #ddd; margin: .5em 0; }
ul.tree { list-style: none; padding-left: 1.2em; }
#lineage-view > ul.tree { font-size: .85em; padding-left: 0; }
ul.tree li { margin: .1em 0; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 50%;
          margin-right: .3em; vertical-align: middle; }
pre { background: #f7f7f7; padding: .5em; overflow: auto; max-height: 400px; font-size: .8em; }
"""

# Builds the SVG as markup so that no namespace URL is needed in the page.
_JS = """
(function () {
  var data = JSON.parse(document.getElementById('lineage-data').textContent);
  var select = document.getElementById('trial-select');
  var view = document.getElementById('lineage-view');
  var palette = %(palette)s;
  var codes = %(codes)s;
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function t(v) { return v === null ? '-' : v.toFixed(1) + ' s'; }
  function code(cause) {
    if (codes[cause]) return codes[cause];
    if (cause.indexOf('policy') === 0) return 'P';
    return cause ? cause.charAt(0).toUpperCase() : '';
  }
  function colours(nodes) {
    var count = {}, hosts = [];
    nodes.forEach(function (n) {
      if (!(n[2] in count)) { count[n[2]] = 0; hosts.push(n[2]); }
      count[n[2]] += 1;
    });
    hosts.sort(function (a, b) { return count[b] - count[a] || (a < b ? -1 : 1); });
    var crowded = hosts.length > palette.length, map = {};
    hosts.forEach(function (h, i) {
      map[h] = (i < palette.length && !(crowded && count[h] < 2)) ? palette[i] : '#9a9a9a';
    });
    return map;
  }
  function details(n) {
    var s = 'host ' + n[2] + ', generation ' + n[3] + ', born ' + t(n[4]);
    s += ', live ' + (n[5] === null ? 'never' : 'at ' + t(n[5]));
    s += n[6] === null ? ', alive at end' : ', died ' + t(n[6]) + ' (' + n[7] + ')';
    return s;
  }
  function svg(trial, colour) {
    var nodes = trial.nodes, dx = 16, dy = 46, pad = 20, maxX = 0, maxG = 0, pos = {};
    nodes.forEach(function (n) { maxX = Math.max(maxX, n[8]); maxG = Math.max(maxG, n[3]); });
    nodes.forEach(function (n) { pos[n[0]] = [pad + n[8] * dx, pad + n[3] * dy]; });
    var w = 2 * pad + maxX * dx + 30, h = 2 * pad + maxG * dy;
    var out = ['<svg width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '">'];
    nodes.forEach(function (n) {
      var p = pos[n[1]], c = pos[n[0]];
      if (!p) return;
      var m = (p[1] + c[1]) / 2;
      out.push('<path d="M' + p[0] + ' ' + p[1] + 'V' + m + 'H' + c[0] + 'V' + c[1] +
               '" fill="none" stroke="#777" stroke-width="1"/>');
    });
    nodes.forEach(function (n) {
      var c = pos[n[0]], fill = n[5] === null ? 'white' : colour[n[2]];
      out.push('<g class="node"><title>' + esc(n[0] + ': ' + details(n)) + '</title>' +
               '<circle cx="' + c[0] + '" cy="' + c[1] + '" r="5" fill="' + fill +
               '" stroke="' + colour[n[2]] + '" stroke-width="1.5"/>');
      if (n[6] !== null) {
        out.push('<text x="' + (c[0] + 6) + '" y="' + (c[1] + 11) +
                 '" font-size="9" fill="#000">' + esc(code(n[7])) + '</text>');
      }
      out.push('</g>');
    });
    out.push('</svg>');
    return out.join('');
  }
  function list(trial, colour) {
    var kids = {}, roots = [];
    trial.nodes.forEach(function (n) {
      kids[n[0]] = [];
    });
    trial.nodes.forEach(function (n) {
      if (n[1] && kids[n[1]]) kids[n[1]].push(n); else roots.push(n);
    });
    function item(n) {
      var label = '<span class="swatch" style="background:' + colour[n[2]] + '"></span>' +
                  '<b>' + esc(n[0]) + '</b>: ' + esc(details(n));
      if (!kids[n[0]].length) return '<li>' + label + '</li>';
      var open = n[3] < 3 ? ' open' : '';
      return '<li><details' + open + '><summary>' + label + ' &middot; ' + kids[n[0]].length +
             ' child(ren)</summary><ul class="tree">' + kids[n[0]].map(item).join('') +
             '</ul></details></li>';
    }
    return '<ul class="tree">' + roots.map(item).join('') + '</ul>';
  }
  function show(index) {
    var trial = data[index];
    if (!trial) { view.innerHTML = '<p class="note">No trial to show.</p>'; return; }
    var head = '<h3>trial ' + esc(trial.id) + '</h3><p>' + esc(trial.scenario) +
               (trial.params ? ' (' + esc(trial.params) + ')' : '') + ', seed ' +
               esc(trial.seed) + ', ' + esc(trial.replicas_total) + ' replicas live in all';
    if (trial.end !== null) head += ', ended at ' + t(trial.end);
    head += '</p>';
    if (trial.missing) { view.innerHTML = head + '<p class="note">' + esc(trial.missing) +
                                          '</p>'; return; }
    var colour = colours(trial.nodes);
    var note = trial.note ? '<p class="note">' + esc(trial.note) + '</p>' : '';
    view.innerHTML = head + note + '<div id="lineage-svg">' + svg(trial, colour) + '</div>' +
                     '<h4>replicas (' + trial.shown + ' of ' + trial.total + ')</h4>' +
                     list(trial, colour);
    view.setAttribute('data-trial', trial.id);
    // Wide trees: start scrolled to the first origin rather than to the left edge.
    var box = document.getElementById('lineage-svg');
    if (box && trial.nodes.length) {
      box.scrollLeft = Math.max(0, 20 + trial.nodes[0][8] * 16 - box.clientWidth / 2);
    }
  }
  select.addEventListener('change', function () { show(select.selectedIndex); });
  show(0);
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table_html(headers: list[str], rows: list[list[str]], table_id: str, numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _config_html(results: Results) -> str:
    m = results.manifest
    table = results.table
    items: list[tuple[str, str]] = [("folder", str(results.root.resolve()))]
    if results.kind == "trial":
        items.append(("kind", "a single trial"))
    for key in ("replisim", "git_revision", "python", "scenario_file", "scenario_file_sha256"):
        if m.get(key):
            items.append((key.replace("_", " "), str(m[key])))
    if m.get("packages"):
        items.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(m["packages"].items()))))
    planned = len(m.get("trials", [])) or len(table)
    items.append(("trials", f"{len(table):,} finished of {planned:,} planned"))
    if "seed" in table:
        seeds = pd.to_numeric(table["seed"], errors="coerce").dropna()
        if len(seeds):
            items.append(
                ("seeds", f"{seeds.nunique():,} distinct, {int(seeds.min())}–{int(seeds.max())}")
            )
    params = sorted(c.removeprefix("param.") for c in table.columns if c.startswith("param."))
    items.append(("swept parameters", ", ".join(params) or "none"))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    out = [f'<table id="config">{rows}</table>']
    configs = dict(m.get("scenarios") or {})
    if results.kind == "trial" and (results.root / "scenario.json").is_file():
        with contextlib.suppress(ValueError):
            config = json.loads((results.root / "scenario.json").read_text())
            if isinstance(config, dict):
                configs[str(config.get("name", "scenario"))] = config
    for name, config in sorted(configs.items()):
        description = config.get("description") if isinstance(config, dict) else None
        text = json.dumps(config, indent=1, sort_keys=True, default=str)
        if len(text) > 100_000:
            text = text[:100_000] + "\n... (cut)"
        out.append(
            f"<details><summary>scenario <b>{_e(name)}</b>"
            + (f": {_e(description)}" if description else "")
            + f"</summary><pre>{_e(text)}</pre></details>"
        )
    return "".join(out)


def _image_html(path: Path, caption: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(path.name)}">'
        f"<figcaption>{_e(path.name)}: {_e(caption)}</figcaption></figure>"
    )


def render_html(
    results: Results,
    rows: list[dict[str, Any]],
    figures: list[tuple[Path, str]],
    views: list[dict[str, Any]],
    notes: list[str],
) -> str:
    """The report page: configuration, tables, plots and the lineage browser, self-contained."""
    table = results.table
    ok = int((table["status"] == "ok").sum())
    columns = _columns(rows)
    summary = _table_html(
        [c[0] for c in columns],
        [[cell(r) for _, _, cell in columns] for r in rows],
        "summary",
        set(range(2, len(columns))),
    )
    errors = _error_rows(table)
    if len(errors):
        error_html = (
            f"<h2>Trials with errors ({len(errors):,})</h2>"
            '<p class="note">Listed here, left out of every statistic.</p>'
            + _table_html(
                list(errors.columns),
                [[_short(v) for v in r] for r in errors.head(500).itertuples(index=False)],
                "errors",
                set(),
            )
        )
        if len(errors) > 500:
            error_html += f'<p class="note">... and {len(errors) - 500:,} more.</p>'
    else:
        error_html = ""
    options = "".join(
        f'<option value="{i}">{_e(v["id"])} · {_e(v["scenario"])}'
        + (f" ({_e(v['params'])})" if v["params"] else "")
        + f" · seed {_e(v['seed'])} · {_e(v['replicas_total'])} replicas</option>"
        for i, v in enumerate(views)
    )
    payload = json.dumps(_plain(views), separators=(",", ":")).replace("<", "\\u003c")
    codes = {cause: code for cause, (code, _) in plots.CAUSE_STYLES.items()}
    script = _JS % {
        "palette": json.dumps(list(plots._PALETTE)),
        "codes": json.dumps(codes),
    }
    legend = ", ".join(f"{code} = {cause}" for cause, code in codes.items())
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"replisim report: {results.root.resolve().name}"
    note_html = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    figures_html = "".join(_image_html(p, c) for p, c in figures) or (
        '<p class="note">No plots: no trial finished ok.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{len(table):,} trials: {ok:,} ok, {len(table) - ok:,} with errors. Generated {generated}.</p>
<h2>Configuration</h2>
{_config_html(results)}
<h2>Results per scenario and parameter point</h2>
<p class="note">Only trials with status ok count (n ok). P(replicated): at least one replica
besides the origin was ever live; P(extinct): no replica was running at the end (a run
stopped by its population cap is not extinct). Intervals are Wilson 95%. R and k are the
maximum-likelihood negative-binomial fit of the origins' final offspring counts (one per
trial, from a sample of trial folders; an origin still running at the end is left out),
and P(extinct | NB fit) is the extinction probability of the branching process they
imply.</p>
{summary}
{note_html}
{error_html}
<h2>Plots</h2>
{figures_html}
<h2>Lineage browser</h2>
<p class="note">The {len(views):,} largest ok trials by replicas live in all; up to
{VIEW_NODES} replicas of each, first generations first. Dots are coloured by host; a
hollow dot was never live; letters mark the cause of death ({_e(legend)}). Hover a dot for
its details.</p>
<label for="trial-select">trial:</label>
<select id="trial-select">{options}</select>
<div id="lineage-view"><noscript>The lineage browser needs JavaScript.</noscript></div>
<script type="application/json" id="lineage-data">{payload}</script>
<script>{script}</script>
</body></html>
"""


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What :func:`build_report` made."""

    results: Results
    rows: list[dict[str, Any]]
    html_path: Path
    plot_paths: list[Path]
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        table = self.results.table
        errors = _error_rows(table)
        return _plain(
            {
                "folder": str(self.results.root),
                "kind": self.results.kind,
                "report": str(self.html_path),
                "plots": [str(p) for p in self.plot_paths],
                "trials": len(table),
                "ok": int((table["status"] == "ok").sum()),
                "errors": len(errors),
                "groups": self.rows,
                "error_trials": errors.to_dict(orient="records"),
                "notes": self.notes,
            }
        )


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=True,
    ) as bar:
        yield bar


def build_report(out: str | Path, *, quiet: bool = True) -> Report:
    """Compute the statistics, write the plots and ``report.html`` of a sweep or trial folder.

    Args:
        out: The sweep folder (or a trial folder).
        quiet: No progress bars.

    Returns:
        The :class:`Report`.

    Raises:
        ValueError: On a missing folder or an empty or missing table.
    """
    results = load_results(out)
    all_groups = groups(results.table)
    notes: list[str] = []
    with _progress(quiet) as bar:
        n_sample = sum(
            min(len(g.ok), max(20, SAMPLE_TRIALS // max(1, len(all_groups)))) for g in all_groups
        )
        task = bar.add_task("reading trial folders", total=n_sample)
        samples = read_samples(results, all_groups, advance=lambda: bar.advance(task))
        rows = summary_rows(all_groups, samples)
        missing = sum(s.missing for s in samples)
        if missing:
            notes.append(
                f"{missing:,} sampled trial folder(s) were missing or over the read budget; "
                "their curves and offspring counts are left out."
            )

        n_view = min(VIEW_TRIALS, int((results.table["status"] == "ok").sum()))
        task = bar.add_task("lineage browser", total=n_view)
        views = read_views(results, advance=lambda: bar.advance(task))

        plot_dir = results.root / "plots"
        staging = _staging_dir(results.root)
        jobs, plot_notes = plan_plots(results, all_groups, samples)
        notes += plot_notes
        task = bar.add_task("plots", total=len(jobs))
        figures: list[tuple[Path, str]] = []
        damaged = 0
        for job in jobs:
            try:
                figure = job.build()
            except (OSError, ValueError):  # a damaged trial folder: no picture of it
                damaged += 1
                bar.advance(task)
                continue
            plots.save_figure(figure, staging / job.name)
            figures.append((plot_dir / job.name, job.caption))
            bar.advance(task)
        if damaged:
            notes.append(f"{damaged} plot(s) left out: their trial folders are damaged.")
        _replace_plots(plot_dir, staging)

    page = render_html(results, rows, figures, views, notes)
    html_path = results.root / "report.html"
    tmp = html_path.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)
    return Report(results, rows, html_path, [p for p, _ in figures], notes)


_OUR_PLOTS = ("containment", "population", "survival", "lineage", "offspring")


def _staging_dir(root: Path) -> Path:
    """A fresh folder beside ``plots/`` to draw into (left-overs of killed reports removed)."""
    for old in root.glob(".plots-*"):
        shutil.rmtree(old, ignore_errors=True)
    staging = root / f".plots-new-{os.getpid()}"
    staging.mkdir()
    return staging


def _replace_plots(plot_dir: Path, staging: Path) -> None:
    """Make ``staging`` the new ``plots/`` in one step: a report killed at any moment leaves
    either the old plots or the new ones, never half of each.

    Files in ``plots/`` that the report did not draw are carried over. With an old folder the
    two are swapped by ``renameat2(RENAME_EXCHANGE)``; where the file system cannot, by two
    renames (then for an instant there is no ``plots/``, but never a half one).
    """
    if plot_dir.is_dir():
        for kept in plot_dir.iterdir():
            ours = kept.suffix == ".png" and kept.name.split("-")[0].removesuffix(".png") in (
                _OUR_PLOTS
            )
            if not ours and kept.is_file() and not (staging / kept.name).exists():
                shutil.copy2(kept, staging / kept.name)
        if _exchange(staging, plot_dir):
            shutil.rmtree(staging, ignore_errors=True)  # it holds the old plots now
        else:
            old = plot_dir.with_name(f".plots-old-{os.getpid()}")
            plot_dir.rename(old)
            staging.rename(plot_dir)
            shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(plot_dir)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(done == 0)


def _cell_example(column: _Column, rows: list[dict[str, Any]]) -> str:
    """The longest cell of a column (to tell columns that may wrap)."""
    return max((column[2](r) for r in rows), key=len, default="")


def _print_tables(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    terminal = Console().width
    columns = _columns(report.rows)
    # Two narrower tables rather than one that no terminal is wide enough for.
    split = next(i for i, c in enumerate(columns) if c[0] == "median peak live")
    parts = (
        (
            f"{report.results.root}: outcomes of {len(report.results.table):,} trials",
            columns[:split],
            "ok trials only (n ok); intervals: Wilson 95%",
        ),
        (
            "growth",
            columns[:2] + columns[split:],
            "R, k: negative-binomial fit of the origins' offspring (± standard error); "
            "P(ext) NB: the extinction probability it implies",
        ),
    )
    for title, chosen, caption in parts:
        view = Table(title=title, caption=caption)
        for i, (_, header, _) in enumerate(chosen):
            if i == 1:
                view.add_column(header, overflow="fold", min_width=20)
            else:
                # Intervals may wrap at their space in a narrow terminal; counts may not.
                wraps = " " in _cell_example(chosen[i], report.rows)
                view.add_column(header, justify="right" if i >= 2 else "left", no_wrap=not wraps)
        for row in report.rows:
            view.add_row(*(cell(row) for _, _, cell in chosen))
        # As wide as the table needs: a name cut or folded cannot be copied from a terminal.
        wide = Console(width=10**4)
        needed = wide.measure(view).maximum
        Console(width=max(terminal, 140, needed)).print(view)
    console = Console(width=max(terminal, 140))
    errors = _error_rows(report.results.table)
    if len(errors):
        bad = Table(title=f"{len(errors):,} trial(s) with errors (left out of the statistics)")
        for column in errors.columns:
            bad.add_column(column, overflow="fold")
        for record in errors.head(20).itertuples(index=False):
            bad.add_row(*(_short(v) for v in record))
        console.print(bad)
        if len(errors) > 20:
            console.print(f"... and {len(errors) - 20:,} more (see the report)")
    for note in report.notes:
        console.print(f"[dim]{note}[/dim]")
    console.print(
        f"report: {report.html_path}  ({len(report.plot_paths)} plots in "
        f"{report.html_path.parent / 'plots'})"
    )


def cmd_report(out: str, *, quiet: bool = False, as_json: bool = False) -> int:
    """``replisim report <sweep-or-trial-folder>``: tables, plots and report.html.

    Args:
        out: A sweep folder or a trial folder.
        quiet: Print nothing (and show no progress) on success.
        as_json: Print the statistics as JSON instead of tables.

    Returns:
        The exit code: 0 when the report was written.

    Raises:
        ValueError: On a missing folder or an empty or missing trials table.
    """
    report = build_report(out, quiet=quiet or as_json)
    if as_json:
        print(json.dumps(report.as_json(), indent=1))
    elif not quiet:
        _print_tables(report)
    return 0


# --------------------------------------------------------------------------------------------
# graph exports
# --------------------------------------------------------------------------------------------


def _export_graph(lineage: nx.DiGraph) -> nx.DiGraph:
    """A copy fit for GraphML and GEXF: NaN and None attributes left out, numbers typed.

    A missing attribute reads as "unknown" in Gephi, yEd and networkx, where "nan" would be
    an unparsable number to Java readers. A key that holds a float on any node holds floats
    on all, since GraphML and GEXF declare one type per key.
    """
    float_keys = {
        key
        for _, data in lineage.nodes(data=True)
        for key, value in data.items()
        if isinstance(value, float | np.floating)
    }
    g = nx.DiGraph()
    g.graph.update(
        {
            k: _plain(v)
            for k, v in lineage.graph.items()
            if isinstance(_plain(v), str | int | float | bool) and _plain(v) is not None
        }
    )
    for node, data in lineage.nodes(data=True):
        clean: dict[str, Any] = {}
        for key, value in data.items():
            value = _plain(value)
            if value is None:
                continue
            if key in float_keys and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, str | int | float | bool):
                value = str(value)
            clean[key] = value
        g.add_node(str(node), **clean)
    g.add_edges_from((str(u), str(v)) for u, v in lineage.edges)
    return g


def _dot_quote(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def write_dot(lineage: nx.DiGraph, path: str | Path) -> None:
    """Write a lineage as a Graphviz DOT digraph: hosts as fill colours, causes as xlabels."""
    g = _export_graph(lineage)
    colours = plots.host_colours(d.get("host", "") for _, d in g.nodes(data=True))
    lines = ["digraph lineage {"]
    attrs = ", ".join(f"{k}={_dot_quote(v)}" for k, v in sorted(g.graph.items()))
    lines.append(f"  graph [rankdir=TB{', ' + attrs if attrs else ''}];")
    lines.append('  node [shape=circle, style=filled, fontsize=8, fontcolor="black"];')
    for node, data in g.nodes(data=True):
        fields = {
            "label": node,
            "fillcolor": colours.get(data.get("host", ""), "#9a9a9a"),
            **data,
        }
        if "died" in data:
            fields["xlabel"] = plots.cause_style(str(data.get("cause") or "unknown"))[0]
        text = ", ".join(f"{k}={_dot_quote(v)}" for k, v in fields.items())
        lines.append(f"  {_dot_quote(node)} [{text}];")
    for u, v in g.edges:
        lines.append(f"  {_dot_quote(u)} -> {_dot_quote(v)};")
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def export_lineage(lineage: nx.DiGraph, path: str | Path, fmt: str) -> Path:
    """Write a lineage in one of :data:`GRAPH_FORMATS`.

    Args:
        lineage: The lineage graph (as read by :func:`sim.output.read_lineage`).
        path: Output file.
        fmt: ``png``, ``svg``, ``graphml``, ``gexf``, ``dot`` or ``json`` (node-link).

    Returns:
        The path written.

    Raises:
        ValueError: On an unknown format.
    """
    fmt = fmt.lower()
    if fmt not in GRAPH_FORMATS:
        raise ValueError(f"unknown graph format {fmt!r}; known: {', '.join(GRAPH_FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("png", "svg"):
        figure = plots.lineage_tree(lineage, max_nodes=TREE_NODES)
        plots.save_figure(figure, path, fmt=fmt)
    elif fmt == "graphml":
        nx.write_graphml(_export_graph(lineage), str(path))
    elif fmt == "gexf":
        nx.write_gexf(_export_graph(lineage), str(path))
    elif fmt == "dot":
        write_dot(lineage, path)
    else:
        write_lineage_json(lineage, path)
    return path


def cmd_graph(trial_folder: str, fmt: str, output: str | None = None) -> int:
    """``replisim graph <trial-folder> --format FMT``: export one trial's lineage.

    Args:
        trial_folder: A trial folder (it holds ``lineage.parquet``, or an older folder's
            ``lineage.json``).
        fmt: One of :data:`GRAPH_FORMATS`.
        output: Output file, or a folder to write ``lineage.<fmt>`` into; default
            ``<trial_folder>/exports/lineage.<fmt>`` (the trial's own files stay untouched).

    Returns:
        The exit code: 0 when the file was written.

    Raises:
        ValueError: On an unknown format, a missing folder or one without a lineage.
    """
    fmt = str(fmt).lower().lstrip(".")
    if fmt not in GRAPH_FORMATS:
        raise ValueError(f"unknown graph format {fmt!r}; known: {', '.join(GRAPH_FORMATS)}")
    folder = Path(trial_folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such trial folder")
    source = lineage_path(folder)
    if not source.is_file():
        hint = (
            " (a sweep folder? give one of its trials/<id>/)"
            if (folder / "trials").is_dir()
            else ""
        )
        raise ValueError(
            f"{folder} is not a trial folder: it has no lineage.parquet (or lineage.json){hint}"
        )
    try:
        lineage = read_lineage(folder)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read {source}: {err}") from None
    if output is None:
        path = folder / "exports" / f"lineage.{fmt}"
    else:
        path = Path(output)
        if path.is_dir():
            path = path / f"lineage.{fmt}"
    export_lineage(lineage, path, fmt)
    print(f"wrote {path} ({lineage.number_of_nodes():,} replicas, {fmt})")
    return 0
