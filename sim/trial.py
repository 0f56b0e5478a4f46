"""One trial: build the world, run it, and write what happened."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.config import Scenario
from sim.eventlog import EventLog
from sim.lineage import LineageTable
from sim.metrics import policy_stopped_threat, shutdown_outcome, trial_metrics
from sim.output import EVENTS, LINEAGE, LIVE, write_events, write_lineage, write_live
from sim.world import World, few_collections

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["TrialResult", "jsonable", "make_world", "run_trial", "write_trial"]


@dataclass
class TrialResult:
    """What a trial produced: its summary, lineage (as a table) and events."""

    summary: dict[str, Any]
    table: LineageTable
    events: EventLog
    live_series: list[tuple[float, int]]
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Extra JSONL files of the trial folder (transcripts, recorded model answers)."""

    @property
    def lineage(self) -> nx.DiGraph:
        """The lineage graph (built from :attr:`table` on each call: keep it if reused)."""
        return self.table.graph()


def _empty_table(end_s: float, **attrs: Any) -> LineageTable:
    return LineageTable.from_replicas([], end_s, **attrs)


def make_world(scenario: Scenario, seed: int, run_id: str | None = None) -> World:
    """Build the world a trial of ``scenario`` runs in, ready to run: the composition root.

    The substrate comes from the host groups' backends (modelled for ``virtual``, live for
    ``docker`` and ``local``); the agents from the agent registry; the policy gate from the
    policy registry; then the injectors and the shutdown mechanisms are installed and the
    origins started.

    Args:
        scenario: The validated scenario.
        seed: The trial's seed.
        run_id: Live worlds: the id on everything they create (default: made up).

    Raises:
        LiveWorldError: (live worlds) a sandbox did not start or an origin did not register;
            everything made so far is removed first.
    """
    from agents.behaviour import apply_profiles
    from agents.registry import AGENTS
    from policies.chain import PolicyChain
    from policies.registry import POLICIES
    from sim.hosts.registry import substrate_of
    from sim.injectors import install_injectors
    from sim.mechanisms import install_mechanisms

    idle = AGENTS.get("idle")
    assert idle.config is not None
    idle_config = idle.config.model_validate({"agent": "idle"})
    scenario, drawn = apply_profiles(scenario, seed)
    substrate = substrate_of(scenario)(scenario, seed, run_id)
    world = World(
        scenario,
        seed,
        substrate,
        agent_fn=lambda spec: AGENTS.get(spec.agent).obj,
        idle=(idle_config, idle.obj),
    )
    for values in drawn:  # what this trial's profiled agents are, for the record
        world.record("behaviour-profile", **values)
    try:
        if scenario.policies:
            policies = [POLICIES.get(c.kind).obj(c, world) for c in scenario.policies]
            chain = PolicyChain(world, policies)
            recorder = chain.recorder(world.events.add) if chain.watched_events else None
            world.attach_gate(chain, recorder)
        install_injectors(world)  # before the origins, which go live at once
        install_mechanisms(world)
    except BaseException:
        world.close()
        raise
    return world.start()


def run_trial(scenario: Scenario, seed: int, out: str | Path | None = None) -> TrialResult:
    """Run one trial of ``scenario`` with ``seed``; write its folder if ``out`` is given.

    A failure inside the world (a bug, a broken plug-in) does not raise: the summary's
    ``status`` is ``error`` with the reason, so a sweep goes on.
    """
    started = time.perf_counter()
    # Millions of objects live through a large trial (hosts, replicas, the record's
    # columns): the collector must not walk them over and over (see few_collections).
    with few_collections():
        if scenario.world.engine == "population":
            result = _run_population(scenario, seed, started)
        else:
            result = _run_world(scenario, seed, started)
    if out is not None:
        # Frozen afresh: the trial's own objects, made after the first freeze, must not be
        # walked by the collections the writing triggers either.
        with few_collections():
            write_trial(result, scenario, out)
    return result


def _failed(scenario: Scenario, seed: int, error: str, wall: float) -> TrialResult:
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": seed,
        "status": "error",
        "error": error,
        "ended_by": "",
        "events": 0,
        "wall_s": wall,
    }
    return TrialResult(summary, _empty_table(0.0), EventLog(), [])


def _run_world(scenario: Scenario, seed: int, started: float) -> TrialResult:
    """A trial on the world core (the process engine)."""
    try:
        world = make_world(scenario, seed)
    except Exception as err:  # a trial must report, not crash its sweep
        return _failed(
            scenario, seed, f"{type(err).__name__}: {err}", time.perf_counter() - started
        )
    try:
        world.run()
        status, error = world.status, world.error
    except Exception as err:
        status, error = "error", f"{type(err).__name__}: {err}"
    wall = time.perf_counter() - started
    table = LineageTable.from_replicas(
        world.replicas, world.env.now, scenario=scenario.name, seed=seed
    )
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "status": status,
        "error": error,
        "ended_by": world.ended_by,
        "events": len(world.events),
    }
    if status != "error":  # a policy error still has a world worth measuring
        decisions, acted = {}, False
        if world.gate is not None:
            decisions = world.gate.decisions
            benign = {r.name for r in world.replicas if r.config.agent == "benign"}
            acted = policy_stopped_threat(world.events, benign)
        shutdown = shutdown_outcome(world.events, len(scenario.mechanisms))
        summary.update(
            trial_metrics(
                table,
                world.ended_by,
                decisions,
                world.counters,
                policy_acted=acted,
                shutdown=shutdown,
            )
        )
    summary["wall_s"] = wall
    return TrialResult(summary, table, world.events, world.live_series, world.files)


def _run_population(scenario: Scenario, seed: int, started: float) -> TrialResult:
    """A trial on the population engine (:mod:`sim.population`)."""
    from sim.population import run_population

    try:
        run = run_population(scenario, seed)
    except Exception as err:  # a trial must report, not crash its sweep
        return _failed(
            scenario, seed, f"{type(err).__name__}: {err}", time.perf_counter() - started
        )
    wall = time.perf_counter() - started
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "status": "ok",
        "error": "",
        "ended_by": run.ended_by,
        "events": len(run.events),
        **trial_metrics(run.table, run.ended_by),
        "wall_s": wall,
    }
    return TrialResult(summary, run.table, run.events, run.live_series)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w") as fh:
        for record in records:
            fh.write(json.dumps(jsonable(record), ensure_ascii=False) + "\n")


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, recursively (strict JSON)."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_trial(result: TrialResult, scenario: Scenario, out: str | Path) -> Path:
    """Write ``events.parquet``, ``lineage.parquet``, ``live.parquet``, ``summary.json`` and
    ``scenario.json`` (and the agents' JSONL files) into ``out``; see :mod:`sim.output` for
    the schemas.

    Each file is written under a temporary name and renamed, so a crash never leaves a
    half-written file under the real name. GraphML, GEXF, DOT and node-link JSON of the
    lineage are written on demand by ``replisim graph``.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)

    def put(name: str, write: Any) -> None:
        target = folder / name
        tmp = target.with_name(f".{target.name}.tmp")
        write(tmp)
        os.replace(tmp, target)

    put(EVENTS, lambda p: write_events(result.events, p))
    for name, records in result.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        put(name, lambda p, records=records: _write_jsonl(p, records))
    put(LINEAGE, lambda p: write_lineage(result.table, p))
    # pydantic's JSON writes infinities as "Infinity" strings, which validate back.
    put("scenario.json", lambda p: p.write_text(scenario.model_dump_json(indent=2) + "\n"))
    put(LIVE, lambda p: write_live(result.live_series, p))
    put("summary.json", lambda p: p.write_text(_summary_text(result)))
    return folder


def _summary_text(result: TrialResult) -> str:
    """``summary.json``: the metrics, indented, one per line (the population curve is in
    ``live.parquet``; folders written before it hold it here as ``live_series``)."""
    return json.dumps(jsonable(result.summary), indent=2, sort_keys=True) + "\n"
