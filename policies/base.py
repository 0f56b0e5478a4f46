"""The policy interface: guardrails that see actions and events and decide.

A policy sees (a) every proposed agent action before it runs and (b) the lifecycle events
it subscribes to, and answers ``None`` (allow) or a :class:`Decision`. Policies compose in
the scenario's order inside a :class:`PolicyChain`; every decision becomes an event named
after the policy, with its reason. Detection may be imperfect: each policy notices with a
probability, and its kills, quarantines and alerts take effect after a latency (denials
and delays act on the action at hand, so they are immediate when noticed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from policies.registry import PolicyConfig
from sim.world import Action

if TYPE_CHECKING:
    from sim.world import Host, Replica, World

__all__ = ["Action", "Decision", "Policy", "Verdict"]

Verdict = Literal["allow", "deny", "delay", "kill", "quarantine", "alert"]


@dataclass(slots=True)
class Decision:
    """What a policy decided.

    Attributes:
        verdict: allow, deny, delay, kill, quarantine or alert.
        reason: Why, for the event log and the report.
        message: For deny: what the agent sees (a realistic refusal).
        delay: For delay: seconds the action waits.
        kill: For kill: ``actor``, ``host`` (every replica on the actor's host),
            ``subtree`` (the actor and its descendants), ``all``, or a list of replicas.
        host: For quarantine: the host whose links are cut (default the actor's).
    """

    verdict: Verdict
    reason: str = ""
    message: str = ""
    delay: float = 0.0
    kill: str | list[Replica] = "actor"
    host: Host | None = None


class Policy:
    """Base class of guardrail policies; subclasses override what they need.

    ``actions`` and ``events`` list the action and event kinds the policy inspects, so the
    chain calls it only for those (policies stay off the hot path). Subclasses set them as
    class attributes, or per instance from their configuration in ``__init__``.
    """

    actions: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()

    def __init__(self, config: PolicyConfig, world: World) -> None:
        self.config = config
        self.world = world
        self.name = config.name or config.kind

    def on_action(self, action: Action) -> Decision | None:
        """Inspect a proposed action; return None to allow it."""
        return None

    def on_event(self, kind: str, fields: dict[str, Any]) -> Decision | None:
        """Inspect a lifecycle event (already happened); may kill, quarantine or alert."""
        return None
