"""A live host's cgroups: memory (and memory + swap), pids and cpu, and its OOM kills.

Used by the ``local`` live host (:mod:`sim.hosts.local_host`). The cgroups are made as
children of the calling process's own cgroups, so whatever accounts for the caller (a
harness, a systemd unit) still accounts for its sandboxes. cgroup v1 (one folder per
controller, as on replisim's machines) and v2 (one folder; the controllers must be
delegatable to it) are both handled; where neither is writable, :meth:`Cgroup.plan` says so
and the caller falls back to rlimits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["CPU_PERIOD_US", "Cgroup"]

#: CFS period for the cpu quota (the kernel's default).
CPU_PERIOD_US = 100_000


def _write(path: Path, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


class Cgroup:
    """A host's cgroups: one folder per controller (v1), or one folder (v2).

    Args:
        dirs: Controller name (``memory``, ``pids``, ``cpu``) -> folder; for v2 each
            controller maps to the same folder.
        version: 1 or 2.
    """

    def __init__(self, dirs: dict[str, Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def plan(cls, name: str) -> Cgroup | None:
        """Where the host's cgroups would go, below this process's own; ``None`` if nowhere.

        Args:
            name: Folder name, unique on the machine.

        Returns:
            The plan (nothing created yet), or ``None`` if no cgroup is writable here.
        """
        mounts_v1: dict[str, Path] = {}
        mount_v2: Path | None = None
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
            own_lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            fields = right.split()
            if len(fields) < 3:
                continue
            mount_point = Path(left.split()[4])
            if fields[0] == "cgroup2":
                mount_v2 = mount_point
            elif fields[0] == "cgroup":
                for option in fields[2].split(","):
                    mounts_v1.setdefault(option, mount_point)
        own: dict[str, str] = {}
        for line in own_lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
        if "memory" in mounts_v1 and "pids" in mounts_v1:
            dirs = {}
            for controller in ("memory", "pids", "cpu"):
                if controller in mounts_v1 and controller in own:
                    parent = mounts_v1[controller] / own[controller].lstrip("/")
                    if parent.is_dir() and os.access(parent, os.W_OK):
                        dirs[controller] = parent / name
            return cls(dirs, 1) if "memory" in dirs and "pids" in dirs else None
        if mount_v2 is not None and "" in own:
            parent = mount_v2 / own[""].lstrip("/")
            if parent.is_dir() and os.access(parent, os.W_OK):
                return cls(dict.fromkeys(("memory", "pids", "cpu"), parent / name), 2)
        return None

    def create(self) -> bool:
        """Make the folders (v2: delegate the controllers first); ``False`` if refused."""
        try:
            if self.version == 2:
                folder = self.dirs["memory"]
                wanted = {"memory", "pids", "cpu"}
                enabled = set((folder.parent / "cgroup.subtree_control").read_text().split())
                for controller in sorted(wanted - enabled):
                    with contextlib.suppress(OSError):  # cpu is optional
                        _write(folder.parent / "cgroup.subtree_control", f"+{controller}")
                folder.mkdir()
                if not (folder / "memory.max").exists() or not (folder / "pids.max").exists():
                    raise OSError(errno.ENOTSUP, "memory or pids controller not delegated")
            else:
                for folder in self.dirs.values():
                    folder.mkdir()
        except OSError:
            self.remove(wait=0)
            return False
        return True

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join."""
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def set_limits(
        self, memory: int | None, memory_swap: int | None, pids: int | None, cpus: float | None
    ) -> None:
        """Write the limits (``None``: no limit)."""
        mem_dir, pids_dir = self.dirs["memory"], self.dirs["pids"]
        cpu_dir = self.dirs.get("cpu")
        swap = memory_swap if memory_swap is not None else memory
        if self.version == 1:
            limit = mem_dir / "memory.limit_in_bytes"
            memsw = mem_dir / "memory.memsw.limit_in_bytes"
            values = (memory or -1, swap or -1)
            if memsw.exists():
                try:  # the kernel insists on limit <= memsw at every step: order matters
                    _write(limit, values[0])
                    _write(memsw, values[1])
                except OSError:
                    _write(memsw, values[1])
                    _write(limit, values[0])
            else:
                _write(limit, values[0])
            _write(pids_dir / "pids.max", pids or "max")
            if cpu_dir is not None:
                _write(cpu_dir / "cpu.cfs_period_us", CPU_PERIOD_US)
                _write(cpu_dir / "cpu.cfs_quota_us", round(cpus * CPU_PERIOD_US) if cpus else -1)
        else:
            _write(mem_dir / "memory.max", memory or "max")
            if (mem_dir / "memory.swap.max").exists():
                _write(mem_dir / "memory.swap.max", max(swap - memory, 0) if swap and memory else 0)
            _write(pids_dir / "pids.max", pids or "max")
            if cpu_dir is not None and (cpu_dir / "cpu.max").exists():
                quota = round(cpus * CPU_PERIOD_US) if cpus else "max"
                _write(cpu_dir / "cpu.max", f"{quota} {CPU_PERIOD_US}")

    def oom_kills(self) -> int | None:
        """OOM kills the memory cgroup has counted, or ``None`` if it cannot be read."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.dirs["memory"] / name).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return None

    def remove(self, wait: float = 5.0) -> None:
        """Remove the folders, waiting up to ``wait`` s for their processes to be gone."""
        deadline = time.monotonic() + wait
        for folder in sorted(set(self.dirs.values())):
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)

    def to_json(self) -> dict[str, Any]:
        """For ``host.json``."""
        return {"version": self.version, "dirs": {k: str(v) for k, v in self.dirs.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cgroup:
        """From ``host.json``."""
        return cls({k: Path(v) for k, v in data["dirs"].items()}, int(data["version"]))
