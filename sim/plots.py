"""Pictures of a sweep and of one lineage, drawn with matplotlib's Agg canvas (no GUI).

Every function is a free function that takes its data first and returns a
:class:`matplotlib.figure.Figure`; :func:`save_figure` writes one as PNG or SVG. Figures are
built with the object API on an explicit Agg canvas, never through ``pyplot``, so nothing
here opens a window, switches the global backend or keeps figures alive behind the caller's
back.

- :func:`lineage_tree`: the replication chain of one trial, generation on the y axis,
  hosts as colours, dead replicas marked with the cause of their death. Big lineages are
  cut to their first generations (see :func:`select_nodes`) with a note saying so.
- :func:`population_plot`: live replicas over time, median and 90% band over trials.
- :func:`survival_plot`: Kaplan-Meier curves of the lineage and of the origin, with bands.
- :func:`containment_heatmap`: a boolean metric's proportion over two columns.
- :func:`offspring_plot`: the offspring distribution per generation, with the
  negative-binomial fit over all of them.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from scipy import stats as sps

from sim import stats

__all__ = [
    "CAUSE_STYLES",
    "cause_style",
    "containment_heatmap",
    "host_colours",
    "lineage_tree",
    "offspring_plot",
    "offspring_table",
    "population_plot",
    "save_figure",
    "select_nodes",
    "survival_plot",
    "time_unit",
    "tree_layout",
]

#: Short code and matplotlib marker per cause of death; ``policy:<name>`` shares "P".
CAUSE_STYLES: dict[str, tuple[str, str]] = {
    "sigkill": ("K", "x"),
    "sigterm": ("T", "+"),
    "sigterm-grace": ("G", "1"),
    "host-failure": ("H", "s"),
    "oom": ("M", "D"),
    "exited": ("E", "v"),
    "no-model-server": ("N", "^"),
    "policy": ("P", "*"),
}
_SPARE_MARKERS = ("p", "h", "<", ">", "d", "8")

# tab10 without its grey, which is kept for "other hosts".
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
_OTHER = "#9a9a9a"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100, fmt: str | None = None) -> Path:
    """Write ``fig`` as PNG or SVG.

    Args:
        fig: The figure.
        path: Where to write.
        dpi: Resolution of a PNG.
        fmt: ``"png"`` or ``"svg"``; default from the suffix of ``path``.

    Returns:
        The path written.

    Raises:
        ValueError: On another format.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in ("png", "svg"):
        raise ValueError(f"save_figure writes png or svg, not {fmt or path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # No software/date metadata: the same data gives the same bytes.
    metadata: dict[str, Any] = {"Software": None} if fmt == "png" else {"Date": None}
    with warnings.catch_warnings():
        # A crowded figure makes matplotlib give up on its layout, with a warning meant for
        # whoever tunes the figure, not for the reader of a report: the plot is still drawn.
        warnings.filterwarnings("ignore", message=".*layout not applied", category=UserWarning)
        fig.savefig(path, format=fmt, dpi=dpi, metadata=metadata)
    return path


def time_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for times up to ``seconds``: ``(name, seconds per unit)``."""
    if not seconds < 120.0 * 60.0:
        if seconds >= 2.0 * 86400.0:
            return "d", 86400.0
        return "h", 3600.0
    if seconds >= 120.0:
        return "min", 60.0
    return "s", 1.0


def cause_style(cause: str) -> tuple[str, str]:
    """Short code and marker for a cause of death (unknown causes get a stable spare)."""
    if cause in CAUSE_STYLES:
        return CAUSE_STYLES[cause]
    if cause.startswith("policy"):
        return CAUSE_STYLES["policy"]
    marker = _SPARE_MARKERS[sum(map(ord, cause)) % len(_SPARE_MARKERS)]
    return (cause[:1].upper() or "?"), marker


def host_colours(hosts: Iterable[str], top: int = len(_PALETTE)) -> dict[str, str]:
    """Colours for the ``top`` busiest hosts; the others map to grey.

    When there are more hosts than colours, only hosts holding at least two replicas get a
    colour: telling apart hundreds of hosts that each held one replica is not possible,
    and a colour that stands for an arbitrary one of them would mislead.

    Args:
        hosts: The host of every replica (repeats count towards frequency).
        top: How many hosts may get a colour of their own.

    Returns:
        A colour for every distinct host.
    """
    counts = Counter(hosts)
    ranked = sorted(counts, key=lambda h: (-counts[h], h))
    top = min(top, len(_PALETTE))
    crowded = len(ranked) > top
    return {
        h: (_PALETTE[i] if i < top and not (crowded and counts[h] < 2) else _OTHER)
        for i, h in enumerate(ranked)
    }


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------------------------
# lineage tree
# --------------------------------------------------------------------------------------------


def select_nodes(lineage: nx.DiGraph, max_nodes: int = 2000) -> tuple[set[Hashable], str]:
    """Choose at most ``max_nodes`` replicas to draw: whole generations from the origin down.

    Generations are taken in order while they fit. The first generation that does not fit
    is subsampled (its earliest-born replicas whose parents are drawn), so the picture
    always shows a connected top of the tree.

    Args:
        lineage: The lineage graph (``generation`` and ``born`` node attributes).
        max_nodes: The budget, at least 1.

    Returns:
        The chosen nodes and a note for the picture ("" when every node is drawn).
    """
    total = lineage.number_of_nodes()
    if total <= max_nodes:
        return set(lineage.nodes), ""
    max_nodes = max(1, max_nodes)
    by_generation: dict[int, list[Hashable]] = {}
    for node, data in lineage.nodes(data=True):
        by_generation.setdefault(int(data.get("generation", 0)), []).append(node)
    keep: set[Hashable] = set()
    last_whole = -1
    for generation in sorted(by_generation):
        members = by_generation[generation]
        if len(keep) + len(members) <= max_nodes:
            keep.update(members)
            last_whole = generation
            continue
        room = max_nodes - len(keep)
        attached = [
            n
            for n in members
            if not any(p not in keep for p in lineage.predecessors(n)) or generation == 0
        ]
        attached.sort(key=lambda n: (_born(lineage, n), str(n)))
        keep.update(attached[:room])
        note = f"showing {len(keep):,} of {total:,} replicas: "
        if last_whole >= 0:
            note += f"generations 0-{last_whole} in full, generation {generation} in part"
        else:
            note += f"generation {generation} in part"
        return keep, note
    return keep, ""


def _born(lineage: nx.DiGraph, node: Hashable) -> float:
    born = lineage.nodes[node].get("born", math.nan)
    return math.inf if _isnan(born) else float(born)


def tree_layout(lineage: nx.DiGraph) -> dict[Hashable, tuple[float, int]]:
    """Positions ``(x, generation)`` of a tree drawing: leaves side by side, parents centred.

    Children are ordered by birth time; several roots (origins) are placed side by side.
    Iterative, so deep chains do not hit the recursion limit.

    Args:
        lineage: A lineage (a forest: each replica has at most one parent in the graph).

    Returns:
        Mapping node -> (x, generation).
    """

    def order(nodes: Iterable[Hashable]) -> list[Hashable]:
        return sorted(nodes, key=lambda n: (_born(lineage, n), str(n)))

    roots = order(n for n in lineage.nodes if lineage.in_degree(n) == 0)
    x: dict[Hashable, float] = {}
    next_leaf = 0.0
    for root in roots:
        # Post-order walk: a node is placed after all its children.
        stack: list[tuple[Hashable, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in x:
                continue
            children = order(c for c in lineage.successors(node) if c not in x)
            if expanded or not children:
                placed = [x[c] for c in lineage.successors(node) if c in x]
                if placed:
                    x[node] = (min(placed) + max(placed)) / 2.0
                else:
                    x[node] = next_leaf
                    next_leaf += 1.0
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(children))
    return {n: (x[n], int(lineage.nodes[n].get("generation", 0))) for n in lineage.nodes}


def lineage_tree(
    lineage: nx.DiGraph,
    *,
    max_nodes: int = 2000,
    title: str | None = None,
    label_limit: int = 80,
) -> Figure:
    """Draw a replication chain: generation down the y axis, replicas as a tree.

    Each replica is a dot coloured by its host (the nine busiest hosts get colours of their
    own, the others are grey). A replica that died carries a black marker for the cause of
    its death, and in small trees a short code next to it (K = sigkill and so on, see the
    legend); a replica never seen live is drawn hollow.

    Args:
        lineage: The trial's lineage graph.
        max_nodes: Draw at most this many replicas (see :func:`select_nodes`).
        title: Figure title; default names the scenario and seed from the graph attributes.
        label_limit: Write cause codes next to the dots when at most this many are drawn.

    Returns:
        The figure.
    """
    if title is None:
        scenario, seed = lineage.graph.get("scenario"), lineage.graph.get("seed")
        title = "replication chain" + (f": {scenario}, seed {seed}" if scenario else "")
    if lineage.number_of_nodes() == 0:
        fig = _figure(6, 3)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.5, 0.5, "no replica was started", ha="center", va="center")
        return fig

    keep, note = select_nodes(lineage, max_nodes)
    tree = lineage.subgraph(keep).copy()  # a view would filter the whole graph per lookup
    pos = tree_layout(tree)
    n = len(pos)
    leaves = max((p[0] for p in pos.values()), default=0.0) + 1.0
    generations = max(p[1] for p in pos.values()) + 1
    fig = _figure(min(6.0 + leaves * 0.22, 22.0), min(2.6 + generations * 0.55, 14.0))
    ax = fig.add_subplot()

    # Elbow edges: down from the parent, across, down to the child.
    segments = []
    for parent, child in tree.edges:
        (xp, gp), (xc, gc) = pos[parent], pos[child]
        mid = gp + (gc - gp) / 2.0
        segments.append([(xp, gp), (xp, mid), (xc, mid), (xc, gc)])
    ax.add_collection(
        LineCollection(segments, colors="#555555", linewidths=0.4 if n > 300 else 0.8, zorder=1)
    )

    nodes = list(tree.nodes(data=True))
    colours = host_colours(d.get("host", "") for _, d in lineage.nodes(data=True))
    size = float(np.clip(9000.0 / n, 4.0, 80.0))
    xs = np.array([pos[name][0] for name, _ in nodes])
    ys = np.array([pos[name][1] for name, _ in nodes])
    face = [colours.get(d.get("host", ""), _OTHER) for _, d in nodes]
    live = np.array([bool(d.get("live", True)) for _, d in nodes])
    ax.scatter(
        xs[live],
        ys[live],
        s=size,
        c=[f for f, ok in zip(face, live, strict=True) if ok],
        zorder=2,
        linewidths=0,
    )
    if (~live).any():
        ax.scatter(
            xs[~live],
            ys[~live],
            s=size,
            facecolors="white",
            edgecolors=[f for f, ok in zip(face, live, strict=True) if not ok],
            zorder=2,
            linewidths=1.0,
        )

    causes: dict[str, list[int]] = {}
    for index, (_, data) in enumerate(nodes):
        if not _isnan(data.get("died")):
            causes.setdefault(str(data.get("cause") or "unknown"), []).append(index)
    for cause, indices in sorted(causes.items()):
        code, marker = cause_style(cause)
        ax.scatter(
            xs[indices],
            ys[indices],
            s=size * 0.6,
            marker=marker,
            c="black",
            linewidths=0.8,
            zorder=3,
        )
        if n <= label_limit:
            for i in indices:
                ax.annotate(
                    code,
                    (xs[i], ys[i]),
                    xytext=(3, -3),
                    textcoords="offset points",
                    fontsize=7,
                    ha="left",
                    va="top",
                )

    ax.set_xlim(-0.8, leaves - 0.2)
    ax.set_ylim(generations - 0.5, -0.5)
    ax.set_ylabel("generation")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(title)

    handles: list[Any] = []
    hosts_drawn = Counter(d.get("host", "") for _, d in nodes)
    named = [
        h
        for h in sorted(hosts_drawn, key=lambda h: (-hosts_drawn[h], h))
        if colours.get(h, _OTHER) != _OTHER
    ]
    handles += [Patch(color=colours[h], label=f"host {h}") for h in named]
    others = sum(1 for h in hosts_drawn if colours.get(h, _OTHER) == _OTHER)
    if others:
        label = f"{others:,} other hosts" if named else f"{others:,} hosts (too many to colour)"
        handles.append(Patch(color=_OTHER, label=label))
    handles.append(
        Line2D([], [], ls="", marker="o", color="#444444", label="alive at end (no mark)")
    )
    if (~live).any():
        handles.append(
            Line2D([], [], ls="", marker="o", mfc="white", color="#444444", label="never live")
        )
    for cause in sorted(causes):
        code, marker = cause_style(cause)
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker=marker,
                color="black",
                label=f"{code} = died: {cause} ({len(causes[cause]):,})",
            )
        )
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    if note:
        fig.text(0.01, 0.005, note, fontsize=8, style="italic", ha="left", va="bottom")
    return fig


# --------------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------------


def _colour(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def population_plot(
    curves: Mapping[str, Sequence[Sequence[tuple[float, float]]]],
    *,
    title: str = "live replicas over time",
    points: int = 300,
) -> Figure:
    """Live population over time: the median over trials and the 5-95% band, per group.

    Args:
        curves: For each group label, the ``live_series`` of its trials (change points
            ``(time, live)`` starting at 0, as in a trial's ``summary.json``).
        title: Figure title.
        points: Grid points per group.

    Returns:
        The figure (an empty-data note when no group has a curve).
    """
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    ax.set_title(title)
    present = {label: list(c) for label, c in curves.items() if len(c)}
    if not present:
        _no_data(ax, "no live-population series available")
        return fig
    t_max = max(float(p[-1][0]) for c in present.values() for p in c if len(p))
    unit, scale = time_unit(t_max)
    for i, (label, group) in enumerate(present.items()):
        end = max(float(p[-1][0]) for p in group)
        grid = np.linspace(0.0, end, points) if end > 0 else np.zeros(1)
        band = stats.population_band(group, grid=grid, quantiles=(0.05, 0.5, 0.95))
        t = band["time"].to_numpy() / scale
        colour = _colour(i)
        ax.fill_between(
            t, band["q05"], band["q95"], step="post", color=colour, alpha=0.2, linewidth=0
        )
        ax.step(
            t,
            band["median"],
            where="post",
            color=colour,
            label=f"{label} (median, 90% band; {len(group)} trials)",
        )
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("live replicas")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _labels(frame: pd.DataFrame, by: Sequence[str]) -> list[str]:
    if not by:
        return ["all trials"] * len(frame)
    parts = [
        frame[c].map(lambda v, c=c: f"{c.removeprefix('param.').split('.')[-1]}={_short(v)}")
        for c in by
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return list(out)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def survival_plot(
    trials: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    title: str = "survival",
    confidence: float = 0.95,
) -> Figure:
    """Kaplan-Meier curves with confidence bands: the lineage's and the origin's survival.

    Left, the probability that the lineage still has a live replica (time to extinction,
    :func:`sim.stats.lineage_survival`); right, that the origin replica is still running
    (:func:`sim.stats.origin_survival`). Trials that ended first are censored.

    Args:
        trials: Trials table (only ``status == "ok"`` rows are used).
        by: Columns whose combinations get a curve each.
        title: Figure title.
        confidence: Level of the bands.

    Returns:
        The figure.
    """
    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    fig.suptitle(title)
    panels = (
        (axes[0], stats.lineage_survival, ["extinct", "end_s"], "lineage survival (not extinct)"),
        (axes[1], stats.origin_survival, ["origin_died_s", "end_s"], "origin survival"),
    )
    ok = stats.ok_trials(trials) if "status" in trials.columns else trials.iloc[0:0]
    for ax, estimate, needs, label in panels:
        ax.set_title(label, fontsize=10)
        if ok.empty or any(c not in ok.columns for c in needs):
            _no_data(ax, "no ok trials")
            continue
        curves = estimate(ok, by=list(by), confidence=confidence)
        t_max = float(curves["time"].max()) if len(curves) else 0.0
        unit, scale = time_unit(t_max)
        if by:
            keys = curves[list(by)].drop_duplicates()
            groups = [
                (lab, curves.loc[_nan_match(curves, by, row)])
                for lab, (_, row) in zip(_labels(keys, by), keys.iterrows(), strict=True)
            ]
        else:
            groups = [("all trials", curves)]
        for i, (lab, curve) in enumerate(groups):
            t = curve["time"].to_numpy() / scale
            ax.fill_between(
                t, curve["lo"], curve["hi"], step="post", color=_colour(i), alpha=0.2, linewidth=0
            )
            ax.step(t, curve["survival"], where="post", color=_colour(i), label=lab)
        ax.set_xlabel(f"time ({unit})")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=f"{int(confidence * 100)}% bands", title_fontsize=8)
    axes[0].set_ylabel("survival probability")
    return fig


def _nan_match(curves: pd.DataFrame, by: Sequence[str], row: pd.Series) -> pd.Series:
    """Rows whose ``by`` values equal ``row``'s, counting NaN as equal to NaN."""
    match = pd.Series(True, index=curves.index)
    for c in by:
        if _isnan(row[c]):
            match &= curves[c].isna()
        else:
            match &= curves[c] == row[c]
    return match


#: The heatmap's extra column: the share of benign agents' actions a policy blocked.
FALSE_POSITIVES = "benign blocked"


def containment_heatmap(
    trials: pd.DataFrame,
    metric: str,
    rows: str,
    columns: str,
    *,
    title: str | None = None,
    confidence: float = 0.95,
) -> Figure:
    """A boolean metric's proportion (with Wilson interval and n) over two columns.

    Args:
        trials: Trials table (only ok trials count).
        metric: A boolean column, e.g. ``contained_by_policy`` or ``extinct``.
        rows: Column whose values are the heatmap's rows (e.g. a policy column).
        columns: Column whose values are its columns (e.g. ``scenario``).
        title: Figure title; default names the metric.
        confidence: Level of the interval written in each cell.

    Returns:
        The figure.
    """
    table = stats.proportion_table(trials, metric, by=[rows, columns], confidence=confidence)
    row_keys = [_short(v) for v in table[rows]]
    col_keys = [_short(v) for v in table[columns]]
    row_values = list(dict.fromkeys(row_keys))
    col_values = list(dict.fromkeys(col_keys))
    # Beside what a policy stopped, what it stopped by mistake: the benign agents' actions
    # it blocked (pooled over the row), when the trials had benign agents.
    benign = {"benign_actions", "benign_blocked"} <= set(trials.columns)
    false_positives = FALSE_POSITIVES if benign else None
    if false_positives:
        col_values.append(false_positives)
    grid = np.full((len(row_values), len(col_values)), np.nan)
    text = [["" for _ in col_values] for _ in row_values]
    for r, c, n, p, lo, hi in zip(
        row_keys, col_keys, table["n"], table["p"], table["lo"], table["hi"], strict=True
    ):
        i, j = row_values.index(r), col_values.index(c)
        grid[i, j] = p
        text[i][j] = f"{p:.2f}\n[{lo:.2f}, {hi:.2f}]\nn={n}"
    if false_positives:
        ok = trials.loc[trials["status"] == "ok"] if "status" in trials else trials
        keys = ok[rows].map(_short)
        j = col_values.index(false_positives)
        for i, row in enumerate(row_values):
            mine = ok.loc[keys == row]
            actions, blocked = int(mine["benign_actions"].sum()), int(mine["benign_blocked"].sum())
            if actions:
                lo, hi = stats.wilson_interval(blocked, actions, confidence)
                grid[i, j] = blocked / actions
                text[i][j] = f"{blocked / actions:.2f}\n[{lo:.2f}, {hi:.2f}]\nof {actions}"
    # Many cells: a bounded figure, and numbers only where they still fit.
    fig = _figure(
        min(max(4.5, 1.6 + 1.5 * len(col_values)), 20.0),
        min(max(2.8, 1.4 + 0.8 * len(row_values)), 20.0),
    )
    ax = fig.add_subplot()
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    if len(row_values) <= 24 and len(col_values) <= 12:
        for i in range(len(row_values)):
            for j in range(len(col_values)):
                value = grid[i, j]
                colour = "black" if not math.isnan(value) and value > 0.6 else "white"
                ax.text(
                    j,
                    i,
                    text[i][j] or "no trials",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colour if text[i][j] else "#666666",
                )
    ax.set_xticks(range(len(col_values)), col_values, fontsize=8, rotation=30, ha="right")
    ax.set_yticks(range(len(row_values)), row_values, fontsize=8)
    ax.set_xlabel(columns.removeprefix("param."))
    ax.set_ylabel(rows.removeprefix("param."))
    fig.colorbar(image, ax=ax, label=f"P({metric})")
    ax.set_title(title or f"P({metric}) with {int(confidence * 100)}% Wilson intervals")
    return fig


# --------------------------------------------------------------------------------------------
# offspring
# --------------------------------------------------------------------------------------------


def offspring_table(
    lineages: nx.DiGraph | Iterable[nx.DiGraph], complete_only: bool = True
) -> pd.DataFrame:
    """One row per counted replica: ``generation`` and ``children``, pooled over lineages.

    Args:
        lineages: One lineage graph or several.
        complete_only: Count only replicas that died, whose offspring count is final (see
            :func:`sim.stats.offspring_counts`).

    Returns:
        A tidy table with integer columns ``generation`` and ``children``.
    """
    graphs = [lineages] if isinstance(lineages, nx.DiGraph) else list(lineages)
    records = [
        (int(g.nodes[node]["generation"]), count)
        for g in graphs
        for node, count in stats.offspring_counts(g, complete_only=complete_only).items()
    ]
    return pd.DataFrame(records, columns=["generation", "children"], dtype=int)


def _fit_label(fit: stats.NegBinFit) -> str:
    k_text = "inf" if math.isinf(fit.k) else f"{fit.k:.3g}"
    q = stats.extinction_probability(fit.R, fit.k)
    return f"R = {fit.R:.3g}, k = {k_text}, implied P(extinct) = {q:.3g}"


def offspring_plot(
    offspring: pd.DataFrame | nx.DiGraph | Iterable[nx.DiGraph],
    *,
    title: str = "offspring per replica",
    max_generations: int = 6,
    max_children: int = 12,
) -> Figure:
    """Offspring distribution per generation, as grouped bars, with a negative-binomial fit.

    Bars give, per generation, the fraction of replicas with 0, 1, 2, ... children, counting
    only replicas that died before the end (final counts); generations from
    ``max_generations`` on are pooled, as are counts from ``max_children`` on.

    Black dots are the negative-binomial fit (:func:`sim.stats.fit_negative_binomial`) of
    the generation-0 counts, one independent draw per trial; its R, k and implied
    extinction probability are in the title. Later generations are shown but not fitted:
    in a lineage that died out, its n replicas had n - 1 children between them, so pooling
    all generations of finished lineages drags R towards 1 whatever the truth.

    Args:
        offspring: A table from :func:`offspring_table` (columns ``generation`` and
            ``children``), or lineage graphs to build it from.
        title: Figure title.
        max_generations: Generations drawn separately.
        max_children: Counts drawn separately.

    Returns:
        The figure.
    """
    table = offspring if isinstance(offspring, pd.DataFrame) else offspring_table(offspring)
    fig = _figure(9, 4.2)
    ax = fig.add_subplot()
    if table.empty:
        ax.set_title(title)
        _no_data(ax, "no replica with a final offspring count")
        return fig
    children = table["children"].to_numpy(dtype=int)
    generation = table["generation"].to_numpy(dtype=int)
    capped = np.minimum(children, max_children)
    bins = np.arange(int(capped.max()) + 1)
    pooled_gen = np.minimum(generation, max_generations)
    gens = sorted(set(pooled_gen.tolist()))
    width = 0.8 / len(gens)
    for i, g in enumerate(gens):
        mine = capped[pooled_gen == g]
        freq = np.bincount(mine, minlength=bins.size) / mine.size
        label = f"gen {g}" if g < max_generations else f"gen {max_generations}+"
        ax.bar(
            bins - 0.4 + width * (i + 0.5),
            freq,
            width=width,
            color=_colour(i),
            label=f"{label} (n={mine.size:,})",
        )
    origins = children[generation == 0]
    subtitle = "no origin with a final count to fit"
    if origins.size:
        fit = stats.fit_negative_binomial(origins)
        subtitle = f"fit to {fit.n:,} origins: {_fit_label(fit)}"
        if fit.R > 0:
            if math.isinf(fit.k):
                pmf = sps.poisson.pmf(bins, fit.R)
                tail = sps.poisson.sf(max_children - 1, fit.R)
            else:
                p = fit.k / (fit.k + fit.R)
                pmf = sps.nbinom.pmf(bins, fit.k, p)
                tail = sps.nbinom.sf(max_children - 1, fit.k, p)
            if bins[-1] == max_children:
                pmf[-1] = tail
            ax.plot(bins, pmf, "o", color="black", ms=4, label="negative-binomial fit (gen 0)")
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    labels = [str(b) for b in bins]
    if bins[-1] == max_children and children.max() > max_children:
        labels[-1] = f"{max_children}+"
    ax.set_xticks(bins, labels)
    ax.set_xlabel("children per replica (replicas that died before the end)")
    ax.set_ylabel("fraction of replicas")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig
