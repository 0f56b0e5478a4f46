"""``replisim report``: a folder's statistics, plots and page (``plots/`` replaced in one step)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim import plots
from sim.report.browser import VIEW_TRIALS, read_views
from sim.report.figures import plan_plots
from sim.report.page import render_html
from sim.report.results import SAMPLE_TRIALS, Results, _plain, groups, load_results, read_samples
from sim.report.summary import _error_rows, summary_rows
from sim.report.terminal import _print_tables


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
