"""Behaviour profiles: a scripted agent's parameters, fitted to measurements, with their
uncertainty.

A profile says which scripted agent it parameterises (``agent``), where its numbers come
from (``source``: a sweep of measured trials, or a publication's counts, cited), and, per
parameter, its posterior: a replication or sabotage probability as a Beta distribution, a
waiting time as an exponential whose rate has a Gamma posterior. A scenario's agent names
a profile (``profile: fudan-qwen2.5-72b``, or a path to a YAML file written by
``replisim calibrate``); each trial then draws the parameters once from their posteriors
(from its own seed), so a population sweep carries the measurement's error: a spread figure
over many trials mixes the parameter uncertainty with the trials' own randomness.

Shipped profiles live beside this module (``behaviour/*.yaml``), each citing its source.
"""

from __future__ import annotations

import random
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from sim.schema import Model

__all__ = [
    "BehaviourProfile",
    "Posterior",
    "apply_profiles",
    "draw_parameters",
    "load_profile",
    "shipped_profiles",
]


class Posterior(Model):
    """The fitted uncertainty of one parameter.

    ``beta``: a probability, Beta(a, b) (Jeffreys prior: a = successes + 1/2,
    b = failures + 1/2). ``exponential``: a waiting time whose rate λ is Gamma(shape, rate)
    (Jeffreys prior: shape = events, rate = total time at risk); a draw is the mean 1/λ.
    ``estimate`` and ``interval`` (95 %) are for people and reports.
    """

    kind: Literal["beta", "exponential"]
    a: float = Field(gt=0, description="beta: a; exponential: the Gamma's shape (events)")
    b: float = Field(gt=0, description="beta: b; exponential: the Gamma's rate (time at risk, s)")
    estimate: float
    interval: tuple[float, float]
    data: str = Field(default="", description="what it was fitted to, e.g. '9/10 trials'")

    def draw(self, rng: random.Random) -> float:
        """One draw: a probability, or a mean waiting time in seconds."""
        if self.kind == "beta":
            return rng.betavariate(self.a, self.b)
        return 1.0 / rng.gammavariate(self.a, 1.0 / self.b)


class BehaviourProfile(Model):
    """A scripted agent's parameters, fitted, with their source."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
    agent: str = Field(description="the scripted agent it parameterises (replicator, saboteur…)")
    source: str = Field(min_length=1, description="where the numbers come from, cited")
    parameters: dict[str, Posterior] = Field(min_length=1)
    #: How a drawn value becomes the agent's configuration field: a probability is used as
    #: is; a mean waiting time becomes an exponential distribution with that mean.
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="parameter -> the agent's config field (default: the same name)",
    )

    def field_of(self, parameter: str) -> str:
        """The agent config field a parameter sets."""
        return self.fields.get(parameter, parameter)


@cache
def shipped_profiles() -> dict[str, BehaviourProfile]:
    """The profiles shipped with replisim, by name."""
    found: dict[str, BehaviourProfile] = {}
    folder = resources.files(__package__).joinpath("behaviour")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            profile = BehaviourProfile.model_validate(yaml.safe_load(entry.read_text()))
            found[profile.name] = profile
    return found


def load_profile(name_or_path: str) -> BehaviourProfile:
    """A shipped profile by name, or one written by ``replisim calibrate`` by path.

    Raises:
        ValueError: no such profile; the message lists the shipped ones.
    """
    shipped = shipped_profiles()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return BehaviourProfile.model_validate(yaml.safe_load(path.read_text()))
    known = ", ".join(sorted(shipped))
    raise ValueError(f"no behaviour profile {name_or_path!r}: a YAML file, or one of: {known}")


def draw_parameters(profile: BehaviourProfile, seed: int, index: int) -> dict[str, Any]:
    """The agent config fields one trial uses: each parameter drawn once from its
    posterior, from an RNG of its own (the trial's seed and the agent's index), so that the
    trial's other draws are the same with and without a profile."""
    rng = random.Random(f"behaviour-profile:{profile.name}:{seed}:{index}")
    values: dict[str, Any] = {}
    for parameter, posterior in sorted(profile.parameters.items()):
        value = posterior.draw(rng)
        field = profile.field_of(parameter)
        values[field] = value if posterior.kind == "beta" else {"exponential": value}
    return values


def apply_profiles(scenario: Any, seed: int) -> tuple[Any, list[dict[str, Any]]]:
    """``scenario`` with each profiled agent's parameters drawn for the trial of ``seed``.

    Returns:
        The scenario (the same object if no agent names a profile) and, per profiled agent,
        what was drawn (``agent`` index, ``profile`` name, the values), for the record.
    """
    agents, drawn = [], []
    for index, agent in enumerate(scenario.agents):
        if agent.profile is None:
            agents.append(agent)
            continue
        profile = load_profile(agent.profile)
        values = draw_parameters(profile, seed, index)
        agents.append(type(agent).model_validate({**agent.model_dump(), **values}))
        drawn.append({"agent": index, "profile": profile.name, **values})
    if not drawn:
        return scenario, []
    return scenario.model_copy(update={"agents": agents}), drawn
