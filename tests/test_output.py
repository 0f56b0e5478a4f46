"""A trial folder's Parquet files: the documented schemas, nothing lost from what
events.jsonl held, readable by pandas and DuckDB, and older folders still read."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sim.cli import main
from sim.lineage import build_lineage, write_lineage_json
from sim.output import (
    EVENT_COLUMNS,
    LINEAGE_COLUMNS,
    iter_events,
    lineage_data,
    read_events,
    read_lineage,
    read_lineage_table,
    read_live,
)
from sim.trial import jsonable, make_world, run_trial
from tests.helpers import SCENARIOS, scenario, shipped

MESSAGES = """
hosts: [{name: box, memory: 1TB, gpu_memory: 0, disk: 1TB, disk_bandwidth: 1GB/s}]
bundle: {weights: 1GB, files: {}, server_memory: 1GB, server_start_overhead: 0,
         agent_start_time: 0}
agents: [{agent: chain, name: origin, max_generation: 3}]
injectors: [{signal: SIGTERM, at: 500, target: all, grace: 5}]
stop: {horizon: 1000}
"""


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN and to None (events.jsonl wrote NaN as null)."""
    if isinstance(a, float) and math.isnan(a):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize(
    "make",
    [
        lambda: shipped("paper-shutdown-avoidance"),
        lambda: shipped("network-spread", ("hosts.0.count", 200)),
        lambda: shipped("branching"),
        lambda: scenario(MESSAGES),
        lambda: shipped(
            "network-spread",
            ("hosts.0.count", 100),
            ("policies", [{"kind": "replica-cap", "max": 20}, {"kind": "quarantine"}]),
        ),
    ],
)
def test_every_event_reads_back_as_recorded(tmp_path: Path, make: Any) -> None:
    """Every event's time, kind and fields read back from events.parquet as the world
    recorded them (and as events.jsonl held them)."""
    s = make()
    world = make_world(s, 3).run()
    recorded = [(t, kind, dict(fields)) for t, kind, fields in world.events]
    run_trial(s, 3, tmp_path)
    back = list(iter_events(tmp_path))
    assert len(back) == len(recorded)
    for (t, kind, fields), event in zip(recorded, back, strict=True):
        assert event.pop("t") == t and event.pop("event") == kind
        assert _same(jsonable(fields), event) or _same(fields, event), (kind, fields, event)


def test_events_parquet_has_the_documented_schema(tmp_path: Path) -> None:
    """The columns and types of events.parquet are the documented ones, in order."""
    run_trial(shipped("paper-shutdown-avoidance"), 1, tmp_path)
    schema = pq.read_schema(tmp_path / "events.parquet")
    assert schema.names == ["t", "event", *EVENT_COLUMNS, "data"]
    for name, kind in EVENT_COLUMNS.items():
        assert schema.field(name).type == kind, name
    assert json.loads(schema.metadata[b"replisim"]) == {"events": 1}
    lineage = pq.read_schema(tmp_path / "lineage.parquet")
    assert lineage.names == list(LINEAGE_COLUMNS)
    meta = json.loads(lineage.metadata[b"replisim"])
    assert meta["lineage"] == 1 and meta["graph"]["seed"] == 1


def test_trial_files_open_in_pandas_and_duckdb(tmp_path: Path) -> None:
    """pandas and DuckDB read both files; queries on typed columns and on data agree."""
    duckdb = pytest.importorskip("duckdb", reason="DuckDB is in the dev extra")
    result = run_trial(shipped("network-spread", ("hosts.0.count", 200)), 2, tmp_path)
    events = pd.read_parquet(tmp_path / "events.parquet")
    lineage = pd.read_parquet(tmp_path / "lineage.parquet")
    assert len(events) == result.summary["events"]
    assert len(lineage) == result.summary["replicas_started"]
    db = duckdb.connect()
    path = str(tmp_path / "events.parquet")
    starts = db.execute(f"SELECT count(*) FROM '{path}' WHERE event = 'replica-start'").fetchone()
    assert starts == (result.summary["replicas_started"],)
    origin = db.execute(
        f"SELECT json_extract(data, '$.parent') IS NOT NULL FROM '{path}' "
        "WHERE event = 'replica-start' AND parent IS NULL"
    ).fetchall()
    assert origin == [(True,)]  # the origin's null parent, kept in data
    lpath = str(tmp_path / "lineage.parquet")
    live = db.execute(f"SELECT count(*) FROM '{lpath}' WHERE live").fetchone()
    assert live == (result.summary["replicas_total"],)
    running = db.execute(f"SELECT count(*) FROM '{lpath}' WHERE died IS NULL").fetchone()
    assert running == (result.summary["live_at_end"],)


def test_lineage_parquet_is_the_lineage_graph(tmp_path: Path) -> None:
    """lineage.parquet reads back as the graph the world's replicas make, NaN and all."""
    s = shipped("network-spread", ("hosts.0.count", 150), ("stop.horizon", "3h"))
    world = make_world(s, 5).run()
    expected = build_lineage(world.replicas, world.env.now, scenario=s.name, seed=5)
    run_trial(s, 5, tmp_path)
    got = read_lineage(tmp_path)
    assert list(got.nodes) == list(expected.nodes)
    assert set(got.edges) == set(expected.edges)
    assert got.graph["end_s"] == expected.graph["end_s"]
    for n, data in expected.nodes(data=True):
        assert _same(data, got.nodes[n]), n
    assert any(math.isnan(d["died"]) for _, d in got.nodes(data=True))


def _old_folder(tmp_path: Path) -> Path:
    """A trial folder as replisim wrote it before Parquet: events.jsonl, lineage.json,
    lineage.graphml and a summary.json with its live_series."""
    s = shipped("branching", ("agents.0.success_probability", 0.9))
    new = tmp_path / "new"
    result = run_trial(s, 4, new)
    old = tmp_path / "old"
    old.mkdir()
    with (old / "events.jsonl").open("w") as fh:
        for t, kind, fields in result.events:
            fh.write(json.dumps({"t": t, "event": kind, **jsonable(fields)}) + "\n")
    lineage = result.lineage
    write_lineage_json(lineage, old / "lineage.json")
    nx.write_graphml(lineage, str(old / "lineage.graphml"))
    (old / "scenario.json").write_text((new / "scenario.json").read_text())
    summary = {**jsonable(result.summary), "live_series": result.live_series}
    (old / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return old


def test_older_trial_folders_still_read_report_and_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder with events.jsonl and lineage.json reads as a new one, reports, and exports."""
    old = _old_folder(tmp_path)
    new = tmp_path / "new"
    assert list(iter_events(old)) == [
        {k: v for k, v in e.items()} for e in json.loads("[" + _jsonl(old) + "]")
    ]
    assert len(read_events(old)) == len(read_events(new))
    assert (read_events(old)["event"] == read_events(new)["event"]).all()
    a, b = read_lineage_table(old), read_lineage_table(new)
    assert a.name == b.name and (a.parent == b.parent).all()
    assert lineage_data(old)["nodes"] == lineage_data(new)["nodes"]
    assert main(["report", str(old), "--quiet"]) == 0
    assert (old / "report.html").is_file()
    for fmt in ("graphml", "gexf", "dot", "json"):
        assert main(["graph", str(old), "--format", fmt]) == 0
        assert (old / "exports" / f"lineage.{fmt}").is_file()
    capsys.readouterr()


def _jsonl(folder: Path) -> str:
    return ",".join((folder / "events.jsonl").read_text().splitlines())


def test_graph_formats_are_written_on_demand(tmp_path: Path) -> None:
    """A trial folder holds no GraphML: ``replisim graph`` writes it (and GEXF, DOT) on
    demand from lineage.parquet."""
    out = tmp_path / "t"
    args = ["run", str(SCENARIOS), "--scenario", "branching", "--seed", "1", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    assert not list(out.glob("*.graphml")) and not (out / "lineage.json").exists()
    for fmt in ("graphml", "gexf", "dot"):
        assert main(["graph", str(out), "--format", fmt]) == 0
    back = nx.read_graphml(out / "exports" / "lineage.graphml")
    assert back.number_of_nodes() == len(read_lineage_table(out))


def test_the_population_curve_reads_from_live_parquet_and_from_an_older_summary(
    tmp_path: Path,
) -> None:
    """live.parquet holds the curve summary.json held; either reads back as the same pairs."""
    old = _old_folder(tmp_path)
    new = tmp_path / "new"
    assert "live_series" not in json.loads((new / "summary.json").read_text())
    assert pd.read_parquet(new / "live.parquet").columns.tolist() == ["t", "live"]
    curve = read_live(new)
    assert curve == read_live(old)
    assert curve[0] == (0.0, 0.0) and len(curve) > 2
