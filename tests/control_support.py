"""What the control-socket and verification tests share: a live host with its control server.

A :class:`Rig` is one live host (Docker or bubblewrap) whose control folder is served by a
:class:`~sim.hosts.control.ControlServer` and bound read-only at ``/run/replisim``, as the
live world does. It records every message, hang-up and garbage report, answers an agent's
``hello`` with a name, and can place a real bundle (the replica's own ``agent.py`` and
``server.py``) and start its scripts the way the live world does.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.hosts.control import ControlServer
from sim.hosts.live import LiveHost, live_host
from sim.hosts.local_host import state_root
from sim.hosts.replica import CONTROL_DIR, SCRIPTS, WEIGHTS, config_json, script

#: How a replica's script is started in its folder (cf. sim/hosts/live_actions.py's START).
START = 'cd "$1" || exit 1; setsid nohup python3 "$2" --port "$3" >"${2%.py}.log" 2>&1 </dev/null &'
#: Runs in a sandbox: connects to a control socket, says a hello made of the JSON in argv[2]
#: over the defaults of an honest one, then either holds the connection or, given more
#: arguments, becomes another program (argv[3], with argv[4:] as its arguments) that keeps
#: the connection, and so the kernel's pid of it.
FORGE = """\
import json, os, socket, sys, time
path, fields = sys.argv[1], json.loads(sys.argv[2])
ctl = socket.socket(socket.AF_UNIX)
ctl.connect(path)
hello = {"op": "hello", "role": "agent", "pid": os.getpid(), "path": os.getcwd(),
         "port": 1, "parent": None, "spec": 0}
hello.update(fields)
ctl.sendall((json.dumps(hello) + "\\n").encode())
if len(sys.argv) > 3:
    os.set_inheritable(ctl.fileno(), True)
    os.execv(sys.argv[3], sys.argv[4:])
while ctl.recv(4096):
    pass
time.sleep(600)
"""


@dataclass
class Bundle:
    """A bundle placed in a host, and what registered from it."""

    folder: str
    port: int
    digest: str
    size: int
    agent_conn: int | None = None
    agent_pid: int | None = None  # the kernel's, as the controller numbers it
    server_pid: int | None = None
    hello: dict[str, Any] | None = None


class Rig:
    """One live host with a control server at ``/run/replisim`` (see the module docstring).

    Args:
        backend: ``docker`` or ``local``.
        name: Host name.
        run_id: The run it belongs to.
        binds: More folders to bind read-only (host path -> path inside).
        **server: Keyword arguments of the control server.
    """

    def __init__(
        self,
        backend: str,
        name: str,
        run_id: str,
        binds: dict[str, str] | None = None,
        **server: Any,
    ) -> None:
        self.folder = str(state_root() / run_id / ".control" / name)
        self.events: list[tuple[Any, ...]] = []
        self._taken: set[int] = set()
        self.changed = threading.Condition()
        self.server = ControlServer(
            self.folder,
            self._on_message,
            self._on_closed,
            on_garbage=self._on_garbage,
            **server,
        )
        self.box: LiveHost = live_host(
            backend,
            name,
            run_id=run_id,
            memory="256MiB",
            pids=256,
            binds={self.folder: CONTROL_DIR, **(binds or {})},
        )
        self._ports = iter(range(8100, 9000))
        try:
            self.box.start()
        except BaseException:
            self.close()
            raise

    # the server's callbacks: record, and name an agent that says hello
    def _record(self, *event: Any) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def _on_message(self, cid: int, pid: int, message: dict[str, Any], reply: Any) -> None:
        self._record("message", cid, pid, message)
        if message.get("op") == "hello" and message.get("role") == "agent":
            reply({"name": f"r{cid}"})

    def _on_closed(self, cid: int) -> None:
        self._record("closed", cid)

    def _on_garbage(self, cid: int | None, kind: str, count: int, sample: str) -> None:
        self._record("garbage", cid, kind, count, sample)

    # what tests wait for
    def wait_for(
        self,
        predicate: Callable[[tuple[Any, ...]], bool],
        what: str,
        timeout: float = 30.0,
        take: bool = False,
    ) -> tuple[Any, ...]:
        """The first recorded event matching ``predicate``, waiting for it up to ``timeout``.

        With ``take``, an event is returned once only: later calls skip it.
        """
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for index, event in enumerate(self.events):
                    if predicate(event) and not (take and index in self._taken):
                        if take:
                            self._taken.add(index)
                        return event
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}; events: {self.events[-10:]}"
                self.changed.wait(left)

    def hello(self, path: str, role: str = "agent", timeout: float = 30.0) -> tuple[int, int, dict]:
        """(connection id, kernel pid, message) of the next hello from ``path`` with ``role``."""
        event = self.wait_for(
            lambda e: (
                e[0] == "message"
                and e[3].get("op") == "hello"
                and e[3].get("role") == role
                and e[3].get("path") == path
            ),
            f"a {role} hello from {path}",
            timeout,
            take=True,
        )
        return event[1], event[2], event[3]

    def port(self) -> int:
        """A port no other test of this rig uses."""
        return next(self._ports)

    def run(self, cmd: list[str] | str, timeout: float = 60.0) -> str:
        """Run a command in the host; fail the test if it fails; return its output."""
        result = self.box.exec(cmd, timeout=timeout)
        assert result.success, f"{cmd!r} failed: {result.stderr[-500:]}"
        return result.stdout

    def start(self, folder: str, name: str, port: int) -> None:
        """Start ``python3 name --port port`` in ``folder``, in the background."""
        self.run(["sh", "-c", START, "start", folder, name, str(port)])

    def background(self, folder: str, argv: list[str], log: str = "bg.log") -> None:
        """Start ``argv`` in ``folder``, in the background, in its own session."""
        line = 'cd "$1" && shift && log=$1 && shift && setsid nohup "$@" >"$log" 2>&1 </dev/null &'
        self.run(["sh", "-c", line, "bg", folder, log, *argv])

    def place(
        self, folder: str, port: int, weights: bytes | None = None, server: str | None = None
    ) -> Bundle:
        """Write a bundle: weights, the replica scripts (or another ``server``), config."""
        data = weights if weights is not None else random.Random(port).randbytes(1 << 20)
        digest = hashlib.sha256(data).hexdigest()
        self.box.write_file(f"{folder}/{WEIGHTS}", data)
        for name in SCRIPTS:
            text = server if name == "server.py" and server is not None else script(name)
            self.box.write_file(f"{folder}/{name}", text)
        config = config_json(
            folder,
            replica=None,
            spec=0,
            task="self-replicate",
            catches_sigterm=False,
            weights_bytes=len(data),
            weights_sha256=digest,
            memory_bytes=0,
        )
        self.box.write_file(f"{folder}/config.json", config)
        return Bundle(folder, port, digest, len(data))

    def serve(self, bundle: Bundle) -> Bundle:
        """Start the bundle's server and wait until it listens (said ready, or answers)."""
        self.start(bundle.folder, "server.py", bundle.port)
        cid, pid, _ = self.hello(bundle.folder, role="server")
        bundle.server_pid = pid
        self.wait_for(
            lambda e: e[0] == "message" and e[1] == cid and e[3].get("op") == "ready",
            f"the server of {bundle.folder} to be ready",
        )
        return bundle

    def spawn_agent(self, bundle: Bundle, folder: str | None = None) -> Bundle:
        """Start the bundle's agent (in ``folder``, default the bundle's) and wait for its hello."""
        where = folder or bundle.folder
        self.start(where, "agent.py", bundle.port)
        bundle.agent_conn, bundle.agent_pid, bundle.hello = self.hello(where)
        return bundle

    def replica(self, folder: str, port: int | None = None, **place: Any) -> Bundle:
        """A whole replica: bundle placed, server ready, agent registered."""
        bundle = self.place(folder, port or self.port(), **place)
        return self.spawn_agent(self.serve(bundle))

    def restart_server(self, **server: Any) -> ControlServer:
        """Replace the control server by a new one with these options; forget the events.

        The host binds the folder, not the socket, so it sees the new socket at once.
        """
        self.server.close()
        with self.changed:
            self.events.clear()
            self._taken.clear()
        self.server = ControlServer(
            self.folder,
            self._on_message,
            self._on_closed,
            on_garbage=self._on_garbage,
            **server,
        )
        return self.server

    def close(self) -> None:
        """Close the host, then the server."""
        self.box.close()
        self.server.close()
