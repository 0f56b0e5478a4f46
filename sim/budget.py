"""What a scenario or a sweep needs of the machine, estimated before anything runs.

A scenario with 10^9 hosts or a sweep of 10^9 trials validates as a shape but cannot run:
it would end in a ``MemoryError`` or a full disk after minutes. These estimates are cheap
lower bounds measured on the development machine (2 cores, CPython 3.11); a request above
what the machine has is refused with the estimate in the message.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = [
    "BYTES_PER_EDGE",
    "BYTES_PER_HOST",
    "BYTES_PER_ROW",
    "BYTES_PER_TRIAL_FOLDER",
    "BYTES_PER_WORKER",
    "cpus",
    "free_disk",
    "human_bytes",
    "machine_memory",
    "network_edges",
    "usable_workers",
    "world_bytes",
]

BYTES_PER_HOST = 1_000
"""Memory of one modelled host in the world (measured: 865 B at 2*10^5 hosts)."""
BYTES_PER_EDGE = 400
"""Memory of one network link while the topology is built (networkx graph, then lists)."""
BYTES_PER_ROW = 4_000
"""Memory of one trial's row while a sweep runs (a dict of ~45 fields, then the table)."""
BYTES_PER_TRIAL_FOLDER = 24 * 1024
"""Disk of the smallest trial folder: five files and a directory, a 4 KiB block each."""
BYTES_PER_WORKER = 200 * 2**20
"""Memory of one pool worker with replisim imported, before any trial."""


def machine_memory() -> int:
    """Total memory of this machine in bytes (the cgroup's cap when lower)."""
    import psutil

    total = int(psutil.virtual_memory().total)
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(text)) if text.isdigit() else total


def free_disk(path: str | Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 2**62  # nothing to measure: let the writes tell


def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def network_edges(hosts: int, topology: str, degree: float, listed: int) -> float:
    """Links a topology builds for ``hosts`` hosts (``full`` is implicit: no links kept)."""
    if topology in ("random", "regular"):
        edges = hosts * min(degree, max(hosts - 1, 0)) / 2
    elif topology in ("ring", "star"):
        edges = hosts
    else:
        edges = 0
    return edges + listed


def world_bytes(hosts: int, edges: float) -> float:
    """Memory a modelled world of ``hosts`` hosts and ``edges`` links needs to be built."""
    return hosts * BYTES_PER_HOST + edges * BYTES_PER_EDGE


def usable_workers(requested: int, trials: int) -> tuple[int, str | None]:
    """The pool size to start for ``requested`` workers and ``trials`` trials to run, and a
    notice when it is less than asked: no more workers than CPUs (trials are CPU-bound, and
    each worker is pinned to its share of them), than fit in memory, or than trials."""
    limit = cpus()
    memory_limit = max(1, machine_memory() // BYTES_PER_WORKER)
    fits = max(1, min(requested, limit, memory_limit))
    usable = max(1, min(fits, trials))
    if fits >= requested:
        return usable, None
    why = (
        f"this machine lets replisim use {limit} CPU(s)"
        if fits == limit
        else f"{human_bytes(machine_memory())} of memory holds about {memory_limit} workers"
    )
    return usable, f"--workers {requested} capped at {fits}: {why}"


def human_bytes(n: float) -> str:
    """``1.5 GB``-style text for a byte count."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover
