"""The policy registry and the configuration every guardrail policy shares."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sim.quantity import Duration, Probability, qfield
from sim.registry import Registry
from sim.schema import Model

__all__ = ["POLICIES", "PolicyConfig"]

POLICIES: Registry[Any] = Registry(
    "policy", "replisim.policies", "kind", builtins=("policies.builtin",)
)


class PolicyConfig(Model):
    """Fields every policy takes; each registered policy extends this model."""

    kind: str
    name: str | None = Field(default=None, description="label in events and reports")
    detect_probability: Probability = qfield(
        1.0, description="chance the policy notices a given action or event"
    )
    latency: Duration = qfield(0, description="delay before a kill, quarantine or alert acts")
