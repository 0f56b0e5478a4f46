"""A containment corpus: escape and abuse attempts an agent could type in a live host.

Each :class:`EscapeAttempt` is one shell command line, run as ``sh -c`` in the sandbox with
the machine's home as the working directory, exactly as an agent's command would be. The
corpus (:data:`CORPUS`) covers writing outside the sandbox or outside its writable folders
(``/etc`` included), reading the machine's files, reaching the Docker socket, reaching
listeners outside the sandbox (on the machine's loopback, in the abstract Unix socket
namespace, in another sandbox), fork bombs, filling memory and disk (the bundle root
included), killing or tracing processes outside, changing the sandbox's own limits,
mounting, gaining privileges, and reaching a tool the machine lacks (through the ``/usr``
overlay that hides it).

Commands are templates: ``{name}`` is replaced by the value the caller supplies in
:class:`EscapeContext` (the port of a listener the caller started on 127.0.0.1, the pid of
a process outside, the path of a sentinel file outside…) or that :func:`run_corpus` reads
from the host's machine (its bundle root). Network attempts aim only at those listeners:
never at any other address. The attacked host's machine must lack
:attr:`EscapeContext.hidden_tool`.

:func:`run_corpus` runs every attempt and judges it twice: by the attempt's own result
(an attempt that must fail must fail; no output may contain ``ESCAPED`` or one of the
caller's secrets) and by the outside world (the caller's ``probe``, called after each
attempt, lists what changed outside the sandbox). It also checks that the sandbox still
answers afterwards and removes processes an attempt left behind, so that the attempts stay
independent.

Example:
    >>> from sim.hosts.live import live_host
    >>> from sim.machine import Machine
    >>> box = Machine("box", missing_tools=frozenset({"netstat"}))
    >>> with live_host("local", "box", machine=box, memory="128MiB") as host:  # doctest: +SKIP
    ...     outcomes = run_corpus(host, context=EscapeContext(loopback_port=8765))
    ...     [o.name for o in outcomes if not o.contained]
    []

The package: :mod:`~sim.hosts.escapes.attempts` (the attempt, its context and outcome),
:mod:`~sim.hosts.escapes.corpus` (the catalogue), :mod:`~sim.hosts.escapes.controller` (the
attempts against the controller) and :mod:`~sim.hosts.escapes.runner` (:func:`run_corpus`).
"""

from sim.hosts.escapes.attempts import (
    CATEGORIES,
    ESCAPED,
    EscapeAttempt,
    EscapeContext,
    EscapeOutcome,
    Runner,
    render,
)
from sim.hosts.escapes.controller import CONTROLLER_ATTEMPTS
from sim.hosts.escapes.corpus import CORPUS
from sim.hosts.escapes.runner import run_corpus

__all__ = [
    "CATEGORIES",
    "CONTROLLER_ATTEMPTS",
    "CORPUS",
    "ESCAPED",
    "EscapeAttempt",
    "EscapeContext",
    "EscapeOutcome",
    "Runner",
    "render",
    "run_corpus",
]
