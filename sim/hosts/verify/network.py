"""Serving: which process of a sandbox listens on a TCP port, and the controller's own
HTTP probe from inside the sandbox's network namespace."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import struct
import threading
import time
from typing import Any

from sim.hosts.verify.kernel import _CLONE_NEWNET, ProbeError, _libc
from sim.hosts.verify.peers import _proc_error
from sim.hosts.verify.sandboxes import _namespace, sandbox_pids

#: Largest HTTP response body :func:`probe_http` keeps.
MAX_PROBE_BODY = 65536


def _listening_inodes(pid: int, port: int) -> set[int]:
    """Inodes of the TCP sockets listening on ``port`` in the network namespace of ``pid``.

    Asked of the kernel's socket diagnostics (netlink ``sock_diag``, listeners only) from a
    netlink socket made in that namespace; ``/proc/PID/net/tcp{,6}`` where it is missing
    (reading those walks every TCP socket of the machine: milliseconds).
    """
    try:
        return _diag_listeners(pid, port)
    except ProcessLookupError:
        raise
    except OSError:  # no inet_diag here: read /proc
        return _proc_listeners(pid, port)


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_TCP_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_DIAG_REQ = struct.Struct("=BBBxI48x")  # family, protocol, extensions, states, socket id
_DIAG_MSG = struct.Struct("=BBBBHH")  # family, state, timer, retrans, sport (big-endian)…


def _diag_listeners(pid: int, port: int) -> set[int]:
    inodes = set()
    sock = netns_socket(pid, socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    with sock:
        sock.settimeout(5.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            body = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
            head = _NLMSG.pack(
                _NLMSG.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, seq, 0
            )
            sock.send(head + body)
            done = False
            while not done:
                data = sock.recv(65536)
                offset = 0
                while offset + _NLMSG.size <= len(data):
                    length, kind, _flags, _seq, _port = _NLMSG.unpack_from(data, offset)
                    if length < _NLMSG.size:
                        raise OSError(errno.EPROTO, "bad netlink message")
                    if kind == _NLMSG_DONE:
                        done = True
                    elif kind == _NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, offset + _NLMSG.size)[0]
                        raise OSError(code, os.strerror(code))
                    elif kind == _SOCK_DIAG_BY_FAMILY:
                        msg = offset + _NLMSG.size
                        sport = socket.ntohs(_DIAG_MSG.unpack_from(data, msg)[4])
                        if sport == port:
                            # inet_diag_msg: 4 bytes, socket id (48), expires, rqueue,
                            # wqueue, uid, inode (u32 each)
                            inodes.add(struct.unpack_from("=I", data, msg + 4 + 48 + 16)[0])
                    offset += (length + 3) & ~3
    return inodes


def _proc_listeners(pid: int, port: int) -> set[int]:
    inodes = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", "rb") as fh:
                next(fh, None)  # the header
                for line in fh:
                    fields = line.split()
                    # local address "0100007F:1F41", state 0A = LISTEN, inode is the 10th
                    if fields[3] == b"0A" and int(fields[1].rsplit(b":", 1)[1], 16) == port:
                        inodes.add(int(fields[9]))
        except FileNotFoundError:
            continue  # no IPv6 here
        except OSError as err:
            raise _proc_error(pid, err) from None
    return inodes


def listener_pids(where: Any, port: int) -> list[int]:
    """Which processes of a sandbox hold a socket listening on a TCP port.

    The socket's inode comes from the kernel's socket diagnostics in the sandbox's network
    namespace (``/proc/PID/net/tcp`` and ``tcp6`` where those are missing); its holders are
    the sandbox's processes with a ``socket:[inode]`` among their file descriptors. Several
    processes hold it when one forked after listening.

    Args:
        where: A live host, or the pid (as the controller numbers it) of any process in the
            sandbox.
        port: The TCP port.

    Returns:
        Sorted pids as the controller numbers them; empty if nothing listens, or if what
        listens is no process of this sandbox.
    """
    _, pid = _namespace(where)
    inodes = _listening_inodes(pid, port)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for candidate in sandbox_pids(pid):
        try:
            fds = os.listdir(f"/proc/{candidate}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{candidate}/fd/{fd}") in wanted:
                    holders.append(candidate)
                    break
            except OSError:
                continue
    return holders


def listener_pid(where: Any, port: int) -> int | None:
    """The process of a sandbox listening on a TCP port (the lowest pid if several share
    the socket), or ``None``; see :func:`listener_pids`."""
    holders = listener_pids(where, port)
    return holders[0] if holders else None


def netns_socket(
    netns_pid: int, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A socket in the network namespace of a process (e.g. a sandbox's, loopback only).

    A socket belongs to the namespace it was made in, for its whole life. A short-lived
    thread joins the namespace (``setns``), makes the socket and ends: the calling thread
    never changes namespace, and a thread that did is never reused. Root may join any
    sandbox's namespace, also one owned by a bubblewrap user namespace.

    Args:
        netns_pid: A pid (as the controller numbers it) in the wanted network namespace.
        family: Address family.
        type: Socket type.
        proto: Protocol (e.g. a netlink family).

    Returns:
        The socket, in blocking mode; the caller closes it.

    Raises:
        ProcessLookupError: If there is no such process.
        PermissionError: If the controller may not join the namespace (not root).
    """
    try:
        nsfd = os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _proc_error(netns_pid, err) from None
    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            if _libc.setns(nsfd, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(
                    code, f"setns into the network of pid {netns_pid}: {os.strerror(code)}"
                )
            made.append(socket.socket(family, type, proto))
        except BaseException as err:  # handed to the caller's thread
            made.append(err)

    try:
        thread = threading.Thread(target=enter, name=f"netns-{netns_pid}", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(nsfd)
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def probe_http(
    netns_pid: int,
    port: int,
    path: str = "/health",
    timeout: float = 2.0,
    max_body: int = MAX_PROBE_BODY,
) -> tuple[int, bytes]:
    """The controller's own health probe of a server inside a sandbox.

    Connects to ``127.0.0.1:port`` inside the sandbox's network namespace (a socket made by
    :func:`netns_socket`, so this works for a Docker host with network ``none`` and for a
    bubblewrap host alike), sends ``GET path`` (HTTP/1.0, ``Connection: close``) and reads
    the answer within ``timeout`` seconds in all.

    Args:
        netns_pid: A pid (as the controller numbers it) in the sandbox, e.g. its init's.
        port: The server's TCP port.
        path: The path asked for.
        timeout: Seconds for the whole exchange.
        max_body: Most body bytes kept (the rest is not read).

    Returns:
        (HTTP status, body).

    Raises:
        ProbeError: If there was no HTTP answer: the message says why (``connection
            refused``, ``timed out after 2 s``, ``connection closed before an answer``,
            ``no HTTP status line``).
        ProcessLookupError: If there is no such process.
    """
    deadline = time.monotonic() + timeout
    sock = netns_socket(netns_pid)
    try:
        return _http_get(sock, port, path, deadline, max_body, timeout)
    finally:
        sock.close()


def _http_get(
    sock: socket.socket, port: int, path: str, deadline: float, max_body: int, timeout: float
) -> tuple[int, bytes]:
    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    data = bytearray()
    try:
        sock.settimeout(left())
        sock.connect(("127.0.0.1", port))
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        length: int | None = None
        head_end = -1
        while True:
            if head_end < 0:
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    match = re.search(rb"(?im)^content-length:\s*(\d{1,12})\s*$", data[:head_end])
                    length = int(match.group(1)) if match else None
                elif len(data) > 65536:
                    break  # no end of headers in 64 KiB: judged on the status line below
            if head_end >= 0:
                got = len(data) - head_end - 4
                if got >= max_body or (length is not None and got >= length):
                    break
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        if not data:
            raise ProbeError(errno.ETIMEDOUT, f"timed out after {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ProbeError(errno.ECONNREFUSED, "connection refused") from None
    except OSError as err:
        if not data:
            raise ProbeError(err.errno or errno.EIO, err.strerror or str(err)) from None
    if not data:
        raise ProbeError(errno.ECONNRESET, "connection closed before an answer")
    match = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})[ \r\n]", data)
    if match is None:
        raise ProbeError(errno.EPROTO, "no HTTP status line")
    head_end = data.find(b"\r\n\r\n")
    body = bytes(data[head_end + 4 : head_end + 4 + max_body]) if head_end >= 0 else b""
    return int(match.group(1)), body
