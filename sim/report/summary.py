"""The summary per group (counts, Wilson intervals, medians, the offspring fit) and its columns."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from sim import stats
from sim.report.results import Group, Sample

#: The shutdown mechanisms' per-trial outcomes (:mod:`sim.metrics`), as rates.
SHUTDOWN_METRICS = ("sabotaged", "shut_down", "complied")


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
