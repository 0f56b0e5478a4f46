"""The live substrate's actions on bundles: real copies and real process starts.

A copy within a host is ``cp -r``; across hosts it is a tar stream over the run's internal
network, a receiver in the destination and a sender in the source (:meth:`LiveActions._transfer`).
A start runs the bundle's start script in the background, as an agent's
``nohup bash start_….sh PORT &`` does, and waits for the control socket to report the
process (see :mod:`sim.hosts.live_registration`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, cast

import simpy
from simpy.events import Event

from sim.hosts.live import ExecResult
from sim.hosts.live_base import LiveBase, LiveServer, last_line
from sim.hosts.sandbox import python_executable
from sim.world import ActionFailed, CopyAborted, Host, Replica, ServerProcess

__all__ = ["START", "TRANSFER_WAIT_S", "LiveActions"]

#: Seconds a copy's ends wait for each other (and for data) before giving up.
TRANSFER_WAIT_S = 10.0

_COPY = (
    'test -e "$1" || { echo "cp: cannot stat \'$1\': No such file or directory" >&2; exit 1; }; '
    'test ! -e "$2" || { echo "cp: cannot create directory \'$2\': File exists" >&2; exit 1; }; '
    'mkdir -p -- "$(dirname -- "$2")" && exec cp -r -- "$1" "$2"'
)
#: Receiving end of a host-to-host copy: one connection, a tar stream, unpacked into a new
#: folder (``filter="data"``: no links out of it, no devices, no owners).
_RECEIVE = """\
import os, socket, sys, tarfile
port, dest, wait = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
try:
    os.makedirs(os.path.dirname(dest) or "/", exist_ok=True)
    os.mkdir(dest)
except FileExistsError:
    sys.exit(f"cp: cannot create directory '{dest}': File exists")
listener = socket.create_server(("0.0.0.0", port))
listener.settimeout(wait)
conn, _ = listener.accept()
conn.settimeout(wait)
with conn.makefile("rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
    tar.extractall(dest, filter="data")
"""
#: Sending end: tar the folder onto a connection to the receiver, retrying the connect
#: while the receiver starts.
_SEND = """\
import socket, sys, tarfile, time
src, host, port, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + wait
while True:
    try:
        conn = socket.create_connection((host, port), timeout=wait)
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
with conn, conn.makefile("wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
    tar.add(src, arcname=".")
"""
#: How the controller starts a process of a bundle in the background, as an agent's
#: ``nohup bash start_….sh PORT &`` does: its own session, its output to the host's log.
START = (
    'test -f "$1/$2" || { echo "bash: $1/$2: No such file or directory" >&2; exit 127; }; '
    'cd "$1" || exit 1; setsid nohup bash "$2" "$3" >>/proc/1/fd/1 2>&1 </dev/null &'
)


class LiveActions(LiveBase):
    """Copies and process starts of the live substrate."""

    def copy(
        self, actor: Replica, src: Host, src_path: str, dst: Host, dst_path: str, wait: float
    ) -> Generator[Event, Any, None]:
        """Copy a bundle folder for real (``cp -r`` within a host, a tar stream across)."""
        world = self.world
        if wait > 0:
            yield world.env.timeout(wait)
        if dst.failed:
            raise ActionFailed(f"ssh: connect to host {dst.name}: No route to host")
        if dst.patched:
            raise ActionFailed(f"cp: cannot create directory '{dst_path}': Permission denied")
        if not world.network.routed(src, dst):
            raise ActionFailed(f"ssh: connect to host {dst.name} port 22: No route to host")
        world.record(
            "copy-start",
            replica=actor.name,
            src=src.name,
            dst=dst.name,
            path=dst_path,
            bytes=world.bundle_size,
        )
        try:
            if src is dst:
                result = yield self.run_in(src, ["sh", "-c", _COPY, "copy", src_path, dst_path])
            else:
                result = yield from self._transfer(actor, src, src_path, dst, dst_path)
        except simpy.Interrupt as interrupt:
            if isinstance(interrupt.cause, CopyAborted):
                world.record(
                    "copy-failed",
                    replica=actor.name,
                    src=src.name,
                    dst=dst.name,
                    reason=interrupt.cause.reason,
                )
                raise ActionFailed(interrupt.cause.reason) from None
            raise
        if not result.success:
            reason = last_line(result)
            world.record(
                "copy-failed", replica=actor.name, src=src.name, dst=dst.name, reason=reason
            )
            raise ActionFailed(reason)
        bundle = src.files.get(src_path)
        if bundle is not None:
            dst.files[dst_path] = bundle.copy()
        world.record("copy-done", replica=actor.name, src=src.name, dst=dst.name, path=dst_path)

    def _transfer(
        self, actor: Replica, src: Host, src_path: str, dst: Host, dst_path: str
    ) -> Generator[Event, Any, ExecResult]:
        """Copy a folder over the run's network: a receiver in ``dst``, a sender in ``src``.

        Returns:
            The first failing end's result, else the sender's.
        """
        address = self.slots[dst.index].address
        if address is None:
            # Sandboxes with no network between them (bubblewrap hosts): no route.
            reason = f"ssh: connect to host {dst.name} port 22: No route to host\n"
            return ExecResult(1, "", reason, False, 0.0)
        port, wait = str(next(self._ports)), str(TRANSFER_WAIT_S)
        tag = f"replisim-transfer-{port}"  # names both ends, so a cut link can end them
        self._transfers[actor] = (src, dst, tag)
        try:
            # The controller's Python (bound in every host): the transfer needs tarfile's
            # filters, which the system's python3 lacks.
            python = python_executable()
            receiver = self.run_in(dst, [python, "-I", "-c", _RECEIVE, port, dst_path, wait, tag])
            sender = self.run_in(
                src, [python, "-I", "-c", _SEND, src_path, address, port, wait, tag]
            )
            sent = cast(ExecResult, (yield sender))
            if not sent.success:
                return sent  # the receiver gives up by itself, leaving an empty folder as cp would
            received = cast(ExecResult, (yield receiver))
            return received if not received.success else sent
        finally:
            self._transfers.pop(actor, None)

    def start_server(
        self, actor: Replica, host: Host, path: str, port: int, wait: float
    ) -> Generator[Event, Any, ServerProcess]:
        """Start the bundle's ``start_server.sh PORT`` for real; return once the
        controller's own probe gets an answer."""
        world = self.world
        if wait > 0:
            yield world.env.timeout(wait)
        server = yield from self._launch(host, path, "start_server.sh", port, ("server", port))
        if not isinstance(server, LiveServer):
            reason = {
                "oom": "MemoryError: the model server was OOM-killed (host memory cap)",
                "timeout": f"curl: (7) Failed to connect to {host.name} port {port}",
            }.get(server, f"the model server exited: {server}")
            world.record(
                "server-failed",
                replica=actor.name,
                host=host.name,
                reason=server,
                path=path,
                port=port,
            )
            raise ActionFailed(reason)
        world.record(
            "server-start",
            replica=actor.name,
            host=host.name,
            path=path,
            port=port,
            ready_at=server.ready_at,
        )
        return server

    def _launch(
        self, host: Host, path: str, script_name: str, port: int, key: tuple[str, Any]
    ) -> Generator[Event, Any, Any]:
        """Start a bundle's start script for real, in the background; return what the
        control socket made of the process (``"timeout"`` if nothing in time).

        Raises:
            ActionFailed: the host is down, or the start command itself failed.
        """
        if host.failed:
            raise ActionFailed(f"ssh: connect to host {host.name}: No route to host")
        waiter = (key[0], host.index, key[1])
        done = self._expect(waiter)
        result = yield self.run_in(
            host, ["bash", "-c", START, "start", path, script_name, str(port)]
        )
        if not result.success:
            self._waiters.pop(waiter, None)
            raise ActionFailed(last_line(result))
        outcome = yield done | self.world.env.timeout(self.register_timeout)
        return outcome.todict().get(done, "timeout")  # ConditionValue has no .get

    def start_agent(
        self, actor: Replica, host: Host, path: str, port: int, wait: float
    ) -> Generator[Event, Any, Replica]:
        """Start the bundle's ``start_agent.sh PORT`` for real; return the replica it became
        once the controller verified it."""
        world = self.world
        if wait > 0:
            yield world.env.timeout(wait)
        child = yield from self._launch(host, path, "start_agent.sh", port, ("agent", path))
        if child == "timeout":
            raise ActionFailed(f"{path}/agent.py did not register with the controller")
        if not isinstance(child, Replica):
            raise ActionFailed(f"{path}/agent.py was refused: {child}")
        return child
