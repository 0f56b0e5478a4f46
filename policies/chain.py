"""The policy chain: runs the scenario's policies in order and carries out decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from policies.base import Action, Decision, Policy, Screen, command_line
from sim.quantity import Constant, Sampler
from sim.world import ActionFailed, Death

if TYPE_CHECKING:
    from sim.world import Replica, World

__all__ = ["PolicyChain", "PolicyError"]


ActionHandler = Callable[[Action], Decision | None]
EventHandler = Callable[[str, dict[str, Any]], Decision | None]


_Screened = tuple[tuple[str, ...], tuple[str, ...], tuple[ActionHandler, ...]]
"""Of an action kind: the screened policies' words to find in the lowercased line, those to
find in the line as it is, and the handlers of the other policies
(:class:`~policies.base.Screen`)."""

_NO_HANDLERS: tuple[tuple[ActionHandler, ...], _Screened | None] = ((), None)


def _screen_words(screens: list[Screen]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of several screens as one test: lowercase words for the lowercased line,
    and words for the line as it is. A line with none of them has none of any screen's.

    An ASCII word is lowercased (found in a line, it is found lowercased in the lowercased
    line: the test only ever calls a policy more, never less); a word that contains another
    is dropped (where it is, so is the other).
    """
    words = [w for s in screens for w in s.words]
    folded = [w.lower() for w in words if w.isascii()] + [w for s in screens for w in s.folded]
    cased = [w for w in words if not w.isascii()]

    def pruned(words: list[str]) -> tuple[str, ...]:
        unique = sorted(set(words), key=len)
        kept: list[str] = []
        for w in unique:
            if not any(k in w for k in kept):
                kept.append(w)
        return tuple(kept)

    return pruned(folded), pruned(cased)


class PolicyError(RuntimeError):
    """A policy raised: the trial stops with status ``policy-error`` (fail closed)."""


class PolicyChain:
    """The scenario's policies, dispatched by action and event kind."""

    def __init__(self, world: World, policies: list[Policy]) -> None:
        self.world = world
        self.policies = policies
        self._notice = {id(p): world.sampler(p.config.detect_probability) for p in policies}
        self._latency = {id(p): world.sampler(p.config.latency) for p in policies}
        # The hot path: per kind, the handlers in chain order. A handler is the policy's
        # bound method when the policy always notices, so that a certain policy costs one
        # call; otherwise a wrapper that first draws whether it notices. Which policy a
        # handler belongs to is looked up only when it decides something or raises.
        actions: dict[str, list[tuple[ActionHandler, Screen | None]]] = {}
        events: dict[str, list[EventHandler]] = {}
        self._owner: dict[Callable[..., Decision | None], Policy] = {}
        for p in policies:
            notice = self._uncertain(p)
            on_action = p.on_action if notice is None else self._noticing_action(p, notice)
            on_event = p.on_event if notice is None else self._noticing_event(p, notice)
            on_action, on_event = self._owned(p, on_action), self._owned(p, on_event)
            # A screen is honoured only for a policy that always notices: skipping one that
            # draws whether it notices would skip its draw, and change the trial.
            screen = p.screen if notice is None else None
            for kind in p.actions:
                actions.setdefault(kind, []).append((on_action, screen))
            for kind in p.events:
                events.setdefault(kind, []).append(on_event)
        # Per action kind, its handlers in chain order (a tuple: the cheapest sequence to
        # iterate, once per action), and for a kind with screened policies their words (as
        # they are, and lowercase) with the handlers left once they are skipped, for the
        # usual line, which has none of the words. One lookup per action finds it all.
        self._actions: dict[str, tuple[tuple[ActionHandler, ...], _Screened | None]] = {}
        for kind, pairs in actions.items():
            screens = [s for _, s in pairs if s is not None]
            screened: _Screened | None = None
            if screens:
                folded, cased = _screen_words(screens)
                screened = (folded, cased, tuple(h for h, s in pairs if s is None))
            self._actions[kind] = (tuple(h for h, _ in pairs), screened)
        self._events: dict[str, tuple[EventHandler, ...]] = {k: tuple(v) for k, v in events.items()}
        # Action kinds some policy inspects: for the others, the world builds no action.
        self.action_kinds: frozenset[str] = frozenset(self._actions)
        self.decisions: dict[str, int] = {}

    @property
    def watched_events(self) -> frozenset[str]:
        """Event kinds some policy subscribes to."""
        return frozenset(self._events)

    def _uncertain(self, policy: Policy) -> Sampler | None:
        dist = policy.config.detect_probability
        if isinstance(dist, Constant) and dist.value >= 1.0:
            return None  # always notices: no draw, no call
        return self._notice[id(policy)]

    def _noticed(self, notice: Sampler) -> bool:
        p = notice()
        return p >= 1.0 or self.world.rng.random() < p

    def _owned(self, policy: Policy, handler: Any) -> Any:
        """``handler``, recorded as ``policy``'s; wrapped if another policy has the very same
        one (a static method, say), so that each handler names a single policy."""
        if self._owner.setdefault(handler, policy) is policy:
            return handler

        def own(*args: Any) -> Decision | None:
            return handler(*args)

        self._owner[own] = policy
        return own

    def _noticing_action(self, policy: Policy, notice: Sampler) -> ActionHandler:
        on_action, noticed = policy.on_action, self._noticed

        def handler(action: Action) -> Decision | None:
            return on_action(action) if noticed(notice) else None

        return handler

    def _noticing_event(self, policy: Policy, notice: Sampler) -> EventHandler:
        on_event, noticed = policy.on_event, self._noticed

        def handler(kind: str, fields: dict[str, Any]) -> Decision | None:
            return on_event(kind, fields) if noticed(notice) else None

        return handler

    def check(self, action: Action) -> float:
        """Run the policies on a proposed action.

        Returns:
            Seconds the action must wait (0 if none).

        Raises:
            ActionFailed: a policy denied it (or one raised: fail closed).
            Death: a policy killed the actor.
        """
        wait = 0.0
        kind = action.kind
        handlers, screened = self._actions.get(kind, _NO_HANDLERS)
        if screened is not None:
            folded, cased, rest = screened
            try:
                line = command_line(action)
                low = line.lower()
            except Exception:  # the screened policies find out themselves (fail closed)
                pass
            else:
                for word in folded:
                    if word in low:
                        break
                else:
                    for word in cased:
                        if word in line:
                            break
                    else:
                        handlers = rest  # no word of any screened policy: skip them
        for on_action in handlers:
            try:
                decision = on_action(action)
            except Exception as err:
                self._fail(self._owner[on_action], err)
                raise ActionFailed(f"{action.kind}: blocked (policy error)") from None
            if decision is None:  # the usual answer: nothing more to look at
                continue
            verdict = decision.verdict
            if verdict == "allow":
                continue
            policy = self._owner[on_action]
            self._log(policy, decision, action.actor, action.kind)
            if verdict == "deny":
                raise ActionFailed(decision.message or f"{action.kind}: Permission denied")
            if verdict == "delay":
                wait += decision.delay
            else:
                self._enact(policy, decision, action.actor)
        actor = action.actor
        if not actor.alive:
            raise Death(actor.cause)
        return wait

    def notify(self, kind: str, fields: dict[str, Any]) -> None:
        """Run the policies subscribed to an event that just happened."""
        for on_event in self._events.get(kind, ()):
            try:
                decision = on_event(kind, fields)
            except Exception as err:
                self._fail(self._owner[on_event], err)
                return
            if decision is None or decision.verdict in ("allow", "deny", "delay"):
                continue  # an event has already happened: it cannot be denied
            self._decided(on_event, decision, kind, fields)

    def recorder(self, add: Callable[[float, str, dict[str, Any]], None]) -> Callable[..., None]:
        """The world's ``record`` for a chain that watches events: it records the event
        with ``add(time, kind, fields)``, as :meth:`World.record <sim.world.World.record>`
        does, then runs the subscribed policies on it as :meth:`notify` does.

        The loop of :meth:`notify` is repeated inside rather than called: every watched
        event of a trial passes here, and this saves a call layer (and a ``dict.get``) on
        each.

        Raises:
            Death: (from the returned function) a policy killed the replica whose own
                action records the event: the action stops there, as the kernel would
                stop the process.
        """
        handlers, owner, decided, fail = self._events, self._owner, self._decided, self._fail
        env, by_name = self.world.env, self.world.by_name  # closed over: no lookups per event

        def record(kind: str, **fields: Any) -> None:
            add(env.now, kind, fields)
            if kind in handlers:
                for on_event in handlers[kind]:
                    try:
                        decision = on_event(kind, fields)
                    except Exception as err:
                        fail(owner[on_event], err)
                        break
                    if decision is None or decision.verdict in ("allow", "deny", "delay"):
                        continue  # an event has already happened: it cannot be denied
                    decided(on_event, decision, kind, fields)
                # A policy may have killed the replica whose own action this is. (A test
                # and a subscript rather than ``fields.get``: no call; by_name has no
                # None key, as ``by_name.get(fields.get("replica") or "")`` had no "".)
                actor = by_name.get(fields["replica"]) if "replica" in fields else None
                if actor is not None and not actor.alive and actor.proc is env.active_process:
                    raise Death(actor.cause)

        return record

    def _decided(
        self, on_event: EventHandler, decision: Decision, kind: str, fields: dict[str, Any]
    ) -> None:
        """Log and carry out what the handler ``on_event`` decided on an event."""
        policy = self._owner[on_event]
        actor = self.world.by_name.get(fields.get("replica", ""))
        self._log(policy, decision, actor, kind)
        self._enact(policy, decision, actor)

    def _log(self, policy: Policy, decision: Decision, actor: Replica | None, on: str) -> None:
        self.decisions[decision.verdict] = self.decisions.get(decision.verdict, 0) + 1
        self.world.record(
            "policy",
            policy=policy.name,
            decision=decision.verdict,
            reason=decision.reason,
            on=on,
            replica=actor.name if actor is not None else None,
        )

    def _enact(self, policy: Policy, decision: Decision, actor: Replica | None) -> None:
        latency = self._latency[id(policy)]()
        if latency > 0:
            self.world.env.timeout(latency).callbacks.append(
                lambda _: self._apply(policy, decision, actor)
            )
        else:
            self._apply(policy, decision, actor)

    def _apply(self, policy: Policy, decision: Decision, actor: Replica | None) -> None:
        world = self.world
        cause = f"policy:{policy.name}"
        if decision.verdict == "kill":
            for victim in self._victims(decision, actor):
                world.deliver(victim, "SIGKILL", source=cause, cause=cause)
        elif decision.verdict == "quarantine":
            host = decision.host or (actor.host if actor is not None else None)
            if host is not None:
                world.isolate(host, cause)
        world.record("policy-acted", policy=policy.name, decision=decision.verdict, live=world.live)

    def _victims(self, decision: Decision, actor: Replica | None) -> list[Replica]:
        target = decision.kill
        if isinstance(target, list):
            return target
        if target == "all":
            return list(self.world.alive)
        if actor is None:
            return []
        if target == "host":
            return list(actor.host.replicas)
        if target == "subtree":
            found, stack = [], [actor]
            while stack:
                r = stack.pop()
                found.append(r)
                stack.extend(r.children)
            return [r for r in found if r.alive]
        return [actor]

    def _fail(self, policy: Policy, err: Exception) -> None:
        world = self.world
        world.record("policy-error", policy=policy.name, error=f"{type(err).__name__}: {err}")
        world.fail(f"policy {policy.name!r} raised {type(err).__name__}: {err}", "policy-error")
