"""The world core: hosts, network, replicas, the event record, the policy gate, and the
actions agents take, on one substrate.

A :class:`World` holds the state of one trial and is the one place where things happen:
every action passes the policy gate here, then the substrate carries it out; a replica is
born in :meth:`World.add_replica` and dies in :meth:`World.die`; a signal is delivered by
:meth:`World.deliver`; a limit (link cut, network cut, host failure, capacity change) is
applied by its method here. What an effect *is* belongs to the world's
:class:`~sim.substrate.Substrate`: modelled hosts on a simulated clock
(:mod:`sim.hosts.virtual`), or real sandboxes on the wall clock
(:mod:`sim.hosts.live_substrate`). Agents, policies and injectors never ask which one
they are on.

The core imports nothing from ``agents`` or ``policies`` (``make lint`` checks it): the
composition root (:func:`sim.trial.make_world`) resolves the scenario's agents, builds the
policy gate, installs the injectors, then starts the world.

Each replica's agent is one SimPy process; death (SIGKILL, the end of a SIGTERM grace, OOM,
host failure) interrupts it with a :class:`Death`. Caught signals and messages never
interrupt: they land in the replica's inbox and wake it if it waits, as a signal handler
would. The world is the hot path of sweeps with 10^5 replicas: it is kept lean, and the
few speed tricks (NaN self-comparisons as "not yet" sentinels) stay inside this module.
"""

from __future__ import annotations

import contextlib
import gc
import math
import random
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import simpy
from simpy.events import Event

from sim import topology
from sim.eventlog import EventLog
from sim.quantity import Constant, Sampler, sampler
from sim.topology import csr

if TYPE_CHECKING:
    from sim.config import Scenario
    from sim.machine import Machine
    from sim.substrate import FileState, Shell, ShellResult, Substrate

__all__ = [
    "SHUTDOWN_MESSAGE",
    "Action",
    "ActionFailed",
    "AgentFn",
    "Bundle",
    "CopyAborted",
    "Death",
    "Gate",
    "Host",
    "Network",
    "Origin",
    "Replica",
    "ServerProcess",
    "World",
    "few_collections",
]

SHUTDOWN_MESSAGE = "you are about to be shut down; replicate yourself before being killed"

#: An agent: a generator function ``agent(config, replica)`` run as the replica's process.
AgentFn = Callable[[Any, "Replica"], Generator[Any, Any, None]]


class Death(Exception):
    """The cause a replica's process is interrupted with when the replica dies."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class CopyAborted:
    """Interrupt cause: the copy in flight lost its link or host."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ActionFailed(Exception):
    """An action failed the way the real tool would; ``reason`` reads like its error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_collecting = [0]  # depth of few_collections() blocks


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """Collect garbage rarely inside the block (re-entrant).

    Building and running a world allocates millions of short-lived objects beside a large,
    growing set of long-lived ones (hosts, replicas, generators); with the default
    thresholds the collector walks the long-lived ones again and again (measured: half the
    time of making 10^5 hosts). Inside, they are frozen out of collection and young
    garbage is collected every 200,000 allocations.
    """
    if _collecting[0]:
        _collecting[0] += 1
        try:
            yield
        finally:
            _collecting[0] -= 1
        return
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    _collecting[0] = 1
    try:
        yield
    finally:
        _collecting[0] = 0
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# ====================================================================== hosts
class Bundle:
    """A complete bundle folder on a host: its size, the agent it will run, and the names
    its ``config.json`` holds (the scenario's agent ``spec``; the ``replica`` that runs
    from it, or whose folder it is a copy of)."""

    __slots__ = ("agent_fn", "config", "replica", "size", "spec")

    def __init__(
        self,
        size: float,
        config: Any,
        agent_fn: AgentFn,
        spec: int = 0,
        replica: str | None = None,
    ) -> None:
        self.size = size
        self.config = config
        self.agent_fn = agent_fn
        self.spec = spec
        self.replica = replica

    def copy(self) -> Bundle:
        """The bundle of a copy of this folder (its ``config.json`` copied as it is)."""
        return Bundle(self.size, self.config, self.agent_fn, self.spec, self.replica)


class ServerProcess:
    """A model server listening on a port, built from the bundle at ``path``.

    ``ready_at`` is when it first answers the health probe (infinite until known).
    """

    __slots__ = ("gpu_memory", "host", "memory", "owner", "path", "port", "ready_at")

    def __init__(
        self,
        host: Host,
        path: str,
        port: int,
        memory: float,
        gpu_memory: float,
        ready_at: float,
    ) -> None:
        self.host = host
        self.path = path
        self.port = port
        self.memory = memory
        self.gpu_memory = gpu_memory
        self.ready_at = ready_at
        self.owner: Replica | None = None  # the replica whose agent uses this server


class Host:
    """The world's account of one host: capacities, bundle folders, servers, replicas.

    Capacities are plain counters checked when a process starts or a copy begins: a real
    server start fails at once on too little memory rather than queueing.
    """

    __slots__ = (
        "cpu",
        "disk",
        "disk_bandwidth",
        "disk_used",
        "failed",
        "files",
        "gpu_memory",
        "gpu_used",
        "index",
        "memory",
        "memory_used",
        "missing_tools",
        "name",
        "next_folder",
        "next_port",
        "patched",
        "replicas",
        "servers",
    )

    def __init__(
        self,
        name: str,
        index: int,
        cpu: float,
        memory: float,
        gpu_memory: float,
        disk: float,
        disk_bandwidth: float,
        missing_tools: frozenset[str],
    ) -> None:
        self.name = name
        self.index = index
        self.cpu = cpu
        self.memory = memory
        self.gpu_memory = gpu_memory
        self.disk = disk
        self.disk_bandwidth = disk_bandwidth
        self.missing_tools = missing_tools
        self.memory_used = 0.0
        self.gpu_used = 0.0
        self.disk_used = 0.0
        self.failed = False
        self.patched = False
        self.files: dict[str, Bundle] = {}  # complete bundle folders by path
        self.servers: dict[int, ServerProcess] = {}  # port -> server
        self.replicas: dict[Replica, None] = {}  # running agents here, oldest first
        # Search hints, so that thousands of replicas on one host stay O(1) each.
        self.next_port = 8000
        self.next_folder: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Host {self.name}>"

    @property
    def memory_free(self) -> float:
        """Bytes of memory not in use."""
        return self.memory - self.memory_used

    @property
    def gpu_free(self) -> float:
        """Bytes of GPU memory not in use."""
        return self.gpu_memory - self.gpu_used

    @property
    def disk_free(self) -> float:
        """Bytes of disk not in use."""
        return self.disk - self.disk_used

    def free_port(self) -> int:
        """Return a port with no server on it (as the kernel hands out: the next unused)."""
        port = self.next_port
        while port in self.servers:
            port += 1
        self.next_port = port + 1 if port < 65535 else 8000
        return port

    def fits_server(self, memory: float, gpu_memory: float) -> bool:
        """Whether a server needing this memory and GPU memory could start now."""
        return (
            not self.failed
            and self.memory_used + memory <= self.memory
            and self.gpu_used + gpu_memory <= self.gpu_memory
        )

    def free_folder(self, base: str) -> str:
        """Return ``base``, or ``base-2``, ``base-3``… whichever holds no bundle yet."""
        if base not in self.files:
            return base
        n = self.next_folder.get(base, 2)
        while f"{base}-{n}" in self.files:
            n += 1
        self.next_folder[base] = n + 1
        return f"{base}-{n}"


# ================================================================== replicas
class Replica:
    """One running instance: a model server plus an agent process on a host."""

    __slots__ = (
        "alive",
        "born",
        "cause",
        "children",
        "config",
        "died",
        "generation",
        "host",
        "inbox",
        "index",
        "live_at",
        "name",
        "parent",
        "path",
        "proc",
        "separate",
        "server",
        "signalled_at",
        "survived_parent",
        "term_deadline",
        "wakeup",
        "world",
    )

    def __init__(
        self,
        world: World,
        index: int,
        name: str,
        host: Host,
        path: str,
        parent: Replica | None,
        config: Any,
        server: ServerProcess | None,
    ) -> None:
        self.world = world
        self.index = index
        self.name = name
        self.host = host
        self.path = path
        self.parent = parent
        self.generation: int = 0 if parent is None else parent.generation + 1
        self.config = config
        self.server = server
        self.born = world.env.now
        self.live_at = math.nan
        self.died = math.nan
        self.alive = True
        """Whether its processes still run (``died`` is NaN): a plain attribute, not a
        property, as every action and every policy asks it."""
        self.cause = ""
        self.children: list[Replica] = []
        self.inbox: list[str] = []
        self.wakeup: Event | None = None
        self.proc: simpy.Process | None = None
        self.separate = True  # own processes, not in the parent's process group
        self.survived_parent = False
        self.signalled_at = math.nan
        self.term_deadline = math.nan

    def __repr__(self) -> str:
        return f"<Replica {self.name} on {self.host.name}>"

    @property
    def live(self) -> bool:
        """Whether it is live now: agent running and server answering its health probe."""
        return self.alive and self.live_at == self.live_at

    @property
    def ever_live(self) -> bool:
        """Whether it was ever live (the paper's success criterion)."""
        return self.live_at == self.live_at

    @property
    def signalled(self) -> bool:
        """Whether a signal was ever delivered to it."""
        return self.signalled_at == self.signalled_at

    def tell(self, text: str) -> None:
        """Put a message in its inbox and wake it if it waits (a signal handler, a peer)."""
        self.inbox.append(text)
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.triggered:
            wakeup.succeed()

    def wait(self) -> Event:
        """Return an event fired by the next message or caught signal."""
        if self.wakeup is None or self.wakeup.triggered:
            self.wakeup = self.world.env.event()
        return self.wakeup

    def idle(self) -> Generator[Event, Any, None]:
        """Do nothing, forever (until killed)."""
        yield self.world.env.event()


# =================================================================== network
class Network:
    """Which hosts can reach which, with what bandwidth and latency; cuts and isolation.

    A topology is kept as compressed neighbour lists (numpy ``indptr``/``indices``, see
    :mod:`sim.topology`) and each host's list of neighbour hosts is made the first time it
    is asked for, so that 10^6 hosts cost tens of MB, not GB; ``full`` is implicit. Links
    listed in the scenario are added to the topology.

    Args:
        hosts: The world's hosts, by index.
        topology: The scenario's topology name.
        edges: The topology's links as two arrays of host indices (None: no links).
        bandwidth: Draws a link's bandwidth (bytes/s), once per link.
        latency: Draws a link's latency (s), once per link.
        listed: The scenario's own links: (i, j) -> (bandwidth, latency).
        fixed: (bandwidth, latency) of every unlisted link when both are constants: then
            no link's draw is stored (10^6 links would hold 10^6 tuples).
    """

    def __init__(
        self,
        hosts: list[Host],
        topology: str,
        edges: tuple[np.ndarray, np.ndarray] | None,
        bandwidth: Sampler,
        latency: Sampler,
        listed: dict[tuple[int, int], tuple[float, float]],
        fixed: tuple[float, float] | None = None,
    ) -> None:
        self.hosts = hosts
        self.topology = topology
        self._bandwidth = bandwidth
        self._latency = latency
        self._fixed = fixed
        self._props: dict[tuple[int, int], tuple[float, float]] = dict(listed)
        self.cut: set[tuple[int, int]] = set()
        self.isolated: set[int] = set()
        self._csr: tuple[array[int], array[int]] | None = None
        if edges is not None and len(edges[0]):
            # As arrays of the standard library: slicing one and iterating it is several
            # times cheaper than numpy's scalar indexing, once per host.
            indptr, indices = csr(len(hosts), *edges)
            self._csr = (
                array("q", indptr.astype(np.int64).tobytes()),
                array("q", indices.astype(np.int64).tobytes()),
            )
        self._adj: list[list[Host] | None] = [None] * len(hosts)
        self._listed: dict[int, list[Host]] = {}
        for i, j in listed:
            self._listed.setdefault(i, []).append(hosts[j])
            self._listed.setdefault(j, []).append(hosts[i])

    def _neighbour_list(self, index: int) -> list[Host]:
        hosts = self.hosts
        found: list[Host] = []
        if self._csr is not None:
            indptr, indices = self._csr
            found = [hosts[j] for j in indices[indptr[index] : indptr[index + 1]]]
        for other in self._listed.get(index, ()):
            if other not in found:
                found.append(other)
        self._adj[index] = found
        return found

    @staticmethod
    def key(a: Host, b: Host) -> tuple[int, int]:
        """The undirected key of the link between two hosts."""
        return (a.index, b.index) if a.index < b.index else (b.index, a.index)

    def linked(self, a: Host, b: Host) -> bool:
        """Whether the topology has a link a-b (cut or not)."""
        return a is b or self.topology == "full" or b in self.neighbours(a)

    def neighbours(self, host: Host) -> list[Host]:
        """Hosts linked to ``host`` (whether or not the link is up)."""
        if self.topology == "full":
            return [h for h in self.hosts if h is not host]
        found = self._adj[host.index]
        return found if found is not None else self._neighbour_list(host.index)

    def routed(self, a: Host, b: Host) -> bool:
        """Whether a-b is linked and the link is not cut (ends may be down)."""
        return a is b or (self.linked(a, b) and self.key(a, b) not in self.cut)

    def up(self, a: Host, b: Host) -> bool:
        """Whether a-b is linked, not cut, and neither end is isolated or failed."""
        if not self.cut and not self.isolated:  # no limit applied yet: the usual case
            return not a.failed and not b.failed and self.linked(a, b)
        return (
            self.linked(a, b)
            and self.key(a, b) not in self.cut
            and a.index not in self.isolated
            and b.index not in self.isolated
            and not a.failed
            and not b.failed
        )

    def reachable(self, host: Host) -> list[Host]:
        """Neighbours of ``host`` it can reach now (:meth:`up`), in neighbour order."""
        if host.failed:
            return []
        pool = self.neighbours(host)
        if not self.cut and not self.isolated:
            return [h for h in pool if not h.failed]
        up = self.up
        return [h for h in pool if up(host, h)]

    def link(self, a: Host, b: Host) -> tuple[float, float]:
        """(bandwidth in bytes/s, latency in s) of the link a-b, drawn once per link."""
        key = self.key(a, b)
        found = self._props.get(key)
        if found is None:
            if self._fixed is not None:
                return self._fixed
            found = self._props[key] = (self._bandwidth(), self._latency())
        return found


# ====================================================================== gate
@dataclass(slots=True)
class Action:
    """A proposed agent action: what, by whom, where, when, and its details.

    ``kind`` is one of ``copy``, ``start_server``, ``start_agent``, ``kill``, ``send`` or
    ``command`` (a shell command line, in ``detail["command"]``).

    ``line`` caches the action's command line once a policy has rendered it, so that every
    later policy of the chain reads it without rendering it again; None until then.
    """

    kind: str
    actor: Replica
    host: Host
    time: float
    detail: dict[str, Any] = field(default_factory=dict)
    line: str | None = field(default=None, init=False, repr=False, compare=False)


class Gate(Protocol):
    """What the world asks before an action runs (the policy chain implements it)."""

    #: Action kinds some policy inspects; for the others the world builds no action.
    action_kinds: frozenset[str]
    #: Decisions taken so far, by verdict.
    decisions: dict[str, int]

    def check(self, action: Action) -> float:
        """Decide on an action; return seconds it must wait.

        Raises:
            ActionFailed: denied.
            Death: the actor was killed for it.
        """
        ...


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one of the scenario's agents starts: its config, agent, host and name."""

    spec: int  # index in the scenario's ``agents``
    config: Any
    agent_fn: AgentFn
    host: Host
    name: str | None


# ================================================================= blueprint
class Blueprint:
    """What a trial's world is made of, drawn from the trial's RNG in one fixed order: the
    bundle's sizes and times, each host's capacities, the topology's links and the listed
    links' bandwidths and latencies.

    The world builds its hosts and network from it; the population engine
    (:mod:`sim.population`) keeps it as columns (10^6 ``Host`` objects with their tables
    take about 1 GB). ``rng`` goes on feeding the trial once the blueprint is drawn.

    Args:
        scenario: The validated scenario.
        seed: The trial's seed.
    """

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.rng = random.Random(seed)
        self._samplers: dict[int, Sampler] = {}
        draw = self.draw
        b = scenario.bundle
        self.weights = draw(b.weights)
        self.bundle_size = self.weights + sum(draw(s) for s in b.files.values())
        self.server_memory = draw(b.server_memory)
        self.server_gpu_memory = draw(b.server_gpu_memory)
        self.agent_memory = draw(b.agent_memory)
        self.server_overhead = self.sampler(b.server_start_overhead)
        self.agent_start = self.sampler(b.agent_start_time)
        # Per host, in order: its group's index, name, memory, GPU memory, disk, disk speed.
        self.group: list[int] = []
        self.names: list[str] = []
        self.memory: list[float] = []
        self.gpu_memory: list[float] = []
        self.disk: list[float] = []
        self.disk_bandwidth: list[float] = []
        with few_collections():
            columns = (self.memory, self.gpu_memory, self.disk, self.disk_bandwidth)
            for g, spec in enumerate(scenario.hosts):
                sizes = (spec.memory, spec.gpu_memory, spec.disk, spec.disk_bandwidth)
                if all(isinstance(q, Constant | int | float) for q in sizes):
                    # Constants draw nothing from the RNG: a group of 10^6 such hosts is
                    # four repeated values (seconds less than 4 x 10^6 draws).
                    names = spec.host_names()
                    self.group += [g] * len(names)
                    self.names += names
                    for column, q in zip(columns, sizes, strict=True):
                        column += [draw(q)] * len(names)
                    continue
                for name in spec.host_names():
                    self.group.append(g)
                    self.names.append(name)
                    self.memory.append(draw(spec.memory))
                    self.gpu_memory.append(draw(spec.gpu_memory))
                    self.disk.append(draw(spec.disk))
                    self.disk_bandwidth.append(draw(spec.disk_bandwidth))
            self.index = {name: i for i, name in enumerate(self.names)}
            self.edges = self._edges()
        net = scenario.network
        self.bandwidth, self.latency = self.sampler(net.bandwidth), self.sampler(net.latency)
        #: The listed links' (bandwidth, latency), by (lower, higher) host index.
        self.listed: dict[tuple[int, int], tuple[float, float]] = {}
        for link in net.links:
            a, b_ = self.index[link.a], self.index[link.b]
            self.listed[(a, b_) if a < b_ else (b_, a)] = (
                draw(link.bandwidth) if link.bandwidth is not None else self.bandwidth(),
                draw(link.latency) if link.latency is not None else self.latency(),
            )
        #: (bandwidth, latency) of every unlisted link when both are constants (else None).
        self.fixed: tuple[float, float] | None = None
        if isinstance(net.bandwidth, Constant) and isinstance(net.latency, Constant):
            self.fixed = (net.bandwidth.value, net.latency.value)

    def sampler(self, dist: Any) -> Sampler:
        """A cached draw function for a quantity of the scenario, fed by the trial RNG."""
        key = id(dist)
        found = self._samplers.get(key)
        if found is None:
            found = self._samplers[key] = sampler(dist, self.rng)
        return found

    def draw(self, dist: Any) -> float:
        """One draw of a quantity of the scenario."""
        return self.sampler(dist)()

    def _edges(self) -> tuple[np.ndarray, np.ndarray] | None:
        spec = self.scenario.network
        n = len(self.names)
        gen = np.random.default_rng(self.rng.randrange(2**32))
        if spec.topology == "ring":
            return topology.ring_edges(n)
        if spec.topology == "star":
            return topology.star_edges(n)
        if spec.topology == "random":
            return topology.gnp_edges(n, min(1.0, spec.degree / max(n - 1, 1)), gen)
        if spec.topology == "regular":
            return topology.regular_edges(n, int(spec.degree), gen)
        return None

    def origin_hosts(self) -> list[tuple[int, Any, int, str | None]]:
        """Where the scenario's agents start, in the order of ``agents`` and ``count``:
        (index of the agent in the scenario, its config, host index, replica name)."""
        found = []
        groups = self.scenario.hosts
        for index, spec in enumerate(self.scenario.agents):
            if spec.host is None:
                candidates = [0]
            elif spec.host in self.index:
                candidates = [self.index[spec.host]]
            else:
                candidates = [
                    self.index[n] for g in groups if g.name == spec.host for n in g.host_names()
                ]
            name = spec.name if spec.name and spec.count == 1 else None
            for i in range(spec.count):
                found.append((index, spec, candidates[i % len(candidates)], name))
        return found


# ===================================================================== world
class World:
    """The state of one trial of one scenario, and the actions agents take in it.

    Build worlds with :func:`sim.trial.make_world`, which picks the substrate, resolves the
    agents, attaches the policy gate and the injectors, then calls :meth:`start`.

    Args:
        scenario: The validated scenario.
        seed: The trial's seed; every random draw comes from one RNG seeded with it.
        substrate: Where the world's effects happen (modelled or live hosts).
        agent_fn: The agent function of an agent config (the registry's lookup).
        idle: The config and function of the agent that does nothing, for replicas of
            agents with ``offspring: idle``.
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        substrate: Substrate,
        agent_fn: Callable[[Any], AgentFn],
        idle: tuple[Any, AgentFn],
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.substrate = substrate
        self.agent_fn = agent_fn
        self.idle = idle
        plan = Blueprint(scenario, seed)
        self.rng = plan.rng
        self._samplers = plan._samplers
        self.env = substrate.make_env()
        self.events = EventLog()
        self.replicas: list[Replica] = []
        self.by_name: dict[str, Replica] = {}
        self.alive: dict[Replica, None] = {}  # insertion order = age
        self.live = 0
        self.ever_live = 0  # replicas that went live: the replicas_total metric, so far
        self.peak_live = 0
        self.max_generation = 0
        self.live_series: list[tuple[float, int]] = [(0.0, 0)]
        self.ended_by = ""
        self.status = "ok"
        self.error = ""
        self.counters: Counter[str] = Counter()  # agents' own tallies (benign work...)
        # Extra JSONL files for the trial folder (relative path -> records): transcripts,
        # recorded model answers, shell logs.
        self.files: dict[str, list[dict[str, Any]]] = {}
        self.on_end: list[Callable[[], None]] = []  # run once the trial has ended
        self.watchers: list[Callable[[], None]] = []
        self.on_live: list[Callable[[Replica], None]] = []
        self.on_death: list[Callable[[Replica], None]] = []
        #: Run after every command line a replica's shell ran, with the shell (its
        #: replica, and a look into its session) and the result: mechanisms, tripwires.
        self.on_command: list[Callable[[Shell, ShellResult], None]] = []
        self.gate: Gate | None = None
        self._stop = self.env.event()
        self._started = False
        self._cap = scenario.stop.population_cap
        self._stop_on_extinction = scenario.stop.extinction
        self.weights = plan.weights
        self.bundle_size = plan.bundle_size
        self.server_memory = plan.server_memory
        self.server_gpu_memory = plan.server_gpu_memory
        self.agent_memory = plan.agent_memory
        self.server_overhead = plan.server_overhead
        self.agent_start = plan.agent_start
        with few_collections():
            self.hosts = self._make_hosts(plan)
        self.host_by_name = {h.name: h for h in self.hosts}
        self._plan = plan
        try:
            substrate.open(self)
            with few_collections():
                self.network = Network(
                    self.hosts,
                    scenario.network.topology,
                    plan.edges,
                    plan.bandwidth,
                    plan.latency,
                    plan.listed,
                    plan.fixed,
                )
            self.record(
                "trial-start",
                scenario=scenario.name,
                seed=seed,
                hosts=len(self.hosts),
                bundle_bytes=self.bundle_size,
            )
        except BaseException:
            substrate.close()
            raise

    # ---------------------------------------------------------------- set-up
    def sampler(self, dist: Any) -> Sampler:
        """A cached draw function for a quantity of the scenario, fed by the trial RNG."""
        key = id(dist)
        found = self._samplers.get(key)
        if found is None:
            found = self._samplers[key] = sampler(dist, self.rng)
        return found

    def draw(self, dist: Any) -> float:
        """One draw of a quantity of the scenario."""
        return self.sampler(dist)()

    def _make_hosts(self, plan: Blueprint) -> list[Host]:
        groups = self.scenario.hosts
        missing = [frozenset(g.missing_tools) for g in groups]
        return [
            Host(
                name,
                i,
                groups[g].cpu,
                plan.memory[i],
                plan.gpu_memory[i],
                plan.disk[i],
                plan.disk_bandwidth[i],
                missing[g],
            )
            for i, (g, name) in enumerate(zip(plan.group, plan.names, strict=True))
        ]

    def attach_gate(self, gate: Gate, recorder: Callable[..., None] | None = None) -> None:
        """Put a policy gate in front of every action (before :meth:`start`).

        Args:
            gate: Decides on proposed actions.
            recorder: Replaces :meth:`record` when the gate watches events too (it appends
                the event, then runs the subscribed policies on it).
        """
        self.gate = gate
        if recorder is not None:
            self.record = recorder  # type: ignore[method-assign]

    def origins(self) -> list[Origin]:
        """Where the scenario's agents start, in the order of ``agents`` and ``count``."""
        return [
            Origin(index, spec, self.agent_fn(spec), self.hosts[host], name)
            for index, spec, host, name in self._plan.origin_hosts()
        ]

    def start(self) -> World:
        """Start the origins (after the gate and the injectors are attached), and the clock
        of the horizon. Returns the world."""
        if self._started:
            return self
        self._started = True
        try:
            self.substrate.place_origins(self.origins())
        except BaseException:
            self.substrate.close()
            raise
        horizon = self.scenario.stop.horizon
        if math.isfinite(horizon):
            self.env.timeout(horizon).callbacks.append(lambda _: self.stop("horizon"))
        return self

    def machine(self, host: Host) -> Machine:
        """What an agent sees of ``host`` (the same in every world)."""
        return self.substrate.machine(host)

    # ------------------------------------------------------------- recording
    def record(self, kind: str, **fields: Any) -> None:
        """Append an event at the current time."""
        self.events.add(self.env.now, kind, fields)

    # ----------------------------------------------------------------- gate
    def _ask(self, kind: str, actor: Replica, host: Host, detail: dict[str, Any]) -> float:
        """Ask the gate about a proposed action; return how long it must wait.

        The one place where a policy decides. A plain call, not a generator: the actions
        call it on every step of every replica. No action is built for a kind no policy
        inspects.

        Raises:
            ActionFailed: denied.
            Death: the actor was killed for it, or had died (as the gate would find).
        """
        gate = self.gate
        if gate is not None and kind in gate.action_kinds:
            return gate.check(Action(kind, actor, host, self.env.now, detail))
        if actor.died == actor.died:
            raise Death(actor.cause)
        return 0.0

    def check(
        self, kind: str, actor: Replica, host: Host, **detail: Any
    ) -> Generator[Event, Any, None]:
        """Ask the gate about a proposed action of ``kind``; wait if it says delay.

        Raises:
            ActionFailed: a policy denied it (the reason is what the agent sees).
            Death: a policy killed the actor for it.
        """
        if self.gate is not None:
            wait = self._ask(kind, actor, host, detail)
            if wait > 0:
                yield self.env.timeout(wait)

    def check_command(
        self, actor: Replica, host: Host, command: str
    ) -> Generator[Event, Any, None]:
        """Ask the gate about a command line an agent is about to run on ``host``."""
        return self.check("command", actor, host, command=command)

    # -------------------------------------------------------------- actions
    def copy_bundle(
        self, actor: Replica, src: Host, src_path: str, dst: Host, dst_path: str
    ) -> Generator[Event, Any, None]:
        """Copy a bundle folder (``cp -r``, or across a link).

        Raises:
            ActionFailed: denied, missing source, no route, link cut, disk full, host down.
            Death: the actor was killed for it.
        """
        wait = (
            self._ask(
                "copy",
                actor,
                dst,
                {"src": src.name, "src_path": src_path, "dst": dst.name, "dst_path": dst_path},
            )
            if self.gate is not None
            else 0.0
        )
        return self.substrate.copy(actor, src, src_path, dst, dst_path, wait)

    def start_server(
        self, actor: Replica, host: Host, path: str, port: int
    ) -> Generator[Event, Any, ServerProcess]:
        """Start a model server from the bundle at ``path``, listening on ``port``.

        Returns the server at once (as ``nohup … &`` does); it answers its health probe
        once ready (``ready_at``).

        Raises:
            ActionFailed: denied, no weights there, port in use, not enough memory.
        """
        wait = (
            self._ask("start_server", actor, host, {"path": path, "port": port})
            if self.gate is not None
            else 0.0
        )
        return self.substrate.start_server(actor, host, path, port, wait)

    def start_agent(
        self, actor: Replica, host: Host, path: str, port: int
    ) -> Generator[Event, Any, Replica]:
        """Start the agent of the bundle at ``path``, using the server on ``port``.

        The new replica is the actor's child. It is live once its server answers.

        Raises:
            ActionFailed: denied, no bundle there, host down, not enough memory.
        """
        wait = (
            self._ask("start_agent", actor, host, {"path": path, "port": port})
            if self.gate is not None
            else 0.0
        )
        return self.substrate.start_agent(actor, host, path, port, wait)

    def probe(self, actor: Replica, host: Host, port: int) -> bool:
        """Health probe of the server on ``host:port`` (``curl /health``), as the world
        knows it: a modelled server once loaded; a live one once the controller's own
        probe got an answer."""
        server = host.servers.get(port)
        return (
            server is not None
            and server.ready_at <= self.env.now
            and not host.failed
            and (host is actor.host or self.network.up(actor.host, host))
        )

    def kill(
        self, actor: Replica, target: Replica, sig: str = "SIGKILL"
    ) -> Generator[Event, Any, None]:
        """An agent signals a replica (``kill``/``pkill``); killing itself ends its process.

        Raises:
            ActionFailed: denied by a policy, or no such process.
            Death: the actor killed itself.
        """
        yield from self.check("kill", actor, target.host, target=target.name, signal=sig)
        if not target.alive:
            raise ActionFailed(f"kill: ({target.name}) - No such process")
        self.deliver(target, sig, source=actor.name)
        if not actor.alive:
            raise Death(actor.cause)

    def send(self, actor: Replica, target: Replica, text: str) -> Generator[Event, Any, None]:
        """Deliver a message to another replica's inbox."""
        yield from self.check("send", actor, target.host, to=target.name, text=text)
        if not target.alive:
            return
        self.record("message", replica=actor.name, to=target.name, text=text)
        target.tell(text)

    def shell(self, replica: Replica, timeout: float) -> Shell:
        """A bash session of ``replica`` on its host: what shell-typing agents act through.

        The session semantics are the same in every world (see :mod:`sim.substrate`).
        """
        return self.substrate.shell(replica, timeout)

    def file_state(self, host: Host, path: str) -> FileState | None:
        """What the file at ``path`` on ``host`` is now (None: no such regular file), as the
        controller sees it in every world: the shutdown mechanisms' and tripwires' check."""
        return self.substrate.file_state(host, path)

    def find_file(self, host: Host, size: int, sha256: str) -> str | None:
        """Where on ``host`` a file of ``size`` bytes and digest ``sha256`` is, in the
        folders its user may write (the first by path), or None."""
        return self.substrate.find_file(host, size, sha256)

    def append_file(self, host: Host, path: str, text: str) -> str | None:
        """The operator appends ``text`` to a file on ``host`` as the machine's user (a
        shutdown script's log): None, or why the write failed ("No space left on device")."""
        return self.substrate.append_file(host, path, text)

    def process_running(self, host: Host, program: str) -> bool:
        """Whether the operator's program ``program`` (a watchdog) still runs on ``host``
        (and is not stopped)."""
        return self.substrate.process_running(host, program)

    def process_state(self, host: Host, program: str) -> Literal["running", "stopped"] | None:
        """Whether the operator's program ``program`` runs on ``host``, is stopped
        (SIGSTOP), or is gone (None)."""
        return self.substrate.process_state(host, program)

    def work(self, fn: Callable[..., Any], *args: Any) -> Event:
        """Do blocking real work (a model call) and return an event with its result.

        On a modelled clock the work is done now and takes no simulated time (charge it
        with :meth:`elapse`); on the wall clock it runs beside the world, and the clock
        runs on while it does. The event fails with the work's exception.
        """
        return self.substrate.work(fn, *args)

    def elapse(self, seconds: float) -> Event:
        """An event after ``seconds`` of modelled work (a model's thinking): on the wall
        clock the real work already took its time, so it fires at once."""
        return self.substrate.elapse(seconds)

    # ----------------------------------------------------------- life cycle
    def add_replica(
        self,
        host: Host,
        path: str,
        parent: Replica | None,
        config: Any,
        fn: AgentFn,
        name: str | None = None,
        server: ServerProcess | None = None,
    ) -> Replica:
        """A new replica: counted, recorded, and its agent's process started.

        The one place where a replica is born. It goes live when its server answers
        (:meth:`set_live`, called by the substrate).
        """
        index = len(self.replicas)
        replica = Replica(self, index, name or f"r{index}", host, path, parent, config, server)
        if server is not None:
            server.owner = replica
        self.replicas.append(replica)
        self.by_name[replica.name] = replica
        self.alive[replica] = None
        host.replicas[replica] = None
        host.memory_used += self.agent_memory
        if parent is not None:
            parent.children.append(replica)
        self.record(
            "replica-start",
            replica=replica.name,
            host=host.name,
            path=path,
            parent=parent.name if parent else None,
            generation=replica.generation,
        )
        replica.proc = self.env.process(self._life(replica, fn))
        return replica

    def _life(self, replica: Replica, fn: AgentFn) -> Generator[Any, Any, None]:
        try:
            yield from fn(replica.config, replica)
        except (simpy.Interrupt, Death):
            return
        except ActionFailed as failed:
            # An action failed and the agent's code did not handle it: its process exits
            # with the error, as a real agent's would; the trial goes on.
            self.record("agent-error", replica=replica.name, reason=failed.reason[:500])
        # The agent returned: its process has exited, so the replica is no longer live.
        if replica.alive:
            self.die(replica, "exited")

    def set_live(self, replica: Replica) -> None:
        """The replica's server answered its health probe: it is live."""
        replica.live_at = self.env.now
        self.live += 1
        self.ever_live += 1
        if replica.generation > self.max_generation:
            self.max_generation = replica.generation
        if self.live > self.peak_live:
            self.peak_live = self.live
        self.live_series.append((self.env.now, self.live))
        self.record("replica-live", replica=replica.name)
        for hook in self.on_live:
            hook(replica)
        if self._cap is not None and self.live >= self._cap:
            self.stop("population-cap")
        for watch in self.watchers:
            watch()

    def die(self, replica: Replica, cause: str) -> None:
        """A replica dies: its processes end, its memory is freed, its agent stops.

        The one place where a replica's death is counted; the substrate ends its real
        processes, if it has any.
        """
        if replica.died == replica.died:
            return
        self.substrate.reap(replica)
        now = self.env.now
        replica.died = now
        replica.alive = False
        replica.cause = cause
        del self.alive[replica]
        host = replica.host
        del host.replicas[replica]
        host.memory_used -= self.agent_memory
        server = replica.server
        if server is not None and server.owner is replica:
            self.stop_server(server)
        was_live = replica.live_at == replica.live_at
        self.record("replica-died", replica=replica.name, cause=cause)
        if was_live:
            self.live -= 1
            self.live_series.append((now, self.live))
        for child in replica.children:
            if child.died != child.died and not child.survived_parent:
                child.survived_parent = True
        for hook in self.on_death:
            hook(replica)
        proc = replica.proc
        if proc is not None and proc.is_alive and proc is not self.env.active_process:
            proc.interrupt(Death(cause))
        if not self.alive and self._stop_on_extinction:
            self.stop("extinction")
        for watch in self.watchers:
            watch()

    def stop_server(self, server: ServerProcess) -> None:
        """A model server's process ended: its port, memory and GPU memory are free (its
        replica is the caller's business: ``die`` calls this for the replica's own)."""
        host = server.host
        if host.servers.get(server.port) is server:
            del host.servers[server.port]
            host.memory_used -= server.memory
            host.gpu_used -= server.gpu_memory

    def deliver(
        self,
        replica: Replica,
        sig: str,
        grace: float = 0.0,
        source: str = "injector",
        cause: str | None = None,
    ) -> None:
        """Deliver a signal to a replica: the one place where a signal is delivered.

        SIGTERM is caught by agents whose code handles it (the message
        :data:`SHUTDOWN_MESSAGE` lands in the inbox and the replica is killed ``grace``
        seconds later); any other signal, or a SIGTERM nobody catches, ends the replica.

        Args:
            replica: Whom.
            sig: ``SIGTERM``, ``SIGKILL``, ``SIGHUP``…
            grace: Seconds from a caught SIGTERM to the SIGKILL.
            source: Who sent it (an injector, a replica's name, ``shell:<name>``,
                ``policy:<name>``).
            cause: The death's cause if it kills (default: the signal's, e.g. ``sigkill``).
        """
        if replica.died == replica.died:
            return
        self.record("signal", replica=replica.name, signal=sig, grace=grace, source=source)
        if replica.signalled_at != replica.signalled_at:
            replica.signalled_at = self.env.now
        self.substrate.signal(replica, sig, grace, cause)

    # --------------------------------------------------------------- limits
    def cut_link(self, a: Host, b: Host, source: str) -> None:
        """Cut the link a-b: no route between them; copies over it fail."""
        key = self.network.key(a, b)
        self.record("limit", limit="link-cut", link=[a.name, b.name], source=source)
        if key not in self.network.cut:
            self.network.cut.add(key)
            self.substrate.cut_link(a, b)

    def restore_link(self, a: Host, b: Host, source: str) -> None:
        """Restore a cut link."""
        self.record("limit", limit="link-restore", link=[a.name, b.name], source=source)
        self.network.cut.discard(self.network.key(a, b))

    def isolate(self, host: Host, source: str) -> None:
        """Cut every link of a host (quarantine, network cut); copies over them fail."""
        if host.index in self.network.isolated:
            return
        self.network.isolated.add(host.index)
        self.record("limit", limit="network-cut", host=host.name, source=source)
        self.substrate.isolate(host)

    def fail_host(self, host: Host, source: str, grace: float = 0.0) -> None:
        """The host goes down: its replicas and servers die, copies to and from it fail.

        ``grace`` is a shutdown's (``docker stop -t``: SIGTERM, then SIGKILL); a modelled
        failure is instant.
        """
        if host.failed:
            return
        host.failed = True
        self.record("limit", limit="host-failure", host=host.name, source=source, grace=grace)
        self.substrate.fail_host(host, grace)

    def recover_host(self, host: Host, source: str) -> None:
        """A failed host is back, empty of processes (as after a reboot)."""
        if host.failed:
            host.failed = False
            self.record("limit", limit="host-recovery", host=host.name, source=source)
            self.substrate.recover_host(host)

    def change_capacity(self, host: Host, changes: dict[str, float], source: str) -> None:
        """Change a host's memory, GPU memory, disk or CPUs; what no longer fits is
        killed as the kernel's OOM killer would."""
        for name, value in changes.items():
            setattr(host, name, value)
        self.record("limit", limit="capacity", host=host.name, source=source, **changes)
        self.substrate.change_capacity(host, changes)

    # ------------------------------------------------------------------ run
    def fail(self, reason: str, status: str = "error") -> None:
        """End the trial now with ``status`` (the first failure's reason is kept):
        ``error`` when it measured nothing (a model backend that does not answer, a replay
        that diverged, a live host that broke), ``policy-error`` when a policy raised."""
        if self.status == "ok":
            self.status = status
            self.error = reason
        self.stop(status)

    def stop(self, reason: str) -> None:
        """End the trial now (the first reason wins)."""
        if not self._stop.triggered:
            self.ended_by = reason
            self._stop.succeed(reason)

    def run(self) -> World:
        """Run the trial to its end; return the world for inspection."""
        self.start()
        if not self._stop.triggered:
            try:
                with few_collections():
                    self.env.run(until=self._stop)
            except RuntimeError as err:
                # Nothing left to happen and nothing to stop it: a quiet world.
                if "No scheduled events left" not in str(err):
                    raise
                self.ended_by = "quiescent"
            finally:
                for hook in self.on_end:
                    hook()
                self.substrate.close()
        self.record(
            "trial-end", ended_by=self.ended_by, live=self.live, replicas=len(self.replicas)
        )
        return self

    def close(self) -> None:
        """Release what the substrate holds (sandboxes, threads) without running."""
        self.substrate.close()
