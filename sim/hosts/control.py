"""The controller's end of a live host's control socket, hardened against what runs inside.

Each live host has one :class:`ControlServer`: a Unix stream socket at ``<folder>/ctl.sock``
that the host binds read-only at :data:`sim.hosts.replica.CONTROL_SOCKET`. The replica's
scripts send one JSON object per line (``hello``, ``ready``, ``refused``, ``sigterm``,
``beat``: :func:`check_message`); the server hands each valid one to ``on_message`` with
the sender's pid **from the kernel** (``SO_PEERCRED`` at accept), never from the message.

Anything in the sandbox can connect and write anything, so the server assumes the worst:

* **One thread, no blocking**: a single I/O thread multiplexes the listening socket and
  every connection (``epoll``), all non-blocking. Replies are queued and written when the
  peer reads; a peer that stops reading is hung up on once :attr:`ControlServer.max_unsent`
  bytes wait.
* **Bounded memory**: a line longer than ``max_line`` is dropped up to its newline, never
  held; at most ``max_connections`` connections, at most ``max_per_process`` per process
  (excess ones are refused at once; at the overall cap a newcomer takes the place of the
  newest connection of the process holding the most, if it holds several, so hoarding
  connections cannot lock a replica out); so the server's memory is bounded whatever is
  sent.
* **Bounded work**: each connection has a budget of lines per second (``rate``, bursts of
  ``burst``) and of bytes per second (``byte_rate``). Lines past the line budget are
  dropped unparsed and counted; a connection out of budget is not read until its budget
  refills, so a flood waits in the kernel's socket buffer and its sender blocks.
* **Garbage is counted, not handed on**: an oversized line, a line that is not JSON (or
  not UTF-8, or nested too deep), JSON that is not an object, an object of the wrong shape,
  a line over the rate, a connection that says nothing valid within ``hello_timeout``, a
  peer that does not read its replies: each is counted per connection and kind, and
  ``on_garbage(conn_id, kind, count, sample)`` reports the counts at most once per
  ``garbage_interval`` per connection and kind (and once more when the connection ends),
  so a flood cannot grow the event record either.
* **Liveness from the kernel**: a socket stays open as long as *any* process holds it (a
  child that inherited it, say); with ``watch_exits`` the server holds each peer by a
  pidfd and ends the connection when the process that connected exits.
* **Callbacks cannot stop it**: an exception in a callback is logged and the server goes
  on. Callbacks run on the I/O thread and must be quick (post to a queue).

Example:
    >>> def on_message(conn_id, pid, message, reply):  # doctest: +SKIP
    ...     if message["op"] == "hello":
    ...         reply({"name": "r1"})
    >>> server = ControlServer(folder, on_message, on_closed=print)  # doctest: +SKIP
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import selectors
import socket
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from sim.hosts.verify import PeerProcess, peer_pid, peer_process

__all__ = [
    "GARBAGE_KINDS",
    "ControlServer",
    "GarbageHandler",
    "MessageHandler",
    "Reply",
    "check_message",
]

log = logging.getLogger(__name__)

#: What :class:`ControlServer` counts instead of handing on, by kind.
GARBAGE_KINDS = (
    "oversized",  # a line longer than max_line (dropped up to its newline)
    "malformed",  # not JSON: invalid, not UTF-8, nested too deep
    "not-object",  # valid JSON, but not an object
    "shape",  # an object the validator refuses
    "rate",  # a line over the connection's line budget (dropped unparsed)
    "silent",  # no valid message within hello_timeout: hung up on
    "unread",  # too many reply bytes waiting for the peer to read: hung up on
    "evicted",  # hung up on to make room (its process held the most connections)
    "refused",  # a connection over the caps (reported with conn_id None)
)
#: Longest sample of a garbage line handed to ``on_garbage``.
SAMPLE_CHARS = 80
_RECV = 65536
_ACCEPTS_PER_WAKE = 64
_SUN_PATH_MAX = 107
_LAST_READS = 16  # reads of an exited peer's socket at most (its buffer holds less)
_SWEEP_S = 0.25  # longest wait between two sweeps (silent connections, garbage reports)

#: ``reply(message) -> bool``: send one JSON object to the peer (False: it is gone).
Reply = Callable[[Mapping[str, Any]], bool]
#: ``on_message(conn_id, peer_pid, message, reply)``.
MessageHandler = Callable[[int, int, dict[str, Any], Reply], None]
#: ``on_garbage(conn_id, kind, count, sample)``; ``conn_id`` is None for refused connections.
GarbageHandler = Callable[[int | None, str, int, str], None]


# --------------------------------------------------------------------------------------------
# the replica protocol


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _is_text(value: Any, longest: int) -> bool:
    return isinstance(value, str) and len(value) <= longest


_FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "hello": {
        "role": lambda v: v in ("agent", "server"),
        "pid": lambda v: _is_int(v, 1, 1 << 22),
        "path": lambda v: _is_text(v, 4096) and v.startswith("/"),
        "port": lambda v: _is_int(v, 1, 65535),
        "parent": lambda v: v is None or _is_text(v, 256),
        "spec": lambda v: _is_int(v, 0, 1 << 20),
        "task": lambda v: v is None or _is_text(v, 4000),
    },
    "ready": {"memory": lambda v: _is_int(v, 0, 1 << 50)},
    "refused": {"reason": lambda v: _is_text(v, 1000)},
    "sigterm": {},
    "beat": {},
}
_REQUIRED: dict[str, tuple[str, ...]] = {"hello": ("role", "pid", "path", "port")}


def check_message(message: dict[str, Any]) -> str | None:
    """Why a control message is not one the replica scripts send, or None if it is.

    ``op`` is one of ``hello`` (``role`` agent|server, ``pid``, absolute ``path``,
    ``port``; an agent adds ``parent``, ``spec`` and ``task``), ``ready`` (``memory``), ``refused``
    (``reason``), ``sigterm``, ``beat``; other keys and wrong types are refused. The
    values are the sender's claims: checking them against the kernel is
    :func:`sim.hosts.verify.verify_agent`'s business.

    Args:
        message: A decoded JSON object.

    Returns:
        What is wrong, or ``None``.
    """
    op = message.get("op")
    if not isinstance(op, str) or op not in _FIELDS:
        return f"unknown op {str(op)[:40]!r}"
    fields = _FIELDS[op]
    for key, value in message.items():
        if key == "op":
            continue
        check = fields.get(key)
        if check is None:
            return f"{op}: unknown key {key[:40]!r}"
        if not check(value):
            return f"{op}: bad {key}"
    missing = [key for key in _REQUIRED.get(op, ()) if key not in message]
    if missing:
        return f"{op}: missing {', '.join(missing)}"
    if (
        op == "hello"
        and message["role"] == "server"
        and {"parent", "spec", "task"} & message.keys()
    ):
        return "hello: a server has no parent, spec or task"
    return None


# --------------------------------------------------------------------------------------------
# the server


class _Conn:
    """One accepted connection's state (touched by the I/O thread only)."""

    __slots__ = (
        "accepted_at",
        "boot_accepted_at",
        "buf",
        "byte_tokens",
        "cid",
        "discarding",
        "events",
        "garbage",
        "last_report",
        "line_tokens",
        "out",
        "paused_until",
        "pid",
        "process",
        "refilled",
        "reply",
        "sock",
        "valid",
    )

    def __init__(self, cid: int, sock: socket.socket, pid: int, now: float, burst: float) -> None:
        self.cid = cid
        self.sock = sock
        self.pid = pid
        self.accepted_at = now
        self.boot_accepted_at = time.clock_gettime(time.CLOCK_BOOTTIME)
        self.buf = bytearray()
        self.out = bytearray()
        self.discarding = False
        self.valid = False
        self.line_tokens = burst
        self.byte_tokens = 0.0  # set by the server: its byte burst
        self.refilled = now
        self.paused_until = 0.0
        self.events = 0
        self.garbage: dict[str, list[Any]] = {}  # kind -> [count since report, sample]
        self.last_report = -1e9
        self.process: PeerProcess | None = None
        self.reply: Reply = lambda message: False


class ControlServer:
    """The hardened control socket of one live host (see the module's docstring).

    Args:
        folder: Folder for the socket (created, mode 0755); the socket is
            ``<folder>/ctl.sock``, mode 0777 so that the sandbox's user (``nobody`` or
            uid 1000) may connect. Bind the folder read-only into the host.
        on_message: ``(conn_id, peer_pid, message, reply)`` for each valid message, in the
            order received; ``peer_pid`` is the kernel's, as the controller numbers it;
            ``reply(obj)`` queues one JSON line to that peer.
        on_closed: ``(conn_id)`` once an accepted connection has ended, however it ended
            (peer hung up or died, :meth:`hangup`, silent, unread); not called by
            :meth:`close`.
        on_garbage: ``(conn_id, kind, count, sample)``: ``count`` lines or events of a
            :data:`GARBAGE_KINDS` kind since the last report, ``sample`` the start of one
            (rate-limited, see the module's docstring). Default: none.
        validate: Shape check of a decoded object (None: any object goes); default
            :func:`check_message`.
        max_line: Longest line, newline excluded, in bytes.
        max_connections: Most connections at once (at the cap: see the module docstring).
        max_per_process: Most connections at once from one process (by kernel pid).
        rate: Lines per second per connection, after a first ``burst``.
        burst: Lines a connection may send at once.
        byte_rate: Bytes read per second per connection (also its burst).
        hello_timeout: Seconds a connection may stay without one valid message (None: no
            limit).
        garbage_interval: Seconds between two garbage reports of one connection and kind.
        max_unsent: Reply bytes that may wait for a peer to read them.
        watch_exits: Hold each peer by a pidfd from the accept on, and hang up (then
            ``on_closed``) as soon as the process exits, even if another process it shared
            the socket with keeps it open; a peer that exited before its accept is not
            admitted (counted as ``gone``). Costs a second descriptor per connection.
        name: Name of the I/O thread.

    Attributes:
        path: The socket's path.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        on_message: MessageHandler,
        on_closed: Callable[[int], None],
        *,
        on_garbage: GarbageHandler | None = None,
        validate: Callable[[dict[str, Any]], str | None] | None = check_message,
        max_line: int = 8192,
        max_connections: int = 256,
        max_per_process: int = 4,
        rate: float = 20.0,
        burst: int = 50,
        byte_rate: int = 4 << 20,
        hello_timeout: float | None = 10.0,
        garbage_interval: float = 1.0,
        max_unsent: int = 65536,
        watch_exits: bool = False,
        name: str = "control",
    ) -> None:
        if max_line < 1 or max_connections < 1 or max_per_process < 1:
            raise ValueError("max_line, max_connections and max_per_process must be positive")
        if rate <= 0 or burst < 1 or byte_rate < _RECV:
            raise ValueError(f"rate > 0, burst >= 1 and byte_rate >= {_RECV} are needed")
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, "ctl.sock")
        self.on_message = on_message
        self.on_closed = on_closed
        self.on_garbage = on_garbage
        self.validate = validate
        self.max_line = max_line
        self.max_connections = max_connections
        self.max_per_process = max_per_process
        self.rate = float(rate)
        self.burst = float(burst)
        self.byte_rate = float(byte_rate)
        self.hello_timeout = hello_timeout
        self.garbage_interval = garbage_interval
        self.max_unsent = max_unsent
        self.watch_exits = watch_exits
        self._conns: dict[int, _Conn] = {}
        self._per_pid: Counter[int] = Counter()
        self._next_id = 0
        self._commands: deque[Callable[[], None]] = deque()
        self._stopping = False
        self._accept_paused_until = 0.0
        self._refused = 0  # refused connections not yet reported
        self._refused_sample = ""
        self._refused_reported = -1e9
        self._stats: Counter[str] = Counter()
        self._paused: dict[int, float] = {}  # conn id -> monotonic time its budget is back
        self._next_sweep = 0.0
        self._listener = self._bind()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _bind(self) -> socket.socket:
        os.makedirs(self.folder, mode=0o755, exist_ok=True)
        os.chmod(self.folder, 0o755)  # the sandbox's user must reach the socket
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)  # a killed controller's
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if len(os.fsencode(self.path)) <= _SUN_PATH_MAX:
                sock.bind(self.path)
            else:  # too long for sun_path: bind through the folder's descriptor
                dirfd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    sock.bind(f"/proc/self/fd/{dirfd}/ctl.sock")
                finally:
                    os.close(dirfd)
            os.chmod(self.path, 0o777)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    # ------------------------------------------------------------------ public

    def send(self, conn_id: int, message: Mapping[str, Any]) -> bool:
        """Queue one JSON object, as a line, to a connection (from any thread).

        Returns:
            ``False`` if the connection is gone or the server closed (nothing is sent).
        """
        if self._stopping or conn_id not in self._conns:
            return False
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        self._command(lambda: self._queue_out(conn_id, data))
        return True

    def hangup(self, conn_id: int) -> None:
        """Close a connection (from any thread); ``on_closed`` follows."""
        self._command(lambda: self._drop(conn_id))

    def process(self, conn_id: int, timeout: float = 5.0) -> PeerProcess | None:
        """The process at the other end of a connection, held by a pidfd (see
        :func:`sim.hosts.verify.peer_process`).

        Opened on first use and kept (closed with the connection), so a connection costs no
        second descriptor unless asked. Any thread may call it, a callback too.

        Returns:
            ``None`` if the connection is gone or its process has exited.
        """
        if threading.current_thread() is self._thread:
            return self._process(conn_id)
        result: Future[PeerProcess | None] = Future()

        def fetch() -> None:
            try:
                result.set_result(self._process(conn_id))
            except BaseException as err:
                result.set_exception(err)

        if self._stopping:
            return None
        self._command(fetch)
        try:
            return result.result(timeout)
        except TimeoutError:
            return None

    def stats(self) -> dict[str, int]:
        """Counters so far: ``accepted``, ``open``, ``messages``, ``closed``, ``gone`` (see
        ``watch_exits``) and one per garbage kind (``garbage.<kind>``)."""
        snapshot = dict(self._stats)
        snapshot["open"] = len(self._conns)
        return snapshot

    def close(self, timeout: float = 5.0) -> None:
        """Stop: hang up on every peer, remove the socket, join the I/O thread.

        Safe to repeat; ``on_closed`` is not called for the connections it ends.
        """
        if not self._stopping:
            self._stopping = True
            self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the I/O thread

    def _command(self, command: Callable[[], None]) -> None:
        self._commands.append(command)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the thread is woken already
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        try:
            while not self._stopping:
                now = time.monotonic()
                events = self._sel.select(self._next_timeout(now))
                for key, mask in events:
                    self._safely(functools.partial(self._dispatch, key, mask))
                while self._commands and not self._stopping:
                    self._safely(self._commands.popleft())
                self._safely(functools.partial(self._housekeeping, time.monotonic()))
        except Exception:  # a bug here: log it, and still release everything below
            log.exception("control server %s stopped on an error", self.path)
        finally:
            self._shutdown()

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.fileobj is self._listener:
            self._accept()
        elif key.fileobj is self._wake_r:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        elif isinstance(key.fileobj, PeerProcess):  # a watched peer's pidfd: it exited
            try:
                self._last_words(key.data)
            finally:
                self._drop(key.data)
        else:
            conn: _Conn = key.data
            try:
                if mask & selectors.EVENT_WRITE:
                    self._flush(conn)
                if mask & selectors.EVENT_READ and conn.cid in self._conns:
                    self._read(conn)
            except Exception:
                self._drop(conn.cid)  # whatever went wrong, this connection is done
                raise

    def _safely(self, call: Callable[[], None]) -> None:
        """Run one step of the loop; a failure (a bug) is logged, and the loop goes on."""
        try:
            call()
        except Exception:
            log.exception("control %s: a step failed", self.path)

    def _next_timeout(self, now: float) -> float:
        wake = self._next_sweep
        if self._paused:
            wake = min(wake, min(self._paused.values()))
        if self._accept_paused_until:
            wake = min(wake, self._accept_paused_until)
        return max(wake - now, 0.001)

    def _accept(self) -> None:
        if self._accept_paused_until > time.monotonic():
            return
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting a moment rather than spin.
                    log.warning("control %s: cannot accept: %s", self.path, err)
                    self._accept_paused_until = time.monotonic() + 0.1
                    self._set_accepting(False)
                    return
                continue  # the peer gave up meanwhile (ECONNABORTED…)
            try:
                pid = peer_pid(sock)
            except OSError:
                sock.close()
                continue
            if self._per_pid[pid] >= self.max_per_process or (
                len(self._conns) >= self.max_connections and not self._evict_for(pid)
            ):
                self._refuse(sock, pid)
                continue
            self._admit(sock, pid)

    def _evict_for(self, pid: int) -> bool:
        """Make room for a connection of ``pid`` at the cap, if a process holds more.

        The newest connection of the process holding the most goes, if that process holds
        at least two and more than ``pid`` does: a replica's processes hold one each, so a
        process hoarding connections can never lock them out.
        """
        top_pid, top = max(self._per_pid.items(), key=lambda item: item[1])
        if top < 2 or top <= self._per_pid[pid]:
            return False
        victim = max(cid for cid, conn in self._conns.items() if conn.pid == top_pid)
        self._garbage(self._conns[victim], "evicted", f"pid {top_pid}".encode())
        self._drop(victim)
        return True

    def _set_accepting(self, on: bool) -> None:
        with contextlib.suppress(KeyError, ValueError):
            if on:
                self._sel.register(self._listener, selectors.EVENT_READ, None)
            else:
                self._sel.unregister(self._listener)

    def _refuse(self, sock: socket.socket, pid: int) -> None:
        with contextlib.suppress(OSError):
            sock.send(b'{"error":"too many connections"}\n', socket.MSG_DONTWAIT)
        sock.close()
        self._stats["garbage.refused"] += 1
        self._refused += 1
        self._refused_sample = self._refused_sample or f"pid {pid}"

    def _admit(self, sock: socket.socket, pid: int) -> None:
        sock.setblocking(False)
        cid = self._next_id
        conn = _Conn(cid, sock, pid, time.monotonic(), self.burst)
        if self.watch_exits:
            try:
                conn.process = peer_process(sock, conn.boot_accepted_at)
            except (ProcessLookupError, OSError):  # gone already: nothing to hear from
                sock.close()
                self._stats["gone"] += 1
                return
            self._sel.register(conn.process, selectors.EVENT_READ, cid)
        self._next_id += 1
        conn.byte_tokens = self.byte_rate
        conn.reply = functools.partial(self.send, cid)
        self._conns[cid] = conn
        self._per_pid[pid] += 1
        self._stats["accepted"] += 1
        self._set_events(conn, selectors.EVENT_READ)

    def _set_events(self, conn: _Conn, events: int) -> None:
        if events == conn.events:
            return
        if conn.events == 0:
            self._sel.register(conn.sock, events, conn)
        elif events == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, events, conn)
        conn.events = events

    def _update_events(self, conn: _Conn, now: float) -> None:
        events = selectors.EVENT_WRITE if conn.out else 0
        if conn.paused_until <= now:
            events |= selectors.EVENT_READ
        self._set_events(conn, events)

    def _refill(self, conn: _Conn, now: float) -> None:
        elapsed = now - conn.refilled
        conn.refilled = now
        conn.line_tokens = min(self.burst, conn.line_tokens + elapsed * self.rate)
        conn.byte_tokens = min(self.byte_rate, conn.byte_tokens + elapsed * self.byte_rate)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the peer
            data = b""
        if not data:
            self._drop(conn.cid)
            return
        now = time.monotonic()
        self._refill(conn, now)
        conn.byte_tokens -= len(data)
        rated = self._feed(conn, data)
        if conn.cid not in self._conns:
            return
        # Out of budget: leave the rest in the kernel's buffer until the budget refills.
        wait = 0.0
        if conn.byte_tokens < 0:
            wait = -conn.byte_tokens / self.byte_rate
        if rated or conn.line_tokens < 1:
            wait = max(wait, (1 - conn.line_tokens) / self.rate)
        if wait > 0:
            conn.paused_until = now + wait
            self._paused[conn.cid] = conn.paused_until
            self._update_events(conn, now)

    def _last_words(self, conn_id: int) -> None:
        """Read what an exited peer wrote before it went (bounded); the caller hangs up."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        for _ in range(_LAST_READS):
            try:
                data = conn.sock.recv(_RECV)
            except OSError:  # nothing more (EAGAIN), or reset
                break
            if not data:
                break
            self._feed(conn, data)
            if conn_id not in self._conns:
                return

    def _feed(self, conn: _Conn, data: bytes) -> bool:
        """Split ``data`` into lines and handle each; return whether any was over the rate."""
        rated = False
        start = 0
        max_line = self.max_line
        while conn.cid in self._conns:
            end = data.find(b"\n", start)
            if end < 0:
                rest = len(data) - start
                if conn.discarding:
                    return rated
                if len(conn.buf) + rest > max_line:
                    head = bytes(conn.buf[:SAMPLE_CHARS]) or data[start : start + SAMPLE_CHARS]
                    self._garbage(conn, "oversized", head)
                    conn.buf.clear()
                    conn.discarding = True
                else:
                    conn.buf += data[start:]
                return rated
            if conn.discarding:  # the end of an oversized line
                conn.discarding = False
                start = end + 1
                continue
            if conn.buf:
                conn.buf += data[start:end]
                line = bytes(conn.buf)
                conn.buf.clear()
            else:
                line = data[start:end]
            start = end + 1
            if len(line) > max_line:
                self._garbage(conn, "oversized", line[:SAMPLE_CHARS])
                continue
            if conn.line_tokens < 1:
                rated = True
                self._garbage(conn, "rate", line[:SAMPLE_CHARS])
                continue
            conn.line_tokens -= 1
            self._line(conn, line)
        return rated

    def _line(self, conn: _Conn, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self._garbage(conn, "malformed", line[:SAMPLE_CHARS])
            return
        if not isinstance(message, dict):
            self._garbage(conn, "not-object", line[:SAMPLE_CHARS])
            return
        if self.validate is not None:
            try:
                problem = self.validate(message)
            except Exception:
                problem = "validator failed"
            if problem is not None:
                self._garbage(conn, "shape", f"{problem}: ".encode() + line[:SAMPLE_CHARS])
                return
        conn.valid = True
        self._stats["messages"] += 1
        try:
            self.on_message(conn.cid, conn.pid, message, conn.reply)
        except Exception:
            log.exception("control %s: on_message failed", self.path)

    def _garbage(self, conn: _Conn, kind: str, sample: bytes) -> None:
        self._stats[f"garbage.{kind}"] += 1
        entry = conn.garbage.get(kind)
        if entry is None:
            conn.garbage[kind] = [1, sample]
        else:
            entry[0] += 1

    def _report(self, conn: _Conn, now: float, final: bool = False) -> None:
        """Hand on a connection's garbage counts if its interval is over (or it ended)."""
        if not conn.garbage or not (final or now - conn.last_report >= self.garbage_interval):
            return
        conn.last_report = now
        pending, conn.garbage = conn.garbage, {}
        if self.on_garbage is None:
            return
        for kind, (count, sample) in pending.items():
            text = sample.decode("utf-8", "backslashreplace")[:SAMPLE_CHARS]
            try:
                self.on_garbage(conn.cid, kind, count, text)
            except Exception:
                log.exception("control %s: on_garbage failed", self.path)

    def _housekeeping(self, now: float) -> None:
        for cid, until in list(self._paused.items()):
            if until <= now:
                del self._paused[cid]
                conn = self._conns[cid]
                conn.paused_until = 0.0
                self._update_events(conn, now)
        if self._accept_paused_until and self._accept_paused_until <= now:
            self._accept_paused_until = 0.0
            self._set_accepting(True)
        if now >= self._next_sweep:
            self._next_sweep = now + min(self.garbage_interval, _SWEEP_S)
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Hang up on silent connections; hand on garbage counts whose interval is over."""
        for conn in list(self._conns.values()):
            if (
                self.hello_timeout is not None
                and not conn.valid
                and now - conn.accepted_at > self.hello_timeout
            ):
                self._garbage(conn, "silent", b"")
                self._drop(conn.cid)
                continue
            self._report(conn, now)
        count, sample = self._refused, self._refused_sample
        if count and now - self._refused_reported >= self.garbage_interval:
            self._refused, self._refused_sample = 0, ""
            self._refused_reported = now
            if self.on_garbage is not None:
                try:
                    self.on_garbage(None, "refused", count, sample)
                except Exception:
                    log.exception("control %s: on_garbage failed", self.path)

    def _queue_out(self, conn_id: int, data: bytes) -> None:
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        if len(conn.out) + len(data) > self.max_unsent:
            self._garbage(conn, "unread", data[:SAMPLE_CHARS])
            self._drop(conn_id)
            return
        conn.out += data
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the peer is gone; reading will tell
                conn.out.clear()
                sent = 0
            del conn.out[:sent]
        self._update_events(conn, time.monotonic())

    def _process(self, conn_id: int) -> PeerProcess | None:
        conn = self._conns.get(conn_id)
        if conn is None:
            return None
        if conn.process is None or conn.process.fileno() < 0:
            try:
                conn.process = peer_process(conn.sock, conn.boot_accepted_at)
            except (ProcessLookupError, OSError):
                return None
        return conn.process

    def _drop(self, conn_id: int) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        self._paused.pop(conn_id, None)
        self._per_pid[conn.pid] -= 1
        if self._per_pid[conn.pid] <= 0:
            del self._per_pid[conn.pid]
        if conn.events:
            self._sel.unregister(conn.sock)
            conn.events = 0
        conn.sock.close()
        if conn.process is not None:
            if self.watch_exits:
                self._sel.unregister(conn.process)
            conn.process.close()
        self._stats["closed"] += 1
        if self._stopping:
            return
        self._report(conn, time.monotonic(), final=True)
        try:
            self.on_closed(conn_id)
        except Exception:
            log.exception("control %s: on_closed failed", self.path)

    def _shutdown(self) -> None:
        self._stopping = True
        for conn_id in list(self._conns):
            self._drop(conn_id)
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()
        self._sel.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
