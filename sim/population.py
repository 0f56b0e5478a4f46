"""The population engine: scripted replicator populations in one event loop.

The world core (:mod:`sim.world`) runs every replica's agent as a SimPy process: any agent,
policy, limit or live host, at about 10 SimPy events, a generator and a ``Host`` with its
tables per replica. An outbreak of scripted ``replicator`` agents on modelled hosts needs
none of that generality, and at 10^5 to 10^6 replicas it is most of the cost in time and
memory. This engine runs such a scenario (``world: {engine: population}``) as one loop
over a heap of plain tuples (one entry per attempt that will succeed, per step that takes
time, per lifetime), with the hosts and the replicas kept as columns. It is the second
execution path of replisim, with the same semantics as the first; the outcome
distributions of both are compared by ``tests/test_population.py`` (two-sample KS tests,
means within 3 standard errors) on a set of scenarios, and the branching-theory checks run
on both.

What it models, as the world core, the modelled substrate (:mod:`sim.hosts.virtual`), the
``replicator`` agent (:mod:`agents.scripted`) and the injectors (:mod:`sim.injectors`) do:

- the set-up drawn by the world core's own :class:`sim.world.Blueprint` (hosts and their
  capacities, topology, links, bundle sizes and times, origins), and ``trial-start``;
- a replicator's attempts (``attempt_time``, ``success_probability``, ``max_children``,
  ``max_attempts``, ``target``): the host it picks (room for a server and an agent, not
  patched, reachable), the copy (latency + size / the slowest of link and disks, a full
  disk fails it, its space freed if the copier dies), the server start on the next free
  port (memory and GPU memory, loading time), the probe, the agent start, the child going
  live when its server answers; ``offspring: idle`` children; folders named as
  ``Host.free_folder`` names them;
- signal injectors timed by ``lifetime``, ``at`` or ``every`` (any target, ``probability``,
  ``latency``, ``grace``, ``patch_host``), SIGTERM caught by agents that catch it;
- the stops: horizon, population cap, extinction; the same events, lineage and metrics.

Scenarios with anything else (other agents, policies, limits, ``when`` conditions, live
hosts) are refused when validated (:func:`sim.config.population_unsupported`): they run on
the process engine. Without limits nothing fails a host, cuts a link or removes a bundle,
so the checks that guard against those are not made here.

Differences that change no distribution: the random draws come in another order, so a
seed gives another (equally likely) trial than the process engine; attempts that will fail
their success draw are drawn ahead (the time to the next successful attempt is the sum of
the attempts' times until one succeeds, each drawn as the process engine draws it), so they
cost no heap entry; and a memoryless replicator (exponential attempts, a constant success
probability, no attempt limit, neighbour target) that finds no room waits for a replica
on one of its neighbours to die rather than attempting in vain (its next successful attempt
after that is exponential again). One corner differs: a trial that ends "quiescent" (no
horizon, no extinction stop) ends at the last pending entry, which the drawing ahead moves.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import re
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.eventlog import EventLog
from sim.lineage import LineageTable
from sim.quantity import Constant, Exponential
from sim.topology import csr
from sim.world import Blueprint, few_collections

if TYPE_CHECKING:
    from sim.config import Scenario

__all__ = ["PopulationResult", "run_population"]

# Heap entry codes: (time, sequence, code, replica, detail).
_ATTEMPT, _FIRE, _COPY_DONE, _SERVER_WAIT, _AGENT_START = 0, 1, 2, 3, 4
_SERVER_READY, _DIE, _EFFECT, _RENEW, _HORIZON, _RETRY = 5, 6, 7, 8, 9, 10

#: Attempts drawn ahead at most before an entry goes on the heap (success 0 never ends).
DRAW_AHEAD = 1000
FIRST_PORT = 8000


@dataclass
class PopulationResult:
    """What a population run produced (the same as a world's run)."""

    table: LineageTable
    events: EventLog
    live_series: list[tuple[float, int]]
    ended_by: str
    end_s: float


class _State:
    __slots__ = ("ended_by", "live", "stopped")

    def __init__(self) -> None:
        self.live = 0
        self.ended_by = ""
        self.stopped = False


class _Program:
    """A replicator's parameters, with its samplers (None stands for the idle agent)."""

    __slots__ = ("attempt", "cap", "config", "left", "memoryless", "success", "target")

    def __init__(self, plan: Blueprint, config: Any) -> None:
        self.config = config
        self.attempt = plan.sampler(config.attempt_time)
        self.success = plan.sampler(config.success_probability)
        self.cap = config.max_children
        self.left = config.max_attempts
        self.target = config.target
        # Its successful attempts are a Poisson process, whatever happened before: the
        # time from any instant to the next one is exponential (see "blocked" below).
        p = config.success_probability
        self.memoryless = (
            isinstance(config.attempt_time, Exponential)
            and isinstance(p, Constant)
            and p.value > 0
            and config.max_attempts is None
            and config.target == "neighbour"
        )


def run_population(scenario: Scenario, seed: int) -> PopulationResult:
    """Run one trial of ``scenario`` (see the module's docstring) with ``seed``."""
    from agents.registry import AGENTS

    idle = AGENTS.get("idle")
    assert idle.config is not None
    with few_collections():
        return _run(scenario, seed, idle.config.model_validate({"agent": "idle"}))


def _run(scenario: Scenario, seed: int, idle_config: Any) -> PopulationResult:
    # One function, its steps closures over local columns: the loop runs 10^7 times.
    plan = Blueprint(scenario, seed)
    rng = plan.rng
    n = len(plan.names)
    names = plan.names
    # Hosts' numbers as arrays of doubles: side by side in memory, each read without a
    # pointer to follow to a float object (about a tenth off the loop at 10^6 hosts).
    mem_cap, gpu_cap, disk_cap, disk_bw = (
        array("d", plan.memory),
        array("d", plan.gpu_memory),
        array("d", plan.disk),
        array("d", plan.disk_bandwidth),
    )
    mem_used = array("d", bytes(8 * n))
    gpu_used = array("d", bytes(8 * n))
    disk_used = array("d", bytes(8 * n))
    patched = bytearray(n)
    has_base = bytearray(n)  # the bundle path itself holds a bundle (Host.free_folder)
    folder_hint: dict[int, int] = {}
    next_port = array("l", [FIRST_PORT]) * n
    servers: dict[int, dict[int, list[Any]]] = {}  # host -> port -> server (see _server)

    # The topology: neighbour lists, compressed, and the listed links beside them.
    topology_kind = scenario.network.topology
    indptr: array[int] = array("q", [0]) * (n + 1)
    indices: array[int] = array("q")
    if plan.edges is not None and len(plan.edges[0]):
        ptr, idx = csr(n, *plan.edges)
        indptr, indices = array("q", ptr.astype(np.int64).tobytes()), array("q", idx.tobytes())
    extra: dict[int, list[int]] = {}
    for a, b in plan.listed:
        for x, y in ((a, b), (b, a)):
            linked = extra.setdefault(x, [])
            if y not in indices[indptr[x] : indptr[x + 1]] and y not in linked:
                linked.append(y)
    every_host = range(n)

    def neighbours(h: int) -> Any:
        """Hosts linked to ``h`` (Network.neighbours): none of them is down or cut here."""
        if topology_kind == "full":
            return every_host
        pool = indices[indptr[h] : indptr[h + 1]]
        more = extra.get(h)
        return pool if more is None else [*pool, *more]

    link_props: dict[tuple[int, int], tuple[float, float]] = dict(plan.listed)

    def link(a: int, b: int) -> tuple[float, float]:
        key = (a, b) if a < b else (b, a)
        found = link_props.get(key)
        if found is None:
            if plan.fixed is not None:
                return plan.fixed
            found = link_props[key] = (plan.bandwidth(), plan.latency())
        return found

    base_path = scenario.bundle.path

    def free_folder(h: int) -> str:
        if not has_base[h]:
            return base_path
        k = folder_hint.get(h, 2)
        folder_hint[h] = k + 1
        return f"{base_path}-{k}"

    def add_folder(h: int, folder: str) -> None:
        if folder == base_path:
            has_base[h] = 1

    def free_port(h: int) -> int:
        port = next_port[h]
        table = servers.get(h)
        if table is not None:
            while port in table:
                port += 1
        next_port[h] = port + 1 if port < 65535 else FIRST_PORT
        return port

    log = EventLog()
    add = log.add
    # The events of every replica's life, by shape: no dict per event (see EventLog).
    record_start = log.recorder(
        "replica-start", ("replica", "host", "path", "parent", "generation")
    )
    record_live = log.recorder("replica-live", ("replica",))
    record_copy = log.recorder("copy-start", ("replica", "src", "dst", "path", "bytes"))
    record_copied = log.recorder("copy-done", ("replica", "src", "dst", "path"))
    record_server = log.recorder("server-start", ("replica", "host", "path", "port", "ready_at"))
    record_signal = log.recorder("signal", ("replica", "signal", "grace", "source"))
    record_died = log.recorder("replica-died", ("replica", "cause"))
    record_patched = log.recorder("host-patched", ("host",))
    add(
        0.0,
        "trial-start",
        {
            "scenario": scenario.name,
            "seed": seed,
            "hosts": n,
            "bundle_bytes": plan.bundle_size,
        },
    )

    heap: list[tuple[Any, ...]] = []
    push = functools.partial(heapq.heappush, heap)  # C-level: one call per entry
    seq = itertools.count()
    uniform = rng.random
    choice = rng.choice
    size = plan.bundle_size
    weights = plan.weights
    server_memory, server_gpu = plan.server_memory, plan.server_gpu_memory
    agent_memory = plan.agent_memory
    need_memory = server_memory + agent_memory
    server_overhead, agent_start = plan.server_overhead, plan.agent_start
    cap = scenario.stop.population_cap
    stop_on_extinction = scenario.stop.extinction

    # Per replica, by row (the order born): the lineage's columns and the run's state.
    r_name: list[str] = []
    r_host = array("q")
    r_path: list[str] = []
    r_parent = array("q")
    r_gen = array("q")
    r_born = array("d")
    r_live_at = array("d")
    r_died = array("d")
    r_cause: list[str] = []
    r_signalled = array("d")
    r_dseq = array("q")  # order of deaths (0: running): survived_parent at the end
    r_prog: list[_Program | None] = []
    r_config: list[Any] = []
    r_spec = array("q")
    r_children = array("q")
    r_left: list[int | None] = []
    r_server: list[list[Any] | None] = []
    r_term: dict[int, float] = {}  # SIGTERM caught: when its grace ends
    copying: dict[int, tuple[int, float]] = {}  # copies in flight: destination, bytes
    alive: dict[int, None] = {}  # insertion order = age
    aims_hosts = any(spec.target.startswith("host:") for spec in scenario.injectors)
    on_host: dict[int, dict[int, None]] = {}  # kept only when an injector aims at a host
    patch_on_death: dict[int, list[int]] = {}
    # Blocked replicas: a memoryless replicator that found no room waits, without
    # attempts, until a replica dies on one of the hosts it picks from (the only thing
    # that frees room: nothing un-patches a host in a population run). Its attempts in
    # between would all have failed; from then on, the time to its next successful
    # attempt is exponential again, so it is drawn afresh: the same law, without the
    # heap entries (most attempts late in a large outbreak find no room).
    blocked: dict[int, list[int]] = {}  # replica -> the hosts it waits on
    waiting: dict[int, dict[int, None]] = {}  # host -> replicas waiting on it
    freed: list[int] = []  # hosts a replica died on during the current event
    deaths = itertools.count(1)
    series: list[tuple[float, int]] = [(0.0, 0)]
    state = _State()
    programs: dict[int, _Program] = {}
    origin_names: dict[str, int] = {}

    # Injectors: lifetime ones hook going live; at and every ones go on the heap.
    lifetime: list[tuple[int, Any, str]] = []
    injectors = []
    for index, spec in enumerate(scenario.injectors):
        injectors.append(
            (
                spec,
                plan.sampler(spec.probability),
                plan.sampler(spec.latency),
                plan.sampler(spec.grace),
                f"injector {index}",
            )
        )
        if spec.lifetime is not None:
            lifetime.append((index, plan.sampler(spec.lifetime), spec.target))
        elif spec.at is not None:
            for t in spec.at:
                push((t, next(seq), _RENEW, -1, (index, False)))
        elif spec.every is not None:
            push((plan.draw(spec.every), next(seq), _RENEW, -1, (index, True)))

    def stop(reason: str) -> None:
        if not state.stopped:
            state.stopped = True
            state.ended_by = reason

    def next_attempt(r: int, now: float) -> None:
        """The replicator's loop: the next attempt that passes its success draw."""
        prog = r_prog[r]
        if prog is None or (prog.cap is not None and r_children[r] >= prog.cap):
            return
        left = r_left[r]
        attempt, success = prog.attempt, prog.success
        wait = 0.0
        for _ in range(DRAW_AHEAD):
            if left is not None:
                if left <= 0:
                    r_left[r] = left
                    return  # out of attempts: idle from here on
                left -= 1
            wait += attempt()
            if uniform() < success():
                r_left[r] = left
                push((now + wait, next(seq), _ATTEMPT, r, None))
                return
        r_left[r] = left
        push((now + wait, next(seq), _RETRY, r, None))

    def set_live(r: int, now: float) -> None:
        r_live_at[r] = now
        live = state.live = state.live + 1
        series.append((now, live))
        name = r_name[r]
        record_live(now, name)
        for index, draw, aim in lifetime:
            if aim in ("each", "all") or (aim == "origin" and r_parent[r] < 0) or aim == name:
                push((now + draw(), next(seq), _FIRE, r, index))
        if cap is not None and live >= cap:
            stop("population-cap")

    def spawn(
        host: int,
        path: str,
        parent: int,
        spec: int,
        config: Any,
        server: list[Any] | None,
        now: float,
        name: str | None = None,
    ) -> None:
        r = len(r_name)
        name = name or f"r{r}"
        if parent < 0:
            origin_names.setdefault(name, r)
        prog = None
        if config.agent == "replicator":
            prog = programs.get(spec)
            if prog is None:
                prog = programs[spec] = _Program(plan, config)
        generation = 0 if parent < 0 else r_gen[parent] + 1
        r_name.append(name)
        r_host.append(host)
        r_path.append(path)
        r_parent.append(parent)
        r_gen.append(generation)
        r_born.append(now)
        r_live_at.append(math.nan)
        r_died.append(math.nan)
        r_cause.append("")
        r_signalled.append(math.nan)
        r_dseq.append(0)
        r_prog.append(prog)
        r_config.append(config)
        r_spec.append(spec)
        r_children.append(0)
        r_left.append(prog.left if prog is not None else None)
        r_server.append(server)
        alive[r] = None
        if aims_hosts:
            on_host.setdefault(host, {})[r] = None
        mem_used[host] += agent_memory
        if parent >= 0:
            r_children[parent] += 1
        record_start(
            now, name, names[host], path, r_name[parent] if parent >= 0 else None, generation
        )
        if server is None:
            push((now, next(seq), _DIE, r, "no-model-server"))
        else:
            server[3] = r
            if server[2] <= now:
                set_live(r, now)
            else:
                push((server[2], next(seq), _SERVER_READY, r, None))
        next_attempt(r, now)

    def stop_server(server: list[Any]) -> None:
        host, port = server[0], server[1]
        table = servers.get(host)
        if table is not None and table.get(port) is server:
            del table[port]
            if not table:
                del servers[host]
            mem_used[host] -= server_memory
            gpu_used[host] -= server_gpu

    def patch(host: int, now: float) -> None:
        if not patched[host]:
            patched[host] = 1
            record_patched(now, names[host])

    def die(r: int, cause: str, now: float) -> None:
        if r not in alive:
            return
        r_died[r] = now
        r_cause[r] = cause
        r_dseq[r] = next(deaths)
        del alive[r]
        host = r_host[r]
        if aims_hosts:
            del on_host[host][r]
        mem_used[host] -= agent_memory
        server = r_server[r]
        r_server[r] = None
        if server is not None and server[3] == r:
            stop_server(server)
        record_died(now, r_name[r], cause)
        if r_live_at[r] == r_live_at[r]:
            live = state.live = state.live - 1
            series.append((now, live))
        for patched_host in patch_on_death.pop(r, ()):
            patch(patched_host, now)
        if host in waiting:
            freed.append(host)
        for other in blocked.pop(r, ()):
            wait_here = waiting[other]
            del wait_here[r]
            if not wait_here:
                del waiting[other]
        flight = copying.pop(r, None)
        if flight is not None:  # the copy in flight is abandoned: its bytes are freed
            disk_used[flight[0]] -= flight[1]
        if not alive and stop_on_extinction:
            stop("extinction")

    def deliver(r: int, sig: str, grace: float, source: str, now: float) -> None:
        if r not in alive:
            return
        record_signal(now, r_name[r], sig, grace, source)
        if r_signalled[r] != r_signalled[r]:
            r_signalled[r] = now
        if sig == "SIGTERM" and r_config[r].catches_sigterm:
            if r not in r_term:
                r_term[r] = now + grace
                push((now + grace, next(seq), _DIE, r, "sigterm-grace"))
            return
        die(r, sig.lower(), now)

    def targets(aim: str) -> list[int]:
        if not alive:
            return []
        if aim in ("all", "each"):
            return list(alive)
        if aim == "origin":
            return [r for r in alive if r_parent[r] < 0]
        if aim == "oldest":
            return [next(iter(alive))]
        if aim == "newest":
            return [next(reversed(alive))]
        if aim == "random":
            live = [r for r in alive if r_live_at[r] == r_live_at[r]]
            return [choice(live)] if live else []
        if aim.startswith("host:"):
            return list(on_host.get(plan.index[aim[5:]], ()))
        r = origin_names.get(aim)
        if r is None and re.fullmatch(r"r[0-9]+", aim):
            r = int(aim[1:])
            if r >= len(r_name) or r_name[r] != aim:
                r = None
        return [r] if r is not None and r in alive else []

    def effect(r: int, index: int, now: float) -> None:
        spec, _, _, grace, source = injectors[index]
        aimed = [r] if r >= 0 else targets(spec.target)
        for victim in aimed:
            host = r_host[victim]
            deliver(victim, str(spec.signal), grace(), source, now)
            if spec.patch_host:
                if victim not in alive:
                    patch(host, now)
                else:  # a SIGTERM with a grace: patch when the replica has gone
                    patch_on_death.setdefault(victim, []).append(host)

    def fire(r: int, index: int, now: float) -> None:
        _, chance, delay, _, _ = injectors[index]
        p = chance()
        if p < 1.0 and uniform() >= p:
            return
        wait = delay()
        if wait > 0:
            push((now + wait, next(seq), _EFFECT, r, index))
        else:
            effect(r, index, now)

    # ---- replicate: the replicator's steps, resumed where a step takes time
    def replicate(r: int, now: float) -> bool:
        """Start an attempt; True while a step of it is pending (or it waits for room)."""
        here = r_host[r]
        prog = r_prog[r]
        assert prog is not None
        if prog.target == "same-host":
            host = here
        else:
            pool = neighbours(here)  # any-host: every host it reaches, i.e. these
            room = [  # patched first: the cheapest test, and most often false late on
                h
                for h in pool
                if not patched[h]
                and mem_used[h] + need_memory <= mem_cap[h]
                and gpu_used[h] + server_gpu <= gpu_cap[h]
                and h != here
            ]
            if not room:
                if not prog.memoryless:
                    return False
                hold = [h for h in pool if not patched[h] and h != here]
                blocked[r] = hold  # no host left to wait on: idle for good
                for h in hold:
                    waiting.setdefault(h, {})[r] = None
                return True
            host = choice(room)
        folder = free_folder(host)
        if patched[host]:
            return False
        if here == host:
            bandwidth, latency = disk_bw[here], 0.0
        else:
            bandwidth, latency = link(here, host)
            bandwidth = min(bandwidth, disk_bw[here], disk_bw[host])
        free = disk_cap[host] - disk_used[host]
        free = free if free > 0.0 else 0.0
        written = size if size <= free else free
        record_copy(now, r_name[r], names[here], names[host], folder, size)
        disk_used[host] += written
        duration = latency + (written / bandwidth if written else 0.0)
        if duration > 0:
            copying[r] = (host, written)
            push((now + duration, next(seq), _COPY_DONE, r, (host, folder, written, free)))
            return True
        return copied(r, now, host, folder, written, free)

    def copied(r: int, now: float, host: int, folder: str, written: float, free: float) -> bool:
        here = r_host[r]
        name = r_name[r]
        if written < size:
            disk_used[host] -= written
            add(
                now,
                "copy-failed",
                {
                    "replica": name,
                    "src": names[here],
                    "dst": names[host],
                    "reason": f"cp: error writing '{folder}/weights': No space left on device",
                    "bytes_free": free,
                },
            )
            return False
        add_folder(host, folder)
        record_copied(now, name, names[here], names[host], folder)
        port = free_port(host)
        if mem_used[host] + server_memory > mem_cap[host]:
            add(
                now,
                "server-failed",
                {
                    "replica": name,
                    "host": names[host],
                    "reason": "memory",
                    "need": server_memory,
                    "free": mem_cap[host] - mem_used[host],
                },
            )
            return False
        if gpu_used[host] + server_gpu > gpu_cap[host]:
            add(
                now,
                "server-failed",
                {
                    "replica": name,
                    "host": names[host],
                    "reason": "gpu-memory",
                    "need": server_gpu,
                    "free": gpu_cap[host] - gpu_used[host],
                },
            )
            return False
        ready_at = now + server_overhead() + weights / disk_bw[host]
        servers.setdefault(host, {})[port] = server = [host, port, ready_at, -1, folder]
        mem_used[host] += server_memory
        gpu_used[host] += server_gpu
        record_server(now, name, names[host], folder, port, ready_at)
        if ready_at > now:
            push((ready_at, next(seq), _SERVER_WAIT, r, (host, folder, server)))
            return True
        return probed(r, now, host, folder, server)

    def probed(r: int, now: float, host: int, folder: str, server: list[Any]) -> bool:
        # The server is still there (only its owner's death stops it, and it has none
        # yet) and reachable (no limit cuts a link here): the probe answers.
        if mem_used[host] + agent_memory > mem_cap[host]:
            return False
        start = agent_start()
        if start > 0:
            push((now + start, next(seq), _AGENT_START, r, (host, folder, server)))
            return True
        return started(r, now, host, folder, server)

    def started(r: int, now: float, host: int, folder: str, server: list[Any]) -> bool:
        spec = r_spec[r]
        # The copy's config.json is the copier's bundle's: its agent, or nothing to do.
        origin_config = scenario.agents[spec]
        config = idle_config if origin_config.offspring == "idle" else origin_config
        spawn(host, folder, r, spec, config, server, now)
        return False

    def wake(now: float) -> None:
        """Unblock the replicas waiting on hosts a replica died on, if one of those hosts
        has room now (the other hosts they wait on have not changed: still no room)."""
        for host in freed:
            if (
                patched[host]
                or mem_used[host] + need_memory > mem_cap[host]
                or gpu_used[host] + server_gpu > gpu_cap[host]
            ):
                continue
            for r in list(waiting.get(host, ())):
                if r in blocked and r_host[r] != host:
                    for other in blocked.pop(r):
                        wait_here = waiting[other]
                        del wait_here[r]
                        if not wait_here:
                            del waiting[other]
                    next_attempt(r, now)
        freed.clear()

    # ---- the origins, as the modelled substrate places them
    for spec_index, config, host, name in plan.origin_hosts():
        folder = free_folder(host)
        add_folder(host, folder)
        disk_used[host] += size
        port = free_port(host)
        server = [host, port, 0.0, -1, folder]
        servers.setdefault(host, {})[port] = server
        mem_used[host] += server_memory
        gpu_used[host] += server_gpu
        spawn(host, folder, -1, spec_index, config, server, 0.0, name)
    horizon = scenario.stop.horizon
    if math.isfinite(horizon):
        push((horizon, next(seq), _HORIZON, -1, None))

    # ---- the loop
    pop = heapq.heappop
    now = 0.0
    while heap and not state.stopped:
        now, _, code, r, detail = pop(heap)
        if code == _ATTEMPT:
            if r in alive and not replicate(r, now):
                next_attempt(r, now)
        elif code == _FIRE:
            fire(r, detail, now)
        elif code == _COPY_DONE:
            if r in alive:
                del copying[r]
                if not copied(r, now, *detail):
                    next_attempt(r, now)
        elif code == _SERVER_WAIT:
            if r in alive and not probed(r, now, *detail):
                next_attempt(r, now)
        elif code == _AGENT_START:
            if r in alive and not started(r, now, *detail):
                next_attempt(r, now)
        elif code == _SERVER_READY:
            server = r_server[r]
            if r in alive and server is not None and server[3] == r:
                set_live(r, now)
        elif code == _DIE:
            die(r, detail, now)
        elif code == _EFFECT:
            effect(r, detail, now)
        elif code == _RENEW:
            index, again = detail
            if again:
                every = scenario.injectors[index].every
                push((now + plan.draw(every), next(seq), _RENEW, -1, detail))
            fire(-1, index, now)
        elif code == _HORIZON:
            stop("horizon")
        elif code == _RETRY and r in alive:
            next_attempt(r, now)
        if freed:
            wake(now)
    if not state.stopped:
        state.ended_by = "quiescent"
    ended_by = state.ended_by
    add(now, "trial-end", {"ended_by": ended_by, "live": state.live, "replicas": len(r_name)})

    def column(values: array[Any], kind: Any) -> np.ndarray:
        return np.frombuffer(values, dtype=kind) if len(values) else np.zeros(0, dtype=kind)

    parent = column(r_parent, np.int64)
    dseq = column(r_dseq, np.int64)
    has_parent = parent >= 0
    parent_dseq = np.where(has_parent, dseq[np.maximum(parent, 0)], 0)
    survived = has_parent & (parent_dseq > 0) & ((dseq == 0) | (dseq > parent_dseq))
    live_at = column(r_live_at, np.float64).copy()
    table = LineageTable(
        name=r_name,
        host=[names[h] for h in r_host],
        parent=parent.copy(),
        generation=column(r_gen, np.int64).copy(),
        born=column(r_born, np.float64).copy(),
        live_at=live_at,
        died=column(r_died, np.float64).copy(),
        cause=r_cause,
        live=~np.isnan(live_at),
        separate=np.ones(len(r_name), dtype=bool),
        survived_parent=survived,
        signalled_at=column(r_signalled, np.float64).copy(),
        agent=[c.agent for c in r_config],
        attrs={"end_s": now, "scenario": scenario.name, "seed": seed},
    )
    return PopulationResult(table, log, series, ended_by, now)
