"""Linux constants and libc calls the standard library of Python 3.11 lacks; the errors."""

from __future__ import annotations

import ctypes
import os

_SYS_OPENAT2 = 437  # the same number on every architecture (Linux 5.6)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_CLONE_NEWNET = 0x40000000
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_READ_BLOCK = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.setns.restype = ctypes.c_int


class VerifyError(RuntimeError):
    """A fact could not be established (no such host init, an unreadable file, a remote
    engine…); the message says which."""


class ProbeError(OSError):
    """The controller's health probe got no HTTP answer; the message says why
    (``connection refused``, ``timed out after 1 s``…)."""
