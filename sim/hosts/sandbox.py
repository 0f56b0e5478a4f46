"""Minimal bubblewrap launcher: run a command in a local sandbox (replisim's "local" host).

The sandbox gets its own mount, PID, network, IPC, UTS and cgroup namespaces
(``--unshare-all``), plus a user namespace in which it runs as ``nobody`` with no
capabilities and cannot create further user namespaces. Its file system is a fresh tmpfs
holding: the host's system directories and the running Python installation, bound
read-only; a new ``/proc``, ``/dev`` and ``/tmp``; and the caller's work directory, bound
read-write at :data:`SANDBOX_WORKDIR`. Nothing else of the host is visible. Without
``share_net`` the network namespace has only loopback (brought up by bubblewrap).

``--die-with-parent`` SIGKILLs the sandbox when its parent dies, and ``--new-session``
detaches it from the controlling terminal (no ``TIOCSTI`` keystroke injection).

The user namespace maps the sandbox's ``nobody`` to the user who runs ``bwrap`` (root on
replisim's CI machines), so files written to the work directory belong to that user on the
host. Unprivileged callers need unprivileged user namespaces enabled in the kernel.

Limits (memory, CPU, PIDs) are not bubblewrap's job: put the ``bwrap`` process into a
cgroup, or use the Docker backend (:mod:`sim.hosts.docker_image`).
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
#: Hostname inside the sandbox.
SANDBOX_HOSTNAME = "replisim"


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


def bwrap_command(
    workdir: Path,
    argv: list[str],
    *,
    share_net: bool = False,
    env: Mapping[str, str] | None = None,
    extra_ro_binds: Iterable[str] = (),
    bwrap: str | None = None,
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
    environment = {
        "PATH": sandbox_path_env(),
        "HOME": SANDBOX_WORKDIR,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    for key, value in environment.items():
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
        "--tmpfs",
        "/tmp",
        "--bind",
        os.fspath(workdir),
        SANDBOX_WORKDIR,
        "--chdir",
        SANDBOX_WORKDIR,
        "--",
        *argv,
    ]
    return cmd
