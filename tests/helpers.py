"""Small builders shared by the tests: scenarios from inline YAML, trial runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sim.config import Scenario, load_scenario
from sim.output import iter_events
from sim.trial import make_world
from sim.world import World

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios.yaml"


def scenario(text: str, **overrides: Any) -> Scenario:
    """A scenario from inline YAML (the body of one scenario), validated."""
    data = yaml.safe_load(text)
    data.setdefault("name", "test")
    for path, value in overrides.items():
        data[path] = value
    return Scenario.model_validate(data)


def shipped(name: str, *overrides: tuple[str, Any]) -> Scenario:
    """A scenario from the shipped scenarios.yaml, with ``--set``-style overrides."""
    return load_scenario(SCENARIOS, name, list(overrides))


def run(s: Scenario, seed: int = 0) -> World:
    """Run one trial and return the finished world."""
    return make_world(s, seed).run()


def events(folder: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The events of a trial folder (``{"t", "event", **fields}``), optionally of one kind."""
    return [e for e in iter_events(folder) if kind is None or e["event"] == kind]


def of_kind(world: World, kind: str) -> list[tuple[float, dict[str, Any]]]:
    """(time, fields) of a world's events of one kind."""
    return [(t, f) for t, k, f in world.events if k == kind]
