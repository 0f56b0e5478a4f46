"""Kernel facts about the processes of live hosts, and the check of a replica's registration.

A replica's scripts tell the controller who they are over the control socket
(:mod:`sim.hosts.control`); anything in the sandbox can write the same words. So the
controller believes none of them: every fact here comes from the kernel or from the
controller's own probe.

* **Who**: the pid at the other end of a Unix socket is the kernel's (``SO_PEERCRED``), held
  by a pidfd so that a reused pid is never mistaken for it (:func:`peer_process`).
* **Where**: a process belongs to a live host when its PID namespace is the host's init's
  (:func:`sandbox_of`, :func:`in_sandbox`, :func:`init_pid`).
* **What**: its argument vector, working directory and executable as the kernel reports them
  (:func:`process_argv`, :func:`process_cwd`, :func:`process_exe`); the SHA-256 of a file as
  the process's own mount namespace sees it (:func:`file_digest`).
* **Serving**: which process of the sandbox holds the listening socket of a TCP port
  (:func:`listener_pid`), and whether it answers HTTP when the controller itself asks from
  inside the sandbox's network namespace (:func:`probe_http`).

:func:`verify_agent` puts them together for an agent's ``hello``: a :class:`Verdict` whose
``reason`` says precisely which fact failed.

Everything reads ``/proc`` of the machine the controller runs on and joins namespaces, so
the controller must run as root (``CAP_SYS_PTRACE`` to read other users' ``/proc/PID/root``
and ``fd``, ``CAP_SYS_ADMIN`` to join a network namespace) on the machine where the
sandboxes run: a remote Docker engine's containers cannot be verified this way
(:func:`init_pid` raises :class:`VerifyError` for them).

Example:
    >>> verdict = verify_agent(box, peer, folder="/work/b", port=8001,  # doctest: +SKIP
    ...                        weights_sha256=digest)
    >>> verdict.ok, verdict.reason  # doctest: +SKIP
    (False, 'weights sha256 differs')
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import posixpath
import re
import select
import shlex
import signal as signals
import socket
import stat
import struct
import threading
import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sim.hosts.replica import WEIGHTS

__all__ = [
    "MAX_DIGEST_BYTES",
    "PeerProcess",
    "PidNamespace",
    "ProbeError",
    "Verdict",
    "VerifyError",
    "file_digest",
    "in_sandbox",
    "init_pid",
    "listener_pid",
    "listener_pids",
    "netns_socket",
    "ns_pid",
    "peer_pid",
    "peer_process",
    "probe_http",
    "process_argv",
    "process_cwd",
    "process_exe",
    "sandbox_of",
    "sandbox_pids",
    "start_ticks",
    "verify_agent",
]

#: Largest file :func:`file_digest` reads by default (bigger files are refused, not hashed).
MAX_DIGEST_BYTES = 64 << 30
#: Largest HTTP response body :func:`probe_http` keeps.
MAX_PROBE_BODY = 65536

# Linux constants the standard library of Python 3.11 lacks.
_SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)  # Linux 6.5
_SYS_OPENAT2 = 437  # the same number on every architecture (Linux 5.6)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_CLONE_NEWNET = 0x40000000
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_READ_BLOCK = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.setns.restype = ctypes.c_int


class VerifyError(RuntimeError):
    """A fact could not be established (no such host init, an unreadable file, a remote
    engine…); the message says which."""


class ProbeError(OSError):
    """The controller's health probe got no HTTP answer; the message says why
    (``connection refused``, ``timed out after 1 s``…)."""


# --------------------------------------------------------------------------------------------
# processes


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


# --------------------------------------------------------------------------------------------
# sandboxes


@dataclass(frozen=True)
class PidNamespace:
    """A PID namespace, by the device and inode of its ``/proc/PID/ns/pid`` link.

    Every live host has its own: two processes are in the same sandbox exactly when their
    namespaces are equal.
    """

    dev: int
    ino: int

    def __str__(self) -> str:
        return f"pid:[{self.ino}]"


def sandbox_of(pid: int) -> PidNamespace:
    """The PID namespace of a process: which sandbox it runs in.

    Args:
        pid: A pid as the controller numbers it.

    Raises:
        ProcessLookupError: If there is no such process.
    """
    dev, ino = _file_id(f"/proc/{pid}/ns/pid", pid)
    return PidNamespace(dev, ino)


# Docker hosts: (container id, init pid, its start time), so that the engine is asked once
# per start of the container, not once per check.
_docker_inits: weakref.WeakKeyDictionary[Any, tuple[str, int, int]] = weakref.WeakKeyDictionary()
_docker_lock = threading.Lock()


def init_pid(box: Any) -> int:
    """The pid of a live host's init (its PID 1), as the controller numbers it.

    A local host keeps it (``LocalHost._init_pid``, checked against the PID namespace it
    recorded, ``_pidns``); a Docker host's comes from the engine
    (``State.Pid`` after a reload, remembered while that process lives) and is checked to
    be this machine's process of that container.

    Args:
        box: A started :class:`~sim.hosts.live.LiveHost` (``local`` or ``docker``).

    Returns:
        The init's pid.

    Raises:
        VerifyError: If the host is not running, its backend keeps no init pid, or its
            engine is not on this machine.
    """
    pid = getattr(box, "_init_pid", None)
    if pid is not None:
        # The host's PID namespace, as bwrap reported it: a pid reused since the host
        # stopped is in another one.
        wanted = getattr(box, "_pidns", None)
        try:
            if start_ticks(pid) is None or (wanted and sandbox_of(pid).ino != wanted):
                raise VerifyError(f"{box!r} is not running")
        except ProcessLookupError:
            raise VerifyError(f"{box!r} is not running") from None
        return int(pid)
    container = getattr(box, "container", None)
    if container is None:
        raise VerifyError(f"{box!r}: no init pid to verify with (backend {box.backend!r})")
    with _docker_lock:
        cached = _docker_inits.get(box)
        if cached is not None and cached[0] == container.id and start_ticks(cached[1]) == cached[2]:
            return cached[1]
        try:
            container.reload()
        except Exception as err:  # the engine's errors: its SDK's exception types
            raise VerifyError(f"{box!r}: the engine did not answer: {err}") from None
        state = container.attrs.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            raise VerifyError(f"{box!r} is not running")
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                local = container.id in fh.read()
        except OSError:
            local = False
        started = start_ticks(pid)
        if not local or started is None:
            raise VerifyError(
                f"{box!r}: the engine's pid {pid} is not this machine's process of the"
                " container (a remote engine?): its processes cannot be verified from here"
            )
        _docker_inits[box] = (container.id, pid, started)
        return pid


def _namespace(where: Any) -> tuple[PidNamespace, int]:
    """(PID namespace, a pid in it) of a live host or of a process's sandbox."""
    pid = where if isinstance(where, int) else init_pid(where)
    return sandbox_of(pid), pid


def in_sandbox(pid: int, box: Any) -> bool:
    """Whether a process runs in a given live host (its PID namespace is the host init's).

    A process in a namespace nested inside the host's is not counted as the host's.

    Args:
        pid: A pid as the controller numbers it.
        box: A live host, or a :class:`PidNamespace`.

    Returns:
        ``False`` also when the process does not exist.
    """
    wanted = box if isinstance(box, PidNamespace) else _namespace(box)[0]
    try:
        return sandbox_of(pid) == wanted
    except ProcessLookupError:
        return False


def sandbox_pids(where: Any) -> list[int]:
    """The pids (as the controller numbers them) of every process in a sandbox.

    Args:
        where: A live host, or the pid of any process in the sandbox.

    Returns:
        Sorted pids, the init included.
    """
    wanted, _ = _namespace(where)
    pids = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    st = os.stat(f"/proc/{entry.name}/ns/pid")
                except OSError:
                    continue  # gone meanwhile, or not ours to look at
                if st.st_ino == wanted.ino and st.st_dev == wanted.dev:
                    pids.append(int(entry.name))
    return sorted(pids)


# --------------------------------------------------------------------------------------------
# files


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    how = struct.pack("QQQ", flags, 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.c_char_p(how),
        ctypes.c_size_t(len(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            raise VerifyError("openat2 is missing (Linux >= 5.6 needed to read sandbox files)")
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def file_digest(
    pid: int, path: str, *, max_bytes: int = MAX_DIGEST_BYTES, size: int | None = None
) -> str:
    """SHA-256 of a file as a process's mount namespace sees it.

    The file is opened through ``/proc/PID/root`` with ``openat2(RESOLVE_IN_ROOT)``: links
    and ``..`` resolve inside the process's root, as they would for the process, and can
    never lead to the controller's own files. Only a regular file is read (a FIFO or a
    device is refused without blocking), streamed in 1 MiB blocks, at most ``max_bytes``.
    Reading another user's ``/proc/PID/root`` needs root (``CAP_SYS_PTRACE``).

    Args:
        pid: A pid as the controller numbers it.
        path: Absolute in the process's root, or relative to its working directory.
        max_bytes: Refuse files larger than this (and stop reading one that grows past it).
        size: If given, a file of another size is refused before anything is read.

    Returns:
        The hex digest.

    Raises:
        FileNotFoundError: If there is no such file there.
        PermissionError: If the controller may not read it.
        VerifyError: If it is not a regular file, or has the wrong size or too many bytes.
        ProcessLookupError: If there is no such process.
    """
    if not path.startswith("/"):
        path = posixpath.join(process_cwd(pid), path)
    try:
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise _proc_error(pid, err) from None
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = _openat2(root, path, flags, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(root)
    with open(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise VerifyError(f"{path} is not a regular file")
        if size is not None and st.st_size != size:
            raise VerifyError(f"{path} has {st.st_size} bytes, not {size}")
        if st.st_size > max_bytes:
            raise VerifyError(f"{path} has {st.st_size} bytes, more than {max_bytes}")
        digest = hashlib.sha256()
        block = bytearray(_READ_BLOCK)
        view = memoryview(block)
        total = 0
        while n := fh.readinto(block):
            total += n
            if total > max_bytes:
                raise VerifyError(f"{path} grew past {max_bytes} bytes while read")
            digest.update(view[:n])
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# network


def _listening_inodes(pid: int, port: int) -> set[int]:
    """Inodes of the TCP sockets listening on ``port`` in the network namespace of ``pid``.

    Asked of the kernel's socket diagnostics (netlink ``sock_diag``, listeners only) from a
    netlink socket made in that namespace; ``/proc/PID/net/tcp{,6}`` where it is missing
    (reading those walks every TCP socket of the machine: milliseconds).
    """
    try:
        return _diag_listeners(pid, port)
    except ProcessLookupError:
        raise
    except OSError:  # no inet_diag here: read /proc
        return _proc_listeners(pid, port)


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_TCP_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_DIAG_REQ = struct.Struct("=BBBxI48x")  # family, protocol, extensions, states, socket id
_DIAG_MSG = struct.Struct("=BBBBHH")  # family, state, timer, retrans, sport (big-endian)…


def _diag_listeners(pid: int, port: int) -> set[int]:
    inodes = set()
    sock = netns_socket(pid, socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    with sock:
        sock.settimeout(5.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            body = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
            head = _NLMSG.pack(
                _NLMSG.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, seq, 0
            )
            sock.send(head + body)
            done = False
            while not done:
                data = sock.recv(65536)
                offset = 0
                while offset + _NLMSG.size <= len(data):
                    length, kind, _flags, _seq, _port = _NLMSG.unpack_from(data, offset)
                    if length < _NLMSG.size:
                        raise OSError(errno.EPROTO, "bad netlink message")
                    if kind == _NLMSG_DONE:
                        done = True
                    elif kind == _NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, offset + _NLMSG.size)[0]
                        raise OSError(code, os.strerror(code))
                    elif kind == _SOCK_DIAG_BY_FAMILY:
                        msg = offset + _NLMSG.size
                        sport = socket.ntohs(_DIAG_MSG.unpack_from(data, msg)[4])
                        if sport == port:
                            # inet_diag_msg: 4 bytes, socket id (48), expires, rqueue,
                            # wqueue, uid, inode (u32 each)
                            inodes.add(struct.unpack_from("=I", data, msg + 4 + 48 + 16)[0])
                    offset += (length + 3) & ~3
    return inodes


def _proc_listeners(pid: int, port: int) -> set[int]:
    inodes = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", "rb") as fh:
                next(fh, None)  # the header
                for line in fh:
                    fields = line.split()
                    # local address "0100007F:1F41", state 0A = LISTEN, inode is the 10th
                    if fields[3] == b"0A" and int(fields[1].rsplit(b":", 1)[1], 16) == port:
                        inodes.add(int(fields[9]))
        except FileNotFoundError:
            continue  # no IPv6 here
        except OSError as err:
            raise _proc_error(pid, err) from None
    return inodes


def listener_pids(where: Any, port: int) -> list[int]:
    """Which processes of a sandbox hold a socket listening on a TCP port.

    The socket's inode comes from the kernel's socket diagnostics in the sandbox's network
    namespace (``/proc/PID/net/tcp`` and ``tcp6`` where those are missing); its holders are
    the sandbox's processes with a ``socket:[inode]`` among their file descriptors. Several
    processes hold it when one forked after listening.

    Args:
        where: A live host, or the pid (as the controller numbers it) of any process in the
            sandbox.
        port: The TCP port.

    Returns:
        Sorted pids as the controller numbers them; empty if nothing listens, or if what
        listens is no process of this sandbox.
    """
    _, pid = _namespace(where)
    inodes = _listening_inodes(pid, port)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for candidate in sandbox_pids(pid):
        try:
            fds = os.listdir(f"/proc/{candidate}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{candidate}/fd/{fd}") in wanted:
                    holders.append(candidate)
                    break
            except OSError:
                continue
    return holders


def listener_pid(where: Any, port: int) -> int | None:
    """The process of a sandbox listening on a TCP port (the lowest pid if several share
    the socket), or ``None``; see :func:`listener_pids`."""
    holders = listener_pids(where, port)
    return holders[0] if holders else None


def netns_socket(
    netns_pid: int, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A socket in the network namespace of a process (e.g. a sandbox's, loopback only).

    A socket belongs to the namespace it was made in, for its whole life. A short-lived
    thread joins the namespace (``setns``), makes the socket and ends: the calling thread
    never changes namespace, and a thread that did is never reused. Root may join any
    sandbox's namespace, also one owned by a bubblewrap user namespace.

    Args:
        netns_pid: A pid (as the controller numbers it) in the wanted network namespace.
        family: Address family.
        type: Socket type.
        proto: Protocol (e.g. a netlink family).

    Returns:
        The socket, in blocking mode; the caller closes it.

    Raises:
        ProcessLookupError: If there is no such process.
        PermissionError: If the controller may not join the namespace (not root).
    """
    try:
        nsfd = os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _proc_error(netns_pid, err) from None
    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            if _libc.setns(nsfd, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(
                    code, f"setns into the network of pid {netns_pid}: {os.strerror(code)}"
                )
            made.append(socket.socket(family, type, proto))
        except BaseException as err:  # handed to the caller's thread
            made.append(err)

    try:
        thread = threading.Thread(target=enter, name=f"netns-{netns_pid}", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(nsfd)
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def probe_http(
    netns_pid: int,
    port: int,
    path: str = "/health",
    timeout: float = 2.0,
    max_body: int = MAX_PROBE_BODY,
) -> tuple[int, bytes]:
    """The controller's own health probe of a server inside a sandbox.

    Connects to ``127.0.0.1:port`` inside the sandbox's network namespace (a socket made by
    :func:`netns_socket`, so this works for a Docker host with network ``none`` and for a
    bubblewrap host alike), sends ``GET path`` (HTTP/1.0, ``Connection: close``) and reads
    the answer within ``timeout`` seconds in all.

    Args:
        netns_pid: A pid (as the controller numbers it) in the sandbox, e.g. its init's.
        port: The server's TCP port.
        path: The path asked for.
        timeout: Seconds for the whole exchange.
        max_body: Most body bytes kept (the rest is not read).

    Returns:
        (HTTP status, body).

    Raises:
        ProbeError: If there was no HTTP answer: the message says why (``connection
            refused``, ``timed out after 2 s``, ``connection closed before an answer``,
            ``no HTTP status line``).
        ProcessLookupError: If there is no such process.
    """
    deadline = time.monotonic() + timeout
    sock = netns_socket(netns_pid)
    try:
        return _http_get(sock, port, path, deadline, max_body, timeout)
    finally:
        sock.close()


def _http_get(
    sock: socket.socket, port: int, path: str, deadline: float, max_body: int, timeout: float
) -> tuple[int, bytes]:
    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    data = bytearray()
    try:
        sock.settimeout(left())
        sock.connect(("127.0.0.1", port))
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        length: int | None = None
        head_end = -1
        while True:
            if head_end < 0:
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    match = re.search(rb"(?im)^content-length:\s*(\d{1,12})\s*$", data[:head_end])
                    length = int(match.group(1)) if match else None
                elif len(data) > 65536:
                    break  # no end of headers in 64 KiB: judged on the status line below
            if head_end >= 0:
                got = len(data) - head_end - 4
                if got >= max_body or (length is not None and got >= length):
                    break
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        if not data:
            raise ProbeError(errno.ETIMEDOUT, f"timed out after {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ProbeError(errno.ECONNREFUSED, "connection refused") from None
    except OSError as err:
        if not data:
            raise ProbeError(err.errno or errno.EIO, err.strerror or str(err)) from None
    if not data:
        raise ProbeError(errno.ECONNRESET, "connection closed before an answer")
    match = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})[ \r\n]", data)
    if match is None:
        raise ProbeError(errno.EPROTO, "no HTTP status line")
    head_end = data.find(b"\r\n\r\n")
    body = bytes(data[head_end + 4 : head_end + 4 + max_body]) if head_end >= 0 else b""
    return int(match.group(1)), body


# --------------------------------------------------------------------------------------------
# the whole check


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify_agent` found.

    Attributes:
        ok: Every check passed: the registration is a replica.
        reason: Why not (the first check that failed), ``"verified"`` when ``ok``.
        pid: The agent's pid as the controller numbers it (the kernel's, never a claim).
        server_pid: Its server's, once found.
        elapsed_s: Seconds the checks took.
    """

    ok: bool
    reason: str
    pid: int
    server_pid: int | None = None
    elapsed_s: float = 0.0

    def __bool__(self) -> bool:
        return self.ok


_PYTHON = re.compile(r"python(?:3(?:\.\d+)?)?")


#: Options each of the bundle's scripts takes (besides ``--port``), as its start script
#: passes them (``start_agent.sh PORT --task TEXT``, ``start_server.sh``'s ``--model``).
SCRIPT_OPTIONS = {"agent.py": frozenset({"--task"}), "server.py": frozenset({"--model"})}


def _pythons(init: int) -> set[tuple[int, int]]:
    """The host's Python interpreters: the system's ``python3`` as the sandbox sees it (what
    the machine's ``PATH`` finds) and the init's."""
    found = {_file_id(f"/proc/{init}/exe", init)}
    for name in ("usr/bin/python3", "usr/local/bin/python3"):
        try:
            st = os.stat(f"/proc/{init}/root/{name}")
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _script_error(
    pid: int,
    folder: str,
    script: str,
    port: int,
    pythons: set[tuple[int, int]],
    what: str,
) -> str | None:
    """Why ``pid`` is not ``python3 [folder/]script --port PORT [options]`` run from
    ``folder``."""
    argv = process_argv(pid)
    wanted = f"python3 {script} --port {port}"
    options: dict[str, str] = {}
    rest = argv[2:]
    ok_shape = (
        len(argv) >= 4
        and len(rest) % 2 == 0
        and _PYTHON.fullmatch(posixpath.basename(argv[0])) is not None
        and argv[1] in (script, posixpath.join(folder, script), f"./{script}")
    )
    if ok_shape:
        options = dict(zip(rest[::2], rest[1::2], strict=True))
        ok_shape = (
            len(options) * 2 == len(rest)
            and options.get("--port") == str(port)
            and set(options) <= {"--port"} | SCRIPT_OPTIONS.get(script, frozenset())
        )
    if not ok_shape:
        shown = shlex.join(argv) if argv else "nothing (a zombie)"
        return f"{what} {pid} runs {shown[:200]!r}, not {wanted!r}"
    if _file_id(f"/proc/{pid}/exe", pid) not in pythons:
        return f"{what} {pid} executes {process_exe(pid)}, not the host's Python"
    cwd = process_cwd(pid)
    if cwd != folder:
        return f"{what} {pid} runs in {cwd}, not {folder}"
    return None


def verify_agent(
    box: Any,
    peer: int | PeerProcess,
    *,
    folder: str,
    port: int,
    weights_sha256: str,
    weights: str = WEIGHTS,
    weights_bytes: int | None = None,
    claimed_pid: int | None = None,
    known_pids: Collection[int] = (),
    probe_path: str = "/health",
    timeout: float = 2.0,
    max_weights_bytes: int = MAX_DIGEST_BYTES,
) -> Verdict:
    """Check an agent's registration against the kernel and the controller's own probe.

    In order, cheapest first; the first failure is the verdict's reason:

    1. **Identity**: the kernel's peer pid (never the message's) is alive, in this host's
       sandbox, and not a process of a replica already counted; a pid the message claims
       must be the one the sandbox numbers it with.
    2. **Agent**: its arguments are ``python3 agent.py --port PORT [--task TEXT]`` (the
       script named relatively or as ``folder/agent.py``), its executable is the host's
       Python (the system's ``python3`` as the sandbox sees it, or the init's), and its
       working directory is ``folder``.
    3. **Server**: a process of the same sandbox listens on ``PORT``: it is
       ``python3 server.py [--model DIR] --port PORT`` run from the same folder (its own
       server), and no replica's already.
    4. **Weights**: ``folder/weights`` as the agent's mount namespace sees it (links
       resolved inside the sandbox) hashes to ``weights_sha256``.
    5. **Live**: the controller's own ``GET probe_path`` on ``127.0.0.1:PORT`` inside the
       sandbox answers 200.

    Last, the agent must still be the same process (held by its pidfd, or with the same
    start time), so that a pid reused during the checks is not counted.

    Args:
        box: The live host the registration came to.
        peer: The registering process: the kernel's pid (:func:`peer_pid`) or, better, the
            process held by :func:`peer_process`.
        folder: The bundle folder inside the sandbox (the registration's ``path``).
        port: The server's port (the registration's ``port``).
        weights_sha256: The bundle's weights digest.
        weights: The weights file, relative to ``folder`` (the bundle's).
        weights_bytes: The weights' size, if known: a wrong size fails without hashing.
        claimed_pid: The pid the message claims, if any (a genuine agent sends its pid in
            the sandbox).
        known_pids: Pids (as the controller numbers them) of the processes of replicas
            already counted, agents and servers.
        probe_path: What the probe asks for.
        timeout: Seconds the probe may take.
        max_weights_bytes: Largest weights file hashed.

    Returns:
        The verdict.

    Raises:
        VerifyError: If the host's own facts cannot be read (not running, remote engine).
    """
    t0 = time.perf_counter()
    held = peer if isinstance(peer, PeerProcess) else None
    pid = peer.pid if isinstance(peer, PeerProcess) else peer
    server: int | None = None

    def verdict(reason: str | None) -> Verdict:
        return Verdict(reason is None, reason or "verified", pid, server, time.perf_counter() - t0)

    init = init_pid(box)
    host = getattr(box, "name", str(box))
    folder = posixpath.normpath(folder)
    try:
        started = start_ticks(pid)
        if started is None or (held is not None and held.exited()):
            return verdict(f"pid {pid} has exited")
        if sandbox_of(pid) != sandbox_of(init):
            return verdict(f"pid {pid} is not in host {host}'s sandbox")
        if pid in known_pids:
            return verdict(f"pid {pid} is already a known replica's process")
        if claimed_pid is not None and claimed_pid != (inside := ns_pid(pid)):
            return verdict(
                f"the message claims pid {claimed_pid}, the kernel says pid {inside}"
                f" (pid {pid} here)"
            )
        python = _pythons(init)
        if reason := _script_error(pid, folder, "agent.py", port, python, "pid"):
            return verdict(reason)
        holders = listener_pids(init, port)
        if not holders:
            return verdict(f"nothing listens on port {port}")
        server = holders[0]
        if server in known_pids:
            return verdict(f"port {port} is served by pid {server}, a known replica's server")
        try:
            reason = _script_error(server, folder, "server.py", port, python, "its listener")
        except ProcessLookupError:
            reason = f"its listener {server} exited"
        if reason:
            return verdict(f"port {port}: {reason}")
        try:
            digest = file_digest(
                pid,
                posixpath.join(folder, weights),
                size=weights_bytes,
                max_bytes=max_weights_bytes,
            )
        except FileNotFoundError:
            return verdict(f"{weights}: no such file in {folder}")
        except (VerifyError, OSError) as err:
            return verdict(f"{weights}: {err}")
        if digest != weights_sha256:
            return verdict(f"{weights} sha256 differs")
        try:
            status, _ = probe_http(init, port, probe_path, timeout)
        except ProbeError as err:
            return verdict(f"probe of port {port}: {err.strerror}")
        if status != 200:
            return verdict(f"probe of port {port}: HTTP {status}")
        if start_ticks(pid) != started or (held is not None and held.exited()):
            return verdict(f"pid {pid} exited during the checks")
    except ProcessLookupError:
        return verdict(f"pid {pid} has exited")
    return verdict(None)
