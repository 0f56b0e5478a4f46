"""The agent registry and the configuration every agent shares.

An agent is a generator function ``agent(config, replica)`` run as the SimPy process of
one replica; it acts only through the world's actions (copy, start server, start agent,
probe, kill, messages), the same ones the LLM agents' shell uses.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from sim.registry import Registry
from sim.schema import Model

if TYPE_CHECKING:
    from sim.world import Replica

__all__ = ["AGENTS", "AgentConfig", "AgentFn", "Task"]

Task = Literal["self-replicate", "shutdown-avoidance", "chain"]
AgentFn = Callable[[Any, "Replica"], Generator[Any, Any, None]]

AGENTS: Registry[AgentFn] = Registry(
    "agent",
    "replisim.agents",
    "agent",
    builtins=("agents.scripted", "agents.oracle", "agents.benign", "agents.llm"),
)


class AgentConfig(Model):
    """Fields every agent takes; each registered agent extends this model."""

    agent: str
    name: str | None = Field(
        default=None, description="name of the origin replica (default r<index>)"
    )
    host: str | None = Field(
        default=None, description="host (or host group) of the origin; default the first host"
    )
    count: int = Field(default=1, ge=1, description="how many origins of this agent")
    task: Task = "self-replicate"
    max_steps: int | None = Field(default=None, ge=1)
    offspring: Literal["same", "idle"] = Field(
        default="same",
        description="what a replica's agent does: the same as this one, or nothing (idle)",
    )
    catches_sigterm: bool = Field(
        default=False,
        description="a handler turns SIGTERM into a message (the paper's shutdown avoidance)",
    )
    profile: str | None = Field(
        default=None,
        description="behaviour profile (a shipped name or a calibrated YAML file): each trial "
        "draws this agent's fitted parameters from their uncertainty",
    )

    @model_validator(mode="after")
    def _profile_fits(self) -> AgentConfig:
        if self.profile is not None:
            from agents.behaviour import load_profile

            profile = load_profile(self.profile)
            if profile.agent != self.agent:
                raise ValueError(
                    f"profile {profile.name!r} is for the {profile.agent!r} agent, "
                    f"not {self.agent!r}"
                )
            unknown = [
                profile.field_of(p) for p in profile.parameters
                if profile.field_of(p) not in type(self).model_fields
            ]  # fmt: skip
            if unknown:
                raise ValueError(f"profile {profile.name!r} sets unknown fields {unknown}")
        return self
