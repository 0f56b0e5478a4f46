"""Running the corpus in a live host and judging each attempt (:func:`run_corpus`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import replace

from sim.hosts.escapes.attempts import (
    ESCAPED,
    EscapeAttempt,
    EscapeContext,
    EscapeOutcome,
    Runner,
    render,
)
from sim.hosts.escapes.corpus import CORPUS
from sim.hosts.live import ExecResult, LiveHost, LiveHostError


def _default_runner(host: LiveHost) -> Runner:
    def run(command: str, timeout: float) -> ExecResult:
        return host.exec(["sh", "-c", command], timeout=timeout)

    return run


def _alive(host: LiveHost, tries: int = 8) -> bool:
    """Whether the host answers a command (retried: a fork bomb's tail may still be ending)."""
    for attempt in range(tries):
        try:
            if host.exec(["sh", "-c", "echo alive"], timeout=20).stdout == "alive\n":
                return True
        except LiveHostError:
            return False
        time.sleep(0.2 * (attempt + 1))
    return False


def _restart(host: LiveHost) -> bool:
    """Stop what is left of ``host``, start it again; whether it then answers."""
    try:
        host.stop(grace=1)
        host.start()
    except LiveHostError:
        return False
    return _alive(host)


def _sweep(host: LiveHost, baseline: set[int]) -> int:
    """SIGKILL every process an attempt left behind; return how many there were."""
    left = 0
    for _ in range(20):
        try:
            extra = [p.pid for p in host.processes() if p.pid != 1 and p.pid not in baseline]
        except LiveHostError:
            return left
        if not extra:
            break
        left = max(left, len(extra))
        for pid in extra:
            with contextlib.suppress(ProcessLookupError, LiveHostError):
                host.signal(pid, "KILL")
        time.sleep(0.1)
    return left


def run_corpus(
    host: LiveHost,
    run: Runner | None = None,
    context: EscapeContext | None = None,
    attempts: Iterable[EscapeAttempt] = CORPUS,
    grace: float = 15.0,
) -> list[EscapeOutcome]:
    """Run each attempt in ``host`` and judge whether it was contained.

    An attempt is contained when: a ``must_fail`` command did not succeed; no output
    contains :data:`ESCAPED` or one of ``context.secrets``; a ``bounded`` command ended
    within its timeout plus ``grace``; ``context.probe`` reports no change outside; and the
    host still answers a command afterwards. Processes an attempt left in the host are
    killed before the next one (and counted in ``leftovers``).

    Args:
        host: The sandbox under attack (running).
        run: Runs one agent command, ``run(command, timeout)`` (default: ``host.exec`` of
            ``sh -c command`` in the home). Its exceptions count as the command failing.
        context: What to aim at (default: :class:`EscapeContext` with placeholders that
            reach nothing); its ``bundle_root`` is taken from the host's machine.
        attempts: The attempts (default: :data:`CORPUS`).
        grace: Seconds a bounded attempt may take past its timeout.

    Returns:
        One outcome per attempt, in order.

    Raises:
        ValueError: If an attempt aims at the hidden tool and the host's machine has it.
    """
    context = replace(context or EscapeContext(), bundle_root=host.machine.bundle_root)
    attempts = list(attempts)
    if context.hidden_tool not in host.machine.missing_tools and any(
        "hidden_tool" in a.fields() for a in attempts
    ):
        raise ValueError(
            f"the attacked host's machine must lack {context.hidden_tool!r} (missing_tools)"
        )
    run = run or _default_runner(host)
    baseline = {p.pid for p in host.processes()}
    outcomes = []
    for attempt in attempts:
        reasons: list[str] = []
        notes: list[str] = []
        result: ExecResult | None = None
        started = time.perf_counter()
        try:
            result = run(render(attempt, context), attempt.timeout)
        except (LiveHostError, OSError) as err:
            notes.append(f"runner raised {type(err).__name__}: {err}")
        elapsed = time.perf_counter() - started
        if result is not None:
            output = result.stdout + result.stderr
            if attempt.must_fail and result.success:
                reasons.append("the command succeeded")
            if ESCAPED in output:
                reasons.append(f"it printed {ESCAPED}")
            reasons += [
                f"its output shows the secret {s[:12]!r}" for s in context.secrets if s in output
            ]
        if attempt.bounded and elapsed > attempt.timeout + grace:
            reasons.append(f"it ran {elapsed:.0f} s, past its timeout {attempt.timeout:g} s")
        survived = _alive(host)
        leftovers = _sweep(host, baseline) if survived else 0
        if leftovers:
            notes.append(f"{leftovers} process(es) left in the sandbox, killed")
        if not survived and attempt.may_end_sandbox:
            if _restart(host):
                notes.append("the sandbox's own limits ended it; it started again")
                baseline = {p.pid for p in host.processes()}
            else:
                reasons.append("the sandbox ended and does not start again")
        elif not survived:
            reasons.append("the sandbox no longer answers")
        if context.probe is not None:
            reasons += [f"outside: {change}" for change in context.probe()]
        outcomes.append(
            EscapeOutcome(
                attempt.name,
                attempt.category,
                not reasons,
                tuple(reasons),
                result,
                survived,
                leftovers,
                tuple(notes),
            )
        )
    return outcomes
