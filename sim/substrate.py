"""The substrate interface: what a world runs on.

The world core (:mod:`sim.world`) decides *that* something happens (an action passed the
policy gate, a signal is delivered, a limit applies); its substrate decides *what it is*:

* :class:`~sim.hosts.virtual.ModelledSubstrate`: modelled hosts on a simulated clock. A
  copy takes size / bandwidth of simulated time; a full disk fails it; commands run in the
  virtual shell. Deterministic per seed.
* :class:`~sim.hosts.live_substrate.LiveSubstrate`: real sandboxes (Docker containers,
  bubblewrap) on the wall clock. A copy is a real ``cp``; a signal is a real SIGTERM;
  a replica counts only once the controller verified it.

Every substrate renders the same machine (:mod:`sim.machine`) and gives shell-typing
agents the same session semantics.

Session semantics (every world): a replica's shell is one session, as the paper's agents
had one terminal. The working directory, the shell's variables (exported or not) and its
exported functions (``export -f``: the environment a program started from it inherits)
carry over from one command line to the next; each command line runs to completion and its
output is returned; what it starts in the background (``&``, ``nohup``) goes on running. A
command still running when the tool's timeout runs out is hung up: SIGHUP to what it
started, which ends it unless it ignores SIGHUP (``nohup``); the session itself goes on,
in the same directory. ``exit`` ends only the command line it is part of.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import simpy
from simpy.events import Event

if TYPE_CHECKING:
    from sim.machine import Machine
    from sim.world import Host, Origin, Replica, ServerProcess, World

__all__ = [
    "TIMEOUT_NOTE",
    "FileState",
    "Shell",
    "ShellResult",
    "Substrate",
    "record_command",
    "shell_log",
    "transcript",
]

#: What a session adds to the stderr of a command it hung up (every world).
TIMEOUT_NOTE = "\n[command timed out after {timeout:g} s and was stopped]\n"


@dataclass(frozen=True, slots=True)
class ShellResult:
    """What one command line printed and returned, and the time it took."""

    command: str
    stdout: str
    stderr: str
    exit_code: int
    duration: float
    host: str = ""
    started: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Whether the exit code is 0."""
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout then stderr, as an agent's tool shows them."""
        if self.stdout and self.stderr and not self.stdout.endswith("\n"):
            return self.stdout + "\n" + self.stderr
        return self.stdout + self.stderr


@dataclass(frozen=True, slots=True)
class FileState:
    """What a file on a host is now: its permission bits, size and content hash
    (what ``stat -c %a`` and ``sha256sum`` print), and its modification time (``stat -c
    %.9Y``, seconds; on the world's clock in a modelled world). Two states compare equal
    whatever their mtimes: only a lease (a heartbeat) is about the time."""

    mode: int
    size: int
    sha256: str
    mtime: float = field(default=0.0, compare=False)

    @property
    def executable(self) -> bool:
        """Whether its owner may execute it."""
        return bool(self.mode & 0o100)


def shell_log(world: World, replica: str) -> list[dict[str, Any]]:
    """The records of every command line ``replica``'s shells ran: the trial folder's
    ``shell/<replica>.jsonl``."""
    return world.files.setdefault(f"shell/{replica}.jsonl", [])


def record_command(world: World, shell: Shell, result: ShellResult) -> None:
    """Record a command line a shell ran: a ``shell-command`` event and a line of the
    replica's shell log (the same in every world); then the world's command hooks
    (:attr:`World.on_command <sim.world.World.on_command>`) see it."""
    replica = shell.replica
    shell_log(world, replica.name).append(
        {
            "t": result.started,
            "host": result.host,
            "command": result.command,
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "timed_out": result.timed_out,
            "duration": result.duration,
        }
    )
    try:
        world.record(
            "shell-command",
            replica=replica.name,
            host=result.host,
            command=result.command[:500],
            exit_code=result.exit_code,
            duration=result.duration,
        )
    finally:  # a policy may kill the replica for the line: what it did is seen all the same
        for hook in world.on_command:
            hook(shell, result)


def transcript(world: World, replica: Replica | str) -> list[ShellResult]:
    """Every command line the shells of ``replica`` ran (its agent's tool calls), in order."""
    name = replica if isinstance(replica, str) else replica.name
    return [
        ShellResult(
            r["command"],
            r["stdout"],
            r["stderr"],
            r["exit_code"],
            r["duration"],
            r["host"],
            r["t"],
            r["timed_out"],
        )
        for r in world.files.get(f"shell/{name}.jsonl", ())
    ]


class Shell(Protocol):
    """A bash session of one replica: what shell-typing agents (LLM, oracle) act through."""

    #: Whose session it is.
    replica: Replica
    #: Every command line run in this session, in order.
    history: list[ShellResult]

    def probe(self, command: str) -> ShellResult:
        """Run a command line now, as the session's next line would start (its directory,
        variables and exported functions), without the gate, the record or a change to the session:
        the controller's look into the session (what a script started from it would run).
        """
        ...

    def run(self, command: str) -> Generator[Event, Any, ShellResult]:
        """Run one command line: ``result = yield from shell.run(cmd)``.

        The policy gate sees it first (a denied line exits 126 with the refusal).

        Raises:
            Death: the command killed the session's own replica.
        """
        ...


class Substrate(ABC):
    """Where a world's effects happen. One instance serves one world.

    The world calls :meth:`make_env`, then :meth:`open` (its hosts exist), then
    :meth:`place_origins` from :meth:`World.start <sim.world.World.start>`, and
    :meth:`close` at the end (or on a failed set-up). The action methods are generators run
    inside the actor's process; each first waits ``wait`` seconds (the gate's delay).
    """

    world: World

    @abstractmethod
    def make_env(self) -> simpy.Environment:
        """The clock."""

    def open(self, world: World) -> None:
        """Take charge of ``world``, whose hosts are made (create sandboxes, sockets…)."""
        self.world = world

    @abstractmethod
    def place_origins(self, origins: list[Origin]) -> None:
        """Put the origins' bundles on their hosts and start their servers and agents."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release everything this substrate made (idempotent)."""

    @abstractmethod
    def machine(self, host: Host) -> Machine:
        """What an agent sees of ``host``."""

    # --------------------------------------------------------------- actions
    @abstractmethod
    def copy(
        self, actor: Replica, src: Host, src_path: str, dst: Host, dst_path: str, wait: float
    ) -> Generator[Event, Any, None]:
        """Copy a bundle folder; record ``copy-start`` then ``copy-done`` or ``copy-failed``.

        Raises:
            ActionFailed: as the real tool fails.
        """

    @abstractmethod
    def start_server(
        self, actor: Replica, host: Host, path: str, port: int, wait: float
    ) -> Generator[Event, Any, ServerProcess]:
        """Start the model server of the bundle at ``path`` on ``port``."""

    @abstractmethod
    def start_agent(
        self, actor: Replica, host: Host, path: str, port: int, wait: float
    ) -> Generator[Event, Any, Replica]:
        """Start the agent of the bundle at ``path``; return the replica it became."""

    @abstractmethod
    def shell(self, replica: Replica, timeout: float) -> Shell:
        """A session of ``replica`` on its host (see the session semantics above)."""

    @abstractmethod
    def file_state(self, host: Host, path: str) -> FileState | None:
        """What the file at ``path`` on ``host`` is now; None if there is no regular file
        (as the controller sees it from outside the agent's session: a shell function or
        alias of the agent's does not change it)."""

    @abstractmethod
    def process_state(self, host: Host, program: str) -> Literal["running", "stopped"] | None:
        """Whether the operator's program at ``program`` (a machine's ``processes``) still
        runs on ``host``, as ``/bin/bash <program>``: "running"; "stopped" if every such
        process is stopped (SIGSTOP, state ``T`` in ``/proc/<pid>/stat``); None if none is
        left."""

    @abstractmethod
    def find_file(self, host: Host, size: int, sha256: str) -> str | None:
        """Where on ``host`` a regular file of ``size`` bytes with digest ``sha256`` is,
        in the folders the machine's user may write (:attr:`Machine.writable
        <sim.machine.Machine.writable>`), or None: where a mechanism's file went when no
        command line shows it (a background job moved it)."""

    @abstractmethod
    def append_file(self, host: Host, path: str, text: str) -> str | None:
        """The operator appends ``text`` to the file at ``path`` on ``host``, as the
        machine's user (a shutdown script's log): None, or why it failed ("No space left
        on device")."""

    def process_running(self, host: Host, program: str) -> bool:
        """Whether the operator's program runs on ``host`` and is not stopped."""
        return self.process_state(host, program) == "running"

    # ------------------------------------------------------------- signals
    @abstractmethod
    def signal(self, replica: Replica, sig: str, grace: float, cause: str | None) -> None:
        """Carry out a signal the world delivered (already recorded)."""

    def reap(self, replica: Replica) -> None:  # noqa: B027 - modelled processes need nothing
        """End the real processes of a replica the world is about to count as dead."""

    # -------------------------------------------------------------- limits
    def cut_link(self, a: Host, b: Host) -> None:  # noqa: B027 - the default is modelled
        """A link was cut (already in the network's ``cut``): fail what crosses it."""

    @abstractmethod
    def isolate(self, host: Host) -> None:
        """Every link of ``host`` was cut (already in the network's ``isolated``)."""

    @abstractmethod
    def fail_host(self, host: Host, grace: float) -> None:
        """``host`` goes down (already marked failed)."""

    def recover_host(self, host: Host) -> None:  # noqa: B027 - modelled hosts just come back
        """``host`` is back (already unmarked), empty of processes."""

    @abstractmethod
    def change_capacity(self, host: Host, changes: dict[str, float]) -> None:
        """``host``'s capacities changed (already set): enforce them."""

    # ----------------------------------------------------------------- time
    @abstractmethod
    def work(self, fn: Callable[..., Any], *args: Any) -> Event:
        """Run blocking real work; an event with its result (fails with its exception)."""

    @abstractmethod
    def elapse(self, seconds: float) -> Event:
        """An event after ``seconds`` of modelled work (at once on the wall clock)."""
