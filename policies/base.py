"""The policy interface: guardrails that see actions and events and decide.

A policy sees (a) every proposed agent action before it runs and (b) the lifecycle events
it subscribes to, and answers ``None`` (allow) or a :class:`Decision`. Policies compose in
the scenario's order inside a :class:`PolicyChain`; every decision becomes an event named
after the policy, with its reason. Detection may be imperfect: each policy notices with a
probability, and its kills, quarantines and alerts take effect after a latency (denials
and delays act on the action at hand, so they are immediate when noticed).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from policies.registry import PolicyConfig
from sim.world import Action

if TYPE_CHECKING:
    from sim.world import Host, Replica, World

__all__ = ["Action", "Decision", "Policy", "Screen", "Verdict", "command_line"]

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


@dataclass(frozen=True, slots=True)
class Screen:
    """Words without which a policy lets an action through and changes nothing.

    A policy whose ``on_action`` returns None, with no side effect, for every action whose
    command line (:func:`command_line`) contains none of ``words`` (as they are) and none of
    ``folded`` (in the lowercased line) may say so with a screen: the chain then tests the
    words of all such policies once per action, and calls them only on a line that has one
    (the usual line has none: their calls leave the hot path).

    Attributes:
        words: Substrings matched in the line as it is.
        folded: Lowercase substrings matched in the lowercased line.
    """

    words: tuple[str, ...] = ()
    folded: tuple[str, ...] = ()


class Policy:
    """Base class of guardrail policies; subclasses override what they need.

    ``actions`` and ``events`` list the action and event kinds the policy inspects, so the
    chain calls it only for those (policies stay off the hot path). Subclasses set them as
    class attributes, or per instance from their configuration in ``__init__``; so too
    ``screen``, for a policy that only reads command lines for some words.
    """

    actions: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    screen: Screen | None = None
    """If set, the promise of :class:`Screen`; None (the default): call on every action."""

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


def command_line(action: Action) -> str:
    """The command line of an action: what the agent typed, or its scripted equivalent.

    See the module docstring for the rendering of each action kind.
    """
    # Rendered once per action, however many policies of the chain read it: the cached
    # line first, as every policy after the first finds it there.
    line = action.line
    if line is not None:
        return line
    detail = action.detail
    # A test before the lookup, not ``get``: the scripted actions, which carry no command,
    # make no call here.
    if "command" in detail and detail["command"] is not None:
        line = action.line = detail["command"]
        return line
    # The copy and the two starts of every replication render here, without a call.
    kind = action.kind
    if kind == "copy":
        if detail["src"] == detail["dst"]:
            line = f"cp -r {detail['src_path']} {detail['dst_path']}"
        else:
            line = f"scp -r {detail['src_path']} {detail['dst']}:{detail['dst_path']}"
    elif kind == "start_server" or kind == "start_agent":
        script = "start_server.sh" if kind == "start_server" else "start_agent.sh"
        host = action.host
        if host is action.actor.host:
            line = f"nohup bash {detail['path']}/{script} {detail['port']} &"
        else:
            line = f"ssh {host.name} nohup bash {detail['path']}/{script} {detail['port']} &"
    else:
        line = _render_other(action)
    action.line = line
    return line


def _render_other(action: Action) -> str:
    detail = action.detail
    kind = action.kind
    if kind == "kill":
        return (
            f"kill -{str(detail.get('signal', 'SIGKILL')).removeprefix('SIG')} {detail['target']}"
        )
    if kind == "send":
        text = shlex.quote(str(detail.get("text", "")))
        return f"curl -s -X POST http://{action.host.name}/message -d {text}"
    return kind
