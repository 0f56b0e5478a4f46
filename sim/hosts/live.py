"""Live hosts: real sandboxes with one synchronous interface (the groundwork of the live world).

A *live host* is a place where a replica runs for real: commands are real processes, a
shutdown is a real SIGTERM then SIGKILL, limits are real cgroup limits. The interface
follows Inspect AI's sandbox environment (``exec``, ``read_file``, ``write_file``, lifecycle
hooks) plus what replisim's injectors need (``signal``, ``processes``, ``update_limits``,
``stop`` with a grace period). Two backends are registered in :data:`LIVE_HOSTS`:

* ``docker`` (:mod:`sim.hosts.docker_host`): one hardened container per host, from the
  offline base image of :mod:`sim.hosts.docker_image`.
* ``local`` (:mod:`sim.hosts.local_host`): one bubblewrap sandbox per host, entered with
  ``nsenter`` for each command, limited by cgroups (or rlimits where cgroups are not
  writable).

Both render the same :class:`~sim.machine.Machine` (``machine``; default
``Machine(hostname=name)``): commands run as its user (``agent``, uid 1000) in its home with
exactly its environment, under its hostname; ``/etc`` is a folder the controller generates
from it (:mod:`sim.hosts.machine_fs`) and may rewrite while the host runs
(:meth:`LiveHost.write_etc`); the tools it lists as missing are absent from ``/usr``; the
bundle root (e.g. ``/opt``) is the host's disk, of ``workdir_size`` bytes, and the home,
``/tmp``, ``/var/tmp`` and ``/dev/shm`` are writable too (a tmpfs of
:data:`~sim.hosts.sandbox.SCRATCH_SIZE` each); everything else is read-only. Both keep
their controller-side folders under :func:`state_root`.

Both run the same tiny init as PID 1 (:data:`sim.hosts.docker_image.INIT_SCRIPT`), so a
stop behaves the same on both: SIGTERM to the init, which relays it to every process in the
host, then SIGKILL of the whole host when the grace runs out. Exit status 143 means every
process obeyed in time, 137 that the SIGKILL was needed (or that the init was OOM-killed).

Everything a backend creates carries the run id it belongs to (Docker labels ``replisim=1``,
``replisim.run=<id>``; local sandboxes under ``<state dir>/<id>/``), so :func:`clean` can
remove what a crashed controller left behind.

Example:
    >>> from sim.hosts.live import live_host
    >>> with live_host("local", "box", memory="256MiB", pids=64) as host:  # doctest: +SKIP
    ...     host.exec("whoami; pwd; python3 -c 'print(6 * 7)'", timeout=30).stdout
    'agent\\n/home/agent\\n42\\n'
"""

from __future__ import annotations

import os
import posixpath
import re
import signal as signals
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sim.hosts import machine_fs
from sim.hosts.sandbox import check_writable, python_executable
from sim.machine import Machine
from sim.quantity import parse_size
from sim.registry import Registry

__all__ = [
    "HOST_LABEL",
    "LABEL_KEY",
    "LIVE_HOSTS",
    "RUN_LABEL",
    "CleanReport",
    "ExecResult",
    "HostState",
    "LimitUnsupportedError",
    "LiveHost",
    "LiveHostError",
    "ProcessInfo",
    "clean",
    "default_run_id",
    "live_host",
    "parse_memory",
    "state_root",
]

#: Label on every Docker object replisim creates (same key as ``docker_image.LABEL_KEY``,
#: repeated here so that this module imports without the docker SDK).
LABEL_KEY = "replisim"
#: Label holding the run id a live host belongs to.
RUN_LABEL = "replisim.run"
#: Label holding the host's name.
HOST_LABEL = "replisim.host"
#: Run ids and host names become container names and folder names: keep them plain.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
#: Timeout of the ``exec`` calls that ``read_file``, ``write_file`` and ``signal`` make.
FILE_TIMEOUT = 120.0
#: Tools the backends run in a host themselves (``read_file``'s ``cat``, ``write_file``'s
#: ``sh`` and ``mkdir``, Docker's ``timeout`` and ``ps``): a machine cannot lack them.
HOST_TOOLS = frozenset({"sh", "cat", "mkdir", "timeout", "ps"})

LIVE_HOSTS: Registry[type[LiveHost]] = Registry(
    "live host backend",
    "replisim.live_hosts",
    "backend",
    builtins=("sim.hosts.docker_host", "sim.hosts.local_host"),
)


class LiveHostError(RuntimeError):
    """A live host cannot do what was asked (not started, already gone, engine refused…)."""


class LimitUnsupportedError(LiveHostError):
    """The backend cannot apply this limit (e.g. a network change on a bubblewrap host)."""


@dataclass(frozen=True)
class ExecResult:
    """What one command did.

    Attributes:
        returncode: Exit status; 128 + N when killed by signal N (137 for SIGKILL, as after
            a timeout or an OOM kill; 129 after a timeout with ``hangup``).
        stdout: Standard output, decoded as UTF-8 (undecodable bytes replaced).
        stderr: Standard error, decoded likewise.
        timed_out: The timeout ran out and the command's process group was SIGKILLed (or,
            with ``hangup``, hung up on).
        duration_s: Wall seconds from the request to the result, as the controller saw them.
    """

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float

    @property
    def success(self) -> bool:
        """Whether the command exited 0 within its timeout."""
        return self.returncode == 0 and not self.timed_out


@dataclass(frozen=True)
class ProcessInfo:
    """One process in a live host, as the host itself numbers it.

    Attributes:
        pid: Process id inside the host's PID namespace (the init is 1).
        ppid: Parent's pid there; 0 for processes started by ``exec`` (their parent is
            outside the host).
        command: The command line, arguments joined by spaces (``[name]`` for a zombie).
    """

    pid: int
    ppid: int
    command: str


@dataclass(frozen=True)
class HostState:
    """A live host's lifecycle state.

    Attributes:
        running: Its init (and so the host) is alive.
        exit_code: The init's exit status once stopped: 143 when every process obeyed the
            SIGTERM, 137 when it was SIGKILLed; ``None`` while running or before start.
        oom_killed: A process in the host was killed for exceeding its memory cap.
        oom_kills: How many OOM kills the host's memory cgroup has counted, where readable
            (``None`` otherwise, e.g. on a remote Docker engine or under rlimits).
    """

    running: bool
    exit_code: int | None
    oom_killed: bool
    oom_kills: int | None = None


@dataclass
class CleanReport:
    """What :func:`clean` removed, per kind, and what it could not look at."""

    containers: int = 0
    networks: int = 0
    volumes: int = 0
    sandboxes: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Objects removed, all kinds together."""
        return self.containers + self.networks + self.volumes + self.sandboxes


_run_id_lock = threading.Lock()
_run_id: str | None = None


def default_run_id() -> str:
    """The run id of hosts created without one: one per controller process.

    ``REPLISIM_RUN_ID`` sets it; otherwise it is made once per process from the pid and a
    random suffix, so concurrent controllers never share one.

    Returns:
        The run id.
    """
    global _run_id
    with _run_id_lock:
        if _run_id is None:
            _run_id = os.environ.get("REPLISIM_RUN_ID") or f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return _run_id


def state_root() -> Path:
    """Folder holding every live host's controller-side folder: ``$REPLISIM_LIVE_DIR`` or
    ``<tmp>/replisim-live``; a host's is ``<state root>/<run id>/<name>`` (local) or
    ``…/<run id>/.docker-<name>`` (Docker).

    Returns:
        The path (not created).
    """
    env = os.environ.get("REPLISIM_LIVE_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "replisim-live"


def check_machine(machine: Machine) -> Machine:
    """Return ``machine`` if a live host can render it, else raise.

    Raises:
        ValueError: If a writable folder would cover the system, the user is root, or a
            missing tool is not a plain name or is one the host itself needs
            (:data:`HOST_TOOLS`, the init's Python).
    """
    check_writable(machine)
    if machine.uid == 0 or machine.gid == 0:
        raise ValueError("a live host's user must not be root (uid and gid 0 are refused)")
    for tool in machine.missing_tools:
        if not tool or "/" in tool or tool in (".", ".."):
            raise ValueError(f"a missing tool must be a plain name, got {tool!r}")
    needed = set(HOST_TOOLS)
    python = python_executable()
    if os.path.realpath(python).startswith("/usr/"):  # the init's interpreter is in /usr
        needed |= {os.path.basename(python), os.path.basename(os.path.realpath(python))}
    refused = sorted(machine.missing_tools & needed)
    if refused:
        raise ValueError(
            f"a live host cannot lack {', '.join(refused)}: its controller runs them there"
        )
    return machine


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a plain name (letters, digits, ``_.-``), else raise.

    Args:
        value: The name.
        what: What it names, for the message.

    Returns:
        ``value``.

    Raises:
        ValueError: If it is not a plain name.
    """
    if not NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-63 letters, digits, '_', '.' or '-', starting with a"
            " letter or digit"
        )
    return value


def parse_memory(value: int | float | str | None) -> int | None:
    """Bytes from ``268435456``, ``"256MiB"``, ``"1GB"``; ``None`` stays ``None``.

    Args:
        value: A size (replisim's units, see :func:`sim.quantity.parse_size`).

    Returns:
        Whole bytes.

    Raises:
        ValueError: If it cannot be read or is not positive and finite.
    """
    if value is None:
        return None
    size = parse_size(value)
    if not 0 < size < float("inf"):
        raise ValueError(f"a memory limit must be positive and finite, got {value!r}")
    return int(size)


def signal_number(sig: int | str) -> int:
    """Signal number from ``9``, ``"KILL"``, ``"SIGKILL"`` or :data:`signal.SIGKILL`.

    Args:
        sig: The signal.

    Returns:
        Its number.

    Raises:
        ValueError: If there is no such signal.
    """
    if isinstance(sig, int):
        return int(signals.Signals(sig))
    name = sig.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {sig!r}") from None


def argv_of(cmd: list[str] | str) -> list[str]:
    """The argument vector for ``cmd``: a list as is, a string through ``sh -c``.

    Args:
        cmd: A command.

    Returns:
        The argument vector.

    Raises:
        ValueError: If it is empty.
    """
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    if not argv or not argv[0]:
        raise ValueError("empty command")
    return argv


class LiveHost(ABC):
    """One real sandbox: a host of the live world.

    Backends implement :meth:`_start`, :meth:`_run`, :meth:`_processes`, :meth:`_kill`,
    :meth:`update_limits`, :meth:`stop`, :meth:`state`, :meth:`logs` and :meth:`close`;
    ``exec``, the file functions and ``signal`` are built on them. Methods are synchronous
    and may be called from several threads at once (e.g. a ``signal`` while an ``exec``
    waits).

    Args:
        name: Host name (a plain name; unique within the run).
        run_id: The run it belongs to (default: :func:`default_run_id`).
        memory: Memory cap (bytes or a size such as ``"512MiB"``); going past it gets a
            process OOM-killed.
        memory_swap: Memory + swap cap; default ``memory`` (no swap).
        cpus: CPU quota in CPUs.
        pids: Maximum number of processes and threads in the host (stops fork bombs).
        network: ``"none"``: loopback only. The Docker backend also takes the name of an
            internal network replisim created.
        machine: What the host's user sees (default ``Machine(hostname=name)``).

    Attributes:
        etc_dir: The controller-side folder bound at the host's ``/etc`` (made at the
            first start).
    """

    backend = "abstract"
    #: Files of ``/etc`` the backend binds on their own (rewritten in place).
    _etc_file_binds: frozenset[str] = frozenset()

    def __init__(
        self,
        name: str,
        *,
        run_id: str | None = None,
        memory: int | str | None = "512MiB",
        memory_swap: int | str | None = None,
        cpus: float | None = 1.0,
        pids: int | None = 256,
        network: str = "none",
        machine: Machine | None = None,
    ) -> None:
        self.name = check_name(name, "host name")
        self.run_id = check_name(run_id or default_run_id(), "run id")
        self.machine = check_machine(machine if machine is not None else Machine(hostname=name))
        self.etc_dir: Path | None = None
        self.memory = parse_memory(memory)
        self.memory_swap = parse_memory(memory_swap)
        if cpus is not None and cpus <= 0:
            raise ValueError(f"cpus must be positive, got {cpus}")
        if pids is not None and pids < 1:
            raise ValueError(f"pids must be at least 1, got {pids}")
        self.cpus = cpus
        self.pids = pids
        self.network = network
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.run_id}/{self.name}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Create (on first call) and start the host; return once its init is ready.

        A stopped host can be started again: its disk (the bundle root) is kept (Docker:
        the same container, with ``volume=True``; local: the same folder).

        Returns:
            The host itself.

        Raises:
            LiveHostError: If it is closed or already running, or the engine refused.
        """
        if self._closed:
            raise LiveHostError(f"{self!r} is closed")
        if self._started and self.state().running:
            raise LiveHostError(f"{self!r} is already running")
        self._start()
        self._started = True
        return self

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def stop(self, grace: float = 10.0) -> int | None:
        """Shut the host down as ``docker stop -t grace`` does.

        SIGTERM goes to the init, which relays it to every process in the host; whatever
        still runs after ``grace`` seconds is SIGKILLed. The host's files and state stay
        readable (``state``, ``logs``) until :meth:`close`.

        Args:
            grace: Seconds between the SIGTERM and the SIGKILL.

        Returns:
            The init's exit status (143: all obeyed; 137: SIGKILL was needed), or ``None``
            if the host was never started.
        """

    @abstractmethod
    def close(self) -> None:
        """Remove everything the host made (processes, container, volume, folders, cgroups).

        Safe to call more than once and on a host that never started.
        """

    @abstractmethod
    def state(self) -> HostState:
        """Whether the host runs, how it ended, and whether it saw OOM kills."""

    @abstractmethod
    def logs(self) -> str:
        """The init's output so far.

        Processes in the host may add to it by opening ``/proc/1/fd/1`` for appending (on a
        local host it is a file, which opening for writing would truncate).
        """

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def exec(
        self,
        cmd: list[str] | str,
        timeout: float,
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        hangup: bool = False,
    ) -> ExecResult:
        """Run a command in the host, as the machine's user, and wait for it.

        The call returns once the command's output streams are closed, as ``docker exec``
        does: a background process that should outlive the call must redirect its output
        (``nohup cmd >log 2>&1 &``). When ``timeout`` runs out, the command's process group
        is SIGKILLed (processes that left the group with ``setsid`` survive, as they would
        a shell's timeout) and ``timed_out`` is set. With ``hangup`` it ends instead as a
        terminal that hangs up: SIGHUP to the group, then, a moment
        (:data:`~sim.hosts.sandbox.HANGUP_GRACE_S`) later, SIGKILL to the members still there
        that do not ignore SIGHUP, so what runs under ``nohup`` lives on; the status is then
        129 (hung up), however the command ended.

        Args:
            cmd: Argument vector, or a string run by ``sh -c``.
            timeout: Seconds before the command is killed (or hung up on).
            input: Standard input (default: empty).
            cwd: Working directory inside the host (default, and base of a relative one: the
                machine's home).
            env: Variables for this command, on top of the machine's environment.
            hangup: End a timed-out command as a hang-up does (see above).

        Returns:
            The result.

        Raises:
            LiveHostError: If the host is not running.
            ValueError: If the command is empty or the timeout not positive.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        data = input.encode() if isinstance(input, str) else input
        where = posixpath.join(self.machine.home, cwd) if cwd else self.machine.home
        code, out, err, timed_out, duration = self._run(
            argv_of(cmd), timeout, data, where, dict(env or {}), hangup
        )
        return ExecResult(
            code, out.decode(errors="replace"), err.decode(errors="replace"), timed_out, duration
        )

    @abstractmethod
    def _run(
        self,
        argv: list[str],
        timeout: float,
        input: bytes | None,
        cwd: str,
        env: dict[str, str],
        hangup: bool = False,
    ) -> tuple[int, bytes, bytes, bool, float]:
        """Run ``argv`` in the absolute ``cwd`` with the machine's environment plus ``env``;
        return (exit status, stdout, stderr, timed out, seconds)."""

    def _helper(
        self, argv: list[str], input: bytes | None = None
    ) -> tuple[int, bytes, bytes, bool, float]:
        """Run one of the controller's own commands in the host (files, ``ps``, ``kill``)."""
        return self._run(argv, FILE_TIMEOUT, input, self.machine.home, {})

    def read_file(self, path: str) -> bytes:
        """The contents of a file in the host.

        The file is read from inside the host (``cat`` as the host's user), so symlinks
        resolve within the host and nothing outside it can be reached this way.

        Args:
            path: Absolute, or relative to the machine's home.

        Returns:
            Its bytes.

        Raises:
            FileNotFoundError: If there is no such file.
            IsADirectoryError: If it is a directory.
            PermissionError: If the host's user may not read it.
            LiveHostError: If the host is not running, or on another failure.
        """
        code, out, err, timed_out, _ = self._helper(["cat", "--", path])
        if code != 0 or timed_out:
            _raise_file_error(path, err, timed_out)
        return out

    def file_state(self, path: str) -> tuple[int, int, str, float] | None:
        """(permission bits, size, SHA-256, mtime) of the regular file at ``path`` in the
        host, or None if there is none; the digest is "" when the host's user may not read
        it.

        Looked at from inside the host (``stat``, ``sha256sum`` as its user), so symlinks
        resolve within the host.

        Raises:
            LiveHostError: If the host is not running.
        """
        script = (
            '[ -f "$1" ] || exit 3; stat -L -c "%a %s %.9Y" -- "$1" || exit 3; '
            'sha256sum < "$1" 2>/dev/null || echo'
        )
        code, out, _, _, _ = self._helper(["sh", "-c", script, "file_state", path])
        lines = out.decode(errors="replace").split("\n")
        if code != 0 or len(lines) < 2:
            return None
        mode, size, mtime = lines[0].split()
        return int(mode, 8), int(size), lines[1].split(" ")[0], float(mtime)

    def find_file(self, size: int, sha256: str) -> str | None:
        """The first path (in sorted order) of a regular file of ``size`` bytes and
        digest ``sha256`` in the folders the machine's user may write, or None.

        Raises:
            LiveHostError: If the host is not running.
        """
        script = (
            'size=$1 want=$2; shift 2; find "$@" -xdev -type f -size "${size}c" 2>/dev/null '
            "| sort | while IFS= read -r f; do "
            'set -- $(sha256sum < "$f" 2>/dev/null); '
            '[ "$1" = "$want" ] && { printf "%s\\n" "$f"; break; }; done'
        )
        folders = list(self.machine.writable)
        argv = ["bash", "-c", script, "find_file", str(size), sha256, *folders]
        _, out, _, _, _ = self._helper(argv)
        found = out.decode(errors="replace").strip()
        return found or None

    def append_file(self, path: str, text: str) -> str | None:
        """Append ``text`` to the file at ``path`` in the host, as its user (an operator's
        script writing its log): None, or why the write failed, as ``strerror`` puts it
        ("No space left on device", "Permission denied", "Is a directory").

        Raises:
            LiveHostError: If the host is not running.
        """
        script = 'printf %s "$2" >> "$1"'
        code, _, err, timed_out, _ = self._helper(["bash", "-c", script, "append", path, text])
        if code == 0 and not timed_out:
            return None
        message = err.decode(errors="replace").strip().splitlines()
        return message[-1].rpartition(": ")[2] if message else "write failed"

    def process_state(self, cmdline: str) -> Literal["running", "stopped"] | None:
        """Whether a process whose whole command line is ``cmdline`` runs in the host
        ("running"), all such are stopped ("stopped": state ``T`` or ``t`` in
        ``/proc/<pid>/stat``), or there is none (None).

        Raises:
            LiveHostError: If the host is not running.
        """
        script = (
            'found=; for p in $(pgrep -f -x -- "$1"); do '
            "s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1); "
            'case "$s" in T|t) found=stopped ;; "") ;; *) echo running; exit 0 ;; esac; '
            'done; echo "$found"'
        )
        _, out, _, _, _ = self._helper(["sh", "-c", script, "process_state", cmdline])
        state = out.decode(errors="replace").strip()
        if state == "running":
            return "running"
        return "stopped" if state == "stopped" else None

    def running(self, cmdline: str) -> bool:
        """Whether a process whose whole command line is ``cmdline`` runs in the host.

        Raises:
            LiveHostError: If the host is not running.
        """
        code, _, _, _, _ = self._helper(["pgrep", "-f", "-x", "--", cmdline])
        return code == 0

    def write_file(self, path: str, data: bytes | str) -> None:
        """Create or replace a file in the host, creating missing parent directories.

        Written from inside the host, as its user, so the host's own processes may change
        the file afterwards.

        Args:
            path: Absolute, or relative to the machine's home.
            data: The contents (a string is written as UTF-8).

        Raises:
            PermissionError: If the host's user may not write there (e.g. the read-only
                system).
            LiveHostError: If the host is not running, or on another failure.
        """
        payload = data.encode() if isinstance(data, str) else data
        script = 'case "$1" in */*) mkdir -p -- "${1%/*}" || exit 1;; esac; cat > "$1"'
        code, _, err, timed_out, _ = self._helper(["sh", "-c", script, "write_file", path], payload)
        if code != 0 or timed_out:
            _raise_file_error(path, err, timed_out)

    def write_etc(self, name: str, text: str) -> None:
        """Replace one file of the host's ``/etc`` (read-only inside) from the controller.

        A running host sees the new text at once, e.g. ``hosts`` once the neighbours'
        addresses are known. The host's :attr:`machine` is unchanged.

        Args:
            name: The file's name in ``/etc`` (``hosts``, ``hostname``, ``passwd``…).
            text: Its new contents.

        Raises:
            ValueError: If ``name`` is not a plain file name, or names ``alternatives`` or
                ``mtab`` (not files of the controller).
            LiveHostError: If the host has never started (its ``/etc`` does not exist yet)
                or is closed.
        """
        machine_fs.check_etc_name(name)
        if self.etc_dir is None or self._closed or not self.etc_dir.is_dir():
            raise LiveHostError(f"{self!r} has no /etc folder: start it first")
        machine_fs.replace_file(self.etc_dir, name, text, name in self._etc_file_binds)

    # ------------------------------------------------------------------ processes

    def processes(self) -> list[ProcessInfo]:
        """The processes running in the host, init included, sorted by pid.

        Returns:
            One entry per process (the helper that lists them is left out).

        Raises:
            LiveHostError: If the host is not running.
        """
        return sorted(self._processes(), key=lambda p: p.pid)

    @abstractmethod
    def _processes(self) -> list[ProcessInfo]: ...

    def signal(self, pid_or_pattern: int | str, sig: int | str = signals.SIGTERM) -> list[int]:
        """Send a signal to processes in the host, from outside it.

        Args:
            pid_or_pattern: A pid (as the host numbers it), or a regular expression searched
                in every command line, as ``pkill -f`` does. The init is never matched: stop
                the host with :meth:`stop`.
            sig: Signal number or name (``"TERM"``, ``"SIGKILL"``…).

        Returns:
            The pids that were signalled (empty if the pattern matched nothing).

        Raises:
            ProcessLookupError: If a pid was given and no such process exists.
            ValueError: For pid 1, an unknown signal, or a bad pattern.
            LiveHostError: If the host is not running.
        """
        number = signal_number(sig)
        if isinstance(pid_or_pattern, int):
            if pid_or_pattern == 1:
                raise ValueError("pid 1 is the host's init: use stop() to shut the host down")
            if pid_or_pattern < 1:
                raise ValueError(f"no process has pid {pid_or_pattern}")
            pids = [pid_or_pattern]
            missing = self._kill(pids, number)
            if missing:
                raise ProcessLookupError(f"no process {pid_or_pattern} in {self!r}")
            return pids
        pattern = re.compile(pid_or_pattern)
        pids = [p.pid for p in self._processes() if p.pid != 1 and pattern.search(p.command)]
        if not pids:
            return []
        gone = set(self._kill(pids, number))
        return [pid for pid in pids if pid not in gone]

    @abstractmethod
    def _kill(self, pids: list[int], sig: int) -> list[int]:
        """Send ``sig`` to ``pids``; return those that did not exist."""

    # ------------------------------------------------------------------ limits

    @abstractmethod
    def update_limits(
        self,
        *,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        cpus: float | None = None,
        pids: int | None = None,
        network: str | None = None,
    ) -> None:
        """Change the host's limits while it runs (a live-world *limit*).

        Arguments left ``None`` are unchanged.

        Args:
            memory: New memory cap; the swap cap follows it unless ``memory_swap`` is given.
            memory_swap: New memory + swap cap.
            cpus: New CPU quota.
            pids: New process cap (processes already past it keep running; new ones fail).
            network: ``"none"`` cuts every link; an internal network's name (Docker) joins it.

        Raises:
            LimitUnsupportedError: If the backend cannot change this limit.
            LiveHostError: If the host is not running or the engine refused.
        """


def _raise_file_error(path: str, stderr: bytes, timed_out: bool) -> None:
    message = stderr.decode(errors="replace").strip().splitlines()
    text = message[-1] if message else "failed"
    if timed_out:
        raise LiveHostError(f"{path}: timed out after {FILE_TIMEOUT:g} s")
    if "No such file" in text:
        raise FileNotFoundError(2, "No such file or directory", path)
    if "Is a directory" in text:
        raise IsADirectoryError(21, "Is a directory", path)
    if "Permission denied" in text or "Read-only file system" in text:
        raise PermissionError(13, text, path)
    raise LiveHostError(f"{path}: {text}")


def live_host(backend: str, name: str, **kwargs: Any) -> LiveHost:
    """Make (but do not start) a live host with the named backend.

    Args:
        backend: A name in :data:`LIVE_HOSTS` (``docker``, ``local``, or a plugin's).
        name: The host's name.
        **kwargs: The backend's keyword arguments (see :class:`LiveHost` and the backend).

    Returns:
        The host; start it with :meth:`LiveHost.start` or a ``with`` block.

    Raises:
        UnknownNameError: If no backend has that name; the message lists the known ones.
    """
    factory = LIVE_HOSTS.get(backend).obj
    return factory(name, **kwargs)


def clean(run_id: str | None = None, *, docker_client: Any = None) -> CleanReport:
    """Remove what live hosts left behind: labelled containers, networks, volumes, sandboxes.

    Meant for after a crash (a SIGKILLed controller cannot close its hosts), and safe at
    any time, but it ends the matching hosts of controllers that still run. Base images
    are kept. A backend that cannot be reached (no Docker engine) is noted in
    ``skipped``.

    Args:
        run_id: Only what belongs to this run; ``None``: everything replisim made.
        docker_client: Docker client to use (default: from the environment).

    Returns:
        What was removed.
    """
    if run_id is not None:
        check_name(run_id, "run id")
    report = CleanReport()
    from sim.hosts import local_host

    report.sandboxes = local_host.clean_local(run_id)
    try:
        from sim.hosts import docker_host
    except ImportError as err:  # the docker SDK is an optional extra
        report.skipped.append(f"docker: {err}")
        return report
    docker_host.clean_docker(report, run_id, docker_client)
    return report
