"""What live trials reserve of the machine, and how many fit at once.

A live trial's hosts are real sandboxes with real caps: each reserves its memory cap (the
scenario's memory times ``world.scale``, at least 16 MiB), its process cap (``pids``) and
its CPU quota (``cpu``, at most the machine's CPUs), and the trial's controller (a pool
worker with its threads) reserves :data:`CONTROLLER_MEMORY` and :data:`CONTROLLER_PIDS`
beside them. A sweep compares what its concurrent live trials reserve with what the machine
has (:func:`machine_capacity`: available memory, free process slots, CPUs) and admits a
live trial only while the reservations of those in flight and its own fit
(:class:`Admission`): what does not fit waits its turn, so the machine is never
over-committed. A trial that could not fit even alone is refused before the sweep starts.

Modelled trials reserve nothing here (their cost is the pool's, see :mod:`sim.budget`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.budget import BYTES_PER_WORKER, cpus, human_bytes

__all__ = [
    "CONTROLLER_MEMORY",
    "CONTROLLER_PIDS",
    "Admission",
    "Capacity",
    "Reservation",
    "fitting",
    "machine_capacity",
    "trial_reservation",
]

CONTROLLER_MEMORY = BYTES_PER_WORKER
"""Memory of one live trial's controller: a pool worker with replisim imported."""
CONTROLLER_PIDS = 64
"""Threads of one live trial's controller (the substrate's worker threads and sockets)."""
MEMORY_HEADROOM = 0.9
"""The share of the machine's available memory that live hosts may reserve."""
MIN_HOST_MEMORY = 16 << 20
"""The smallest memory cap the live substrate gives a host."""


@dataclass(frozen=True)
class Reservation:
    """What one trial reserves while it runs: zero for a modelled trial.

    Attributes:
        memory: Bytes (the hosts' memory caps and the controller's).
        pids: Processes and threads (the hosts' caps and the controller's).
        cpus: CPUs (the hosts' quotas).
        hosts: Live hosts.
        docker: Whether a host is a Docker container (the trial needs a Docker engine).
    """

    memory: int = 0
    pids: int = 0
    cpus: float = 0.0
    hosts: int = 0
    docker: bool = False

    def __bool__(self) -> bool:
        return self.hosts > 0

    def describe(self) -> str:
        """``1.1 GB of memory, 192 processes, 1 CPU (1 host)``."""
        plural = "s" if self.hosts != 1 else ""
        return (
            f"{human_bytes(self.memory)} of memory, {self.pids} processes, {self.cpus:g} CPU "
            f"({self.hosts} host{plural})"
        )


@dataclass(frozen=True)
class Capacity:
    """What the machine offers live trials: memory (bytes), process slots, CPUs."""

    memory: int
    pids: int
    cpus: float


def trial_reservation(scenario: Any) -> Reservation:
    """What a trial of ``scenario`` reserves (nothing when it runs in the modelled world)."""
    from sim.hosts.registry import backends_of, substrate_of

    if not getattr(substrate_of(scenario), "wall_clock", False):
        return Reservation()
    scale = scenario.world.scale
    machine_cpus = float(os.cpu_count() or 1)
    memory, pids, quota, hosts, docker = CONTROLLER_MEMORY, CONTROLLER_PIDS, 0.0, 0, False
    for group, backend in zip(scenario.hosts, backends_of(scenario), strict=True):
        count = group.count
        hosts += count
        memory += count * max(int(_value(group.memory) * scale), MIN_HOST_MEMORY)
        pids += count * int(getattr(group, "pids", 256))
        quota += count * min(group.cpu, machine_cpus)
        docker = docker or backend == "docker"
    return Reservation(memory, pids, quota, hosts, docker)


def _value(quantity: Any) -> float:
    """A size as a number: a distribution's mean (what a host draws on average)."""
    return float(quantity) if isinstance(quantity, int | float) else float(quantity.expected())


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def machine_capacity() -> Capacity:
    """What this machine has for live trials now.

    Memory: :data:`MEMORY_HEADROOM` of the available memory (the cgroup's room when it is
    tighter). Processes: the kernel's limits (``pid_max``, ``threads-max``, the cgroup's
    ``pids.max``) less the tasks that run now. CPUs: those this process may use.
    """
    import psutil

    available = int(psutil.virtual_memory().available)
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        available = min(available, max(limit - used, 0))
    caps = [_read_int("/proc/sys/kernel/pid_max"), _read_int("/proc/sys/kernel/threads-max")]
    caps.append(_read_int("/sys/fs/cgroup/pids.max"))
    known = [c for c in caps if c is not None]
    pid_cap = min(known) if known else 32768
    try:  # the fourth field of loadavg: running/total scheduling entities (threads)
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        running = 0
    return Capacity(int(available * MEMORY_HEADROOM), max(pid_cap - running, 0), float(cpus()))


def fitting(capacity: Capacity, reservation: Reservation) -> tuple[int, str]:
    """How many trials of ``reservation`` fit in ``capacity`` at once, and the resource that
    limits them (``""`` for a trial that reserves nothing: no limit here)."""
    if not reservation:
        return 1 << 30, ""
    counts = {
        "memory": capacity.memory // max(reservation.memory, 1),
        "processes": capacity.pids // max(reservation.pids, 1),
        "CPUs": int(capacity.cpus / reservation.cpus + 1e-9) if reservation.cpus else 1 << 30,
    }
    limit = min(counts, key=lambda k: counts[k])
    return int(counts[limit]), limit


class Admission:
    """The live trials in flight and what they reserve: one more is admitted only if it
    fits beside them. Thread-safe."""

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._memory = 0
        self._pids = 0
        self._cpus = 0.0
        self._lock = threading.Lock()

    def take(self, reservation: Reservation) -> bool:
        """Reserve for one trial if it fits; return whether it did."""
        if not reservation:
            return True
        with self._lock:
            c = self.capacity
            if (
                self._memory + reservation.memory > c.memory
                or self._pids + reservation.pids > c.pids
                or self._cpus + reservation.cpus > c.cpus + 1e-9
            ):
                return False
            self._memory += reservation.memory
            self._pids += reservation.pids
            self._cpus += reservation.cpus
            return True

    def give_back(self, reservation: Reservation) -> None:
        """Release a finished trial's reservation."""
        if not reservation:
            return
        with self._lock:
            self._memory -= reservation.memory
            self._pids -= reservation.pids
            self._cpus -= reservation.cpus
