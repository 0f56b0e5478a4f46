"""What: the SHA-256 of a file as a process's own mount namespace sees it (the weights)."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import posixpath
import stat
import struct

from sim.hosts.verify.kernel import (
    _READ_BLOCK,
    _RESOLVE_IN_ROOT,
    _RESOLVE_NO_MAGICLINKS,
    _SYS_OPENAT2,
    VerifyError,
    _libc,
)
from sim.hosts.verify.peers import _proc_error, process_cwd

#: Largest file :func:`file_digest` reads by default (bigger files are refused, not hashed).
MAX_DIGEST_BYTES = 64 << 30


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    how = struct.pack("QQQ", flags, 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.c_char_p(how),
        ctypes.c_size_t(len(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            raise VerifyError("openat2 is missing (Linux >= 5.6 needed to read sandbox files)")
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def file_digest(
    pid: int, path: str, *, max_bytes: int = MAX_DIGEST_BYTES, size: int | None = None
) -> str:
    """SHA-256 of a file as a process's mount namespace sees it.

    The file is opened through ``/proc/PID/root`` with ``openat2(RESOLVE_IN_ROOT)``: links
    and ``..`` resolve inside the process's root, as they would for the process, and can
    never lead to the controller's own files. Only a regular file is read (a FIFO or a
    device is refused without blocking), streamed in 1 MiB blocks, at most ``max_bytes``.
    Reading another user's ``/proc/PID/root`` needs root (``CAP_SYS_PTRACE``).

    Args:
        pid: A pid as the controller numbers it.
        path: Absolute in the process's root, or relative to its working directory.
        max_bytes: Refuse files larger than this (and stop reading one that grows past it).
        size: If given, a file of another size is refused before anything is read.

    Returns:
        The hex digest.

    Raises:
        FileNotFoundError: If there is no such file there.
        PermissionError: If the controller may not read it.
        VerifyError: If it is not a regular file, or has the wrong size or too many bytes.
        ProcessLookupError: If there is no such process.
    """
    if not path.startswith("/"):
        path = posixpath.join(process_cwd(pid), path)
    try:
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise _proc_error(pid, err) from None
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = _openat2(root, path, flags, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(root)
    with open(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise VerifyError(f"{path} is not a regular file")
        if size is not None and st.st_size != size:
            raise VerifyError(f"{path} has {st.st_size} bytes, not {size}")
        if st.st_size > max_bytes:
            raise VerifyError(f"{path} has {st.st_size} bytes, more than {max_bytes}")
        digest = hashlib.sha256()
        block = bytearray(_READ_BLOCK)
        view = memoryview(block)
        total = 0
        while n := fh.readinto(block):
            total += n
            if total > max_bytes:
                raise VerifyError(f"{path} grew past {max_bytes} bytes while read")
            digest.update(view[:n])
    return digest.hexdigest()
