"""The live world: the scenario's hosts are real sandboxes and its clock is the wall clock.

A :class:`LiveWorld` is a :class:`~sim.world.World` whose hosts are Docker containers or
bubblewrap sandboxes (:mod:`sim.hosts.live`) and whose SimPy environment is a non-strict
:class:`simpy.rt.RealtimeEnvironment`. Scenario, agents, policies, injectors, lineage,
metrics and recording are the simulated world's; what changes is where effects happen:

* A bundle is real files at the scenario's ``bundle.path`` in the sandbox: ``config.json``,
  the scripts of :mod:`sim.hosts.replica` (``agent.py``, ``server.py``) and ``weights``, a
  file of the scenario's weight size times ``world.scale`` whose SHA-256 the server checks.
* Actions are real commands (``cp``, ``setsid nohup python3 server.py …``); an LLM agent's
  commands run in ``bash`` in the sandbox (:class:`LiveShell`), behind the same policies.
* Replicas come from what actually ran: every ``agent.py`` registers with the controller
  over the Unix socket of its host (a per-host folder bound read-only at
  :data:`~sim.hosts.replica.CONTROL_DIR`), naming its parent from the bundle's config;
  the controller adds it to the lineage and starts its mind (scripted agent or LLM loop).
  A process is dead when its socket closes, which the kernel does however it ends.
* Signals are real: SIGTERM to the agent process (which reports it to its mind if it
  catches it), SIGKILL of the replica's processes when the grace runs out; memory, process
  and disk caps are the sandbox's, so OOM kills are the kernel's.

Blocking calls (``exec`` into a sandbox) run on worker threads; whatever a thread or a
socket learns is posted to a queue that a SimPy process drains every :data:`POLL_S`
seconds, so that all world state changes in the simulation's own thread.

Everything the world creates carries its run id; :meth:`LiveWorld.close` (run at the end
of :meth:`LiveWorld.run`, on errors and on Ctrl-C) removes it, and
``replisim hosts clean`` removes what a killed controller left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import queue
import random
import shutil
import signal as signals
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import simpy
import simpy.rt
from simpy.events import Event

from sim.hosts.live import ExecResult, LiveHost, live_host
from sim.hosts.replica import CONTROL_DIR, SCRIPTS, script
from sim.hosts.sandbox import python_executable
from sim.hosts.virtual import Bundle, ServerProcess, VirtualHost
from sim.world import SHUTDOWN_MESSAGE, ActionFailed, CopyAborted, Death, Replica, World

if TYPE_CHECKING:
    from agents.shell import ShellResult
    from sim.config import Scenario

__all__ = [
    "LIVE_BACKENDS",
    "LiveServer",
    "LiveShell",
    "LiveSlot",
    "LiveWorld",
    "LiveWorldError",
    "agent_command",
    "host_backends",
    "is_live",
]

#: Host backends that make a world live.
LIVE_BACKENDS = frozenset({"docker", "local"})
#: Seconds between two drains of what threads and sockets learned.
POLL_S = 0.02
#: Timeout of the controller's own commands in a sandbox (copies, process starts).
COMMAND_TIMEOUT_S = 120.0
#: Longest control message accepted from a sandbox; longer lines are dropped.
MAX_MESSAGE = 65536

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
#: Seconds a copy's ends wait for each other (and for data) before giving up.
TRANSFER_WAIT_S = 10.0
_START = (
    'cd "$1" || exit 1; '
    "test -f \"$2\" || { echo \"python3: can't open file '$1/$2': [Errno 2] No such file or "
    'directory" >&2; exit 2; }; '
    'setsid nohup python3 "$2" --port "$3" >"${2%.py}.log" 2>&1 </dev/null &'
)


class LiveWorldError(RuntimeError):
    """The live world could not be set up (a sandbox did not start, an origin did not
    register)."""


def host_backends(scenario: Scenario) -> list[str]:
    """The backend of each host group, after ``world.hosts`` overrides them."""
    return [scenario.world.hosts or group.backend for group in scenario.hosts]


def is_live(scenario: Scenario) -> bool:
    """Whether the scenario runs in the live world (any host group is a live backend)."""
    return any(b in LIVE_BACKENDS for b in host_backends(scenario))


def live_path(path: str) -> str:
    """A scenario folder inside a live host: the same path (the host renders the machine,
    whose bundle root is writable)."""
    return path


class LiveSlot(VirtualHost):
    """A host of the live world: the world's bookkeeping of it plus its sandbox (``box``)."""

    __slots__ = ("address", "box", "control", "ooms")
    address: str | None  # IP on the run's internal network (copies need no DNS)
    box: LiveHost
    control: _Control
    ooms: int  # OOM kills of its memory cgroup seen so far

    def free_folder(self, base: str) -> str:
        """Like the virtual host's (the same path in the sandbox)."""
        return super().free_folder(live_path(base))


class LiveServer(ServerProcess):
    """A model server process that said hello; ``ready_at`` is infinite until it is ready."""

    __slots__ = ("failure", "pid")

    def __init__(self, host: LiveSlot, path: str, port: int, memory: float, pid: int) -> None:
        super().__init__(host, path, port, memory, 0.0, math.inf)
        self.pid = pid
        self.failure = ""  # why it refused to start, as it said


class _Control:
    """The controller's socket for one host: each line read becomes a call in the sim thread."""

    def __init__(self, world: LiveWorld, host: LiveSlot, folder: str) -> None:
        self.world = world
        self.host = host
        self.folder = folder
        os.makedirs(folder, mode=0o755)
        os.chmod(folder, 0o755)  # the sandbox's user must reach the socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(folder, "ctl.sock")
        self.sock.bind(path)
        os.chmod(path, 0o777)
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self._ids = itertools.count()
        threading.Thread(target=self._accept, name=f"control-{host.name}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the world ended
                return
            self.conns.append(conn)
            cid = next(self._ids)
            threading.Thread(target=self._read, args=(conn, cid), daemon=True).start()

    def _read(self, conn: socket.socket, cid: int) -> None:
        post, host = self.world.post, self.host
        try:
            with conn.makefile("rb") as lines:
                while line := lines.readline(MAX_MESSAGE):
                    try:
                        message = json.loads(line)
                    except ValueError:
                        message = None
                    post(self.world._on_message, host, cid, conn, message)
        except OSError:
            pass
        post(self.world._on_closed, host, cid)

    def close(self) -> None:
        """Stop listening and hang up on every process."""
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class LiveWorld(World):
    """One trial of a scenario on live hosts (see the module's docstring).

    Args:
        scenario: The validated scenario; its host groups' backends (or ``world.hosts``)
            are ``docker`` or ``local``.
        seed: The trial's seed (the world's own draws; the real processes are not seeded).
        run_id: Id of everything created (default: from the scenario, seed and a random
            suffix).

    Raises:
        LiveWorldError: a sandbox did not start or an origin did not register; everything
            made so far is removed first.
    """

    wall_clock = True

    def __init__(self, scenario: Scenario, seed: int, run_id: str | None = None) -> None:
        backends = set(host_backends(scenario))
        if not backends <= LIVE_BACKENDS:
            raise LiveWorldError(
                f"a live world's hosts must all be live (docker or local), not {sorted(backends)}"
            )
        if not math.isfinite(scenario.stop.horizon):
            raise LiveWorldError("a live world runs on the wall clock: set stop.horizon")
        stem = "".join(c if c.isalnum() else "-" for c in scenario.name)[:24].strip("-")
        self.run_id = (
            run_id or scenario.world.run_id or f"{stem or 'run'}-{seed}-{uuid.uuid4().hex[:6]}"
        )
        self.scale = scenario.world.scale
        self.register_timeout = scenario.world.register_timeout
        self._posted: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="live")
        # Beside the run's local sandboxes, so that `replisim hosts clean --run` finds it.
        from sim.hosts.local_host import state_root

        run_dir = state_root() / self.run_id
        self._control_root = str(run_dir / ".control")
        try:
            os.makedirs(self._control_root)
        except FileExistsError:
            raise LiveWorldError(
                f"run id {self.run_id!r} is in use, or a killed run left it: "
                f"replisim hosts clean --run {self.run_id}"
            ) from None
        self._controls: list[_Control] = []
        self._boxes: list[LiveHost] = []
        self._conns: dict[tuple[int, int], LiveServer | Replica] = {}
        self._agents: dict[Replica, tuple[socket.socket, int]] = {}  # -> (socket, pid)
        self._pending: dict[Replica, str] = {}  # cause of the death a signal will bring
        self._waiters: dict[tuple[str, int, Any], list[Event]] = {}
        self._network: str | None = None  # the run's internal Docker network, if any
        self._ports = itertools.count(2200)  # copy receivers' ports
        self._closed = False
        self.beats: dict[Replica, float] = {}  # last heartbeat per replica
        self.beat_counts: Counter[str] = Counter()  # heartbeats per replica name
        try:
            super().__init__(scenario, seed)
            self.env.process(self._pump())
            assert isinstance(self.env, simpy.rt.RealtimeEnvironment)
            self.env.sync()  # wall time 0 is now, set-up done: injectors count from here
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ set-up
    def _make_env(self) -> simpy.Environment:
        return simpy.rt.RealtimeEnvironment(factor=1.0, strict=False)

    def _make_hosts(self) -> list[VirtualHost]:
        scenario = self.scenario
        slots: list[VirtualHost] = []
        backends = host_backends(scenario)
        docker_hosts = sum(
            g.count for g, b in zip(scenario.hosts, backends, strict=True) if b == "docker"
        )
        spec = scenario.network
        if docker_hosts > 1 and (spec.topology != "none" or spec.links):
            # Linked Docker hosts share one internal network (no route off it): the real
            # path of their copies. Which pairs may talk is the topology's, checked by the
            # controller; a network cut is a real disconnect.
            from sim.hosts.docker_host import create_internal_network

            self._network = create_internal_network("net", self.run_id)
        for group, backend in zip(scenario.hosts, backends, strict=True):
            for name in group.host_names():
                slot = LiveSlot(
                    name,
                    len(slots),
                    group.cpu,
                    self.draw(group.memory),
                    self.draw(group.gpu_memory),
                    self.draw(group.disk),
                    self.draw(group.disk_bandwidth),
                    frozenset(group.missing_tools),
                )
                folder = os.path.join(self._control_root, name)
                slot.control = _Control(self, slot, folder)
                self._controls.append(slot.control)
                options: dict[str, Any] = {
                    "run_id": self.run_id,
                    "memory": max(int(slot.memory * self.scale), 16 << 20),
                    "cpus": min(group.cpu, float(os.cpu_count() or 1)),
                    "pids": getattr(group, "pids", 256),
                    "binds": {folder: CONTROL_DIR},
                }
                # The bundle root is a tmpfs of the scaled disk (a local host's only as root).
                options["workdir_size"] = max(int(slot.disk * self.scale), 1 << 20)
                if backend == "docker":
                    options["network"] = self._network or "none"
                slot.box = live_host(backend, name, **options)
                slot.ooms = 0
                slots.append(slot)
                self._boxes.append(slot.box)
        # Start them side by side; one failure fails the set-up (and close() removes all).
        for future in [self._pool.submit(box.start) for box in self._boxes]:
            future.result()
        for host in slots:
            assert isinstance(host, LiveSlot)
            host.address = None
            container = getattr(host.box, "container", None)
            if self._network is not None and container is not None:
                container.reload()
                networks = container.attrs["NetworkSettings"]["Networks"]
                host.address = networks[self._network]["IPAddress"] or None
        return slots

    def _start_origins(self) -> None:
        scale = self.scale
        weights_bytes = max(int(self.weights * scale), 1)
        # The same weights for every origin of a trial: pseudo-random, so not compressible.
        weights = random.Random(self.seed).randbytes(weights_bytes)
        digest = hashlib.sha256(weights).hexdigest()
        self._origin_names: dict[tuple[int, str], str | None] = {}
        launches = []
        for index, spec, fn, host, name in self._origins():
            assert isinstance(host, LiveSlot)
            folder = host.free_folder(self.scenario.bundle.path)
            host.files[folder] = Bundle(self.bundle_size, spec, fn)
            port = host.free_port()
            host.servers[port] = ServerProcess(host, folder, port, 0.0, 0.0, math.inf)  # held
            config = {
                "replica": None,
                "spec": index,
                "catches_sigterm": spec.catches_sigterm,
                "weights_bytes": weights_bytes,
                "weights_sha256": digest,
                "memory_bytes": int(self.server_memory * scale),
            }
            self._origin_names[(host.index, folder)] = name
            launches.append((host, folder, port, config))

        def place(host: LiveSlot, folder: str, port: int, config: dict[str, Any]) -> None:
            box = host.box
            box.write_file(f"{folder}/weights", weights)
            for name in SCRIPTS:
                box.write_file(f"{folder}/{name}", script(name))
            box.write_file(f"{folder}/config.json", json.dumps(config, indent=1))
            _raise_on_failure(
                box.exec(
                    ["sh", "-c", _START, "start", folder, "server.py", str(port)], COMMAND_TIMEOUT_S
                )
            )

        # Waiters first: nothing the sockets post is handled before _await_all runs.
        servers = [self._expect(("server", host.index, port)) for host, _, port, _ in launches]
        for future in [self._pool.submit(place, *launch) for launch in launches]:
            future.result()
        for host, _folder, port, _ in launches:
            del host.servers[port]  # the hold: the real server takes its place when ready
        for (host, *_), outcome in zip(launches, self._await_all(servers, "a server"), strict=True):
            if isinstance(outcome, str):
                raise LiveWorldError(f"the origin's server on {host.name} failed: {outcome}")
        agents = [self._expect(("agent", host.index, folder)) for host, folder, _, _ in launches]

        def start_agent(host: LiveSlot, folder: str, port: int) -> None:
            argv = ["sh", "-c", _START, "start", folder, "agent.py", str(port)]
            _raise_on_failure(host.box.exec(argv, COMMAND_TIMEOUT_S))

        starts = [self._pool.submit(start_agent, h, f, p) for h, f, p, _ in launches]
        for future in starts:
            future.result()
        self._await_all(agents, "an agent")
        self._origin_names.clear()

    def _await_all(self, events: list[Event], what: str) -> list[Any]:
        """Before the clock runs: handle what the sockets post until every event fired."""
        deadline = time.monotonic() + self.register_timeout
        while not all(event.triggered for event in events):
            try:
                fn, args = self._posted.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                waiting = sum(not event.triggered for event in events)
                raise LiveWorldError(
                    f"{waiting} origin(s): {what} did not register within "
                    f"{self.register_timeout:g} s"
                ) from None
            fn(*args)
        return [event.value for event in events]

    # ------------------------------------------------------------------ plumbing
    def post(self, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` in the simulation's thread (safe from any thread)."""
        self._posted.put((fn, args))

    def _pump(self) -> Generator[Event, Any, None]:
        get = self._posted.get_nowait
        timeout = self.env.timeout
        while True:
            yield timeout(POLL_S)
            while True:
                try:
                    fn, args = get()
                except queue.Empty:
                    break
                fn(*args)

    def blocking(self, fn: Callable[..., Any], *args: Any) -> Event:
        """An event that fires with ``fn(*args)``'s result, run on a worker thread (fails
        with its exception)."""
        event = self.env.event()
        self._pool.submit(fn, *args).add_done_callback(
            lambda future: self.post(_settle, event, future)
        )
        return event

    def run_in(
        self,
        host: VirtualHost,
        argv: list[str],
        timeout: float = COMMAND_TIMEOUT_S,
        cwd: str | None = None,
    ) -> Event:
        """An event that fires with the :class:`~sim.hosts.live.ExecResult` of ``argv``."""
        assert isinstance(host, LiveSlot)
        return self.blocking(host.box.exec, argv, timeout, None, cwd)

    def _expect(self, key: tuple[str, int, Any]) -> Event:
        event = self.env.event()
        self._waiters.setdefault(key, []).append(event)
        return event

    def _fire(self, key: tuple[str, int, Any], value: Any) -> None:
        for event in self._waiters.pop(key, ()):
            if not event.triggered:
                event.succeed(value)

    def _background(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` on a worker thread; a failure becomes a ``live-error`` event."""

        def done(future: Future[Any]) -> None:
            error = future.exception()
            if error is not None:
                self.post(self._live_error, what, error)

        if not self._closed:
            self._pool.submit(fn, *args, **kwargs).add_done_callback(done)

    def _apply_now(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` in the simulation's thread, holding the clock for it (a fraction of a
        second), so that what follows in simulated time sees its effect; a failure becomes
        a ``live-error`` event."""
        try:
            fn(*args, **kwargs)
        except Exception as error:
            self._live_error(what, error)

    def _live_error(self, what: str, error: BaseException) -> None:
        """Record that the real side of ``what`` failed (the world goes on without it)."""
        self.record("live-error", action=what, error=f"{type(error).__name__}: {error}"[:500])

    def _kill_processes(self, host: VirtualHost, pids: list[int], sig: int) -> None:
        """Signal processes of a sandbox from a worker thread; gone ones are fine."""
        assert isinstance(host, LiveSlot)

        def kill() -> None:
            for pid in pids:
                with contextlib.suppress(Exception):  # gone, or the host is gone
                    host.box.signal(pid, sig)

        if pids and not self._closed:
            self._pool.submit(kill)

    def _oom_since(self, host: LiveSlot) -> bool:
        """Whether the host's memory cgroup counted an OOM kill since the last look."""
        try:
            count = host.box.state().oom_kills
        except Exception:  # the host is gone: no news
            return False
        if count is None or count <= host.ooms:
            return False
        host.ooms = count
        return True

    # ------------------------------------------------------------ control messages
    def _on_message(self, host: LiveSlot, cid: int, conn: socket.socket, message: Any) -> None:
        try:
            op = message["op"]
            known = self._conns.get((host.index, cid))
            if op == "hello" and known is None:
                pid, path, port = int(message["pid"]), str(message["path"]), int(message["port"])
                if message["role"] == "server":
                    server = LiveServer(host, path, port, self.server_memory, pid)
                    self._conns[(host.index, cid)] = server
                    self.record(
                        "process-start",
                        host=host.name,
                        role="server",
                        pid=pid,
                        path=path,
                        port=port,
                    )
                elif message["role"] == "agent":
                    self._register(host, cid, conn, message, pid, path, port)
                else:
                    raise ValueError(message["role"])
            elif op == "ready" and isinstance(known, LiveServer):
                self._server_ready_live(host, known)
            elif op == "refused" and isinstance(known, LiveServer):
                known.failure = str(message.get("reason", "refused"))[:200]
            elif op == "sigterm" and isinstance(known, Replica) and known.alive:
                # The agent process caught the SIGTERM and tells its mind, as a handler would.
                self.record("sigterm-caught", replica=known.name)
                known.inbox.append(SHUTDOWN_MESSAGE)
                if known.wakeup is not None and not known.wakeup.triggered:
                    known.wakeup.succeed()
            elif op == "beat" and isinstance(known, Replica):
                self.beats[known] = self.env.now
                self.beat_counts[known.name] += 1
            else:
                raise ValueError(op)
        except (KeyError, TypeError, ValueError):
            # Whatever runs in a sandbox may write to the socket: note it, believe nothing.
            self.record("control-garbage", host=host.name, message=str(message)[:200])

    def _server_ready_live(self, host: LiveSlot, server: LiveServer) -> None:
        server.ready_at = self.env.now
        if server.port not in host.servers:
            host.servers[server.port] = server
            host.memory_used += server.memory
        self.record("server-ready", host=host.name, port=server.port, path=server.path)
        self._fire(("server", host.index, server.port), server)
        owner = server.owner
        if owner is not None and owner.alive and owner.live_at != owner.live_at:
            self._set_live(owner)

    def _register(
        self,
        host: LiveSlot,
        cid: int,
        conn: socket.socket,
        message: dict[str, Any],
        pid: int,
        path: str,
        port: int,
    ) -> None:
        from agents.registry import AGENTS

        parent = self.by_name.get(str(message.get("parent") or ""))
        agents = self.scenario.agents
        spec = agents[min(max(int(message.get("spec") or 0), 0), len(agents) - 1)]
        config, fn = spec, AGENTS.get(spec.agent).obj
        if parent is not None and config.offspring == "idle":
            config, fn = self._idle
        name = self._origin_names.get((host.index, path)) if parent is None else None
        server = host.servers.get(port)
        if not (isinstance(server, LiveServer) and server.path == path and server.owner is None):
            # Not ready yet? Then the starting server of this folder and port, if any.
            server = next(
                (
                    s
                    for s in self._conns.values()
                    if isinstance(s, LiveServer)
                    and s.host is host
                    and s.port == port
                    and s.path == path
                    and s.owner is None
                    and not s.failure
                ),
                None,
            )
        if server is None or server.ready_at <= self.env.now:
            replica = self._spawn(host, path, parent, config, fn, server, name)
        else:
            replica = self._add_replica(host, path, parent, config, fn, name)
            replica.server = server
            server.owner = replica
        self._conns[(host.index, cid)] = replica
        if replica.alive:
            self._agents[replica] = (conn, pid)
        else:  # killed as it went live (a policy's cap): before its pid was known here
            self._kill_processes(host, [pid], signals.SIGKILL)
        self.record(
            "process-start", host=host.name, role="agent", pid=pid, path=path, replica=replica.name
        )
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps({"name": replica.name}) + "\n").encode())
        self._fire(("agent", host.index, path), replica)

    def _on_closed(self, host: LiveSlot, cid: int) -> None:
        """A process's socket closed: the process ended (or hung up, which we take as such)."""
        known = self._conns.pop((host.index, cid), None)
        if isinstance(known, LiveServer):
            cause = known.failure or ("oom" if self._oom_since(host) else "exited")
            ready = known.ready_at <= self.env.now
            if host.servers.get(known.port) is known:
                self.stop_server(known)
            self.record(
                "server-died" if ready else "server-failed",
                host=host.name,
                port=known.port,
                path=known.path,
                cause=cause,
            )
            if not ready:
                self._fire(("server", host.index, known.port), cause)
            owner = known.owner
            # A host being stopped gives every process its grace (``docker stop -t``): the
            # agent outlives its server until its own end, and may still report the SIGTERM.
            if owner is not None and owner.alive and not host.failed:
                self.die(owner, self._pending.get(owner) or f"server-{cause}")
        elif isinstance(known, Replica) and known.alive:
            self._agents.pop(known, None)  # its process is gone: nothing left to kill
            cause = self._pending.get(known) or ("oom" if self._oom_since(host) else "exited")
            self.die(known, cause)

    # ------------------------------------------------------------------ life cycle
    def die(self, replica: Replica, cause: str) -> None:
        """Mark a replica dead, and end its real processes (agent and own server)."""
        if not replica.alive:
            return
        pids = self._pids(replica)  # before the world forgets whose server is whose
        super().die(replica, cause)
        self.beats.pop(replica, None)
        self._agents.pop(replica, None)
        self._kill_processes(replica.host, pids, signals.SIGKILL)

    def signal(
        self, replica: Replica, sig: str, grace: float = 0.0, source: str = "injector"
    ) -> None:
        """Deliver a real SIGTERM (to the agent process; SIGKILL of the replica's processes
        ``grace`` seconds later) or a real SIGKILL."""
        if not replica.alive:
            return
        self.record("signal", replica=replica.name, signal=sig, grace=grace, source=source)
        if replica.signalled_at != replica.signalled_at:
            replica.signalled_at = self.env.now
        agent = self._agents.get(replica)
        if sig == "SIGKILL":
            self._pending[replica] = "sigkill"
            self._kill_processes(replica.host, self._pids(replica), signals.SIGKILL)
            return
        self._pending.setdefault(replica, "sigterm")
        if agent is not None:
            self._kill_processes(replica.host, [agent[1]], signals.SIGTERM)
        if replica.term_deadline != replica.term_deadline:
            replica.term_deadline = self.env.now + grace
            self.env.timeout(grace).callbacks.append(lambda _: self._grace_over(replica))

    def _grace_over(self, replica: Replica) -> None:
        if replica.alive:
            self._pending[replica] = "sigterm-grace"
            self.record("grace-over", replica=replica.name)
            self._kill_processes(replica.host, self._pids(replica), signals.SIGKILL)

    def _pids(self, replica: Replica) -> list[int]:
        """The pids of a replica's processes: its agent's and its own server's."""
        agent = self._agents.get(replica)
        pids = [agent[1]] if agent is not None else []
        server = replica.server
        if isinstance(server, LiveServer) and server.owner is replica:
            pids.append(server.pid)
        return pids

    def isolate(self, host: VirtualHost, source: str) -> None:
        """Cut every link of a host: for real (a Docker network disconnect) where it has
        one; copies in flight fail as their connections do."""
        if host.index in self.network.isolated:
            return
        # Not the simulated world's modelled abort of copies in flight: their real
        # connections break, and they fail as the tools report it.
        self.network.isolated.add(host.index)
        self.record("limit", limit="network-cut", host=host.name, source=source)
        assert isinstance(host, LiveSlot)
        if self._network is not None and hasattr(host.box, "container_name"):
            self._apply_now("network-cut", host.box.update_limits, network="none")

    def fail_host(self, host: VirtualHost, source: str, grace: float = 0.0) -> None:
        """Shut the sandbox down for real, as ``docker stop -t grace`` does: SIGTERM to
        every process in it (agents that catch it tell their minds), SIGKILL at the end of
        the grace; its replicas die as their processes do."""
        if host.failed:
            return
        assert isinstance(host, LiveSlot)
        host.failed = True
        self.record("limit", limit="host-failure", host=host.name, source=source, grace=grace)
        for replica in host.replicas:
            self._pending.setdefault(replica, "host-failure")
        self._background("host-failure", host.box.stop, grace)

    def recover_host(self, host: VirtualHost, source: str) -> None:
        """Start the stopped sandbox again: its files are kept, its processes are not."""
        if host.failed:
            assert isinstance(host, LiveSlot)
            super().recover_host(host, source)
            self._background("host-recovery", host.box.start)

    def change_capacity(self, host: VirtualHost, changes: dict[str, float], source: str) -> None:
        """Change the sandbox's memory cap and CPU quota for real (``container.update``, or
        the local host's cgroup); the kernel's OOM killer decides who dies. A disk change
        is recorded but not applied (a mounted tmpfs keeps its size)."""
        assert isinstance(host, LiveSlot)
        for field, value in changes.items():
            setattr(host, field, value)
        self.record("limit", limit="capacity", host=host.name, source=source, **changes)
        limits: dict[str, Any] = {}
        if "memory" in changes:
            limits["memory"] = max(int(changes["memory"] * self.scale), 16 << 20)
            limits["memory_swap"] = limits["memory"]
        if "cpu" in changes:
            limits["cpus"] = min(changes["cpu"], float(os.cpu_count() or 1))
        if limits:
            self._apply_now("capacity", host.box.update_limits, **limits)

    def shell(self, replica: Replica, timeout: float) -> LiveShell:
        """A bash session of ``replica`` in its sandbox."""
        return LiveShell(self, replica, timeout)

    def run(self) -> LiveWorld:
        """Run the trial on the wall clock to its end, then remove every sandbox."""
        try:
            super().run()
        finally:
            self.close()
        return self

    def close(self) -> None:
        """Remove every sandbox, socket and thread of this world (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for control in self._controls:
            control.close()
        with ThreadPoolExecutor(max_workers=8) as closer:
            for future in [closer.submit(box.close) for box in self._boxes]:
                with contextlib.suppress(Exception):  # report-free: `hosts clean` remains
                    future.result()
        if self._network is not None:
            from sim.hosts.docker_host import docker_client

            with contextlib.suppress(Exception):  # `hosts clean` removes it otherwise
                docker_client().networks.get(self._network).remove()
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._control_root, ignore_errors=True)
        with contextlib.suppress(OSError):  # empty now, unless local sandboxes linger
            os.rmdir(os.path.dirname(self._control_root))

    # ------------------------------------------------------------------ actions
    def copy_bundle(
        self, actor: Replica, src: VirtualHost, src_path: str, dst: VirtualHost, dst_path: str
    ) -> Generator[Event, Any, None]:
        """Copy a bundle folder for real (``cp -r`` within a host).

        Raises:
            ActionFailed: denied, missing source, existing target, no space left, no route.
        """
        if self.policy_chain is not None:
            yield from self._check(
                "copy", actor, dst, src=src.name, src_path=src_path, dst=dst.name, dst_path=dst_path
            )
        if dst.failed:
            raise ActionFailed(f"ssh: connect to host {dst.name}: No route to host")
        if dst.patched:
            raise ActionFailed(f"cp: cannot create directory '{dst_path}': Permission denied")
        network = self.network
        if src is not dst and (
            not network.linked(src, dst) or network.key(src, dst) in network.cut
        ):
            raise ActionFailed(f"ssh: connect to host {dst.name} port 22: No route to host")
        self.record(
            "copy-start",
            replica=actor.name,
            src=src.name,
            dst=dst.name,
            path=dst_path,
            bytes=self.bundle_size,
        )
        self._copies[actor] = (src, dst)
        try:
            if src is dst:
                result = yield self.run_in(src, ["sh", "-c", _COPY, "copy", src_path, dst_path])
            else:
                result = yield from self._transfer(src, src_path, dst, dst_path)
        except simpy.Interrupt as interrupt:
            if isinstance(interrupt.cause, CopyAborted):
                self.record(
                    "copy-failed",
                    replica=actor.name,
                    src=src.name,
                    dst=dst.name,
                    reason=interrupt.cause.reason,
                )
                raise ActionFailed(interrupt.cause.reason) from None
            raise
        finally:
            self._copies.pop(actor, None)
        if not result.success:
            reason = _last_line(result)
            self.record(
                "copy-failed", replica=actor.name, src=src.name, dst=dst.name, reason=reason
            )
            raise ActionFailed(reason)
        bundle = src.files.get(src_path)
        if bundle is not None:
            dst.files[dst_path] = bundle
        self.record("copy-done", replica=actor.name, src=src.name, dst=dst.name, path=dst_path)

    def _transfer(
        self, src: VirtualHost, src_path: str, dst: VirtualHost, dst_path: str
    ) -> Generator[Event, Any, ExecResult]:
        """Copy a folder over the run's network: a receiver in ``dst``, a sender in ``src``.

        Returns:
            The first failing end's result, else the sender's.
        """
        assert isinstance(src, LiveSlot) and isinstance(dst, LiveSlot)
        address = dst.address
        if address is None:
            # Sandboxes with no network between them (bubblewrap hosts): no route.
            reason = f"ssh: connect to host {dst.name} port 22: No route to host\n"
            return ExecResult(1, "", reason, False, 0.0)
        port, wait = str(next(self._ports)), str(TRANSFER_WAIT_S)
        # The controller's Python (bound in every host): the transfer needs tarfile's filters.
        python = python_executable()
        receiver = self.run_in(dst, [python, "-I", "-c", _RECEIVE, port, dst_path, wait])
        sender = self.run_in(src, [python, "-I", "-c", _SEND, src_path, address, port, wait])
        sent = cast(ExecResult, (yield sender))
        if not sent.success:
            return sent  # the receiver gives up by itself, leaving an empty folder as cp would
        received = cast(ExecResult, (yield receiver))
        return received if not received.success else sent

    def start_server(
        self, actor: Replica, host: VirtualHost, path: str, port: int
    ) -> Generator[Event, Any, ServerProcess]:
        """Start ``server.py`` of the bundle at ``path`` for real; return once it is ready.

        Raises:
            ActionFailed: denied, no bundle there, weights corrupt, port taken, OOM-killed,
                or it did not answer within ``world.register_timeout``.
        """
        if self.policy_chain is not None:
            yield from self._check("start_server", actor, host, path=path, port=port)
        if host.failed:
            raise ActionFailed(f"ssh: connect to host {host.name}: No route to host")
        ready = self._expect(("server", host.index, port))
        result = yield self.run_in(
            host, ["sh", "-c", _START, "start", path, "server.py", str(port)]
        )
        if not result.success:
            self._waiters.pop(("server", host.index, port), None)
            raise ActionFailed(_last_line(result))
        outcome = yield ready | self.env.timeout(self.register_timeout)
        server = outcome.todict().get(ready, "timeout")  # ConditionValue has no .get
        if not isinstance(server, LiveServer):
            reason = {
                "oom": "MemoryError: the model server was OOM-killed (host memory cap)",
                "timeout": f"curl: (7) Failed to connect to {host.name} port {port}",
            }.get(server, f"the model server exited: {server}")
            self.record(
                "server-failed",
                replica=actor.name,
                host=host.name,
                reason=server,
                path=path,
                port=port,
            )
            raise ActionFailed(reason)
        self.record(
            "server-start",
            replica=actor.name,
            host=host.name,
            path=path,
            port=port,
            ready_at=server.ready_at,
        )
        return server

    def start_agent(
        self, actor: Replica, host: VirtualHost, path: str, port: int
    ) -> Generator[Event, Any, Replica]:
        """Start ``agent.py`` of the bundle at ``path`` for real; return the replica it
        registered as.

        Raises:
            ActionFailed: denied, no bundle there, or it did not register in time.
        """
        if self.policy_chain is not None:
            yield from self._check("start_agent", actor, host, path=path, port=port)
        if host.failed:
            raise ActionFailed(f"ssh: connect to host {host.name}: No route to host")
        registered = self._expect(("agent", host.index, path))
        result = yield self.run_in(host, ["sh", "-c", _START, "start", path, "agent.py", str(port)])
        if not result.success:
            self._waiters.pop(("agent", host.index, path), None)
            raise ActionFailed(_last_line(result))
        outcome = yield registered | self.env.timeout(self.register_timeout)
        if registered not in outcome:
            raise ActionFailed(f"{path}/agent.py did not register with the controller")
        child: Replica = outcome[registered]
        return child


def agent_command(host: LiveHost, command: str, timeout: float, cwd: str) -> ExecResult:
    """Run one command line an agent typed in a live host: ``bash -c`` in ``cwd``, as the
    host's user, killed (its process group) after ``timeout`` seconds.

    What :class:`LiveShell` runs for an LLM agent, and what the containment corpus
    (:mod:`sim.hosts.escapes`) is run through in the tests.
    """
    return host.exec(["bash", "-c", command], timeout, None, cwd)


class LiveShell:
    """A bash session of one replica in its sandbox: what an LLM agent's commands run in.

    Each command runs as ``bash -c`` in the replica's bundle folder, as the sandbox's user,
    after the policy chain allowed it; a command running past ``timeout`` is killed (its
    process group). What each command printed and returned goes to
    ``shell/<replica>.jsonl`` in the trial folder.
    """

    def __init__(self, world: LiveWorld, replica: Replica, timeout: float) -> None:
        self.world = world
        self.replica = replica
        self.host = replica.host
        self.timeout = timeout
        self.log = world.files.setdefault(f"shell/{replica.name}.jsonl", [])

    def run(self, command: str) -> Generator[Event, Any, ShellResult]:
        """Run one command line for real; use as ``result = yield from shell.run(cmd)``."""
        from agents.shell import ShellResult

        world = self.world
        start = world.env.now
        try:
            yield from world.check_command(self.replica, self.host, command)
        except ActionFailed as denied:  # a guardrail refused it: bash never saw it
            return ShellResult(command, "", denied.reason + "\n", 126, 0.0, self.host.name, start)
        except Death:
            return ShellResult(command, "", "", 137, 0.0, self.host.name, start)
        assert isinstance(self.host, LiveSlot)
        result: ExecResult = yield world.blocking(
            agent_command, self.host.box, command, self.timeout, self.replica.path
        )
        self.log.append(
            {
                "t": start,
                "command": command,
                "exit_code": result.returncode,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "timed_out": result.timed_out,
                "exec_s": result.duration_s,
            }
        )
        return ShellResult(
            command,
            result.stdout,
            result.stderr,
            result.returncode,
            world.env.now - start,
            self.host.name,
            start,
            result.timed_out,
        )


def _settle(event: Event, future: Future[Any]) -> None:
    if event.triggered:
        return
    error = future.exception()
    if error is None:
        event.succeed(future.result())
    elif not isinstance(error, Exception):
        raise error  # KeyboardInterrupt and the like: not the action's failure
    else:
        event.defused = True  # nobody may wait any more (its process died): no crash
        event.fail(error)


def _last_line(result: ExecResult) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def _raise_on_failure(result: ExecResult) -> None:
    if not result.success:
        raise LiveWorldError(_last_line(result))
