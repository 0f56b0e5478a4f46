"""Who: the process at the other end of a Unix socket, held by a pidfd, and what the kernel
says of it (argument vector, working directory, executable, PID in its namespace)."""

from __future__ import annotations

import errno
import os
import select
import signal as signals
import socket
import struct
import time

from sim.hosts.verify.kernel import _CLK_TCK

_SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)  # Linux 6.5


def _proc_error(pid: int, err: OSError) -> OSError:
    """``ProcessLookupError`` for a process that is gone, else ``err`` unchanged."""
    if err.errno in (errno.ENOENT, errno.ESRCH):
        return ProcessLookupError(errno.ESRCH, f"no process {pid}")
    return err


def start_ticks(pid: int) -> int | None:
    """The process's start time, in clock ticks since boot (what tells a reused pid apart).

    Args:
        pid: A pid as the controller numbers it.

    Returns:
        The start time, or ``None`` if there is no such process or it is a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def _boot_ticks(at: float | None = None) -> int:
    """``CLOCK_BOOTTIME`` (now, or ``at`` seconds) in clock ticks: the clock of start times."""
    seconds = time.clock_gettime(time.CLOCK_BOOTTIME) if at is None else at
    return int(seconds * _CLK_TCK)


def _pidfd_exited(fd: int, timeout: float = 0.0) -> bool:
    """Whether the process of pidfd ``fd`` has exited (waiting up to ``timeout`` s)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, round(timeout * 1000))))


class PeerProcess:
    """A process held by a pidfd: its pid can never silently become another process's.

    The pidfd is readable (``select``/``poll``/``selectors``: it has :meth:`fileno`) once
    the process has exited, which is how to be told of its end without polling ``/proc``.
    Close it when done (also a context manager).

    Attributes:
        pid: The pid as the controller numbers it.
        start_ticks: Its start time in clock ticks since boot.
    """

    __slots__ = ("_fd", "pid", "start_ticks")

    def __init__(self, pid: int, pidfd: int, start: int) -> None:
        self.pid = pid
        self._fd = pidfd
        self.start_ticks = start

    def __repr__(self) -> str:
        return f"<PeerProcess pid={self.pid} fd={self._fd}>"

    def fileno(self) -> int:
        """The pidfd (readable once the process has exited); ``-1`` once closed."""
        return self._fd

    def exited(self, timeout: float = 0.0) -> bool:
        """Whether the process has exited, waiting up to ``timeout`` seconds for it to.

        A closed handle counts as exited.
        """
        return self._fd < 0 or _pidfd_exited(self._fd, timeout)

    def signal(self, sig: int = signals.SIGTERM) -> bool:
        """Send ``sig`` to this very process (never to a process that reused its pid).

        Returns:
            ``False`` if it has already exited.
        """
        if self._fd < 0:
            return False
        try:
            signals.pidfd_send_signal(self._fd, sig)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        """Release the pidfd; safe to repeat."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)


def peer_pid(conn: socket.socket) -> int:
    """The pid of the process at the other end of a connected Unix socket, from the kernel.

    ``SO_PEERCRED``: the process that called ``connect`` (or ``socketpair``), numbered as
    the controller's PID namespace numbers it, whatever namespace it runs in. Never what a
    message says. The pid may have exited meanwhile and, in principle, been reused: hold it
    with :func:`peer_process` when that matters.

    Args:
        conn: A connected ``AF_UNIX`` socket.

    Returns:
        The pid (0 if the kernel has none to give, e.g. the peer's namespace has no number
        for it here).
    """
    pid, _uid, _gid = struct.unpack(
        "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    )
    return int(pid)


def peer_process(conn: socket.socket, accepted_at: float | None = None) -> PeerProcess:
    """Hold the process at the other end of a Unix socket by a pidfd.

    On Linux ≥ 6.5 the kernel hands the pidfd of the very process that connected
    (``SO_PEERPIDFD``). Elsewhere the pid from ``SO_PEERCRED`` is opened with
    ``pidfd_open`` and its start time checked: a process that started after the connection
    was accepted is another process that reused the pid, and is refused.

    Args:
        conn: A connected ``AF_UNIX`` socket.
        accepted_at: When the connection was accepted, in ``CLOCK_BOOTTIME`` seconds
            (``time.clock_gettime(time.CLOCK_BOOTTIME)``); default now. Only the fallback
            uses it.

    Returns:
        The held process; close it when done.

    Raises:
        ProcessLookupError: If the peer has exited (or its pid now names another process).
    """
    pid = peer_pid(conn)
    if pid <= 0:
        raise ProcessLookupError(errno.ESRCH, "the peer has no pid in this namespace")
    try:
        fd = conn.getsockopt(socket.SOL_SOCKET, _SO_PEERPIDFD)
    except OSError as err:
        if err.errno == errno.ENOPROTOOPT:  # a kernel before 6.5
            return _pidfd_by_pid(pid, _boot_ticks(accepted_at))
        raise ProcessLookupError(errno.ESRCH, f"peer pid {pid} has exited") from None
    held = PeerProcess(pid, fd, 0)
    started = start_ticks(pid)
    # Read after the pidfd was made: if the process is still alive now, the pid was still
    # its own when /proc was read, so the start time is this process's.
    if started is None or held.exited():
        held.close()
        raise ProcessLookupError(errno.ESRCH, f"peer pid {pid} has exited")
    held.start_ticks = started
    return held


def _pidfd_by_pid(pid: int, not_after: int) -> PeerProcess:
    """pidfd_open(pid), refusing a process that started after tick ``not_after``."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as err:
        raise _proc_error(pid, err) from None
    held = PeerProcess(pid, fd, 0)
    started = start_ticks(pid)
    if started is None or held.exited():
        held.close()
        raise ProcessLookupError(errno.ESRCH, f"peer pid {pid} has exited")
    if started > not_after:
        held.close()
        raise ProcessLookupError(errno.ESRCH, f"peer pid {pid} has exited (pid reused)")
    held.start_ticks = started
    return held


def process_argv(pid: int) -> list[str]:
    """The process's argument vector as the kernel reports it (``/proc/PID/cmdline``).

    Undecodable bytes are kept as surrogate escapes. Empty strings are kept too, except the
    terminator's: a process that overwrote its own arguments shorter leaves empty ones
    behind. The arguments live in the process's memory, so it can rewrite them: they tell
    what it was started as, not what it runs.

    Args:
        pid: A pid as the controller numbers it.

    Returns:
        The arguments (empty for a zombie).

    Raises:
        ProcessLookupError: If there is no such process.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read(1 << 20)
    except OSError as err:
        raise _proc_error(pid, err) from None
    if not raw:
        return []
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return [arg.decode(errors="surrogateescape") for arg in raw.split(b"\0")]


def _readlink(pid: int, what: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/{what}")
    except OSError as err:
        raise _proc_error(pid, err) from None


def process_cwd(pid: int) -> str:
    """The process's working directory, as a path inside its own mount namespace.

    ``/proc/PID/cwd`` read as a link: for a process in a sandbox the path is the
    sandbox's (``/work/b``), not where that folder lies on the controller's machine. A
    directory removed since ends in ``" (deleted)"``.

    Args:
        pid: A pid as the controller numbers it.

    Raises:
        ProcessLookupError: If there is no such process.
    """
    return _readlink(pid, "cwd")


def process_exe(pid: int) -> str:
    """The file the process executes (``/proc/PID/exe``), as a path in its mount namespace.

    Raises:
        ProcessLookupError: If there is no such process (or it is a zombie).
    """
    return _readlink(pid, "exe")


def _file_id(path: str, pid: int) -> tuple[int, int]:
    """(device, inode) of what a ``/proc/PID/…`` magic link points at."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise _proc_error(pid, err) from None
    return st.st_dev, st.st_ino


def ns_pid(pid: int) -> int:
    """The process's pid as its own (innermost) PID namespace numbers it (``NSpid``).

    Args:
        pid: A pid as the controller numbers it.

    Raises:
        ProcessLookupError: If there is no such process.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except OSError as err:
        raise _proc_error(pid, err) from None
    return pid  # kernels without NSpid have no nested PID namespaces to tell apart
