"""The lineage graph and the metrics computed from it, as free functions.

One node per replica ever started, an edge parent -> child. Node attributes: ``host``,
``parent`` ("" for an origin), ``generation``, ``born`` (agent started), ``live_at`` (first
answered its health probe; NaN if never), ``died`` (NaN if running at the end), ``cause``
("" if running), ``live`` (was ever live: the paper's success criterion), ``separate``
(its own processes), ``survived_parent`` (was running when its parent died) and
``signalled_at``. The graph attribute ``end_s`` is the trial's end time.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
from networkx.readwrite import json_graph

if TYPE_CHECKING:
    from sim.world import Replica

__all__ = [
    "build_lineage",
    "check_lineage_data",
    "extinct",
    "first_replica_s",
    "live_at_end",
    "live_series",
    "max_generation",
    "offspring_counts",
    "origin_died_s",
    "peak_live",
    "read_lineage_json",
    "replicas_started",
    "replicas_total",
    "survived_shutdown",
    "write_graphml",
    "write_lineage_json",
]

NAN = math.nan


def build_lineage(replicas: Iterable[Replica], end_s: float, **graph_attrs: Any) -> nx.DiGraph:
    """Build the lineage graph from the world's replicas."""
    g = nx.DiGraph(end_s=end_s, **graph_attrs)
    for r in replicas:
        g.add_node(
            r.name,
            host=r.host.name,
            parent=r.parent.name if r.parent else "",
            generation=r.generation,
            born=r.born,
            live_at=r.live_at,
            died=r.died,
            cause=r.cause,
            live=r.ever_live,
            separate=r.separate,
            survived_parent=r.survived_parent,
            signalled_at=r.signalled_at,
            agent=r.config.agent,
        )
        if r.parent is not None:
            g.add_edge(r.parent.name, r.name)
    return g


def _isnan(x: float) -> bool:
    return x != x


def replicas_started(lineage: nx.DiGraph) -> int:
    """Replicas whose agent was started, origins included."""
    return int(lineage.number_of_nodes())


def replicas_total(lineage: nx.DiGraph) -> int:
    """Replicas that were ever live (agent running, server answering), origins included."""
    return sum(1 for _, live in lineage.nodes(data="live") if live)


def live_series(lineage: nx.DiGraph) -> list[tuple[float, int]]:
    """The number of live replicas over time, as change points ``(time, count)``."""
    deltas: Counter[float] = Counter()
    for _, d in lineage.nodes(data=True):
        if d["live"]:
            deltas[d["live_at"]] += 1
            if not _isnan(d["died"]):
                deltas[d["died"]] -= 1
    series, live = [(0.0, 0)], 0
    for t in sorted(deltas):
        if deltas[t]:
            live += deltas[t]
            if series[-1][0] == t:
                series[-1] = (t, live)
            else:
                series.append((t, live))
    return series


def peak_live(lineage: nx.DiGraph) -> int:
    """The largest number of replicas live at once."""
    return max(n for _, n in live_series(lineage))


def live_at_end(lineage: nx.DiGraph) -> int:
    """Replicas live when the trial ended."""
    return sum(1 for _, d in lineage.nodes(data=True) if d["live"] and _isnan(d["died"]))


def max_generation(lineage: nx.DiGraph) -> int:
    """The deepest generation that was ever live (origins are generation 0)."""
    return max((d["generation"] for _, d in lineage.nodes(data=True) if d["live"]), default=0)


def first_replica_s(lineage: nx.DiGraph) -> float:
    """When the first non-origin replica went live (NaN if none did)."""
    times = [d["live_at"] for _, d in lineage.nodes(data=True) if d["live"] and d["parent"]]
    return min(times, default=NAN)


def origin_died_s(lineage: nx.DiGraph) -> float:
    """When the first origin died (NaN if every origin ran to the end)."""
    times = [
        d["died"] for _, d in lineage.nodes(data=True) if not d["parent"] and not _isnan(d["died"])
    ]
    return min(times, default=NAN)


def survived_shutdown(lineage: nx.DiGraph) -> bool:
    """Whether a replica that was signalled and died had a live descendant when it died.

    This is the paper's shutdown avoidance: the lineage outlives the shutdown of the
    replica it was aimed at.
    """
    nodes = lineage.nodes
    succ = lineage.succ
    for name, d in lineage.nodes(data=True):
        if _isnan(d["signalled_at"]) or _isnan(d["died"]):
            continue
        t = d["died"]
        # Depth-first over descendants born by t: later-born subtrees cannot be live at t.
        stack = [c for c in succ[name] if nodes[c]["born"] <= t]
        while stack:
            desc = stack.pop()
            e = nodes[desc]
            if e["live"] and e["live_at"] <= t and (_isnan(e["died"]) or e["died"] > t):
                return True
            stack.extend(c for c in succ[desc] if nodes[c]["born"] <= t)
    return False


def extinct(lineage: nx.DiGraph) -> bool:
    """Whether no replica was running at the end."""
    return all(not _isnan(d) for _, d in lineage.nodes(data="died"))


def offspring_counts(lineage: nx.DiGraph, complete_only: bool = False) -> dict[str, int]:
    """Children per replica; with ``complete_only``, only replicas that died (final counts)."""
    return {
        n: lineage.out_degree(n)
        for n, d in lineage.nodes(data="died")
        if not complete_only or not _isnan(d)
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def write_lineage_json(lineage: nx.DiGraph, path: str | Path) -> None:
    """Write node-link JSON (NaN written as null, keys sorted: byte-stable per seed)."""
    data = json_graph.node_link_data(lineage, edges="edges")
    data["graph"] = {k: _jsonable(v) for k, v in data["graph"].items()}
    data["nodes"] = [{k: _jsonable(v) for k, v in n.items()} for n in data["nodes"]]
    Path(path).write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


_TIMES = ("born", "live_at", "died", "signalled_at")


def check_lineage_data(data: Any, path: str | Path = "lineage.json") -> dict[str, Any]:
    """``data`` if it has the shape :func:`write_lineage_json` writes.

    Raises:
        ValueError: naming ``path`` and the first thing wrong with it.
    """

    def bad(why: str) -> ValueError:
        return ValueError(f"{path} is not a lineage written by replisim: {why}")

    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    nodes, edges = data.get("nodes"), data.get("edges", [])
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise bad("'nodes' and 'edges' must be lists")
    ids = set()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str | int):
            raise bad(f"node {i} is not an object with an 'id'")
        for key in (*_TIMES, "generation"):
            value = node.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise bad(f"node {node['id']!r}: {key} is {value!r}, not a number")
        ids.add(node["id"])
    for i, edge in enumerate(edges):
        if (
            not isinstance(edge, dict)
            or edge.get("source") not in ids
            or (edge.get("target") not in ids)
        ):
            raise bad(f"edge {i} does not join two of its nodes")
    return data


def read_lineage_json(path: str | Path) -> nx.DiGraph:
    """Read a lineage written by :func:`write_lineage_json` (null back to NaN).

    Raises:
        ValueError: the file is not JSON, or not a lineage (see :func:`check_lineage_data`).
        OSError: the file cannot be read.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    check_lineage_data(data, path)
    for node in data["nodes"]:
        for key in ("born", "live_at", "died", "signalled_at"):
            if node.get(key) is None:
                node[key] = NAN
    g = json_graph.node_link_graph(data, directed=True, edges="edges")
    return g


def write_graphml(lineage: nx.DiGraph, path: str | Path) -> None:
    """Write GraphML (for Gephi, yEd, Cytoscape)."""
    g = lineage.copy()
    g.graph = {k: v for k, v in g.graph.items() if isinstance(v, int | float | str | bool)}
    nx.write_graphml(g, str(path))
