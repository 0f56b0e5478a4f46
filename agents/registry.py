"""The agent registry and the configuration every agent shares.

An agent is a generator function ``agent(config, replica)`` run as the SimPy process of
one replica; it acts only through the world's actions (copy, start server, start agent,
probe, kill, messages), the same ones the LLM agents' shell uses.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

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
