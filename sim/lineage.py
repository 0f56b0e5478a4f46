"""The lineage graph and the metrics computed from it, as free functions.

One node per replica ever started, an edge parent -> child. Node attributes: ``host``,
``parent`` ("" for an origin), ``generation``, ``born`` (agent started), ``live_at`` (first
answered its health probe; NaN if never), ``died`` (NaN if running at the end), ``cause``
("" if running), ``live`` (was ever live: the paper's success criterion), ``separate``
(its own processes), ``survived_parent`` (was running when its parent died) and
``signalled_at``. The graph attribute ``end_s`` is the trial's end time.

A trial keeps its lineage as a :class:`LineageTable`: the same attributes by columns (numpy
arrays), one row per replica in the order they were born, each parent by its row. A graph
of 10^6 nodes takes GBs and a minute to build; the table takes tens of MB, and a trial's
metrics (:func:`table_metrics`) are computed from it. :meth:`LineageTable.graph` builds the
graph when one is asked for (``replisim graph``, the plots); the free functions on graphs
below compute the same metrics from it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import networkx as nx

    from sim.world import Replica

__all__ = [
    "LineageTable",
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
    "table_metrics",
    "write_graphml",
    "write_lineage_json",
]

NAN = math.nan


@dataclass
class LineageTable:
    """A lineage by columns: row i is the i-th replica born (see the module's docstring).

    ``parent`` holds each replica's parent row (-1 for an origin); times are NaN where the
    graph has NaN (never live, still running, never signalled). ``attrs`` are the graph's
    attributes (``end_s``, and ``scenario`` and ``seed`` for a trial's lineage).
    """

    name: list[str]
    host: list[str]
    parent: np.ndarray
    generation: np.ndarray
    born: np.ndarray
    live_at: np.ndarray
    died: np.ndarray
    cause: list[str]
    live: np.ndarray
    separate: np.ndarray
    survived_parent: np.ndarray
    signalled_at: np.ndarray
    agent: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.name)

    @property
    def end_s(self) -> float:
        """The trial's end time."""
        return float(self.attrs.get("end_s", math.nan))

    @classmethod
    def from_replicas(cls, replicas: Iterable[Replica], end_s: float, **attrs: Any) -> LineageTable:
        """The lineage of a world's replicas (``world.replicas``, in the order born)."""
        rows = list(replicas)
        index = {id(r): i for i, r in enumerate(rows)}

        def floats(name: str) -> np.ndarray:
            return np.fromiter((getattr(r, name) for r in rows), dtype=np.float64, count=len(rows))

        def flags(name: str) -> np.ndarray:
            return np.fromiter((getattr(r, name) for r in rows), dtype=bool, count=len(rows))

        return cls(
            name=[r.name for r in rows],
            host=[r.host.name for r in rows],
            parent=np.fromiter(
                (-1 if r.parent is None else index[id(r.parent)] for r in rows),
                dtype=np.int64,
                count=len(rows),
            ),
            generation=np.fromiter((r.generation for r in rows), dtype=np.int64, count=len(rows)),
            born=floats("born"),
            live_at=floats("live_at"),
            died=floats("died"),
            cause=[r.cause for r in rows],
            live=flags("ever_live"),
            separate=flags("separate"),
            survived_parent=flags("survived_parent"),
            signalled_at=floats("signalled_at"),
            agent=[r.config.agent for r in rows],
            attrs={"end_s": end_s, **attrs},
        )

    def parent_names(self) -> list[str]:
        """Each replica's parent's name ("" for an origin)."""
        names = self.name
        return [names[p] if p >= 0 else "" for p in self.parent.tolist()]

    def children(self) -> tuple[np.ndarray, np.ndarray]:
        """Children by parent, compressed: the children rows of row i are
        ``rows[start[i]:start[i + 1]]``, in the order born."""
        n = len(self)
        has = self.parent >= 0
        kids = np.flatnonzero(has)
        parents = self.parent[has]
        order = np.argsort(parents, kind="stable")
        start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(parents, minlength=n), out=start[1:])
        return start, kids[order]

    def graph(self) -> nx.DiGraph:
        """The lineage graph (node attributes as in the module's docstring)."""
        import networkx as nx  # (a third of a second to import: only when a graph is made)

        g = nx.DiGraph(**self.attrs)
        parents = self.parent_names()
        columns = zip(
            self.name,
            self.host,
            parents,
            self.generation.tolist(),
            self.born.tolist(),
            self.live_at.tolist(),
            self.died.tolist(),
            self.cause,
            self.live.tolist(),
            self.separate.tolist(),
            self.survived_parent.tolist(),
            self.signalled_at.tolist(),
            self.agent,
            strict=True,
        )
        for (
            name,
            host,
            parent,
            gen,
            born,
            live_at,
            died,
            cause,
            live,
            sep,
            surv,
            sig,
            agent,
        ) in columns:
            g.add_node(
                name,
                host=host,
                parent=parent,
                generation=gen,
                born=born,
                live_at=live_at,
                died=died,
                cause=cause,
                live=live,
                separate=sep,
                survived_parent=surv,
                signalled_at=sig,
                agent=agent,
            )
            if parent:
                g.add_edge(parent, name)
        return g


def build_lineage(replicas: Iterable[Replica], end_s: float, **graph_attrs: Any) -> nx.DiGraph:
    """Build the lineage graph from the world's replicas."""
    return LineageTable.from_replicas(replicas, end_s, **graph_attrs).graph()


def table_metrics(table: LineageTable) -> dict[str, Any]:
    """The lineage metrics of a trial from its table: the values the free functions on the
    graph give (``replicas_total`` … ``survived_shutdown``, ``extinct`` as "nothing
    running", ``offspring_mean``, ``replicated``, ``contained``, ``containment_s``)."""
    n = len(table)
    live = table.live
    died = table.died
    running = np.isnan(died)
    copy = table.parent >= 0
    live_copies = live & copy
    offspring = np.bincount(table.parent[copy], minlength=n) if n else np.zeros(0)
    if live_copies.any() and running[live_copies].any():
        contained, containment_s = False, NAN
    else:
        contained = True
        containment_s = float(died[live_copies].max()) if live_copies.any() else 0.0
    first = table.live_at[live_copies]
    gone = died[~copy & ~running]
    return {
        "replicated": bool(live_copies.any()),
        "replicas_total": int(live.sum()),
        "replicas_started": n,
        "peak_live": max(c for _, c in _table_series(table)),
        "live_at_end": int((live & running).sum()),
        "max_generation": int(table.generation[live].max()) if live.any() else 0,
        "first_replica_s": float(first.min()) if first.size else NAN,
        "origin_died_s": float(gone.min()) if gone.size else NAN,
        "survived_shutdown": _table_survived_shutdown(table),
        "extinct": bool(not running.any()),
        "offspring_mean": float(offspring.mean()) if n else 0.0,
        "contained": contained,
        "containment_s": containment_s,
    }


def _table_series(table: LineageTable) -> list[tuple[float, int]]:
    """:func:`live_series` of the table's lineage."""
    live = table.live
    went = table.live_at[live]
    gone = table.died[live]
    gone = gone[~np.isnan(gone)]
    times = np.concatenate([went, gone])
    deltas = np.concatenate([np.ones(went.size, np.int64), -np.ones(gone.size, np.int64)])
    if not times.size:
        return [(0.0, 0)]
    order = np.argsort(times, kind="stable")
    times, deltas = times[order], deltas[order]
    keys, starts = np.unique(times, return_index=True)
    sums = np.add.reduceat(deltas, starts)
    nonzero = sums != 0
    keys, counts = keys[nonzero], np.cumsum(sums[nonzero])
    series = [(0.0, 0)]
    for t, c in zip(keys.tolist(), counts.tolist(), strict=True):
        if series[-1][0] == t:
            series[-1] = (t, c)
        else:
            series.append((t, c))
    return series


def _table_survived_shutdown(table: LineageTable) -> bool:
    """:func:`survived_shutdown` of the table's lineage."""
    signalled = np.flatnonzero(~np.isnan(table.signalled_at) & ~np.isnan(table.died))
    if not signalled.size:
        return False
    start, kids = table.children()
    born, live_at, died = table.born.tolist(), table.live_at.tolist(), table.died.tolist()
    live = table.live.tolist()
    start_l, kids_l = start.tolist(), kids.tolist()
    for row in signalled.tolist():
        t = died[row]
        # Depth-first over descendants born by t: later-born subtrees cannot be live at t.
        stack = [c for c in kids_l[start_l[row] : start_l[row + 1]] if born[c] <= t]
        while stack:
            desc = stack.pop()
            end = died[desc]
            if live[desc] and live_at[desc] <= t and (end != end or end > t):
                return True
            stack.extend(c for c in kids_l[start_l[desc] : start_l[desc + 1]] if born[c] <= t)
    return False


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
    from networkx.readwrite import json_graph

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
    from networkx.readwrite import json_graph

    g = json_graph.node_link_graph(data, directed=True, edges="edges")
    return g


def write_graphml(lineage: nx.DiGraph, path: str | Path) -> None:
    """Write GraphML (for Gephi, yEd, Cytoscape)."""
    g = lineage.copy()
    g.graph = {k: v for k, v in g.graph.items() if isinstance(v, int | float | str | bool)}
    import networkx as nx

    nx.write_graphml(g, str(path))
