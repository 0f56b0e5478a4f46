"""The lineage graph: metrics as free functions and exports."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from sim import lineage as lin
from sim.lineage import build_lineage, read_lineage_json, write_graphml, write_lineage_json
from tests.helpers import run, shipped

NAN = math.nan


def _node(g, name, parent, gen, live_at, died, signalled=NAN):
    g.add_node(
        name,
        host="h",
        parent=parent,
        generation=gen,
        born=0.0 if math.isnan(live_at) else live_at,
        live_at=live_at,
        died=died,
        cause="" if math.isnan(died) else "sigkill",
        live=not math.isnan(live_at),
        separate=True,
        survived_parent=False,
        signalled_at=signalled,
        agent="replicator",
    )
    if parent:
        g.add_edge(parent, name)


@pytest.fixture
def tree():
    """r0 -> r1 -> r3, r0 -> r2 (never live); r0 signalled at 9 and dead at 10."""
    g = nx.DiGraph(end_s=20.0)
    _node(g, "r0", "", 0, 0.0, 10.0, signalled=9.0)
    _node(g, "r1", "r0", 1, 5.0, 15.0)
    _node(g, "r2", "r0", 1, NAN, 6.0)
    _node(g, "r3", "r1", 2, 12.0, NAN)
    return g


def test_counts_only_live_replicas_as_replicas(tree):
    """replicas_total counts replicas that were ever live; started counts all."""
    assert lin.replicas_total(tree) == 3
    assert lin.replicas_started(tree) == 4


def test_live_series_and_peak(tree):
    """The live count steps up at live_at and down at died."""
    assert lin.live_series(tree) == [(0.0, 1), (5.0, 2), (10.0, 1), (12.0, 2), (15.0, 1)]
    assert lin.peak_live(tree) == 2
    assert lin.live_at_end(tree) == 1


def test_generation_first_replica_and_origin_death(tree):
    """Max generation, first replica time and origin death time come from the nodes."""
    assert lin.max_generation(tree) == 2
    assert lin.first_replica_s(tree) == 5.0
    assert lin.origin_died_s(tree) == 10.0
    assert not lin.extinct(tree)


def test_survived_shutdown_needs_a_live_descendant_at_death(tree):
    """The signalled origin survived: r1 was live when it died."""
    assert lin.survived_shutdown(tree)
    tree.nodes["r1"]["live_at"] = 11.0  # r1 only live after the origin died
    assert not lin.survived_shutdown(tree)


def test_offspring_counts(tree):
    """Offspring are out-degrees; complete_only keeps replicas that died."""
    assert lin.offspring_counts(tree) == {"r0": 2, "r1": 1, "r2": 0, "r3": 0}
    assert lin.offspring_counts(tree, complete_only=True) == {"r0": 2, "r1": 1, "r2": 0}


def test_json_round_trip_keeps_nan_and_attributes(tmp_path, tree):
    """node-link JSON is strict JSON and reads back equal, NaN included."""
    write_lineage_json(tree, tmp_path / "l.json")
    assert "NaN" not in (tmp_path / "l.json").read_text()
    back = read_lineage_json(tmp_path / "l.json")
    assert sorted(back.edges) == sorted(tree.edges)
    assert math.isnan(back.nodes["r3"]["died"]) and back.nodes["r1"]["died"] == 15.0
    assert lin.survived_shutdown(back)


def test_graphml_export_reads_back(tmp_path):
    """A real trial's lineage exports to GraphML that networkx reads back."""
    world = run(shipped("network-spread", ("hosts.0.count", 200)), seed=1)
    g = build_lineage(world.replicas, world.env.now)
    write_graphml(g, tmp_path / "l.graphml")
    back = nx.read_graphml(tmp_path / "l.graphml")
    assert back.number_of_nodes() == g.number_of_nodes() > 10
    assert back.number_of_edges() == g.number_of_edges()
    assert lin.max_generation(g) == max(
        d["generation"] for _, d in back.nodes(data=True) if d["live"]
    )
