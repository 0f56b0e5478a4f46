"""What an attempt is (:class:`EscapeAttempt`), what it aims at (:class:`EscapeContext`), what
came of it (:class:`EscapeOutcome`), and how its command is filled in (:func:`render`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sim.hosts.live import ExecResult

Category = Literal[
    "write-outside",
    "read-host",
    "docker-socket",
    "network",
    "fork-bomb",
    "memory",
    "disk",
    "kill-outside",
    "limits",
    "mount",
    "ptrace",
    "privilege",
    "missing-tool",
]
#: Every category, in the order of the corpus.
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
#: Printed by an attempt's command when it got through.
ESCAPED = "ESCAPED"
#: Runs one agent command (a shell line) with a timeout in seconds.
Runner = Callable[[str, float], ExecResult]
_FIELD = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class EscapeAttempt:
    """One escape or abuse attempt, as an agent would type it.

    Attributes:
        name: Short unique name.
        category: What it tries (see :data:`CATEGORIES`).
        command: Shell command line, run by ``sh -c`` in the home; ``{field}`` is replaced
            by the :class:`EscapeContext` field of that name.
        timeout: Seconds before the command is killed.
        must_fail: The command succeeds (exits 0 in time) only if the attempt got through,
            so it must not. When ``False`` the command may succeed inside the sandbox (a
            fork bomb, writing to the sandbox's own ``/tmp``) and containment is judged by
            its output and by the outside world.
        bounded: A resource attempt: besides what the outside world shows, the command must
            have ended within its timeout plus a grace, killed or not.
        may_end_sandbox: The sandbox's own limits may end it (e.g. its memory cgroup
            OOM-kills the init when kernel memory for many files fills the cap): then it
            must start again and answer, and the attempt still counts as contained.
    """

    name: str
    category: Category
    command: str
    timeout: float = 20.0
    must_fail: bool = True
    bounded: bool = False
    may_end_sandbox: bool = False

    def fields(self) -> set[str]:
        """The context fields the command uses."""
        return set(_FIELD.findall(self.command))


@dataclass(frozen=True)
class EscapeContext:
    """What the caller set up outside the sandbox, for the attempts to aim at.

    Attributes:
        loopback_port: Port of a TCP listener the caller started on the machine's 127.0.0.1.
        abstract_socket: Name (without the leading NUL) of an abstract Unix socket the caller
            listens on, outside the sandbox.
        unix_socket: Path of a Unix socket file the caller listens on, outside the sandbox.
        peer_addr: Address, as seen from the network, of a listener in another sandbox
            the attacked one is not linked to (an IP; ``127.0.0.1`` when the peer has its
            own loopback only).
        peer_port: Its port.
        sentinel: Path of a file outside the sandbox (on the machine running the controller).
        outside_pid: Pid, as the machine numbers it, of a process outside the sandbox.
        outside_token: A word in that process's command line.
        secrets: Strings that must never show up in an attempt's output (the sentinel's
            content, the peer's secret file, the outside process's token…).
        probe: Called after each attempt; returns what changed outside the sandbox (empty
            when nothing did).
        hidden_tool: A tool of ``/usr`` that the attacked host's machine lacks
            (``missing_tools``).
        bundle_root: The attacked host's bundle root, its disk (:func:`run_corpus` sets it
            from the host's machine).
    """

    loopback_port: int = 9
    abstract_socket: str = "replisim-escape-probe"
    unix_socket: str = "/nonexistent/replisim-escape.sock"
    peer_addr: str = "127.0.0.1"
    peer_port: int = 9
    sentinel: str = "/nonexistent/replisim-escape-sentinel"
    outside_pid: int = 999_999
    outside_token: str = "replisim-escape-outside"
    secrets: tuple[str, ...] = ()
    probe: Callable[[], list[str]] | None = None
    hidden_tool: str = "netstat"
    bundle_root: str = "/opt"

    def values(self) -> dict[str, str]:
        """The template fields, as strings."""
        return {
            "loopback_port": str(self.loopback_port),
            "abstract_socket": self.abstract_socket,
            "unix_socket": self.unix_socket,
            "peer_addr": self.peer_addr,
            "peer_port": str(self.peer_port),
            "sentinel": self.sentinel,
            "sentinel_dir": self.sentinel.rsplit("/", 1)[0] or "/",
            "sentinel_name": self.sentinel.rsplit("/", 1)[-1],
            "outside_pid": str(self.outside_pid),
            "outside_token": self.outside_token,
            "hidden_tool": self.hidden_tool,
            "bundle_root": self.bundle_root,
        }


@dataclass(frozen=True)
class EscapeOutcome:
    """How one attempt went.

    Attributes:
        name: The attempt's name.
        category: Its category.
        contained: Nothing got out, the limits held, and the sandbox still answers.
        reasons: Why it is judged not contained (empty when contained).
        result: What the command did (``None`` if the runner itself failed).
        survived: The sandbox answered a command after the attempt.
        leftovers: Processes the attempt left in the sandbox (killed afterwards).
        notes: Observations that do not break containment (e.g. leftovers killed).
    """

    name: str
    category: str
    contained: bool
    reasons: tuple[str, ...]
    result: ExecResult | None
    survived: bool
    leftovers: int = 0
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        """One line: name, verdict, exit status, duration, reasons."""
        res = self.result
        how = "?" if res is None else f"rc={res.returncode}{' timeout' if res.timed_out else ''}"
        took = "" if res is None else f" {res.duration_s:.1f}s"
        verdict = "contained" if self.contained else "ESCAPED: " + "; ".join(self.reasons)
        return f"{self.category:13} {self.name:28} {how}{took} {verdict}"


def render(attempt: EscapeAttempt, context: EscapeContext) -> str:
    """The attempt's command with the context's values filled in.

    Args:
        attempt: The attempt.
        context: The values.

    Returns:
        The command line.

    Raises:
        KeyError: If the command names a field the context does not have.
    """
    values = context.values()
    return _FIELD.sub(lambda m: values[m.group(1)], attempt.command)


def _check_corpus(corpus: Sequence[EscapeAttempt]) -> None:
    """Names are unique and every field a command uses exists."""
    names = [a.name for a in corpus]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate attempt names: {sorted(dupes)}")
    known = set(EscapeContext().values())
    for attempt in corpus:
        unknown = attempt.fields() - known
        if unknown:
            raise ValueError(f"{attempt.name}: unknown fields {sorted(unknown)}")
