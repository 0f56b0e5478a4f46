"""The summary as rich tables in the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.report.results import _short
from sim.report.summary import _Column, _columns, _error_rows

if TYPE_CHECKING:
    from sim.report.build import Report


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
