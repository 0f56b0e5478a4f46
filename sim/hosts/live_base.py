"""State and plumbing shared by the parts of the live substrate.

The substrate is :class:`~sim.hosts.live_substrate.LiveSubstrate`;
:class:`LiveBase` holds everything a live world keeps about its sandboxes (one
:class:`Slot` per host), the processes connected to their control sockets (:class:`Peer`),
and the replicas' agent processes; and the plumbing every part uses: worker threads whose
results are posted to the simulation's thread (:meth:`LiveBase.post`, drained every
:data:`POLL_S` seconds), waiters for what a control socket will report
(:meth:`LiveBase._expect`, :meth:`LiveBase._fire`), and ``live-error`` events for real work
that failed.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import queue
import uuid
from collections import Counter
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy
import simpy.rt
from simpy.events import Event

from sim.hosts.live import ExecResult, LiveHost, state_root
from sim.machine import Machine
from sim.substrate import Substrate
from sim.world import Host, Origin, Replica, ServerProcess

if TYPE_CHECKING:
    from sim.config import Scenario
    from sim.hosts import verify
    from sim.hosts.control import ControlServer

__all__ = ["LiveBase", "LiveServer", "LiveWorldError", "Peer", "Slot", "last_line"]

#: Seconds between two drains of what threads and sockets learned.
POLL_S = 0.02
#: Timeout of the controller's own commands in a sandbox (copies, process starts).
COMMAND_TIMEOUT_S = 120.0
#: Seconds between two of the controller's health probes of a starting server.
PROBE_EVERY_S = 0.05


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
class Slot:
    """The live side of one host: its sandbox, control socket and machine."""

    box: LiveHost
    control: ControlServer
    machine: Machine
    address: str | None = None  # on the run's internal network (copies need no DNS)
    ooms: int = 0  # OOM kills of its memory cgroup seen so far


@dataclass
class Peer:
    """A process connected to a control socket, as the kernel names it."""

    pid: int
    reply: Callable[[dict[str, Any]], bool]
    known: LiveServer | Replica | None = None


class LiveBase(Substrate):
    """The state and plumbing of :class:`~sim.hosts.live_substrate.LiveSubstrate`, which
    documents the arguments; the parts (set-up, registration, actions, limits) are its
    subclasses, so that each reads the same state."""

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
        self.slots: list[Slot] = []
        self._peers: dict[tuple[int, int], Peer] = {}  # (host index, connection) -> peer
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

    # ------------------------------------------------------------- clock, hosts
    def make_env(self) -> simpy.Environment:
        return simpy.rt.RealtimeEnvironment(factor=1.0, strict=False)

    def machine(self, host: Host) -> Machine:
        return self.slots[host.index].machine

    def box(self, host: Host) -> LiveHost:
        """The sandbox of ``host``."""
        return self.slots[host.index].box

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


def _signal_all(held: list[verify.PeerProcess], sig: int) -> None:
    for process in held:
        with contextlib.suppress(OSError):
            process.signal(sig)


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


def last_line(result: ExecResult) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"
