"""Where: a process belongs to a live host when its PID namespace is the host's init's."""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sim.hosts.verify.kernel import VerifyError
from sim.hosts.verify.peers import _file_id, start_ticks


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
