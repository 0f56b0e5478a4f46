"""``replisim graph``: one trial's lineage as GraphML, GEXF, DOT, node-link JSON, PNG or SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from sim import plots
from sim.lineage import write_lineage_json
from sim.output import lineage_path, read_lineage
from sim.report.figures import TREE_NODES
from sim.report.results import _plain

#: Formats of ``replisim graph``.
GRAPH_FORMATS = ("png", "svg", "graphml", "gexf", "dot", "json")


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
