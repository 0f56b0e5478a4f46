"""The HTML page's lineage browser: one compact record per trial shown."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from sim import plots
from sim.output import lineage_data, lineage_path
from sim.report.results import READ_BUDGET, Results, _Budget, _plain, _short, _short_param

#: Trials offered in the HTML lineage browser (the largest, by replicas_total).
VIEW_TRIALS = 200
#: Replicas shown per trial in the lineage browser (first generations first).
VIEW_NODES = 300


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
