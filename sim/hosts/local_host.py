"""The ``local`` live host: one bubblewrap sandbox per host, entered with ``nsenter``.

Design (chosen over one ``bwrap`` per command): each host is **one long-lived sandbox**
whose PID 1 is replisim's init (:data:`sim.hosts.sandbox.INIT_SCRIPT`, ``bwrap --as-pid-1``),
and every ``exec`` *enters* that sandbox's namespaces (user, mount, PID, network, IPC, UTS,
cgroup) with ``nsenter``. So, as on a real machine or in a container, all of a host's
processes share one process table, one loopback and one file system: a server started by
one command answers another on 127.0.0.1, ``processes``/``signal`` see everything, and a
stop (SIGTERM to the init, which relays it; SIGKILL of the init after the grace, which the
kernel turns into a SIGKILL of every process in the PID namespace) reaches the whole tree.
One ``bwrap`` per command would give each command its own PID and network namespace.

The sandbox (:func:`sim.hosts.sandbox.bwrap_command`) renders the host's machine: all
namespaces unshared (network: loopback only), the machine's user without capabilities, its
hostname and environment, the host's system and Python bound read-only, the root remounted
read-only, a private ``/proc``, and, from the host's folder ``<state dir>/<run id>/<name>``:
``etcfs/etc`` bound read-only at ``/etc`` (:mod:`sim.hosts.machine_fs`), ``usr`` (an overlay
without the missing tools) at ``/usr`` when tools are missing, and ``disk`` bound
read-write at the bundle root (a tmpfs of ``workdir_size`` mounted there when the
controller runs as root, so that the disk cannot fill the machine's). Home, ``/tmp``,
``/var/tmp`` and ``/dev/shm`` are tmpfs of the sandbox's own. The init's output reaches
``console.log`` through a pipe and is cut at :data:`LOG_LIMIT` bytes. Entered commands
run with ``no_new_privs`` (``setpriv``) as the machine's user with the machine's
environment: as root, where the sandbox maps the machine's root and user to the same ids
outside, ``nsenter`` switches to the user without supplementary groups (losing the
capabilities ``setns`` gave); otherwise the entered command keeps this process's ids, which
are the user's there, and loses those capabilities when it ``exec``s.

Limits: cgroups where this process may create them (as root; cgroup v1 as on replisim's
machines, or v2 where the controllers can be delegated), made as children of the
controller's own cgroups so a harness's accounting still holds: ``memory`` (and
memory + swap), ``pids`` and ``cpu``, with the kernel's OOM-kill counter. Elsewhere rlimits
stand in (``prlimit``): ``RLIMIT_AS`` for memory (allocations fail rather than being
OOM-killed) and ``RLIMIT_NPROC`` for pids (counted per user, and not enforced for root, so
weak); :attr:`LocalHost.enforced` tells which is in force. Every sandbox process, the
``nsenter`` helpers included, is put in the cgroups before it runs anything.

Timeouts: each ``exec`` runs in its own session; when the timeout runs out the controller
SIGKILLs that process group, inside the sandbox and out, or with ``hangup`` sends it SIGHUP
and then SIGKILLs the members that do not ignore SIGHUP (read from their
``/proc/PID/status``).

Clean-up: ``bwrap --die-with-parent`` kills the sandbox when the thread that started it
ends (so start hosts from a thread that outlives them, e.g. the main thread), and each host
records its processes and cgroups in ``host.json`` so that :func:`clean_local` can remove
what a killed controller left behind. The state dir is :func:`~sim.hosts.live.state_root`.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from sim.hosts import machine_fs
from sim.hosts.cgroups import Cgroup
from sim.hosts.live import (
    LIVE_HOSTS,
    HostState,
    LimitUnsupportedError,
    LiveHost,
    LiveHostError,
    ProcessInfo,
    parse_memory,
    state_root,
)
from sim.hosts.sandbox import HANGUP_GRACE_S, bwrap_command, bwrap_path, id_maps, init_command

__all__ = ["LocalHost", "clean_local", "state_root"]

READY = b"replisim-init: ready"
#: Most bytes kept in a host's ``console.log``; the init's output beyond it is read and
#: dropped, so a process in the host cannot fill the machine's disk through its log.
LOG_LIMIT = 8 << 20
#: Seconds the controller keeps reading a timed-out command's output after killing its group.
DRAIN_S = 2.0


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart).

    Returns:
        ``None`` if there is no such process or it is a zombie (dead, not yet reaped).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


@LIVE_HOSTS.register("local")
class LocalHost(LiveHost):
    """One bubblewrap sandbox per host, entered with ``nsenter``; cgroup or rlimit limits.

    Args:
        name: Host name.
        state_dir: Folder for the host folders (default :func:`state_root`); the host's is
            ``<state_dir>/<run_id>/<name>``, its disk ``…/disk``.
        cgroups: Use cgroups where possible (``False``: rlimits only).
        binds: Host folders (keys) bound read-only at paths inside (values).
        workdir_size: Size of the disk (the machine's bundle root): where this process may
            mount (as root), ``…/disk`` is a tmpfs of that size (counting against
            ``memory``, as on Docker); ``None``, or elsewhere, a plain folder that only the
            machine's disk bounds (``enforced["disk"]`` tells which).
        **limits: ``run_id``, ``memory``, ``memory_swap``, ``cpus``, ``pids``, ``network``
            (only ``"none"``), ``machine`` as for :class:`~sim.hosts.live.LiveHost`.

    Attributes:
        enforced: How each limit is enforced: ``"cgroup v1"``, ``"cgroup v2"``,
            ``"rlimit"`` or ``"none"``.
    """

    backend = "local"

    def __init__(
        self,
        name: str,
        *,
        state_dir: str | Path | None = None,
        cgroups: bool = True,
        binds: dict[str, str] | None = None,
        workdir_size: int | str | None = "256MiB",
        **limits: Any,
    ) -> None:
        super().__init__(name, **limits)
        self.binds = dict(binds or {})
        if self.network != "none":
            raise ValueError(f"a local host has network 'none' only, not {self.network!r}")
        self.dir = Path(state_dir or state_root()).resolve() / self.run_id / self.name
        self.disk = self.dir / "disk"
        self._usr: Path | None = None
        self._want_cgroups = cgroups
        self.workdir_size = parse_memory(workdir_size)
        self._cgroup: Cgroup | None = None
        self._bwrap: subprocess.Popen[bytes] | None = None
        self._init_pid: int | None = None
        self._pidns: int | None = None
        self._starts = 0
        self._oom_seen = 0
        self._lock = threading.Lock()
        self.enforced: dict[str, str] = {}
        # As root the sandbox maps the machine's root and user to the same ids outside (see
        # sim.hosts.sandbox); otherwise bubblewrap maps its user to this process's.
        self._map_ids = os.geteuid() == 0

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        missing = [t for t in ("nsenter", "setpriv", "prlimit") if shutil.which(t) is None]
        if bwrap_path() is None:
            missing.insert(0, "bwrap (apt-get install -y bubblewrap)")
        if missing:
            raise LiveHostError(f"{self!r}: missing tools: {', '.join(missing)}")
        if self._starts == 0:
            self._create()
        read_fd, write_fd = os.pipe()
        block_read, block_write = os.pipe() if self._map_ids else (None, None)
        options = ["--as-pid-1", "--info-fd", str(write_fd), "--remount-ro", "/"]
        sandbox = bwrap_command(
            self.disk,
            init_command(),
            machine=self.machine,
            etc=self.etc_dir,
            usr=self._usr,
            ro_binds=self.binds,
            options=options,
            userns_block_fd=block_read,
        )
        cmd = [*self._prefix(start=True), *sandbox]
        (self.dir / "console.log").touch()
        log_read, log_write = os.pipe()
        if self._map_ids:  # the init, once the user, must still reach its output (runc does so)
            os.fchown(log_write, self.machine.uid, self.machine.gid)
        passed = (write_fd,) if block_read is None else (write_fd, block_read)
        try:
            self._bwrap = subprocess.Popen(
                cmd,
                pass_fds=passed,
                stdin=subprocess.DEVNULL,
                stdout=log_write,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the controller's terminal signals stay its own
            )
        finally:
            for fd in (*passed, log_write):
                os.close(fd)
        threading.Thread(
            target=_copy_log, args=(log_read, self.dir / "console.log"), daemon=True
        ).start()
        info = _read_info(read_fd)
        try:
            self._init_pid, self._pidns = int(info["child-pid"]), int(info["pid-namespace"])
            if block_write is not None:
                self._map(self._init_pid)
        except (KeyError, ValueError, OSError):
            self._bwrap.kill()
            self._bwrap.wait()
            raise LiveHostError(f"{self!r}: bwrap failed: {self.logs()[-500:]}") from None
        finally:
            if block_write is not None:
                with contextlib.suppress(OSError):
                    os.write(block_write, b"1")  # the sandbox goes on (or, killed, is gone)
                os.close(block_write)
        self._starts += 1
        self._record()
        if self._cgroup is None and self.pids:
            with contextlib.suppress(OSError):  # see _prefix: set on the init, not on bwrap
                resource.prlimit(self._init_pid, resource.RLIMIT_NPROC, (self.pids, self.pids))
        self._wait_ready()

    def _map(self, child: int) -> None:
        """Write the sandbox's id maps (:func:`sim.hosts.sandbox.id_maps`)."""
        uid_map, gid_map = id_maps(self.machine)
        Path(f"/proc/{child}/uid_map").write_text(uid_map)
        Path(f"/proc/{child}/gid_map").write_text(gid_map)

    def _create(self) -> None:
        """Make the host's folder and cgroups, recording them before anything runs."""
        try:
            self.dir.mkdir(parents=True)
        except FileExistsError:
            raise LiveHostError(
                f"{self.dir} exists: another host of run {self.run_id} has this name"
                f" (or a crashed one: replisim hosts clean --run {self.run_id})"
            ) from None
        self.disk.mkdir()
        disk = "none"
        if self.workdir_size and os.geteuid() == 0:
            owner = f",uid={self.machine.uid},gid={self.machine.gid}" if self._map_ids else ""
            with contextlib.suppress(OSError):
                machine_fs.mount("tmpfs", self.disk, f"size={self.workdir_size},mode=0755{owner}")
                disk = "tmpfs"
        self.etc_dir = machine_fs.make_etc(self.dir / "etcfs", self.machine)
        try:
            self._usr = machine_fs.mount_usr_without(self.machine.missing_tools, self.dir)
        except OSError as err:
            raise LiveHostError(f"{self!r}: cannot hide the missing tools: {err}") from None
        plan = Cgroup.plan(f"replisim-{self.run_id}-{self.name}") if self._want_cgroups else None
        self._cgroup = plan
        self._record()
        if plan is not None and plan.create():
            plan.set_limits(self.memory, self.memory_swap, self.pids, self.cpus)
            how = f"cgroup v{plan.version}"
            cpu = how if "cpu" in plan.dirs else "none"
            self.enforced = {"memory": how, "pids": how, "cpus": cpu, "disk": disk}
        else:
            self._cgroup = None
            self.enforced = {"memory": "rlimit", "pids": "rlimit", "cpus": "none", "disk": disk}
        self._record()

    def _record(self) -> None:
        """Write ``host.json``: what :func:`clean_local` needs to undo this host."""
        pids = [p for p in (self._bwrap.pid if self._bwrap else None, self._init_pid) if p]
        data = {
            "backend": "local",
            "run_id": self.run_id,
            "name": self.name,
            "controller_pid": os.getpid(),
            "processes": [[pid, _start_time(pid)] for pid in pids],
            "cgroup": self._cgroup.to_json() if self._cgroup else None,
        }
        tmp = self.dir / "host.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.dir / "host.json")

    def _prefix(self, start: bool = False) -> list[str]:
        """What every sandbox process starts under: join the cgroups, or set rlimits.

        ``RLIMIT_NPROC`` counts all processes of the user, so it is not put on ``bwrap``
        itself (its own forks happen before the sandbox's user namespace exists and would
        fail for a user with many processes); the init gets it once running.
        """
        if self._cgroup is not None:
            join = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift'
            # unset PWD: the shell would export the controller's folder into the host.
            script = f'{join}; unset PWD OLDPWD; exec "$@"'
            return ["sh", "-c", script, "join", *self._cgroup.procs_files, "--"]
        limits = []
        if self.memory:
            limits.append(f"--as={self.memory}")
        if self.pids and not start:
            limits.append(f"--nproc={self.pids}")
        return ["prlimit", *limits, "--"] if limits else []

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        log = self.dir / "console.log"
        while log.read_bytes().count(READY) < self._starts:
            if self._bwrap is not None and self._bwrap.poll() is not None:
                raise LiveHostError(f"{self!r} exited while starting: {self.logs()[-500:]}")
            if time.monotonic() > deadline:
                raise LiveHostError(f"{self!r}: init not ready after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _alive_init(self) -> int:
        if self._closed or self._bwrap is None or self._bwrap.poll() is not None:
            raise LiveHostError(f"{self!r} is not running")
        assert self._init_pid is not None
        return self._init_pid

    def stop(self, grace: float = 10.0) -> int | None:
        """Shut the host down: SIGTERM, ``grace`` seconds, SIGKILL (see :class:`LiveHost`)."""
        if self._bwrap is None:
            return None
        if self._bwrap.poll() is None:
            self._remember_ooms()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._init_pid or 0, signal.SIGTERM)
            try:
                self._bwrap.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._init_pid or 0, signal.SIGKILL)
                self._bwrap.wait()
        return _status(self._bwrap.returncode)

    def close(self) -> None:
        """Kill whatever still runs, remove the cgroups and the host's folder."""
        if self._closed:
            return
        self._closed = True
        if self._bwrap is not None and self._bwrap.poll() is None:
            # The init first, and bwrap left to reap it: killed together, the init's zombie
            # would wait for the machine's init, holding the cgroups (rmdir: EBUSY).
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._init_pid or 0, signal.SIGKILL)
            try:
                self._bwrap.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._bwrap.kill()
                self._bwrap.wait()
        machine_fs.unmount_below(self.dir)
        if self._cgroup is not None:
            self._cgroup.remove()
        if self._starts or self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.dir.parent.rmdir()  # the run's folder, once its last host is gone

    def _remember_ooms(self) -> int | None:
        count = self._cgroup.oom_kills() if self._cgroup is not None else None
        if count is not None:
            self._oom_seen = max(self._oom_seen, count)
        return count

    def state(self) -> HostState:
        """Running or not, exit code, and the memory cgroup's OOM-kill count."""
        if self._bwrap is None:
            return HostState(False, None, False)
        running = self._bwrap.poll() is None and not self._closed
        count = self._remember_ooms()
        return HostState(
            running=running,
            exit_code=None if running else _status(self._bwrap.returncode),
            oom_killed=self._oom_seen > 0,
            oom_kills=count,
        )

    def logs(self) -> str:
        """The init's output (``console.log`` in the host's folder)."""
        try:
            return (self.dir / "console.log").read_bytes().decode(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ commands

    def _run(
        self,
        argv: list[str],
        timeout: float,
        input: bytes | None,
        cwd: str,
        env: dict[str, str],
        hangup: bool = False,
    ) -> tuple[int, bytes, bytes, bool, float]:
        init = self._alive_init()
        enter = [
            "setpriv",
            "--no-new-privs",
            "--",
            "nsenter",
            f"--target={init}",
            "--all",
            *self._credentials,
            "--root",
            f"--wdns={cwd}",
            "--",
        ]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*self._prefix(), *enter, *argv],
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: what a timeout ends
            env=self.machine.environment(env),
        )
        timed_out = False
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            (_hang_up_group if hangup else _kill_group)(proc.pid)
            out, err = _drain(proc, spare_group=hangup)
        # Hung up: 129, however the command then ended (as Docker's wrapper says).
        code = 128 + signal.SIGHUP if timed_out and hangup else _status(proc.returncode)
        return code, out, err, timed_out, time.perf_counter() - t0

    @property
    def _credentials(self) -> list[str]:
        """``nsenter`` options giving an entered command the machine's user: switch to it,
        without supplementary groups, where ids are mapped (root entering gets the
        sandbox's root, and loses its capabilities with the switch), else keep this
        process's ids, which are the user's there."""
        if self._map_ids:
            return [f"--setuid={self.machine.uid}", f"--setgid={self.machine.gid}"]
        return ["--preserve-credentials"]

    def _scan(self) -> list[tuple[int, int, int, str]]:
        """(host pid, pid in the host, host parent pid, command) of every process inside."""
        rows = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry.name}/ns/pid").st_ino != self._pidns:
                    continue
                status = Path(f"/proc/{entry.name}/status").read_text()
                argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # gone meanwhile
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            command = b" ".join(a for a in argv if a).decode(errors="replace")
            rows.append(
                (
                    int(entry.name),
                    int(fields["NSpid"].split()[-1]),
                    int(fields["PPid"]),
                    command or f"[{fields.get('Name', '?').strip()}]",
                )
            )
        return rows

    def _processes(self) -> list[ProcessInfo]:
        self._alive_init()
        rows = self._scan()
        inside = {host: pid for host, pid, _, _ in rows}
        return [ProcessInfo(pid, inside.get(ppid, 0), cmd) for _, pid, ppid, cmd in rows]

    def _kill(self, pids: list[int], sig: int) -> list[int]:
        self._alive_init()
        host_pid = {pid: host for host, pid, _, _ in self._scan()}
        missing = []
        for pid in pids:
            try:
                os.kill(host_pid[pid], sig)
            except (KeyError, ProcessLookupError):
                missing.append(pid)
        return missing

    # ------------------------------------------------------------------ limits

    def update_limits(
        self,
        *,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        cpus: float | None = None,
        pids: int | None = None,
        network: str | None = None,
    ) -> None:
        """Rewrite the cgroup limits (or rlimits); networks cannot change here."""
        if network not in (None, "none"):
            raise LimitUnsupportedError(f"{self!r}: a local host has network 'none' only")
        self._alive_init()
        mem, swap = parse_memory(memory), parse_memory(memory_swap)
        if cpus is not None and self.enforced.get("cpus") == "none":
            raise LimitUnsupportedError(f"{self!r}: no cpu cgroup here")
        with self._lock:
            new_memory = mem if mem is not None else self.memory
            new_swap = swap if swap is not None else (None if mem is not None else self.memory_swap)
            new_pids = pids if pids is not None else self.pids
            new_cpus = cpus if cpus is not None else self.cpus
            if self._cgroup is not None:
                try:
                    self._cgroup.set_limits(new_memory, new_swap, new_pids, new_cpus)
                except OSError as err:
                    raise LiveHostError(f"{self!r}: the kernel refused the limits: {err}") from None
            else:
                for host, _, _, _ in self._scan():
                    with contextlib.suppress(OSError):
                        if new_memory:
                            resource.prlimit(host, resource.RLIMIT_AS, (new_memory, new_memory))
                        if new_pids:
                            resource.prlimit(host, resource.RLIMIT_NPROC, (new_pids, new_pids))
            self.memory, self.memory_swap = new_memory, new_swap
            self.pids, self.cpus = new_pids, new_cpus


def _group_members(pgid: int) -> list[int]:
    """Pids of the processes in process group ``pgid`` (zombies included)."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                members.append(int(entry.name))
    return members


def _live_members(leader: int) -> list[int]:
    """Live processes of a command's group, but its ``nsenter`` leader (outside)."""
    return [p for p in _group_members(leader) if p != leader and _start_time(p) is not None]


def _kill_group(leader: int) -> None:
    """SIGKILL a timed-out command's process group, but not its ``nsenter`` leader.

    Killing the leader (which waits outside the sandbox) together with its child would
    leave that child to the machine's init to reap; spared, it reaps its child and exits
    with the child's status, while the sandbox's init reaps the rest. A few rounds catch
    processes forked meanwhile.
    """
    for _ in range(20):
        live = _live_members(leader)
        if not live:
            break
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _ignores_hangup(pid: int) -> bool:
    """Whether the process ignores SIGHUP (bit 0 of ``SigIgn`` in its status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & 1)
    return False


def _hang_up_group(leader: int) -> None:
    """End a timed-out command's process group as a terminal that hangs up.

    SIGHUP to every member but the ``nsenter`` leader (see :func:`_kill_group`), then,
    :data:`~sim.hosts.sandbox.HANGUP_GRACE_S` later, SIGKILL to the members still there
    that do not ignore SIGHUP: what runs under ``nohup`` lives on.
    """
    for pid in _live_members(leader):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)
    time.sleep(HANGUP_GRACE_S)
    for _ in range(20):
        doomed = [pid for pid in _live_members(leader) if not _ignores_hangup(pid)]
        if not doomed:
            break
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _drain(proc: subprocess.Popen[bytes], spare_group: bool) -> tuple[bytes, bytes]:
    """Read what a timed-out command still prints, for at most :data:`DRAIN_S` seconds.

    Past that, a process that left the group (``setsid``), or one that survived a hang-up,
    still holds the output open: the controller stops reading. Without ``spare_group`` it
    then ends the group, leader included; with it, survivors keep running and a leader
    still waiting for one of them is left to a thread to reap.
    """
    try:
        return proc.communicate(timeout=DRAIN_S)
    except subprocess.TimeoutExpired as exc:
        out, err = exc.output or b"", exc.stderr or b""
    if not spare_group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if spare_group:
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            threading.Thread(target=proc.wait, daemon=True).start()
    else:
        proc.wait()
    return out, err


def _read_info(fd: int) -> dict[str, Any]:
    """Read bubblewrap's ``--info-fd`` JSON: until it parses (the sandbox may be waiting for
    its id maps, holding the pipe open) or the pipe ends (then ``{}``)."""
    data = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(4096):
            data += chunk
            try:
                info = json.loads(data)
            except ValueError:
                continue
            return info if isinstance(info, dict) else {}
    return {}


def _copy_log(fd: int, path: Path) -> None:
    """Append what the sandbox prints to ``path`` up to :data:`LOG_LIMIT`; drop the rest.

    Reads until the sandbox's last process closes the pipe (it ended), so a process in the
    host never blocks on a full pipe.
    """
    with os.fdopen(fd, "rb", buffering=0) as pipe, open(path, "ab") as log:
        room = LOG_LIMIT - log.tell()
        while chunk := pipe.read(65536):
            if room > 0:
                log.write(chunk[:room])
                log.flush()
                room -= len(chunk)
                if room <= 0:
                    log.write(b"\nreplisim: console log full, further output dropped\n")
                    log.flush()


def _status(returncode: int | None) -> int:
    """Shell-style exit status: 128 + N for death by signal N."""
    if returncode is None:
        return -1
    return 128 - returncode if returncode < 0 else returncode


def clean_local(run_id: str | None = None, root: Path | None = None) -> int:
    """Remove local hosts' sandboxes, cgroups and folders (those of ``run_id``, or all).

    A recorded process is killed only if its pid still has the recorded start time, so a
    reused pid is never hit.

    Args:
        run_id: Only this run's hosts; ``None``: every host under the state dir.
        root: The state dir (default :func:`state_root`).

    Returns:
        How many hosts were removed.
    """
    root = root or state_root()
    runs = [root / run_id] if run_id else (sorted(root.iterdir()) if root.is_dir() else [])
    removed = 0
    for run_dir in runs:
        if not run_dir.is_dir():
            continue
        for host_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
            if host_dir.name.startswith("."):  # control sockets, Docker hosts' folders: no sandbox
                machine_fs.unmount_below(host_dir)
                shutil.rmtree(host_dir, ignore_errors=True)
                continue
            try:
                record = json.loads((host_dir / "host.json").read_text())
            except (OSError, ValueError):
                record = {}
            victims = [
                pid
                for pid, started in record.get("processes", [])
                if started is not None and _start_time(pid) == started
            ]
            for pid in reversed(victims):  # the init first: that ends the PID namespace
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while any(_start_time(pid) is not None for pid in victims):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            machine_fs.unmount_below(host_dir)
            if record.get("cgroup"):
                Cgroup.from_json(record["cgroup"]).remove()
            shutil.rmtree(host_dir, ignore_errors=True)
            removed += 1
        with contextlib.suppress(OSError):
            run_dir.rmdir()
    return removed
