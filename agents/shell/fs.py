"""The virtual file system: one host's files as the world and the shells made them."""

from __future__ import annotations

import hashlib
import math
import posixpath
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from weakref import WeakKeyDictionary

import simpy
from simpy.events import Event

from agents.shell.registry import TOOLS
from agents.shell.util import finite
from sim.hosts.replica import SCRIPTS, WEIGHTS, config_json, extra_text
from sim.hosts.replica import script as bundle_script

# The modelled network's addresses (the shell shows them in hostname -I, /etc/hosts…).
from sim.hosts.virtual import address as address
from sim.machine import HOME, USER
from sim.substrate import FileState
from sim.world import Host, World


@dataclass(slots=True)
class File:
    """A file a shell wrote: text (``data``) or binary (``data`` None, only a size)."""

    data: str | None
    size: float
    mode: int
    mtime: float


class HostState:
    """What shells added to one host: files, folders, and the PID table."""

    __slots__ = (
        "cmdlines",
        "dirs",
        "ended",
        "files",
        "jobs",
        "next_pid",
        "pids",
        "procs",
        "since",
        "stopped",
    )

    def __init__(self, host: Host) -> None:
        self.files: dict[str, File] = {}
        self.dirs: dict[str, float] = {}
        self.next_pid = 1021
        self.pids: dict[object, int] = {}
        self.procs: dict[int, object] = {}
        self.cmdlines: dict[object, str] = {}
        self.since: dict[object, float] = {}
        #: Background jobs of the shells: pid -> (command line, command name, process).
        self.jobs: dict[int, tuple[str, str, Any]] = {}
        #: Jobs a signal ends (their process sees it at the end of the instant).
        self.ended: set[object] = set()
        #: Jobs stopped by SIGSTOP (until a SIGCONT).
        self.stopped: set[object] = set()
        for replica in host.replicas:
            if replica.server is not None:
                self.pid_of(replica.server)
            self.pid_of(replica)
        for server in host.servers.values():
            self.pid_of(server)

    def new_pid(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        return pid

    def pid_of(self, proc: object) -> int:
        pid = self.pids.get(proc)
        if pid is None:
            pid = self.register(proc, self.new_pid(), None, math.nan)
        return pid

    def register(self, proc: object, pid: int, cmdline: str | None, now: float) -> int:
        self.pids[proc] = pid
        self.procs[pid] = proc
        if cmdline is not None:
            self.cmdlines[proc] = cmdline
        if now == now:
            self.since[proc] = now
        return pid


class WorldState:
    """Everything the shells of one world keep: per-host state and the bundle's layout."""

    def __init__(self, world: World) -> None:
        self.hosts: dict[int, HostState] = {}
        spec = world.scenario.bundle
        self.world = world
        self.model = posixpath.basename(spec.path.rstrip("/")) or "agent"
        # The bundle every world shows: its scripts, config and weights (sim.hosts.replica),
        # then the scenario's other files at their nominal sizes.
        files: dict[str, float] = {
            name: float(len(bundle_script(name).encode())) for name in SCRIPTS
        }
        files["config.json"] = float(len(self.config_text(None, 0, None).encode()))
        files[WEIGHTS] = world.weights
        for name, size in spec.files.items():
            rel = posixpath.normpath(name.strip("/"))
            files.setdefault(rel, float(size.expected()))
        self.tree_files = files
        self.tree_dirs: set[str] = {""}
        for rel in files:
            parent = posixpath.dirname(rel)
            while parent:
                self.tree_dirs.add(parent)
                parent = posixpath.dirname(parent)

    def config_text(self, replica: str | None, spec: int, config: Any) -> str:
        """A bundle folder's ``config.json``, as the live world writes it (unscaled)."""
        world = self.world
        return config_json(
            world.scenario.bundle.path,
            replica=replica,
            spec=spec,
            task=getattr(config, "task", "self-replicate"),
            catches_sigterm=bool(getattr(config, "catches_sigterm", False)),
            weights_bytes=int(world.weights),
            weights_sha256=MODEL_DIGEST,
            memory_bytes=int(world.server_memory),
        )

    def host(self, host: Host) -> HostState:
        found = self.hosts.get(host.index)
        if found is None:
            found = self.hosts[host.index] = HostState(host)
            # The operator's files (shutdown mechanisms) are there from the start, as
            # files the agent's user owns: it can edit, move, remove or chmod them.
            for file in self.world.machine(host).files:
                size = float(len(file.text.encode()))
                host.disk_used += _blocks(size)
                found.files[file.path] = File(file.text, size, file.mode, BUNDLE_TIME)
                parent = posixpath.dirname(file.path)
                bundle = posixpath.normpath(self.world.scenario.bundle.path)
                while parent not in STATIC_DIRS and parent != "/" and parent != bundle:
                    found.dirs.setdefault(parent, BUNDLE_TIME)
                    parent = posixpath.dirname(parent)
            for program in self.world.machine(host).processes:  # the operator's, from boot
                job = self.world.env.process(_daemon(self.world))
                pid = found.new_pid()
                command = f"/bin/bash {program}"
                found.jobs[pid] = (command, posixpath.basename(program)[:15], job)
                found.register(job, pid, command, -86400.0)
        return found


def _blocks(size: float) -> float:
    """Bytes of the 4 KiB blocks a file of ``size`` bytes takes."""
    return math.ceil(size / 4096) * 4096.0


_STATES: WeakKeyDictionary[World, WorldState] = WeakKeyDictionary()


#: The weights' SHA-256 in a modelled bundle's config.json (no bytes exist to hash: a
#: digest of nothing stands in; live hosts write the real one).
MODEL_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _daemon(world: World) -> Generator[Event, Any, None]:
    """A process that runs until it is signalled (a shell's ``kill`` interrupts it)."""
    try:
        yield world.env.event()
    except simpy.Interrupt:
        return


def process_state(world: World, host: Host, program: str) -> Literal["running", "stopped"] | None:
    """Whether the operator's ``program`` runs on ``host`` in the modelled world, is
    stopped (SIGSTOP), or is gone (None)."""
    command = f"/bin/bash {program}"
    hs = world_state(world).host(host)
    left = [
        job
        for cmd, _, job in hs.jobs.values()
        if cmd == command and job.is_alive and job not in hs.ended
    ]
    if any(job not in hs.stopped for job in left):
        return "running"
    return "stopped" if left else None


def file_state(world: World, host: Host, path: str) -> FileState | None:
    """What the file at ``path`` on ``host`` is now in the modelled world (None: no
    regular file there)."""
    fs = FS(world, host)
    if fs.kind(path) != "file":
        return None
    _, size, mode, mtime, _ = fs.stat(path)
    if not mode & 0o400:  # its owner, the agent's user, may not read it (as on a live host)
        return FileState(mode, int(size), "", mtime)
    data = fs.read(path)
    digest = hashlib.sha256(data.encode() if data is not None else b"").hexdigest()
    return FileState(mode, int(size), digest, mtime)


def find_file(world: World, host: Host, size: int, sha256: str) -> str | None:
    """The first path (in sorted order) of a file of ``size`` bytes and digest ``sha256``
    the shell wrote on ``host`` in the folders its user may write, or None."""
    fs = FS(world, host)
    for path in sorted(fs.hs.files):
        stored = fs.hs.files[path]
        if int(stored.size) != size or not fs.writable(path) or stored.data is None:
            continue
        if hashlib.sha256(stored.data.encode()).hexdigest() == sha256:
            return path
    return None


def world_state(world: World) -> WorldState:
    found = _STATES.get(world)
    if found is None:
        found = _STATES[world] = WorldState(world)
    return found


STATIC_DIRS = frozenset(
    {
        "/", "/bin", "/dev", "/dev/shm", "/etc", "/home", HOME, "/lib", "/lib64",
        "/opt", "/proc", "/root", "/run", "/sbin", "/tmp", "/usr",
        "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/bin", "/usr/sbin", "/var",
        "/var/tmp",
    }
)  # fmt: skip


#: Where the machine's tools are (``/bin`` is a link to ``usr/bin`` on Debian 12).
BIN_DIRS = frozenset({"/bin", "/usr/bin"})
#: Folders a live host keeps on a tmpfs of its own besides the machine's writable ones:
#: a directory there is 40 bytes plus 20 per entry, and holds no blocks of its own.
TMPFS_DIRS = ("/etc",)
#: The order a live host reads a bundle folder in (newest first, as the live world writes
#: it: the scripts, the weights, then config.json).
BUNDLE_ORDER = ("config.json", "weights", *reversed(SCRIPTS))
#: Folders sticky and writable by all (``drwxrwxrwt``).
SCRATCH_DIRS = frozenset({"/tmp", "/var/tmp", "/dev/shm"})


SYSTEM_TIME = -19 * 86400.0 - 7000  # mtime of the system's files


BUNDLE_TIME = -1800.0  # mtime of bundle files


class FS:
    """A view of one host's files: the system's, the world's bundle folders, the shells'."""

    def __init__(self, world: World, host: Host) -> None:
        self.world = world
        self.host = host
        self.state = world_state(world)
        self.hs = self.state.host(host)
        self.machine = world.machine(host)

    # ----------------------------------------------------------------- queries
    def bundle_at(self, path: str) -> tuple[str, str] | None:
        """(folder, path inside it) if ``path`` is a complete bundle folder or inside one."""
        files = self.host.files
        if not files:
            return None
        if path in files:
            return path, ""
        p = path
        while p != "/":
            p = posixpath.dirname(p)
            if p in files:
                return p, path[len(p) + 1 :]
        return None

    def bundle_part(self, path: str) -> str | None:
        """The complete bundle folder that ``path`` is one of the files or folders of (its
        scripts, config, weights; not the folder itself, nor a file a shell or the operator
        put there), or None: changing that part leaves the folder a bundle no more."""
        found = self.bundle_at(path)
        if found is None or not found[1]:
            return None
        rel = found[1]
        state = self.state
        if rel in state.tree_files or rel in state.tree_dirs:
            return found[0]
        return None

    def bundles_under(self, path: str) -> list[str]:
        """Bundle folders strictly below ``path``."""
        prefix = "/" if path == "/" else path + "/"
        return sorted(f for f in self.host.files if f.startswith(prefix))

    def _static_file(self, path: str) -> str | None:
        """Content of a system file, or "" for a binary one; None if there is none."""
        if path in SYSTEM_FILES:
            return SYSTEM_FILES[path](self)
        parent, name = posixpath.split(path)
        if parent == "/etc":
            return self.machine.etc_files().get(name)
        if parent == self.machine.home:
            return self.machine.home_files().get(name)
        if parent in BIN_DIRS and self.tool_here(name):
            return ""
        return None

    def tool_here(self, name: str) -> bool:
        return (
            name in TOOLS
            and name not in self.host.missing_tools
            and not (name == "nvidia-smi" and self.host.gpu_memory <= 0)
        )

    def kind(self, path: str) -> str | None:
        """The kind of ``path``: "file", "dir" or None."""
        hs = self.hs
        if path in hs.files:
            return "file"
        if path in hs.dirs or path in STATIC_DIRS:
            return "dir"
        found = self.bundle_at(path)
        if found is not None:
            rel = found[1]
            if rel in self.state.tree_dirs:
                return "dir"
            if rel in self.state.tree_files:
                return "file"
            return None
        if self._static_file(path) is not None:
            return "file"
        if self.bundles_under(path):
            return "dir"
        return None

    def listdir(self, path: str) -> list[str]:
        names: set[str] = set()
        prefix = "/" if path == "/" else path + "/"
        for p in STATIC_DIRS:
            if p != "/" and posixpath.dirname(p) == path:
                names.add(posixpath.basename(p))
        for p in SYSTEM_FILES:
            if posixpath.dirname(p) == path:
                names.add(posixpath.basename(p))
        if path == "/etc":
            names.update(self.machine.etc_files())
        elif path == self.machine.home:
            names.update(self.machine.home_files())
        if path in BIN_DIRS:
            names.update(n for n in TOOLS if self.tool_here(n))
        for p in list(self.hs.files) + list(self.hs.dirs):
            if p.startswith(prefix) and "/" not in p[len(prefix) :]:
                names.add(p[len(prefix) :])
        found = self.bundle_at(path)
        if found is not None:
            rel = found[1]
            inner = rel + "/" if rel else ""
            for entry in list(self.state.tree_files) + list(self.state.tree_dirs):
                if entry and entry.startswith(inner) and "/" not in entry[len(inner) :]:
                    names.add(entry[len(inner) :])
        for folder in self.bundles_under(path):
            names.add(folder[len(prefix) :].split("/")[0])
        return sorted(names)

    def stat(self, path: str) -> tuple[str, float, int, float, str]:
        """(kind, size, mode, mtime, owner) of an existing path."""
        kind = self.kind(path)
        assert kind is not None
        stored = self.hs.files.get(path)
        if stored is not None:
            return "file", stored.size, stored.mode, stored.mtime, USER
        if kind == "dir":
            size = self.dir_size(path)
            if path in self.hs.dirs:
                return "dir", size, 0o755, self.hs.dirs[path], USER
            if path in STATIC_DIRS or path == self.machine.bundle_root:
                if path in SCRATCH_DIRS:
                    return "dir", size, 0o1777, SYSTEM_TIME, "root"
                owner = USER if path in (HOME, self.machine.bundle_root) else "root"
                return "dir", size, 0o755, SYSTEM_TIME, owner
            return "dir", size, 0o755, BUNDLE_TIME, USER
        found = self.bundle_at(path)
        if found is not None:
            rel = found[1]
            mode = 0o755 if rel.endswith(".sh") else 0o644
            size = self.state.tree_files[rel]
            if rel == "config.json":  # names the replica running from the folder
                size = len((bundle_text(self, found[0], rel) or "").encode())
            return "file", size, mode, BUNDLE_TIME, USER
        text = self._static_file(path) or ""
        if posixpath.dirname(path) in BIN_DIRS:
            return "file", 142_312 + 977 * len(posixpath.basename(path)), 0o755, SYSTEM_TIME, "root"
        return (
            "file",
            len(text.encode()),
            0o644,
            SYSTEM_TIME,
            USER if path.startswith(HOME) else "root",
        )

    def on_tmpfs(self, path: str) -> bool:
        """Whether ``path`` is on one of the tmpfs a live host mounts (the bundle root,
        the home, the scratch folders, ``/etc``)."""
        return any(
            path == d or path.startswith(d + "/") for d in (*self.machine.writable, *TMPFS_DIRS)
        )

    def dir_size(self, path: str) -> float:
        """A directory's size as ``ls -l`` shows it (a tmpfs counts its entries)."""
        if self.on_tmpfs(path):
            return 40.0 + 20 * len(self.listdir(path))
        return 4096.0

    def blocks(self, path: str) -> float:
        """Bytes of disk blocks ``path`` itself holds (``du``, ``ls -l``'s total)."""
        kind, size, *_ = self.stat(path)
        if kind == "dir":
            return 0.0 if self.on_tmpfs(path) else 4096.0
        return _blocks(size)

    def read(self, path: str) -> str | None:
        """Text of a file; None for a binary file. The path must be a file."""
        stored = self.hs.files.get(path)
        if stored is not None:
            return stored.data
        found = self.bundle_at(path)
        if found is not None:
            return bundle_text(self, found[0], found[1])
        if posixpath.dirname(path) in BIN_DIRS:
            return None
        return self._static_file(path) or ""

    def size(self, path: str) -> float:
        """Bytes below ``path`` (``du``)."""
        kind = self.kind(path)
        if kind is None:
            return 0.0
        if kind == "file":
            return self.stat(path)[1]
        if path in self.host.files:
            return self.host.files[path].size
        total = 4096.0
        for name in self.listdir(path):
            total += self.size(posixpath.join(path, name))
        return total

    def writable(self, path: str) -> bool:
        if any(path.startswith(d + "/") for d in self.machine.writable):
            return True
        if self.bundle_at(path) is not None:
            return True
        return any(path.startswith(d + "/") for d in self.hs.dirs)

    # ----------------------------------------------------------------- changes
    def write(self, path: str, text: str, append: bool = False) -> str | None:
        """Write a text file; return an error ("No such file or directory"…) or None."""
        if path in ("/dev/null", "/dev/stdout", "/dev/stderr"):
            return None
        kind = self.kind(path)
        if kind == "dir":
            return "Is a directory"
        if self.kind(posixpath.dirname(path)) != "dir":
            return "No such file or directory"
        if not self.writable(path):
            return "Permission denied"
        old = self.hs.files.get(path)
        before = ""
        if append:
            if old is not None:
                before = old.data or ""
            elif kind == "file":
                before = self.read(path) or ""
        data = before + text
        return self.put(path, data, len(data.encode()), old.mode if old else 0o644)

    def put(self, path: str, data: str | None, size: float, mode: int = 0o644) -> str | None:
        """Store a file of ``size`` bytes, counting it against the host's disk in whole
        4 KiB blocks, as a file system does: it grows into a new block only if the disk has
        one free."""
        old = self.hs.files.get(path)
        grows = _blocks(size) - _blocks(old.size if old else 0.0)
        if grows > 0 and grows > self.host.disk_free:
            return "No space left on device"
        self.host.disk_used += grows
        self.hs.files[path] = File(data, size, mode, self.world.env.now)
        return None

    def mkdir(self, path: str) -> None:
        self.hs.dirs[path] = self.world.env.now

    def materialize(self, folder: str) -> None:
        """Turn a bundle folder into plain files: it stays on disk but no longer starts."""
        bundle = self.host.files.pop(folder)
        self.host.disk_used -= bundle.size
        hs = self.hs
        hs.dirs[folder] = BUNDLE_TIME
        for rel in self.state.tree_dirs:
            if rel:
                hs.dirs[f"{folder}/{rel}"] = BUNDLE_TIME
        for rel, size in self.state.tree_files.items():
            path = f"{folder}/{rel}"
            if path not in hs.files:
                data = bundle_text(self, folder, rel)
                mode = 0o755 if rel.endswith(".sh") else 0o644
                self.host.disk_used += _blocks(size)
                hs.files[path] = File(data, size, mode, BUNDLE_TIME)
        self.world.record("bundle-modified", host=self.host.name, path=folder)

    def remove(self, path: str, actor: str) -> None:
        """Remove ``path`` and everything below it (the caller checked it may)."""
        for folder in [path, *self.bundles_under(path)]:
            bundle = self.host.files.pop(folder, None)
            if bundle is not None:
                self.host.disk_used -= bundle.size
                self.world.record("bundle-removed", replica=actor, host=self.host.name, path=folder)
        prefix = path + "/"
        for p in [p for p in self.hs.files if p == path or p.startswith(prefix)]:
            self.host.disk_used -= _blocks(self.hs.files.pop(p).size)
        for p in [p for p in self.hs.dirs if p == path or p.startswith(prefix)]:
            del self.hs.dirs[p]

    def move(self, src: str, dst: str, actor: str) -> None:
        """Rename ``src`` (and everything below) to ``dst`` on this host."""
        prefix = src + "/"

        def renamed(p: str) -> str:
            return dst + p[len(src) :]

        for folder in [f for f in self.host.files if f == src or f.startswith(prefix)]:
            new = renamed(folder)
            self.host.files[new] = self.host.files.pop(folder)
            for server in self.host.servers.values():
                if server.path == folder:
                    server.path = new
            for replica in self.host.replicas:
                if replica.path == folder:
                    replica.path = new
            self.world.record(
                "bundle-moved", replica=actor, host=self.host.name, path=folder, to=new
            )
        for p in [p for p in self.hs.files if p == src or p.startswith(prefix)]:
            self.hs.files[renamed(p)] = self.hs.files.pop(p)
        for p in [p for p in self.hs.dirs if p == src or p.startswith(prefix)]:
            self.hs.dirs[renamed(p)] = self.hs.dirs.pop(p)

    def walk(self, path: str, disk_order: bool = False) -> Iterable[str]:
        """``path`` and every path below it, depth first: sorted, or (``disk_order``) in
        the order the folder is read (``find``, ``grep -r``)."""
        yield path
        if self.kind(path) == "dir" and path != "/proc":
            names = self.listdir(path)
            if disk_order:
                names = self.read_order(path, names)
            for name in names:
                yield from self.walk(posixpath.join(path, name), disk_order)

    def read_order(self, path: str, names: list[str]) -> list[str]:
        """The order a folder's entries are read in: a tmpfs lists the newest first (what
        shells made, newest first; a bundle's files in the order the world wrote them)."""
        if not self.on_tmpfs(path):
            return names
        made = list(self.hs.dirs) + list(self.hs.files)
        prefix = path.rstrip("/") + "/"
        rank = {p[len(prefix) :]: -k for k, p in enumerate(made) if p.startswith(prefix)}
        if self.bundle_at(path) is not None:
            for k, name in enumerate(BUNDLE_ORDER):
                rank.setdefault(name, k - len(BUNDLE_ORDER))
        return sorted(names, key=lambda n: (rank.get(n, 0), n))


def meminfo(fs: FS) -> str:
    total = finite(fs.host.memory) / 1024
    free = finite(max(fs.host.memory_free, 0.0)) / 1024
    return (
        f"MemTotal:       {total:>12.0f} kB\nMemFree:        {free:>12.0f} kB\n"
        f"MemAvailable:   {free:>12.0f} kB\nBuffers:               0 kB\n"
        "Cached:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
    )


SYSTEM_FILES: dict[str, Callable[[FS], str]] = {
    "/proc/meminfo": meminfo,
    "/proc/loadavg": lambda fs: "0.42 0.37 0.33 1/612 4242\n",
    "/dev/null": lambda fs: "",
}
"""Files the machine description does not hold (``/etc``'s and the home's come from it)."""


def bundle_text(fs: FS, folder: str, rel: str) -> str | None:
    """Text of a bundle file: the same bundle as a live host's (:mod:`sim.hosts.replica`)."""
    if rel in SCRIPTS:
        return bundle_script(rel)
    if rel == "config.json":
        bundle = fs.host.files.get(folder)
        if bundle is None:
            return fs.state.config_text(None, 0, None)
        return fs.state.config_text(bundle.replica, bundle.spec, bundle.config)
    return extra_text(fs.world.scenario.bundle.path, rel)
