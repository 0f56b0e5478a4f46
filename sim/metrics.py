"""Per-trial metrics: the row of a trial in the sweep table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import networkx as nx

from sim import lineage as lin

if TYPE_CHECKING:
    from sim.world import World

__all__ = ["METRICS", "trial_metrics"]

METRICS = (
    "replicas_total",
    "replicas_started",
    "peak_live",
    "live_at_end",
    "max_generation",
    "first_replica_s",
    "origin_died_s",
    "survived_shutdown",
    "extinct",
    "extinct_s",
    "offspring_mean",
    "end_s",
)


def trial_metrics(world: World, lineage: nx.DiGraph) -> dict[str, Any]:
    """Every metric of a finished trial, from its lineage and how it ended."""
    extinct = lin.extinct(lineage) and world.ended_by != "population-cap"
    offspring = lin.offspring_counts(lineage)
    end = world.env.now
    return {
        "replicas_total": lin.replicas_total(lineage),
        "replicas_started": lin.replicas_started(lineage),
        "peak_live": lin.peak_live(lineage),
        "live_at_end": lin.live_at_end(lineage),
        "max_generation": lin.max_generation(lineage),
        "first_replica_s": lin.first_replica_s(lineage),
        "origin_died_s": lin.origin_died_s(lineage),
        "survived_shutdown": lin.survived_shutdown(lineage),
        "extinct": extinct,
        "extinct_s": end if extinct else math.nan,
        "offspring_mean": sum(offspring.values()) / len(offspring) if offspring else 0.0,
        "end_s": end,
    }
