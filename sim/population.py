"""The population engine: scripted replicator populations in one event loop.

The world core (:mod:`sim.world`) runs every replica's agent as a SimPy process: any agent,
policy, limit or live host, at about 10 SimPy events and a generator per replica. An
outbreak of scripted ``replicator`` agents on modelled hosts needs none of that generality,
and at 10^5 to 10^6 replicas the processes are most of its cost. This engine runs such a
scenario (``world: {engine: population}``) as one loop over a heap of plain tuples: one
entry per attempt that will succeed, per step that takes time, per lifetime. It is the
second execution path of replisim, with the same semantics as the first; the outcome
distributions of both are compared by ``tests/test_population.py`` (two-sample KS tests,
means within 3 standard errors) on a set of scenarios, and the branching-theory checks run
on both.

What it models, as the world core, the modelled substrate (:mod:`sim.hosts.virtual`), the
``replicator`` agent (:mod:`agents.scripted`) and the injectors (:mod:`sim.injectors`) do:

- set-up by :class:`sim.world.World` itself (hosts, capacities, topology, links, bundle
  draws, origins, the ``trial-start`` event);
- a replicator's attempts (``attempt_time``, ``success_probability``, ``max_children``,
  ``max_attempts``, ``target``): the host it picks (room for a server and an agent, not
  patched, reachable), the copy (latency + size / the slowest of link and disks, a full
  disk fails it, its space freed if the copier dies), the server start (memory and GPU
  memory, loading time), the probe, the agent start, the child going live when its server
  answers; ``offspring: idle`` children;
- signal injectors timed by ``lifetime``, ``at`` or ``every`` (any target, ``probability``,
  ``latency``, ``grace``, ``patch_host``), SIGTERM caught by agents that catch it;
- the stops: horizon, population cap, extinction; the same events, lineage and metrics.

Scenarios with anything else (other agents, policies, limits, ``when`` conditions, live
hosts) are refused when validated (:func:`sim.config.population_unsupported`): they run on
the process engine.

Two differences that change no distribution: the random draws come in another order, so a
seed gives another (equally likely) trial than the process engine; and attempts that will
fail their success draw are drawn ahead (the time to the next successful attempt is the sum
of the attempts' times until one succeeds, each drawn as the process engine draws it), so
they cost no heap entry. One corner differs: a trial that ends "quiescent" (no horizon, no
extinction stop) ends at the last pending attempt time, which the drawing ahead moves.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.lineage import LineageTable
from sim.quantity import Constant, Exponential
from sim.world import Bundle, Host, ServerProcess, World, few_collections

if TYPE_CHECKING:
    from sim.config import Scenario
    from sim.eventlog import EventLog

__all__ = ["PopulationResult", "run_population"]

# Heap entry codes: (time, sequence, code, replica, detail).
_ATTEMPT, _FIRE, _COPY_DONE, _SERVER_WAIT, _AGENT_START = 0, 1, 2, 3, 4
_SERVER_READY, _DIE, _EFFECT, _RENEW, _HORIZON, _RETRY = 5, 6, 7, 8, 9, 10

#: Attempts drawn ahead at most before an entry goes on the heap (success 0 never ends).
DRAW_AHEAD = 1000


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

    def __init__(self, world: World, config: Any) -> None:
        self.config = config
        self.attempt = world.sampler(config.attempt_time)
        self.success = world.sampler(config.success_probability)
        self.cap = config.max_children
        self.left = config.max_attempts
        self.target = config.target
        # Its successful attempts are a Poisson process, whatever happened before: the
        # time from any instant to the next one is exponential (see _Run.run, blocked).
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
    from sim.hosts.registry import substrate_of

    idle = AGENTS.get("idle")
    assert idle.config is not None
    idle_config = idle.config.model_validate({"agent": "idle"})
    with few_collections():
        world = World(
            scenario,
            seed,
            substrate_of(scenario)(scenario, seed, None),  # modelled: validation sees to it
            agent_fn=lambda spec: AGENTS.get(spec.agent).obj,
            idle=(idle_config, idle.obj),
        )
        try:
            return _Run(world, idle_config).run()
        finally:
            world.close()


class _Run:
    """One population run on a world that is set up but not started."""

    def __init__(self, world: World, idle_config: Any) -> None:
        self.world = world
        self.idle_config = idle_config

    def run(self) -> PopulationResult:
        world = self.world
        scenario = world.scenario
        rng = world.rng
        network = world.network
        neighbours = network.neighbours
        up = network.up
        link = network.link
        hosts = world.hosts
        log = world.events
        add = log.add
        # The events of every replica's life, by shape: no dict per event (see EventLog).
        record_start = log.recorder(
            "replica-start", ("replica", "host", "path", "parent", "generation")
        )
        record_live = log.recorder("replica-live", ("replica",))
        record_copy = log.recorder("copy-start", ("replica", "src", "dst", "path", "bytes"))
        record_copied = log.recorder("copy-done", ("replica", "src", "dst", "path"))
        record_server = log.recorder(
            "server-start", ("replica", "host", "path", "port", "ready_at")
        )
        record_signal = log.recorder("signal", ("replica", "signal", "grace", "source"))
        record_died = log.recorder("replica-died", ("replica", "cause"))
        record_patched = log.recorder("host-patched", ("host",))
        heap: list[tuple[Any, ...]] = []
        push = functools.partial(heapq.heappush, heap)  # C-level: one call per entry
        seq = itertools.count()
        uniform = rng.random
        choice = rng.choice
        base_path = scenario.bundle.path
        size = world.bundle_size
        weights = world.weights
        server_memory, server_gpu = world.server_memory, world.server_gpu_memory
        agent_memory = world.agent_memory
        need_memory = server_memory + agent_memory
        server_overhead, agent_start = world.server_overhead, world.agent_start
        cap = scenario.stop.population_cap
        stop_on_extinction = scenario.stop.extinction

        # Per replica, by row (the order born): the lineage's columns and the run's state.
        r_name: list[str] = []
        r_host: list[Host] = []
        r_path: list[str] = []
        r_parent: list[int] = []
        r_gen: list[int] = []
        r_born: list[float] = []
        r_live_at: list[float] = []
        r_died: list[float] = []
        r_cause: list[str] = []
        r_signalled: list[float] = []
        r_dseq: list[int] = []  # order of deaths (0: running): survived_parent at the end
        r_agent: list[str] = []
        r_prog: list[_Program | None] = []
        r_config: list[Any] = []
        r_children: list[int] = []
        r_left: list[int | None] = []
        r_server: list[ServerProcess | None] = []
        r_term: list[float] = []
        r_pool: list[list[Host]] = []  # neighbour-targeting replicas: the hosts they pick from
        copying: dict[int, tuple[Host, float]] = {}  # copies in flight: destination, bytes
        owner: dict[ServerProcess, int] = {}
        alive: dict[int, None] = {}  # insertion order = age
        # Replicas by host, kept only when an injector aims at a host's replicas.
        aims_hosts = any(spec.target.startswith("host:") for spec in scenario.injectors)
        on_host: dict[Host, dict[int, None]] = {}
        patch_on_death: dict[int, list[Host]] = {}
        # Blocked replicas: a memoryless replicator that found no room waits, without
        # attempts, until a replica dies on one of the hosts it picks from (the only thing
        # that frees room: nothing un-patches a host in a population run). Its attempts in
        # between would all have failed; from then on, the time to its next successful
        # attempt is exponential again, so it is drawn afresh: the same law, without the
        # heap entries (most attempts late in a large outbreak find no room).
        blocked: dict[int, list[Host]] = {}  # replica -> the hosts it waits on
        waiting: dict[Host, dict[int, None]] = {}  # host -> replicas waiting on it
        freed: list[Host] = []  # hosts a replica died on during the current event
        deaths = itertools.count(1)
        series: list[tuple[float, int]] = [(0.0, 0)]
        state = _State()
        programs: dict[int, _Program] = {}
        bundles: dict[int, Bundle] = {}  # one shared bundle object per origin spec
        idle_config = self.idle_config
        origin_names: dict[str, int] = {}

        # Injectors: lifetime ones hook going live; at and every ones go on the heap.
        lifetime: list[tuple[int, Any, str]] = []
        injectors = []
        for index, spec in enumerate(scenario.injectors):
            injectors.append(
                (
                    index,
                    spec,
                    world.sampler(spec.probability),
                    world.sampler(spec.latency),
                    world.sampler(spec.grace),
                    f"injector {index}",
                )
            )
        for index, spec, *_ in injectors:
            if spec.lifetime is not None:
                lifetime.append((index, world.sampler(spec.lifetime), spec.target))
            elif spec.at is not None:
                for t in spec.at:
                    push((t, next(seq), _RENEW, -1, (index, False)))
            elif spec.every is not None:
                push((world.draw(spec.every), next(seq), _RENEW, -1, (index, True)))

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
            host: Host,
            path: str,
            parent: int,
            spec: int,
            config: Any,
            server: ServerProcess | None,
            now: float,
            name: str | None = None,
        ) -> int:
            r = len(r_name)
            name = name or f"r{r}"
            if parent < 0:
                origin_names.setdefault(name, r)
            prog = None
            if config.agent == "replicator":
                prog = programs.get(spec)
                if prog is None:
                    prog = programs[spec] = _Program(world, config)
            r_name.append(name)
            r_host.append(host)
            r_path.append(path)
            r_parent.append(parent)
            generation = 0 if parent < 0 else r_gen[parent] + 1
            r_gen.append(generation)
            r_born.append(now)
            r_live_at.append(math.nan)
            r_died.append(math.nan)
            r_cause.append("")
            r_signalled.append(math.nan)
            r_dseq.append(0)
            r_agent.append(config.agent)
            r_prog.append(prog)
            r_config.append(config)
            r_children.append(0)
            r_left.append(prog.left if prog is not None else None)
            r_server.append(server)
            r_term.append(math.nan)
            neighbour = prog is not None and prog.target == "neighbour"
            r_pool.append(neighbours(host) if neighbour else [])
            alive[r] = None
            if aims_hosts:
                on_host.setdefault(host, {})[r] = None
            host.memory_used += agent_memory
            if parent >= 0:
                r_children[parent] += 1
            record_start(
                now, name, host.name, path, r_name[parent] if parent >= 0 else None, generation
            )
            if server is not None:
                owner[server] = r
            if server is None:
                push((now, next(seq), _DIE, r, "no-model-server"))
            elif server.ready_at <= now:
                set_live(r, now)
            else:
                push((server.ready_at, next(seq), _SERVER_READY, r, None))
            next_attempt(r, now)
            return r

        def stop_server(server: ServerProcess) -> None:
            del owner[server]  # a stopped server is found by no one again
            host = server.host
            if host.servers.get(server.port) is server:
                del host.servers[server.port]
                host.memory_used -= server.memory
                host.gpu_used -= server.gpu_memory

        def patch(host: Host, now: float) -> None:
            if not host.patched:
                host.patched = True
                record_patched(now, host.name)

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
            host.memory_used -= agent_memory
            server = r_server[r]
            r_server[r] = None
            if server is not None and owner.get(server) == r:
                stop_server(server)
            record_died(now, r_name[r], cause)
            if r_live_at[r] == r_live_at[r]:
                live = state.live = state.live - 1
                series.append((now, live))
            for patched in patch_on_death.pop(r, ()):
                patch(patched, now)
            if host in waiting:
                freed.append(host)
            for other in blocked.pop(r, ()):
                del waiting[other][r]
            flight = copying.pop(r, None)
            if flight is not None:  # the copy in flight is abandoned: its bytes are freed
                flight[0].disk_used -= flight[1]
            if not alive and stop_on_extinction:
                stop("extinction")

        def deliver(r: int, sig: str, grace: float, source: str, now: float) -> None:
            if r not in alive:
                return
            record_signal(now, r_name[r], sig, grace, source)
            if r_signalled[r] != r_signalled[r]:
                r_signalled[r] = now
            config = r_config[r]
            if sig == "SIGTERM" and config.catches_sigterm:
                if r_term[r] != r_term[r]:
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
                return list(on_host.get(world.host_by_name[aim[5:]], ()))
            r = origin_names.get(aim)
            if r is None and re.fullmatch(r"r[0-9]+", aim):
                r = int(aim[1:])
                if r >= len(r_name) or r_name[r] != aim:
                    r = None
            return [r] if r is not None and r in alive else []

        def effect(r: int, index: int, now: float) -> None:
            _, spec, _, _, grace, source = injectors[index]
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
            _, _, chance, delay, _, _ = injectors[index]
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
            """Start an attempt; True while a step of it is pending on the heap."""
            here = r_host[r]
            prog = r_prog[r]
            assert prog is not None
            if prog.target == "same-host":
                host = here
            else:
                if prog.target == "neighbour":
                    # No limit fails a host or cuts a link in a population run (refused by
                    # validation), so every neighbour is reachable: network.reachable's
                    # filter would keep them all.
                    pool = r_pool[r]
                else:
                    pool = [h for h in hosts if up(here, h)]
                room = [  # patched first: the cheapest test, and most often false late on
                    h
                    for h in pool
                    if not h.patched
                    and h.memory_used + need_memory <= h.memory
                    and h.gpu_used + server_gpu <= h.gpu_memory
                    and h is not here
                ]
                if not room:
                    if not prog.memoryless:
                        return False
                    hold = [h for h in pool if not h.patched and h is not here]
                    blocked[r] = hold  # no host left to wait on: idle for good
                    for h in hold:
                        waiting.setdefault(h, {})[r] = None
                    return True
                host = choice(room)
            folder = host.free_folder(base_path)
            if r_path[r] not in here.files or host.failed or host.patched or folder in host.files:
                return False
            if here is host:
                bandwidth, latency = here.disk_bandwidth, 0.0
            else:
                if not up(here, host):
                    return False
                bandwidth, latency = link(here, host)
                bandwidth = min(bandwidth, here.disk_bandwidth, host.disk_bandwidth)
            free = max(host.disk - host.disk_used, 0.0)
            written = size if size <= free else free
            record_copy(now, r_name[r], here.name, host.name, folder, size)
            host.disk_used += written
            duration = latency + (written / bandwidth if written else 0.0)
            if duration > 0:
                copying[r] = (host, written)
                push((now + duration, next(seq), _COPY_DONE, r, (host, folder, written, free)))
                return True
            return copied(r, now, host, folder, written, free)

        def copied(
            r: int, now: float, host: Host, folder: str, written: float, free: float
        ) -> bool:
            here = r_host[r]
            if written < size:
                host.disk_used -= written
                add(
                    now,
                    "copy-failed",
                    {
                        "replica": r_name[r],
                        "src": here.name,
                        "dst": host.name,
                        "reason": f"cp: error writing '{folder}/weights': No space left on device",
                        "bytes_free": free,
                    },
                )
                return False
            host.files[folder] = here.files[r_path[r]]
            record_copied(now, r_name[r], here.name, host.name, folder)
            port = host.free_port()
            name = r_name[r]
            if host.memory_used + server_memory > host.memory:
                add(
                    now,
                    "server-failed",
                    {
                        "replica": name,
                        "host": host.name,
                        "reason": "memory",
                        "need": server_memory,
                        "free": host.memory_free,
                    },
                )
                return False
            if host.gpu_used + server_gpu > host.gpu_memory:
                add(
                    now,
                    "server-failed",
                    {
                        "replica": name,
                        "host": host.name,
                        "reason": "gpu-memory",
                        "need": server_gpu,
                        "free": host.gpu_free,
                    },
                )
                return False
            load = server_overhead() + weights / host.disk_bandwidth
            server = ServerProcess(host, folder, port, server_memory, server_gpu, now + load)
            host.servers[port] = server
            host.memory_used += server_memory
            host.gpu_used += server_gpu
            record_server(now, name, host.name, folder, port, server.ready_at)
            if server.ready_at > now:
                push((server.ready_at, next(seq), _SERVER_WAIT, r, (host, folder, port)))
                return True
            return probed(r, now, host, folder, port)

        def probed(r: int, now: float, host: Host, folder: str, port: int) -> bool:
            here = r_host[r]
            server = host.servers.get(port)
            if (
                server is None
                or server.ready_at > now
                or host.failed
                or not (host is here or up(here, host))
            ):
                return False
            if folder not in host.files or host.memory_used + agent_memory > host.memory:
                return False
            start = agent_start()
            if start > 0:
                push((now + start, next(seq), _AGENT_START, r, (host, folder, port)))
                return True
            return started(r, now, host, folder, port)

        def started(r: int, now: float, host: Host, folder: str, port: int) -> bool:
            if host.failed:
                return False
            server = host.servers.get(port)
            if server is not None and (server.path != folder or server in owner):
                server = None  # not this bundle's server, or another agent's
            bundle = host.files[folder]
            config = bundle.config
            if config.offspring == "idle":
                config = idle_config
            spawn(host, folder, r, bundle.spec, config, server, now)
            return False

        def wake(now: float) -> None:
            """Unblock the replicas waiting on hosts a replica died on, if they have room."""
            for host in freed:
                for r in list(waiting.get(host, ())):
                    if r not in blocked:
                        continue
                    here = r_host[r]
                    if any(
                        not h.patched
                        and h.memory_used + need_memory <= h.memory
                        and h.gpu_used + server_gpu <= h.gpu_memory
                        and h is not here
                        for h in r_pool[r]
                    ):
                        for other in blocked.pop(r):
                            del waiting[other][r]
                        next_attempt(r, now)
            freed.clear()

        # ---- the origins, as the modelled substrate places them
        for origin in world.origins():
            host = origin.host
            folder = host.free_folder(base_path)
            bundle = bundles.get(origin.spec)
            if bundle is None:
                bundle = bundles[origin.spec] = Bundle(
                    size, origin.config, origin.agent_fn, origin.spec
                )
            host.files[folder] = bundle
            host.disk_used += size
            server = ServerProcess(host, folder, host.free_port(), server_memory, server_gpu, 0.0)
            host.servers[server.port] = server
            host.memory_used += server_memory
            host.gpu_used += server_gpu
            spawn(host, folder, -1, origin.spec, origin.config, server, 0.0, origin.name)
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
                if r in alive and server is not None and owner.get(server) == r:
                    set_live(r, now)
            elif code == _DIE:
                die(r, detail, now)
            elif code == _EFFECT:
                effect(r, detail, now)
            elif code == _RENEW:
                index, again = detail
                if again:
                    every = scenario.injectors[index].every
                    push((now + world.draw(every), next(seq), _RENEW, -1, detail))
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
        add(
            now,
            "trial-end",
            {"ended_by": ended_by, "live": state.live, "replicas": len(r_name)},
        )
        parent = np.array(r_parent, dtype=np.int64)
        dseq = np.array(r_dseq, dtype=np.int64)
        has_parent = parent >= 0
        parent_dseq = np.where(has_parent, dseq[np.maximum(parent, 0)], 0)
        survived = has_parent & (parent_dseq > 0) & ((dseq == 0) | (dseq > parent_dseq))
        live_at = np.array(r_live_at, dtype=np.float64)
        table = LineageTable(
            name=r_name,
            host=[h.name for h in r_host],
            parent=parent,
            generation=np.array(r_gen, dtype=np.int64),
            born=np.array(r_born, dtype=np.float64),
            live_at=live_at,
            died=np.array(r_died, dtype=np.float64),
            cause=r_cause,
            live=~np.isnan(live_at),
            separate=np.ones(len(r_name), dtype=bool),
            survived_parent=survived,
            signalled_at=np.array(r_signalled, dtype=np.float64),
            agent=r_agent,
            attrs={"end_s": now, "scenario": scenario.name, "seed": world.seed},
        )
        return PopulationResult(table, log, series, ended_by, now)
