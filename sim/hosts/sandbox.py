"""Minimal bubblewrap launcher: run a command in a local sandbox (replisim's "local" host).

The sandbox gets its own mount, PID, network, IPC, UTS and cgroup namespaces
(``--unshare-all``), plus a user namespace in which it runs as ``nobody`` with no
capabilities and cannot create further user namespaces. Its file system is a fresh tmpfs
holding: the host's system directories and the running Python installation, bound
read-only; a new ``/proc``, ``/dev``, and ``/tmp`` and ``/dev/shm`` of
:data:`TMPFS_SIZE` each; and the caller's work directory, bound
read-write at :data:`SANDBOX_WORKDIR`. Nothing else of the host is visible. Without
``share_net`` the network namespace has only loopback (brought up by bubblewrap).

``--die-with-parent`` SIGKILLs the sandbox when its parent dies, and ``--new-session``
detaches it from the controlling terminal (no ``TIOCSTI`` keystroke injection).

The user namespace maps the sandbox's ``nobody`` to the user who runs ``bwrap`` (root on
replisim's CI machines), so files written to the work directory belong to that user on the
host. Unprivileged callers need unprivileged user namespaces enabled in the kernel.

Limits (memory, CPU, PIDs) are not bubblewrap's job: the ``local`` live host
(:mod:`sim.hosts.local_host`) puts the sandbox into cgroups; the Docker backend
(:mod:`sim.hosts.docker_image`) has the engine's.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

#: User the sandbox runs as (``nobody:nogroup`` on Debian); shared with the Docker backend.
SANDBOX_UID = 65534
SANDBOX_GID = 65534
#: Top-level host paths that make up the system (bound read-only, or mirrored as symlinks).
SYSTEM_PATHS: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
#: Where the work directory appears inside the sandbox.
SANDBOX_WORKDIR = "/work"
#: Size of the sandbox's ``/tmp`` and ``/dev/shm`` (each a tmpfs; as Docker's defaults).
TMPFS_SIZE = 64 << 20
#: Hostname inside the sandbox.
SANDBOX_HOSTNAME = "replisim"


#: PID 1 of every live host, Docker container or bubblewrap sandbox (run with ``python3 -I -c``).
#: It waits for signals without polling: SIGCHLD -> reap every zombie (orphans of ``exec``'d
#: processes are re-parented to PID 1, and unreaped zombies would count against the pids
#: limit); SIGTERM/SIGINT from outside (``docker stop``, a local host's ``stop``) -> print a
#: marker, send SIGTERM to every other process in the host (``kill(-1)`` in a PID namespace
#: reaches just the host) and exit 143 as soon as they are all gone. If they are not gone by
#: the end of the grace period, the engine (or the local backend) SIGKILLs the init, and with
#: it the whole PID namespace: exit 137. Signals from inside the host are ignored (PID 1 of a
#: namespace gets no SIGKILL from inside either); processes ``exec``'d as another user (e.g.
#: root) do not get the relayed SIGTERM, only the final SIGKILL. Processes inside may log to
#: the host's log by writing to ``/proc/1/fd/1`` (same user as the init).
INIT_SCRIPT = """\
import os, signal, sys
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
        ``[python, "-I", "-c", INIT_SCRIPT]``.
    """
    return [python_executable(), "-I", "-c", INIT_SCRIPT]


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


def sandbox_path_env() -> str:
    """``PATH`` inside the sandbox: the Python installation first, then the system.

    Returns:
        A colon-separated search path.
    """
    dirs = [f"{d}/bin" for d in python_dirs()]
    dirs += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    return ":".join(dirs)


def sandbox_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed process (the caller's is never inherited).

    Args:
        env: Variables to add or override.

    Returns:
        ``PATH`` (:func:`sandbox_path_env`), ``HOME``, ``LANG``, ``PYTHONDONTWRITEBYTECODE``
        and ``env``.
    """
    return {
        "PATH": sandbox_path_env(),
        "HOME": SANDBOX_WORKDIR,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }


def bwrap_command(
    workdir: Path,
    argv: list[str],
    *,
    share_net: bool = False,
    env: Mapping[str, str] | None = None,
    extra_ro_binds: Iterable[str] = (),
    bwrap: str | None = None,
    options: Iterable[str] = (),
) -> list[str]:
    """Build the ``bwrap`` command line that runs ``argv`` in a fresh sandbox.

    Args:
        workdir: Host directory bound read-write at :data:`SANDBOX_WORKDIR` (created if
            missing), also the sandbox's working and home directory.
        argv: Command to run inside, e.g. ``["python3", "-c", "print(1)"]``; looked up on the
            sandbox's ``PATH`` (:func:`sandbox_path_env`).
        share_net: Keep the host's network namespace. Off by default: the sandbox then has
            loopback only. Never turn it on in tests (network safety rules).
        env: Environment variables to set; the rest of the environment is cleared.
        extra_ro_binds: More host paths to bind read-only at the same place.
        bwrap: Path of the ``bwrap`` executable (default: found on ``PATH``).
        options: More bubblewrap options, placed after the built-in ones and so after every
            mount (e.g. ``["--as-pid-1", "--info-fd", "5", "--remount-ro", "/"]``).

    Returns:
        The argument vector, for :func:`subprocess.run` or :class:`subprocess.Popen`.

    Raises:
        ValueError: If ``argv`` is empty.
        FileNotFoundError: If bubblewrap is not installed and ``bwrap`` is not given.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    exe = bwrap or bwrap_path()
    if exe is None:
        raise FileNotFoundError("bwrap not found: apt-get install -y bubblewrap")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    symlinks, sys_dirs = system_layout()
    cmd = [
        exe,
        "--unshare-all",
        *(["--share-net"] if share_net else []),
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--disable-userns",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        SANDBOX_HOSTNAME,
        "--clearenv",
    ]
    for key, value in sandbox_environment(env).items():
        cmd += ["--setenv", key, value]
    for path in dict.fromkeys([*sys_dirs, *python_dirs(), *extra_ro_binds]):
        cmd += ["--ro-bind", path, path]
    for path, target in symlinks.items():
        cmd += ["--symlink", target, path]
    cmd += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # Sized like Docker's /tmp and /dev/shm: without a size, a tmpfs may take half the
        # machine's memory wherever no memory cgroup bounds the sandbox.
        "--size",
        str(TMPFS_SIZE),
        "--tmpfs",
        "/dev/shm",
        "--size",
        str(TMPFS_SIZE),
        "--tmpfs",
        "/tmp",
        "--bind",
        os.fspath(workdir),
        SANDBOX_WORKDIR,
        "--chdir",
        SANDBOX_WORKDIR,
        *options,
        "--",
        *argv,
    ]
    return cmd
