"""Minimal bubblewrap launcher: run a command in a local sandbox (replisim's "local" host).

A sandbox renders a :class:`~sim.machine.Machine`. It gets its own mount, PID, network, IPC,
UTS and cgroup namespaces (``--unshare-all``), plus a user namespace in which it runs as the
machine's user (``agent``, uid and gid 1000) with no capabilities and cannot create further
user namespaces; its hostname is the machine's and its environment exactly
:meth:`Machine.environment`. Its file system is a fresh tmpfs holding:

* read-only: the host's system directories (``/usr``, or with ``usr`` a view of it without
  the machine's missing tools, see :mod:`sim.hosts.machine_fs`), the running Python
  installation at its own path (the init runs it by that path; it is not on ``PATH``), and
  the ``etc`` folder at ``/etc`` with this machine's ``/etc/alternatives`` over its
  ``alternatives``;
* a new ``/proc``, ``/dev`` and ``/dev/mqueue`` (the sandbox's own POSIX message queues, as
  in a Docker container), and an empty ``/run``;
* writable, the machine's :attr:`~sim.machine.Machine.writable` folders: the caller's
  ``disk`` folder bound read-write at the bundle root (the host's disk), and a tmpfs of
  :data:`SCRATCH_SIZE` at each of the others (home, owned by the user; ``/tmp``,
  ``/var/tmp`` and ``/dev/shm``, sticky and writable by all).

Nothing else of the host is visible. Without ``share_net`` the network namespace has only
loopback (brought up by bubblewrap).

``--die-with-parent`` SIGKILLs the sandbox when its parent dies, and ``--new-session``
detaches it from the controlling terminal (no ``TIOCSTI`` keystroke injection).

Ids: as root (``userns_block_fd``), the caller maps the machine's root and user to the same
ids outside (:func:`id_maps`), so files of the system show as root's and the user is an
unprivileged user outside, as in a Docker container; the sandbox starts as its root, and
the init (:data:`INIT_SCRIPT`) forbids further user namespaces, gives the user its home,
drops every capability and becomes the user before anything else runs. Otherwise
bubblewrap maps the sandbox's user to the caller and no other id (files of the caller,
the system's when it is root, then show as the user's, other owners as ``nobody``).
Unprivileged callers need unprivileged user namespaces enabled in the kernel.

Limits (memory, CPU, PIDs) are not bubblewrap's job: the ``local`` live host
(:mod:`sim.hosts.local_host`) puts the sandbox into cgroups; the Docker backend
(:mod:`sim.hosts.docker_image`) has the engine's.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from sim.hosts.machine_fs import ALTERNATIVES
from sim.machine import SCRATCH_SIZE as MACHINE_SCRATCH_SIZE
from sim.machine import Machine

#: Top-level host paths that make up the system (bound read-only, or mirrored as symlinks).
SYSTEM_PATHS: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
#: Size of each writable folder of a sandbox but the bundle root (a tmpfs each: the home,
#: ``/tmp``, ``/var/tmp`` and ``/dev/shm``): the machine's. Their pages count against the
#: host's memory cap; the size bounds them where no cgroup does.
SCRATCH_SIZE = MACHINE_SCRATCH_SIZE
#: Hostname of a sandbox made without a machine.
DEFAULT_HOSTNAME = "replisim"
#: Seconds between a hang-up's SIGHUP and the SIGKILL of what does not ignore it.
HANGUP_GRACE_S = 0.25
#: How the controller's Python runs the init and the hang-up wrapper: isolated, and without
#: ``site`` (they need only the standard library; ``site`` and its ``.pth`` files would cost
#: every host start some 25 ms).
PYTHON_FLAGS = ("-I", "-S")
#: Capabilities the init needs, as the sandbox's root, to become the machine's user.
INIT_CAPS = ("CAP_CHOWN", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SYS_RESOURCE")


#: PID 1 of every live host, Docker container or bubblewrap sandbox (``python -I -S -c``).
#: It waits for signals without polling: SIGCHLD -> reap every zombie (orphans of ``exec``'d
#: processes are re-parented to PID 1, and unreaped zombies would count against the pids
#: limit); SIGTERM/SIGINT from outside (``docker stop``, a local host's ``stop``) -> print a
#: marker, send SIGTERM to every other process in the host (``kill(-1)`` in a PID namespace
#: reaches just the host) and exit 143 as soon as they are all gone. If they are not gone by
#: the end of the grace period, the engine (or the local backend) SIGKILLs the init, and with
#: it the whole PID namespace: exit 137. Signals from inside the host are ignored (PID 1 of a
#: namespace gets no SIGKILL from inside either); processes ``exec``'d as another user (e.g.
#: root) do not get the relayed SIGTERM, only the final SIGKILL. Processes inside may log to
#: the host's log by writing to ``/proc/1/fd/1`` (same user as the init). Started as root
#: (a local host made by root, see the module's docstring), it first becomes the user named
#: by ``USER``, with no capability left, and no further user namespace can be made inside.
INIT_SCRIPT = """\
import os, signal, sys
if os.getuid() == 0:
    import ctypes, pwd
    user = pwd.getpwnam(os.environ["USER"])
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.chown(os.environ["HOME"], user.pw_uid, user.pw_gid)
    libc = ctypes.CDLL(None)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)  # the last capabilities go with root
    # What setuid reset: PR_SET_DUMPABLE (/proc/1/fd stays the user's) and bubblewrap's
    # --die-with-parent (PR_SET_PDEATHSIG, SIGKILL).
    libc.prctl(4, 1, 0, 0, 0)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)
S = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
signal.pthread_sigmask(signal.SIG_BLOCK, S)
print("replisim-init: ready", flush=True)
term = False
def others():
    return [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
while True:
    info = signal.sigtimedwait(S, 0.1 if term else 3600)
    # si_pid == 0: sent from outside the container's PID namespace (the engine), so a
    # process inside cannot stop the container by signalling PID 1.
    if info is not None and info.si_signo != signal.SIGCHLD and info.si_pid == 0 and not term:
        term = True
        print("replisim-init: SIGTERM", flush=True)
        try:
            os.kill(-1, signal.SIGTERM)
        except OSError:
            pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    if term and not others():
        print("replisim-init: all processes gone", flush=True)
        sys.exit(143)
"""


#: Runs one command with a timeout that ends it as a terminal's hang-up would
#: (``python -I -S -c HANGUP_SCRIPT SECONDS ARGV...``, in a Docker host; a local host does
#: the same from outside). The wrapper leads a new process group and runs the command in it;
#: when the time is up it sends SIGHUP to the group, waits :data:`HANGUP_GRACE_S`, then
#: SIGKILLs every member still there that does not ignore SIGHUP (``SigIgn`` in
#: ``/proc/PID/status``): what was started under ``nohup`` lives on. It exits with the
#: command's status (128 + N for signal N) when the command ends in time, else with 129
#: (hung up), however the command then ended, or if it survived.
HANGUP_SCRIPT = f"""\
# replisim-hangup
import os, signal, subprocess, sys, time
signal.signal(signal.SIGHUP, lambda *_: None)  # not SIG_IGN, which the command would inherit
try:
    os.setpgid(0, 0)
except OSError:  # a session leader: already leads its group
    pass
def status(code):
    return 128 - code if code < 0 else code
def members(group):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open(f"/proc/{{name}}/stat").read()
            state, _, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
            status_text = open(f"/proc/{{name}}/status").read()
        except (OSError, ValueError):
            continue
        if int(pgrp) == group and state not in "ZX" and int(name) != os.getpid():
            ign = [l for l in status_text.splitlines() if l.startswith("SigIgn:")]
            found.append((int(name), bool(int(ign[0].split()[1], 16) & 1) if ign else False))
    return found
try:
    child = subprocess.Popen(sys.argv[2:])
except OSError as err:
    print(f"replisim: failed to run command {{sys.argv[2]!r}}: {{err.strerror}}", file=sys.stderr)
    sys.exit(127 if isinstance(err, FileNotFoundError) else 126)
try:
    sys.exit(status(child.wait(float(sys.argv[1]))))
except subprocess.TimeoutExpired:
    pass
group = os.getpgid(0)
os.killpg(group, signal.SIGHUP)
time.sleep({HANGUP_GRACE_S})
for _ in range(20):
    child.poll()
    doomed = [pid for pid, ignores in members(group) if not ignores]
    if not doomed:
        break
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.005)
sys.exit(128 + signal.SIGHUP)
"""


def python_dirs() -> tuple[str, ...]:
    """Directories holding the running Python installation (and its venv, if any).

    Directories under ``/usr`` are left out: ``/usr`` is bound as a whole.

    Returns:
        Absolute, symlink-free paths, to be bound read-only at the same place.
    """
    dirs: list[str] = []
    for prefix in (sys.base_prefix, sys.prefix):
        real = os.path.realpath(prefix)
        if real == "/usr" or real.startswith("/usr/") or real in dirs:
            continue
        dirs.append(real)
    return tuple(dirs)


def python_executable() -> str:
    """Path of the Python interpreter to run inside sandboxes (the one running replisim).

    Returns:
        ``sys.executable`` (a venv's interpreter keeps its venv), or ``python3`` if unknown.
    """
    return sys.executable or "python3"


def init_command() -> list[str]:
    """The command that runs :data:`INIT_SCRIPT` as PID 1.

    Returns:
        ``[python, *PYTHON_FLAGS, "-c", INIT_SCRIPT]``.
    """
    return [python_executable(), *PYTHON_FLAGS, "-c", INIT_SCRIPT]


def system_layout(paths: Iterable[str] = SYSTEM_PATHS) -> tuple[dict[str, str], tuple[str, ...]]:
    """Inspect the host's top-level system paths.

    Args:
        paths: Absolute top-level paths to consider.

    Returns:
        ``(symlinks, dirs)``: top-level symlinks to mirror in the sandbox (path -> target,
        e.g. ``{"/bin": "usr/bin"}`` on merged-usr Debian) and real directories to bind
        read-only.
    """
    symlinks: dict[str, str] = {}
    dirs: list[str] = []
    for path in paths:
        if os.path.islink(path):
            symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            dirs.append(path)
    return symlinks, tuple(dirs)


def bwrap_path() -> str | None:
    """Locate the ``bwrap`` executable.

    Returns:
        Its path, or ``None`` if bubblewrap is not installed.
    """
    return shutil.which("bwrap")


def id_maps(machine: Machine) -> tuple[str, str]:
    """``uid_map`` and ``gid_map`` of a sandbox made by root: the machine's root and user
    map to the same ids outside.

    Returns:
        The two files' texts.
    """
    return (f"0 0 1\n{machine.uid} {machine.uid} 1\n", f"0 0 1\n{machine.gid} {machine.gid} 1\n")


def sandbox_machine(machine: Machine | None) -> Machine:
    """``machine``, or the default machine of a sandbox (hostname :data:`DEFAULT_HOSTNAME`)."""
    return machine if machine is not None else Machine(hostname=DEFAULT_HOSTNAME)


def check_writable(machine: Machine) -> None:
    """Refuse a machine whose writable folders would cover the system or the controller's
    Python (a tmpfs there would hide it, and the sandbox could not run).

    Raises:
        ValueError: If a writable folder is not absolute, is ``/``, or is (or is under, or
            holds) a system path, ``/etc``, ``/proc``, ``/sys``, ``/dev`` (but ``/dev/shm``)
            or the Python installation.
    """
    system = (*SYSTEM_PATHS, "/etc", "/proc", "/sys", "/dev", *python_dirs())
    for folder in machine.writable:
        path = posixpath.normpath(folder)
        if not folder.startswith("/") or path == "/":
            raise ValueError(f"a writable folder must be absolute and not '/', got {folder!r}")
        if path == "/dev/shm":
            continue
        for sys_path in system:
            inside = path == sys_path or path.startswith(sys_path + "/")
            if inside or sys_path.startswith(path + "/"):
                raise ValueError(f"writable folder {folder!r} would cover the system ({sys_path})")


def writable_mounts(machine: Machine, disk: str) -> list[tuple[str, list[str]]]:
    """``(path, bubblewrap options)`` making the machine's writable folders.

    The bundle root is ``disk``, bound read-write; the home a tmpfs the user owns (the
    sandbox's user namespace maps its creator, who owns a new tmpfs, to the user); the
    scratch folders sticky tmpfs writable by all, as on any Linux machine.
    """
    mounts = []
    for path in machine.writable:
        if path == machine.bundle_root:
            mounts.append((path, ["--bind", disk, path]))
        else:
            perms = "0755" if path == machine.home else "1777"
            size = str(SCRATCH_SIZE)
            mounts.append((path, ["--perms", perms, "--size", size, "--tmpfs", path]))
    return mounts


def bwrap_command(
    disk: Path,
    argv: list[str],
    *,
    machine: Machine | None = None,
    etc: Path | None = None,
    usr: Path | None = None,
    share_net: bool = False,
    env: Mapping[str, str] | None = None,
    extra_ro_binds: Iterable[str] = (),
    ro_binds: Mapping[str, str] | None = None,
    bwrap: str | None = None,
    options: Iterable[str] = (),
    userns_block_fd: int | None = None,
) -> list[str]:
    """Build the ``bwrap`` command line that runs ``argv`` in a fresh sandbox.

    Args:
        disk: Host directory bound read-write at the machine's bundle root (created if
            missing).
        argv: Command to run inside, e.g. ``["python3", "-c", "print(1)"]``, in the
            machine's home; looked up on the machine's ``PATH``.
        machine: The machine to render (default :func:`sandbox_machine`'s).
        etc: Folder bound read-only at ``/etc`` (:func:`sim.hosts.machine_fs.make_etc`);
            ``None``: the sandbox has no ``/etc``.
        usr: Folder bound read-only at ``/usr`` instead of the system's (a view without
            the missing tools, :func:`sim.hosts.machine_fs.mount_usr_without`).
        share_net: Keep the host's network namespace. Off by default: the sandbox then has
            loopback only. Never turn it on in tests (network safety rules).
        env: Environment variables to add to the machine's; the rest of the environment is
            cleared.
        extra_ro_binds: More host paths to bind read-only at the same place.
        ro_binds: More host paths (keys) to bind read-only at other places (values).
        bwrap: Path of the ``bwrap`` executable (default: found on ``PATH``).
        options: More bubblewrap options, placed after the built-in ones and so after every
            mount (e.g. ``["--as-pid-1", "--info-fd", "5", "--remount-ro", "/"]``).
        userns_block_fd: As root: the sandbox waits on this pipe until the caller has
            written its :func:`id_maps` (``/proc/<child-pid>/uid_map``, from ``--info-fd``),
            and starts as its root with :data:`INIT_CAPS`: ``argv`` must be the init
            (:data:`INIT_SCRIPT`), which drops them.

    Returns:
        The argument vector, for :func:`subprocess.run` or :class:`subprocess.Popen`.

    Raises:
        ValueError: If ``argv`` is empty or the machine's writable folders cover the system.
        FileNotFoundError: If bubblewrap is not installed and ``bwrap`` is not given.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    machine = sandbox_machine(machine)
    check_writable(machine)
    exe = bwrap or bwrap_path()
    if exe is None:
        raise FileNotFoundError("bwrap not found: apt-get install -y bubblewrap")
    disk = Path(disk).resolve()
    disk.mkdir(parents=True, exist_ok=True)
    if userns_block_fd is None:
        ids = ["--uid", str(machine.uid), "--gid", str(machine.gid), "--disable-userns"]
        ids += ["--cap-drop", "ALL"]
    else:
        ids = ["--userns-block-fd", str(userns_block_fd)]
        ids += [arg for cap in INIT_CAPS for arg in ("--cap-add", cap)]
    cmd = [
        exe,
        "--unshare-all",
        *(["--share-net"] if share_net else []),
        "--unshare-user",
        *ids,
        "--die-with-parent",
        "--new-session",
        "--hostname",
        machine.hostname,
        "--clearenv",
    ]
    for key, value in machine.environment(env).items():
        cmd += ["--setenv", key, value]
    mounts = _system_mounts(usr, extra_ro_binds)
    if etc is not None:
        mounts.append(("/etc", ["--ro-bind", os.fspath(etc), "/etc"]))
        if os.path.isdir(ALTERNATIVES):
            mounts.append((ALTERNATIVES, ["--ro-bind", ALTERNATIVES, ALTERNATIVES]))
    mounts += [("/proc", ["--proc", "/proc"]), ("/dev", ["--dev", "/dev"])]
    # As in a container: the host's own message queues, and an empty /run.
    mounts += [("/dev/mqueue", ["--mqueue", "/dev/mqueue"]), ("/run", ["--dir", "/run"])]
    mounts += writable_mounts(machine, os.fspath(disk))
    mounts += [(dst, ["--ro-bind", src, dst]) for src, dst in (ro_binds or {}).items()]
    # Parents before children (a bind inside a tmpfs needs the tmpfs first); otherwise in
    # the order above.
    for _, args in sorted(mounts, key=lambda m: posixpath.normpath(m[0]).count("/")):
        cmd += args
    cmd += ["--chdir", machine.home, *options, "--", *argv]
    return cmd


def _system_mounts(usr: Path | None, extra_ro_binds: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The read-only system, the Python installation and extra binds, as mount options."""
    symlinks, sys_dirs = system_layout()
    mounts = []
    for path in dict.fromkeys([*sys_dirs, *python_dirs(), *extra_ro_binds]):
        source = os.fspath(usr) if path == "/usr" and usr is not None else path
        mounts.append((path, ["--ro-bind", source, path]))
    mounts += [(path, ["--symlink", target, path]) for path, target in symlinks.items()]
    return mounts
