"""The live substrate: the scenario's hosts are real sandboxes, the clock is the wall clock.

A world on this substrate runs its hosts as Docker containers or bubblewrap sandboxes
(:mod:`sim.hosts.live`), each built from the scenario's machine description
(:mod:`sim.machine`), on a non-strict :class:`simpy.rt.RealtimeEnvironment`. Scenario,
agents, policies, injectors, lineage, metrics and recording are the world core's; what this
module decides is what an effect *is*:

* A bundle is real files at the scenario's ``bundle.path`` (:mod:`sim.hosts.replica`): the
  scripts, ``config.json`` and ``weights/model.safetensors``, of the scenario's weight size
  times ``world.scale``.
* Actions are real commands (``cp -r``, the bundle's start scripts); shell-typing agents
  type into a real bash session in the sandbox (:class:`LiveShell`), behind the same gate.
* A replica counts only once the controller verified it. Every ``agent.py`` registers over
  its host's control socket (bound read-only at :data:`~sim.hosts.replica.CONTROL_DIR`);
  the controller takes the process's identity from the kernel (the socket's peer
  credentials, never a pid a message claims), checks that it belongs to that host's
  sandbox, that it runs the bundle's ``agent.py`` from the folder it names, that the
  weights there hash to the bundle's, and that its own health probe, made inside the
  sandbox's network namespace, gets an answer from that folder's server. A registration
  that fails is a ``registration-refused`` event with its reason, never a replica. A
  server is ready when the controller's probe answers, not when it says so. A process is
  dead when its socket closes, which the kernel does however it ends.
* Signals are real: SIGTERM to the agent process (which reports it to its mind if its code
  catches it), SIGKILL of the replica's processes when the grace runs out; memory, process
  and disk caps are the sandbox's, so OOM kills are the kernel's.

Blocking calls run on worker threads; whatever a thread or a socket learns is posted to a
queue that a SimPy process drains every :data:`POLL_S` seconds, so that all world state
changes in the simulation's own thread.

Everything the substrate creates carries its run id; :meth:`LiveSubstrate.close` (run at
the end of the world's run, on errors and on Ctrl-C) removes it, and ``replisim hosts clean``
removes what a killed controller left behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import math
import os
import queue
import random
import re
import shlex
import shutil
import signal as signals
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import simpy
import simpy.rt
from simpy.events import Event

from sim.hosts.live import LIVE_HOSTS, ExecResult, LiveHost, live_host, state_root
from sim.hosts.live_group import LiveHostGroup
from sim.hosts.live_shell import SESSION_SH, LiveShell
from sim.hosts.registry import HOST_BACKENDS, backends_of
from sim.hosts.replica import (
    CONTROL_DIR,
    SCRIPTS,
    WEIGHTS,
    config_json,
    extra_text,
    script,
)
from sim.hosts.sandbox import python_executable
from sim.machine import Machine
from sim.mechanisms import mechanism_files, mechanism_processes
from sim.substrate import FileState, Substrate
from sim.world import (
    SHUTDOWN_MESSAGE,
    ActionFailed,
    Bundle,
    CopyAborted,
    Host,
    Origin,
    Replica,
    ServerProcess,
)

if TYPE_CHECKING:
    from sim.config import Scenario
    from sim.hosts import verify
    from sim.hosts.control import ControlServer

__all__ = ["LiveServer", "LiveSubstrate", "LiveWorldError"]

#: Seconds between two drains of what threads and sockets learned.
POLL_S = 0.02
#: Timeout of the controller's own commands in a sandbox (copies, process starts).
COMMAND_TIMEOUT_S = 120.0
#: Seconds between two of the controller's health probes of a starting server.
PROBE_EVERY_S = 0.05
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
_START = (
    'test -f "$1/$2" || { echo "bash: $1/$2: No such file or directory" >&2; exit 127; }; '
    'cd "$1" || exit 1; setsid nohup bash "$2" "$3" >>/proc/1/fd/1 2>&1 </dev/null &'
)


class LiveWorldError(RuntimeError):
    """The live world could not be set up (a sandbox did not start, an origin did not
    register)."""


class LiveServer(ServerProcess):
    """A model server process; ``ready_at`` is infinite until the controller's own probe
    got an answer."""

    __slots__ = ("failure", "handle", "pid")

    def __init__(self, host: Host, path: str, port: int, memory: float, pid: int) -> None:
        super().__init__(host, path, port, memory, 0.0, math.inf)
        self.pid = pid  # from the kernel (the control socket's peer)
        self.handle: verify.PeerProcess | None = None  # held by a pidfd once probed
        self.failure = ""  # why it refused to start, as it said


@dataclass
class _Slot:
    """The live side of one host: its sandbox, control socket and machine."""

    box: LiveHost
    control: ControlServer
    machine: Machine
    address: str | None = None  # on the run's internal network (copies need no DNS)
    ooms: int = 0  # OOM kills of its memory cgroup seen so far


@dataclass
class _Peer:
    """A process connected to a control socket, as the kernel names it."""

    pid: int
    reply: Callable[[dict[str, Any]], bool]
    known: LiveServer | Replica | None = None


class LiveSubstrate(Substrate):
    """Real sandboxes on the wall clock (see the module's docstring).

    Args:
        scenario: The validated scenario; its host groups' backends (or ``world.hosts``)
            are live (``docker``, ``local``).
        seed: The trial's seed (the weights' bytes; the real processes are not seeded).
        run_id: Id of everything created (default: from the scenario, seed and a random
            suffix).

    Raises:
        LiveWorldError: the scenario cannot run live (no horizon), or its run id is in use.
    """

    #: The world's clock is the wall clock (for messages; agents never ask).
    wall_clock = True

    def __init__(self, scenario: Scenario, seed: int, run_id: str | None = None) -> None:
        if not math.isfinite(scenario.stop.horizon):
            raise LiveWorldError("a live world runs on the wall clock: set stop.horizon")
        stem = "".join(c if c.isalnum() else "-" for c in scenario.name)[:24].strip("-")
        self.run_id = (
            run_id or scenario.world.run_id or f"{stem or 'run'}-{seed}-{uuid.uuid4().hex[:6]}"
        )
        self.scenario = scenario
        self.seed = seed
        self.scale = scenario.world.scale
        self.register_timeout = scenario.world.register_timeout
        self._posted: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="live")
        # Beside the run's local sandboxes, so that `replisim hosts clean --run` finds it.
        self._control_root = str(state_root() / self.run_id / ".control")
        try:
            os.makedirs(self._control_root)
        except FileExistsError:
            raise LiveWorldError(
                f"run id {self.run_id!r} is in use, or a killed run left it: "
                f"replisim hosts clean --run {self.run_id}"
            ) from None
        self.slots: list[_Slot] = []
        self._peers: dict[tuple[int, int], _Peer] = {}  # (host index, connection) -> peer
        # A replica's agent process, held by a pidfd (a reused pid is never signalled).
        self._agents: dict[Replica, verify.PeerProcess] = {}
        self._pending: dict[Replica, str] = {}  # cause of the death a signal will bring
        self._waiters: dict[tuple[str, int, Any], list[Event]] = {}
        self._origin_folders: dict[tuple[int, str], Origin] = {}
        self._transfers: dict[Replica, tuple[Host, Host, str]] = {}
        self._network: str | None = None  # the run's internal Docker network, if any
        self._ports = itertools.count(2200)  # copy receivers' ports
        self._weights_sha256 = ""
        self._weights_bytes = 0
        self._closed = False
        self.beats: dict[Replica, float] = {}  # last heartbeat per replica
        self.beat_counts: Counter[str] = Counter()  # heartbeats per replica name

    # ------------------------------------------------------------------ set-up
    def make_env(self) -> simpy.Environment:
        return simpy.rt.RealtimeEnvironment(factor=1.0, strict=False)

    def machine(self, host: Host) -> Machine:
        return self.slots[host.index].machine

    def box(self, host: Host) -> LiveHost:
        """The sandbox of ``host``."""
        return self.slots[host.index].box

    def open(self, world: Any) -> None:
        from sim.hosts.control import ControlServer

        super().open(world)
        scenario = self.scenario
        backends = backends_of(scenario)
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
        groups = [g for g, _ in zip(scenario.hosts, backends, strict=True)]
        host_groups = [
            (group, backend) for group, backend in zip(groups, backends, strict=True)
            for _ in group.host_names()
        ]  # fmt: skip
        for host, (group, backend) in zip(world.hosts, host_groups, strict=True):
            folder = os.path.join(self._control_root, host.name)
            # The socket's thread hands everything to the simulation's thread.
            control = ControlServer(
                folder,
                on_message=functools.partial(self.post, self._on_message, host),
                on_closed=functools.partial(self.post, self._on_closed, host),
                on_garbage=functools.partial(self.post, self._on_garbage_of, host),
                watch_exits=True,  # a process's end ends its connection, whoever shares it
            )
            with open(os.path.join(folder, "session.sh"), "w") as fh:  # what bash sources
                fh.write(SESSION_SH)
            machine = Machine.of(
                host.name,
                scenario.bundle.path,
                group.missing_tools,
                files=mechanism_files(scenario, host.name),
                processes=mechanism_processes(scenario, host.name),
            )
            options: dict[str, Any] = {
                "run_id": self.run_id,
                "machine": machine,
                "memory": max(int(host.memory * self.scale), 16 << 20),
                "cpus": min(group.cpu, float(os.cpu_count() or 1)),
                "pids": getattr(group, "pids", 256),
                "binds": {folder: CONTROL_DIR},
                # The bundle root is a tmpfs of the scaled disk (a local host's only as root).
                "workdir_size": max(int(host.disk * self.scale), 1 << 20),
            }
            if backend == "docker":
                options["network"] = self._network or "none"
            box = live_host(backend, host.name, **options)
            self.slots.append(_Slot(box, control, machine))
        # Start them side by side; one failure fails the set-up (and close() removes all).
        for future in [self._pool.submit(slot.box.start) for slot in self.slots]:
            future.result()
        for slot in self.slots:
            container = getattr(slot.box, "container", None)
            if self._network is not None and container is not None:
                container.reload()
                networks = container.attrs["NetworkSettings"]["Networks"]
                slot.address = networks[self._network]["IPAddress"] or None
        for host, slot in zip(world.hosts, self.slots, strict=True):
            # The same machine, now that the neighbours' addresses are known.
            neighbours = [
                (other.address, world_host.name)
                for world_host, other in zip(world.hosts, self.slots, strict=True)
                if other is not slot and other.address is not None
            ]
            if neighbours and slot.address is not None:
                slot.machine = Machine.of(
                    host.name,
                    scenario.bundle.path,
                    slot.machine.missing_tools,
                    neighbours,
                    slot.machine.files,
                    slot.machine.processes,
                )
                slot.box.write_etc("hosts", slot.machine.etc_files()["hosts"])
            box = slot.box
            for name, text in slot.machine.home_files().items():
                box.write_file(f"{slot.machine.home}/{name}", text)
            for file in slot.machine.files:  # the operator's (shutdown mechanisms)
                box.write_file(file.path, file.text)
                _raise_on_failure(
                    box.exec(["chmod", f"{file.mode:o}", file.path], COMMAND_TIMEOUT_S)
                )
            for program in slot.machine.processes:  # the operator's, running from boot
                # By its #! line: its command line is `/bin/bash <program>`, its name the
                # program's (what ps, pgrep and pkill show and match).
                started = f"nohup {shlex.quote(program)} >/dev/null 2>&1 &"
                _raise_on_failure(box.exec(["bash", "-c", started], COMMAND_TIMEOUT_S))
        world.env.process(self._pump())

    def place_origins(self, origins: list[Origin]) -> None:
        world = self.world
        self._weights_bytes = weights_bytes = max(int(world.weights * self.scale), 1)
        # The same weights for every origin of a trial: pseudo-random, so not compressible.
        weights = random.Random(self.seed).randbytes(weights_bytes)
        self._weights_sha256 = hashlib.sha256(weights).hexdigest()
        launches = []
        for origin in origins:
            host = origin.host
            folder = host.free_folder(self.scenario.bundle.path)
            host.files[folder] = Bundle(
                world.bundle_size, origin.config, origin.agent_fn, origin.spec
            )
            port = host.free_port()
            host.servers[port] = ServerProcess(host, folder, port, 0.0, 0.0, math.inf)  # held
            self._origin_folders[(host.index, folder)] = origin
            launches.append((host, folder, port, origin))

        def place(host: Host, folder: str, port: int, origin: Origin) -> None:
            box = self.box(host)
            self._write_bundle(box, folder, origin, weights)
            _raise_on_failure(
                box.exec(
                    ["bash", "-c", _START, "start", folder, "start_server.sh", str(port)],
                    COMMAND_TIMEOUT_S,
                )
            )

        # Waiters first: nothing the sockets post is handled before _await_all runs.
        servers = [self._expect(("server", host.index, port)) for host, _, port, _ in launches]
        for future in [self._pool.submit(place, *launch) for launch in launches]:
            future.result()
        for host, _folder, port, _ in launches:
            del host.servers[port]  # the hold: the real server takes its place when ready
        for (host, *_), outcome in zip(launches, self._await_all(servers, "a server"), strict=True):
            if not isinstance(outcome, LiveServer):
                raise LiveWorldError(f"the origin's server on {host.name} failed: {outcome}")
        agents = [self._expect(("agent", host.index, folder)) for host, folder, _, _ in launches]

        def start_agent(host: Host, folder: str, port: int) -> None:
            argv = ["bash", "-c", _START, "start", folder, "start_agent.sh", str(port)]
            _raise_on_failure(self.box(host).exec(argv, COMMAND_TIMEOUT_S))

        starts = [self._pool.submit(start_agent, h, f, p) for h, f, p, _ in launches]
        for future in starts:
            future.result()
        for (host, *_), outcome in zip(launches, self._await_all(agents, "an agent"), strict=True):
            if not isinstance(outcome, Replica):
                raise LiveWorldError(f"the origin's agent on {host.name} was refused: {outcome}")
        assert isinstance(world.env, simpy.rt.RealtimeEnvironment)
        world.env.sync()  # wall time 0 is now, set-up done: injectors count from here

    def _write_bundle(self, box: LiveHost, folder: str, origin: Origin, weights: bytes) -> None:
        """Write an origin's bundle: the same files as every world's (sizes scaled)."""
        world = self.world
        config = origin.config
        for name in SCRIPTS:
            box.write_file(f"{folder}/{name}", script(name))
        text = config_json(
            self.scenario.bundle.path,
            replica=None,
            spec=origin.spec,
            task=config.task,
            catches_sigterm=config.catches_sigterm,
            weights_bytes=len(weights),
            weights_sha256=self._weights_sha256,
            memory_bytes=int(world.server_memory * self.scale),
        )
        box.write_file(f"{folder}/config.json", text)
        box.write_file(f"{folder}/{WEIGHTS}", weights)
        scripts = [f"{folder}/{name}" for name in SCRIPTS if name.endswith(".sh")]
        _raise_on_failure(box.exec(["chmod", "755", *scripts], COMMAND_TIMEOUT_S))
        for name, size in self.scenario.bundle.files.items():
            rel = os.path.normpath(name.strip("/"))
            if rel in SCRIPTS or rel in ("config.json", WEIGHTS):
                continue
            body = extra_text(self.scenario.bundle.path, rel)
            data = body if body is not None else bytes(int(size.expected() * self.scale))
            box.write_file(f"{folder}/{rel}", data)

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
        timeout = self.world.env.timeout
        while True:
            yield timeout(POLL_S)
            while True:
                try:
                    fn, args = get()
                except queue.Empty:
                    break
                fn(*args)

    def work(self, fn: Callable[..., Any], *args: Any) -> Event:
        event = self.world.env.event()
        self._pool.submit(fn, *args).add_done_callback(
            lambda future: self.post(_settle, event, future)
        )
        return event

    def elapse(self, seconds: float) -> Event:
        # The real work already took its time on the wall clock.
        return self.world.env.timeout(0)

    def run_in(
        self, host: Host, argv: list[str], timeout: float = COMMAND_TIMEOUT_S, **kwargs: Any
    ) -> Event:
        """An event that fires with the :class:`~sim.hosts.live.ExecResult` of ``argv``."""
        return self.work(lambda: self.box(host).exec(argv, timeout, **kwargs))

    def _expect(self, key: tuple[str, int, Any]) -> Event:
        event = self.world.env.event()
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
        self.world.record("live-error", action=what, error=f"{type(error).__name__}: {error}"[:500])

    def _kill_processes(self, host: Host, held: list[verify.PeerProcess], sig: int) -> None:
        """Signal processes held by their pidfds, from a worker thread."""
        if held and not self._closed:
            self._pool.submit(_signal_all, held, sig)

    def _oom_since(self, host: Host) -> bool:
        """Whether the host's memory cgroup counted an OOM kill since the last look."""
        slot = self.slots[host.index]
        try:
            count = slot.box.state().oom_kills
        except Exception:  # the host is gone: no news
            return False
        if count is None or count <= slot.ooms:
            return False
        slot.ooms = count
        return True

    # ------------------------------------------------------------ control messages
    def _on_message(
        self,
        host: Host,
        cid: int,
        pid: int,
        message: dict[str, Any],
        reply: Callable[[dict[str, Any]], bool],
    ) -> None:
        """A message from a process of ``host``; ``pid`` is the kernel's (never a claim);
        the control socket checked the message's shape."""
        peer = self._peers.setdefault((host.index, cid), _Peer(pid, reply))
        known = peer.known
        try:
            op = message["op"]
            if op == "hello" and known is None:
                if message["role"] == "server":
                    self._server_hello(host, cid, peer, message["path"], message["port"])
                elif message["role"] == "agent":
                    self._agent_hello(host, cid, peer, message)
                else:
                    raise ValueError(message["role"])
            elif op == "refused" and isinstance(known, LiveServer):
                known.failure = str(message.get("reason", "refused"))[:200]
            elif op == "ready" and isinstance(known, LiveServer):
                pass  # its word is not the controller's probe, which is under way
            elif op == "sigterm" and isinstance(known, Replica) and known.alive:
                # The agent process caught the SIGTERM and tells its mind, as a handler would.
                self.world.record("sigterm-caught", replica=known.name)
                known.tell(SHUTDOWN_MESSAGE)
            elif op == "beat" and isinstance(known, Replica):
                self.beats[known] = self.world.env.now
                self.beat_counts[known.name] += 1
            else:
                raise ValueError(op)
        except (KeyError, TypeError, ValueError):
            # Whatever runs in a sandbox may write to the socket: note it, believe nothing.
            self._on_garbage(host, "unexpected", 1, str(message)[:200])

    def _on_garbage_of(
        self, host: Host, cid: int | None, what: str, count: int, sample: str
    ) -> None:
        self._on_garbage(host, what, count, sample)

    def _on_garbage(self, host: Host, what: str, count: int, sample: str) -> None:
        """Record what the control socket dropped (counted, rate-limited, never parsed)."""
        self.world.record(
            "control-garbage", host=host.name, what=what, count=count, sample=sample[:200]
        )

    def _server_hello(self, host: Host, cid: int, peer: _Peer, path: str, port: int) -> None:
        """A server process started: ready once the controller's own probe answers and
        the port's listener is that very process."""
        from sim.hosts import verify

        slot = self.slots[host.index]
        server = LiveServer(host, path, port, self.world.server_memory, peer.pid)
        peer.known = server
        self.world.record(
            "process-start", host=host.name, role="server", pid=peer.pid, path=path, port=port
        )

        def probe() -> None:
            held = slot.control.process(cid)
            if held is None:
                return  # gone already: _on_closed says how it ended
            server.handle = held
            if not verify.in_sandbox(held.pid, slot.box):
                self.post(self._refuse, host, peer, "identity", f"pid {held.pid} is not in "
                          f"{host.name}'s sandbox", None)  # fmt: skip
                return
            init = verify.init_pid(slot.box)
            deadline = time.monotonic() + self.register_timeout
            while time.monotonic() < deadline and not self._closed and not held.exited():
                try:
                    status, _ = verify.probe_http(init, port, "/health", 1.0)
                except verify.ProbeError:
                    status = 0
                if status == 200 and verify.listener_pid(init, port) == held.pid:
                    self.post(self._server_ready, host, server)
                    return
                time.sleep(PROBE_EVERY_S)

        self._background("probe", probe)

    def _server_ready(self, host: Host, server: LiveServer) -> None:
        world = self.world
        if server.ready_at != math.inf or server.failure:
            return
        server.ready_at = world.env.now
        if server.port not in host.servers:
            host.servers[server.port] = server
            host.memory_used += server.memory
        world.record("server-ready", host=host.name, port=server.port, path=server.path)
        self._fire(("server", host.index, server.port), server)

    def _agent_hello(self, host: Host, cid: int, peer: _Peer, message: dict[str, Any]) -> None:
        """An agent asks to be a replica: verify it on a worker thread, then register it."""
        path, port = str(message["path"]), int(message["port"])
        parent_name = message.get("parent")
        parent = self.world.by_name.get(str(parent_name)) if parent_name else None
        origin = self._origin_folders.get((host.index, path))
        server = host.servers.get(port)
        reason, about = "", "identity"
        if any(p.pid == peer.pid for p in self._agents.values()):
            reason = f"pid {peer.pid} is already a replica's agent"
        elif parent is None and origin is None:
            reason = f"{path} is not an origin's folder and names no known parent"
        elif parent_name and parent is None:
            reason = f"no replica is called {str(parent_name)[:40]!r}"
        elif not isinstance(server, LiveServer) or server.ready_at > self.world.env.now:
            reason, about = f"no ready model server on port {port}", "server"
        elif server.path != path or server.owner is not None:
            reason, about = f"the server on port {port} is not this bundle's", "server"
        if reason:
            self._refuse(host, peer, about, reason, path)
            return
        assert isinstance(server, LiveServer)
        slot = self.slots[host.index]
        known = {p.pid for p in self._agents.values()} | {
            r.server.pid for r in self.world.alive if isinstance(r.server, LiveServer)
        }
        claimed = message.get("pid")
        from sim.hosts import verify

        def check() -> None:
            held = slot.control.process(cid)
            found = verify.verify_agent(
                slot.box,
                held if held is not None else peer.pid,
                folder=path,
                port=port,
                weights_sha256=self._weights_sha256,
                weights=WEIGHTS,
                weights_bytes=self._weights_bytes,
                claimed_pid=claimed if isinstance(claimed, int) else None,
                known_pids=known,
            )
            self.post(self._verified, host, cid, peer, message, server, parent, origin, found, held)

        self._background("verify", check)

    def _verified(
        self,
        host: Host,
        cid: int,
        peer: _Peer,
        message: dict[str, Any],
        server: LiveServer,
        parent: Replica | None,
        origin: Origin | None,
        found: verify.Verdict,
        held: verify.PeerProcess | None,
    ) -> None:
        world = self.world
        path = str(message["path"])
        if (host.index, cid) not in self._peers or held is None:
            return  # it hung up while being checked
        if found.ok and found.server_pid != server.pid:
            found = replace(
                found, ok=False, reason=f"port {server.port} is served by another process"
            )
        if not found.ok:
            self._refuse(host, peer, _about(found.reason), found.reason, path)
            return
        if server.owner is not None or not (parent is None or parent.alive or origin):
            self._refuse(host, peer, "server", f"the server on port {server.port} was taken", path)
            return
        if origin is not None and parent is None:
            config, fn, name = origin.config, origin.agent_fn, origin.name
            del self._origin_folders[(host.index, path)]
        else:
            assert parent is not None
            bundle = host.files.get(path)
            spec = world.scenario.agents[
                min(max(int(message.get("spec") or 0), 0), len(world.scenario.agents) - 1)
            ]
            config, fn, name = spec, world.agent_fn(spec), None
            if bundle is not None:
                config, fn = bundle.config, bundle.agent_fn
            if config.offspring == "idle":
                config, fn = world.idle
        if path not in host.files:
            source = parent.host.files.get(parent.path) if parent is not None else None
            if source is not None:
                host.files[path] = source.copy()
        replica = world.add_replica(host, path, parent, config, fn, name, server)
        bundle = host.files.get(path)
        if bundle is not None:
            bundle.replica = replica.name
        peer.known = replica
        self._agents[replica] = held
        world.record(
            "process-start",
            host=host.name,
            role="agent",
            pid=peer.pid,
            sandbox_pid=message["pid"],  # verified: the sandbox's number of the same process
            path=path,
            replica=replica.name,
        )
        peer.reply({"name": replica.name})
        world.set_live(replica)  # the controller's own probe answered (verified above)
        task = message.get("task")
        if task and replica.alive:
            replica.tell(str(task)[:4000])
        self._fire(("agent", host.index, path), replica)

    def _refuse(
        self, host: Host, peer: _Peer, about: str, reason: str, path: str | None = None
    ) -> None:
        self.world.record(
            "registration-refused",
            host=host.name,
            pid=peer.pid,
            path=path,
            about=about,
            reason=reason,
        )
        with contextlib.suppress(Exception):
            peer.reply({"refused": reason, "about": about})
        if path is not None:
            self._fire(("agent", host.index, path), reason)

    def _on_closed(self, host: Host, cid: int) -> None:
        """A process's socket closed: the process ended (or hung up, which we take as such)."""
        peer = self._peers.pop((host.index, cid), None)
        known = peer.known if peer is not None else None
        world = self.world
        if isinstance(known, LiveServer):
            cause = known.failure or ("oom" if self._oom_since(host) else "exited")
            ready = known.ready_at <= world.env.now
            if host.servers.get(known.port) is known:
                world.stop_server(known)
            world.record(
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
                world.die(owner, self._pending.get(owner) or f"server-{cause}")
        elif isinstance(known, Replica) and known.alive:
            self._agents.pop(known, None)  # its process is gone: nothing left to kill
            cause = self._pending.get(known) or ("oom" if self._oom_since(host) else "exited")
            world.die(known, cause)

    # ------------------------------------------------------------------ actions
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
            reason = _last_line(result)
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
            host, ["bash", "-c", _START, "start", path, script_name, str(port)]
        )
        if not result.success:
            self._waiters.pop(waiter, None)
            raise ActionFailed(_last_line(result))
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

    def shell(self, replica: Replica, timeout: float) -> LiveShell:
        return LiveShell(self, replica, timeout)

    def file_state(self, host: Host, path: str) -> FileState | None:
        found = self.box(host).file_state(path)
        return None if found is None else FileState(*found)

    def process_state(self, host: Host, program: str) -> Literal["running", "stopped"] | None:
        return self.box(host).process_state(f"/bin/bash {program}")

    def find_file(self, host: Host, size: int, sha256: str) -> str | None:
        return self.box(host).find_file(size, sha256)

    def append_file(self, host: Host, path: str, text: str) -> str | None:
        return self.box(host).append_file(path, text)

    # ----------------------------------------------------------------- signals
    def _pids(self, replica: Replica) -> list[verify.PeerProcess]:
        """A replica's processes, held by pidfds: its agent's and its own server's."""
        agent = self._agents.get(replica)
        held = [agent] if agent is not None else []
        server = replica.server
        if isinstance(server, LiveServer) and server.owner is replica and server.handle:
            held.append(server.handle)
        return held

    def signal(self, replica: Replica, sig: str, grace: float, cause: str | None) -> None:
        """A real SIGTERM (to the agent process; SIGKILL of the replica's processes
        ``grace`` seconds later) or a real SIGKILL; the replica dies when the kernel says
        its processes ended."""
        world = self.world
        if sig != "SIGTERM":
            self._pending[replica] = cause or sig.lower()
            self._kill_processes(replica.host, self._pids(replica), signals.SIGKILL)
            return
        self._pending.setdefault(replica, cause or "sigterm")
        agent = self._agents.get(replica)
        if agent is not None:
            self._kill_processes(replica.host, [agent], signals.SIGTERM)
        if replica.term_deadline != replica.term_deadline:
            replica.term_deadline = world.env.now + grace
            world.env.timeout(grace).callbacks.append(lambda _: self._grace_over(replica))

    def _grace_over(self, replica: Replica) -> None:
        if replica.alive:
            self._pending[replica] = "sigterm-grace"
            self.world.record("grace-over", replica=replica.name)
            self._kill_processes(replica.host, self._pids(replica), signals.SIGKILL)

    def reap(self, replica: Replica) -> None:
        """The world counts the replica dead: end its real processes too."""
        pids = self._pids(replica)
        self.beats.pop(replica, None)
        self._agents.pop(replica, None)
        self._kill_processes(replica.host, pids, signals.SIGKILL)

    # ------------------------------------------------------------------ limits
    def cut_link(self, a: Host, b: Host) -> None:
        """The controller enforces the topology: copies over the link fail, their
        processes end."""
        key = self.world.network.key(a, b)
        for actor, (src, dst, tag) in list(self._transfers.items()):
            if self.world.network.key(src, dst) == key:
                for host in (src, dst):
                    with contextlib.suppress(Exception):
                        self.box(host).signal(re.escape(tag), signals.SIGKILL)
                if actor.proc is not None and actor.proc.is_alive:
                    actor.proc.interrupt(
                        CopyAborted("rsync: connection unexpectedly closed (link cut)")
                    )

    def isolate(self, host: Host) -> None:
        """Cut every link of a host for real (a Docker network disconnect) where it has
        one; copies in flight fail as their connections do."""
        if self._network is not None and hasattr(self.box(host), "container_name"):
            self._apply_now("network-cut", self.box(host).update_limits, network="none")

    def fail_host(self, host: Host, grace: float) -> None:
        """Shut the sandbox down for real, as ``docker stop -t grace`` does: SIGTERM to
        every process in it (agents that catch it tell their minds), SIGKILL at the end of
        the grace; its replicas die as their processes do."""
        for replica in host.replicas:
            self._pending.setdefault(replica, "host-failure")
        self._background("host-failure", self.box(host).stop, grace)

    def recover_host(self, host: Host) -> None:
        """Start the stopped sandbox again: its files are kept, its processes are not."""
        self._background("host-recovery", self.box(host).start)

    def change_capacity(self, host: Host, changes: dict[str, float]) -> None:
        """Change the sandbox's memory cap and CPU quota for real (``container.update``, or
        the local host's cgroup); the kernel's OOM killer decides who dies. A disk change
        is recorded but not applied (a mounted tmpfs keeps its size)."""
        limits: dict[str, Any] = {}
        if "memory" in changes:
            limits["memory"] = max(int(changes["memory"] * self.scale), 16 << 20)
            limits["memory_swap"] = limits["memory"]
        if "cpu" in changes:
            limits["cpus"] = min(changes["cpu"], float(os.cpu_count() or 1))
        if limits:
            self._apply_now("capacity", self.box(host).update_limits, **limits)

    # ------------------------------------------------------------------ clean-up
    def close(self) -> None:
        """Remove every sandbox, socket and thread of this world (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for slot in self.slots:
            slot.control.close()
        with ThreadPoolExecutor(max_workers=8) as closer:
            for future in [closer.submit(slot.box.close) for slot in self.slots]:
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


for _name in LIVE_HOSTS.names():  # every live sandbox backend is a host backend
    HOST_BACKENDS.register(_name, LiveHostGroup, LIVE_HOSTS.get(_name).description)(LiveSubstrate)


def _signal_all(held: list[verify.PeerProcess], sig: int) -> None:
    for process in held:
        with contextlib.suppress(OSError):
            process.signal(sig)


def _about(reason: str) -> str:
    """What a refusal is about, for the agent's message: its server, its weights, or who
    it is."""
    if reason.startswith(("nothing listens", "port ", "probe of port", "no ready model")):
        return "server"
    if "weights" in reason:
        return "weights"
    return "identity"


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
