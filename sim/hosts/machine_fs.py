"""The controller-side folders behind a live host's ``/etc`` and ``/usr``: a machine rendered.

Both live backends render a :class:`~sim.machine.Machine` from folders the controller makes
in the host's state folder and binds read-only into the sandbox:

* ``etc`` (bound at ``/etc``): the machine's files (:meth:`Machine.etc_files`:
  ``os-release``, ``hostname``, ``hosts``, ``passwd``, ``group``) plus what the system's
  tools need to work (:data:`SYSTEM_ETC`: ``nsswitch.conf`` so that ``whoami``, ``id``
  and ``ps`` look users up in ``passwd``; ``resolv.conf``; ``mtab`` for ``df`` and
  ``mount``; copies of this machine's ``ld.so.cache``, ``services`` and ``protocols``,
  which describe its ``/usr``), and an empty ``alternatives`` folder over which this
  machine's own ``/etc/alternatives`` is bound read-only: its links point into ``/usr``
  (``awk``, ``which``, ``editor``…). Binding it costs nothing, where copying its hundreds
  of links would add tens of milliseconds to every host start. The controller may
  replace a file while the host runs (:func:`replace_file`); the host sees the new text.
* ``usr`` (bound at ``/usr`` when the machine has ``missing_tools``): a read-only
  overlayfs of ``/usr`` under a layer that holds a *whiteout* (a 0/0 character device) for
  each missing tool's file in the command folders, so that the tool is absent: ``command
  -v`` fails, the shell says ``command not found`` and ``ls /usr/bin/TOOL`` finds nothing.
  Making device files and mounting need root.

As root, the ``etc`` folder lives on a small tmpfs of its own (:data:`ETC_FS_SIZE`), so that
making and removing hosts never writes to the machine's disk for it. Mounts are made with
``mount(2)`` directly (:func:`mount`): spawning ``mount`` and ``umount`` would cost a host's
start and close a few milliseconds each. Everything here is undone by :func:`unmount_below`
and removing the folder.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from sim.machine import Machine

__all__ = [
    "ALTERNATIVES",
    "SYSTEM_ETC",
    "TOOL_DIRS",
    "check_etc_name",
    "etc_texts",
    "make_etc",
    "mount",
    "mount_usr_without",
    "replace_file",
    "unmount_below",
    "whiteouts",
]

#: Files every live host's ``/etc`` holds besides the machine's own: what the system's
#: tools need. Users and groups come from the files only (the machine's ``nsswitch.conf``
#: may name services that do not run in a sandbox); names of linked hosts from ``hosts``.
SYSTEM_ETC: dict[str, str] = {
    "nsswitch.conf": (
        "passwd:         files\n"
        "group:          files\n"
        "shadow:         files\n"
        "hosts:          files dns\n"
        "networks:       files\n"
        "protocols:      files\n"
        "services:       files\n"
    ),
    "resolv.conf": "# No name server: the names of linked hosts are in /etc/hosts.\n",
}
#: Files of this machine's ``/etc`` that describe its ``/usr`` (copied when present).
COPIED_ETC = ("ld.so.cache", "services", "protocols")
#: This machine's folder of alternatives, bound read-only at the same place.
ALTERNATIVES = "/etc/alternatives"
#: Folders of ``/usr`` that hold commands: where a missing tool's file is hidden.
TOOL_DIRS = ("bin", "sbin", "games", "local/bin", "local/sbin", "local/games")
#: Size of the tmpfs holding a host's ``etc`` folder (made as root).
ETC_FS_SIZE = 1 << 20
#: ``mount(2)`` flags.
MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
_MNT_DETACH = 2
_OCTAL = re.compile(r"\\([0-7]{3})")
_libc = ctypes.CDLL(None, use_errno=True)


def mount(fstype: str, target: Path, options: str, flags: int = MS_NOSUID | MS_NODEV) -> None:
    """Mount a file system without a device (tmpfs, overlay) at ``target``: ``mount(2)``.

    Args:
        fstype: ``"tmpfs"`` or ``"overlay"``.
        target: An existing folder.
        options: The file system's options (``"size=1m,mode=0755"``, ``"lowerdir=..."``).
        flags: ``MS_*`` flags.

    Raises:
        OSError: If the kernel refuses (not root, a bad option…).
    """
    if _libc.mount(b"replisim", os.fsencode(target), fstype.encode(), flags, options.encode()):
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} -o {options}: {os.strerror(err)}", str(target))


def etc_texts(machine: Machine) -> dict[str, str]:
    """The text files of a live host's ``/etc`` by name: the machine's and the system's."""
    return {**SYSTEM_ETC, **machine.etc_files()}


def check_etc_name(name: str) -> str:
    """Return ``name`` if it names a file :func:`replace_file` may write, else raise.

    Raises:
        ValueError: For a path (``/``), ``.``, ``..``, an empty name or ``alternatives``.
    """
    if not name or "/" in name or name in (".", "..", "alternatives", "mtab"):
        raise ValueError(f"not a file of /etc a host's controller may write: {name!r}")
    return name


def make_etc(root: Path, machine: Machine, system_etc: str = "/etc") -> Path:
    """Make a live host's ``/etc`` folder: ``root/etc``.

    Args:
        root: A new folder to hold it (its parent must exist); as root, a tmpfs of
            :data:`ETC_FS_SIZE` is mounted there. :func:`replace_file` writes its new files
            there, next to the folder, on the same file system.
        machine: The machine rendered.
        system_etc: This machine's ``/etc``, where :data:`COPIED_ETC` come from.

    Returns:
        The folder, to bind at ``/etc``.
    """
    root.mkdir(mode=0o755)
    if os.geteuid() == 0:
        mount("tmpfs", root, f"size={ETC_FS_SIZE},mode=0755")
    folder = root / "etc"
    folder.mkdir(mode=0o755)
    for name, text in etc_texts(machine).items():
        (folder / name).write_text(text)
    for name in COPIED_ETC:
        source = Path(system_etc, name)
        if source.is_file():
            shutil.copyfile(source, folder / name)
    (folder / "mtab").symlink_to("../proc/self/mounts")
    (folder / "alternatives").mkdir()  # the mount point of ALTERNATIVES
    # Readable by the host's user whatever the controller's umask.
    for entry in folder.iterdir():
        if not entry.is_symlink():
            entry.chmod(0o755 if entry.is_dir() else 0o644)
    return folder


def replace_file(folder: Path, name: str, text: str, in_place: bool = False) -> None:
    """Replace one file of a host's ``/etc`` folder; a running host sees the new text.

    Args:
        folder: The folder :func:`make_etc` returned.
        name: The file's name (see :func:`check_etc_name`).
        text: Its new contents.
        in_place: Rewrite the file itself rather than renaming a new one over it: needed
            where a backend binds the file on its own (a bind follows the file, not the
            name), at the price of a moment in which a reader may see it empty.
    """
    target = folder / check_etc_name(name)
    if in_place and target.exists():
        with open(target, "w") as fh:
            fh.write(text)
        return
    # Written next to the folder (same file system), then renamed in: readers inside see
    # the old file or the new one, never a part.
    tmp = folder.parent / f".{folder.name}.{name}.tmp"
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(target)


def whiteouts(tools: Iterable[str], usr: str = "/usr") -> list[str]:
    """The files of ``usr`` to hide so that ``tools`` are absent, relative to ``usr``.

    Args:
        tools: Tool names (plain file names).
        usr: The system's ``/usr``.

    Returns:
        Paths such as ``bin/netstat``, sorted; empty if no tool is there.
    """
    found = []
    for tool in tools:
        for folder in TOOL_DIRS:
            if os.path.lexists(os.path.join(usr, folder, tool)):
                found.append(f"{folder}/{tool}")
    return sorted(found)


def mount_usr_without(tools: Iterable[str], folder: Path, usr: str = "/usr") -> Path | None:
    """Mount a read-only view of ``usr`` in which ``tools`` are absent.

    Args:
        tools: The machine's missing tools.
        folder: A fresh folder for the whiteouts (``folder/hide``) and the view
            (``folder/usr``); created.
        usr: The system's ``/usr``.

    Returns:
        The view's path, or ``None`` when no tool is in ``usr`` (nothing to hide: bind
        ``usr`` itself).

    Raises:
        PermissionError: If hiding is needed and this process is not root.
        OSError: If the kernel refuses the overlay.
    """
    hidden = whiteouts(tools, usr)
    if not hidden:
        return None
    if os.geteuid() != 0:
        raise PermissionError(
            f"hiding {', '.join(hidden)} of {usr} needs root (whiteouts and an overlay mount)"
        )
    hide, view = folder / "hide", folder / "usr"
    for path in hidden:
        whiteout = hide / path
        whiteout.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(whiteout, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    view.mkdir(parents=True)
    for layer in (str(hide), usr):
        if "," in layer or ":" in layer:  # the overlay's option separators
            raise OSError(f"cannot overlay {layer}: ',' and ':' cannot be in its path")
    mount("overlay", view, f"lowerdir={hide}:{usr}", MS_RDONLY | MS_NOSUID | MS_NODEV)
    return view


def unmount_below(folder: Path) -> None:
    """Unmount every mount at or under ``folder`` (deepest first; lazily, so never busy).

    Called before a host's folder is removed: removing files through a mount would reach
    the mounted file system (a tmpfs disk, or worse, the ``/usr`` under an overlay).
    """
    root = os.path.realpath(folder)
    targets = [
        point
        for point in _mount_points()
        if point == root or point.startswith(root.rstrip("/") + "/")
    ]
    for point in sorted(targets, key=lambda p: p.count("/"), reverse=True):
        _libc.umount2(os.fsencode(point), _MNT_DETACH)  # failures: nothing more to do


def _mount_points() -> list[str]:
    """Mount points of this process's mount namespace (``/proc/self/mountinfo``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    points = [line.split(" ")[4] for line in lines if line.count(" ") >= 5]
    return [_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), p) for p in points]
