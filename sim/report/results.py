"""Reading a sweep or trial folder: the trials table, its groups, and a sample of trial folders."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.output import lineage_path, live_path, read_lineage_table, read_live

#: Trials whose folders are read for population curves and offspring counts, in all.
SAMPLE_TRIALS = 500


#: Bytes of trial files read at most, per purpose (sample, browser): a cap for huge lineages.
READ_BUDGET = 256 * 2**20


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
