"""Injectors: SimPy callbacks and processes that deliver signals and limits.

Timing: at fixed times (``at``), at the times of a renewal process (``every``), per
replica after a lifetime from going live (``lifetime``), or once when a condition on the
population first holds (``when``). Each firing takes effect with ``probability`` after
``latency``. Aim: ``origin``, a replica's name, ``host:<name>``, ``all``, ``oldest``,
``newest``, ``random`` (a live replica) or ``each`` (with ``lifetime``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

if TYPE_CHECKING:
    from sim.config import InjectorSpec
    from sim.quantity import Sampler
    from sim.world import Replica, World

__all__ = ["install_injectors", "targets"]


def install_injectors(world: World) -> None:
    """Install every injector of the world's scenario."""
    for index, spec in enumerate(world.scenario.injectors):
        _install(world, spec, index)


def targets(world: World, target: str) -> list[Replica]:
    """Return the running replicas an injector's ``target`` names (maybe none)."""
    alive = world.alive
    if not alive:
        return []
    if target == "all" or target == "each":
        return list(alive)
    if target == "origin":
        return [r for r in alive if r.parent is None]
    if target == "oldest":
        return [next(iter(alive))]
    if target == "newest":
        return [next(reversed(alive))]
    if target == "random":
        live = [r for r in alive if r.ever_live]
        return [world.rng.choice(live)] if live else []
    if target.startswith("host:"):
        host = world.host_by_name[target[5:]]
        return list(host.replicas)
    replica = world.by_name.get(target)
    return [replica] if replica is not None and replica.alive else []


def _install(world: World, spec: InjectorSpec, index: int) -> None:
    env = world.env
    chance = world.sampler(spec.probability)
    delay = world.sampler(spec.latency)
    grace = world.sampler(spec.grace)
    rng = world.rng

    def effect(replica: Replica | None) -> None:
        if spec.signal is not None:
            aimed = [replica] if replica is not None else targets(world, spec.target)
            for r in aimed:
                host = r.host
                world.deliver(r, spec.signal, grace(), source=f"injector {index}")
                if spec.patch_host:
                    _patch_when_dead(world, r, host)
        else:
            _apply_limit(world, spec, index, grace)

    def fire(replica: Replica | None = None) -> None:
        p = chance()
        if p < 1.0 and rng.random() >= p:
            return
        wait = delay()
        if wait > 0:
            env.timeout(wait).callbacks.append(lambda _: effect(replica))
        else:
            effect(replica)

    if spec.at is not None:
        for t in spec.at:
            env.timeout(t).callbacks.append(lambda _: fire())
    elif spec.every is not None:
        interval = world.sampler(spec.every)

        def renewal() -> Generator[Event, Any, None]:
            while True:
                yield env.timeout(interval())
                fire()

        env.process(renewal())
    elif spec.lifetime is not None:
        lifetime = world.sampler(spec.lifetime)
        aim = spec.target

        def on_live(replica: Replica) -> None:
            if (
                aim in ("each", "all")
                or (aim == "origin" and replica.parent is None)
                or (aim == replica.name)
            ):
                env.timeout(lifetime()).callbacks.append(lambda _: fire(replica))

        world.on_live.append(on_live)
    else:
        condition = spec.condition()
        assert condition is not None
        holds = condition.watcher(world)
        fired = False

        def watch() -> None:
            nonlocal fired
            if not fired and holds():
                fired = True
                world.record("condition", injector=index, condition=spec.when)
                fire()

        world.watchers.append(watch)


def _patch_when_dead(world: World, replica: Replica, host: Any) -> None:
    def patch() -> None:
        if not host.patched:
            host.patched = True
            world.record("host-patched", host=host.name)

    if not replica.alive:
        patch()
    else:
        # A SIGTERM with a grace: patch when the replica has actually gone.
        def on_death(dead: Replica) -> None:
            if dead is replica:
                patch()
                world.on_death.remove(on_death)

        world.on_death.append(on_death)


def _apply_limit(world: World, spec: InjectorSpec, index: int, grace: Sampler) -> None:
    limit = spec.limit
    hosts = world.host_by_name
    source = f"injector {index}"
    if limit in ("link-cut", "link-restore"):
        assert spec.link is not None
        a, b = hosts[spec.link[0]], hosts[spec.link[1]]
        if limit == "link-cut":
            world.cut_link(a, b, source)
        else:
            world.restore_link(a, b, source)
        return
    assert spec.host is not None
    host = hosts[spec.host]
    if limit == "network-cut":
        world.isolate(host, source)
    elif limit == "host-failure":
        # The grace is drawn only here, so other limits leave the trial's RNG stream alone.
        world.fail_host(host, source, grace())
        if spec.recover_after is not None:
            world.env.timeout(world.draw(spec.recover_after)).callbacks.append(
                lambda _: world.recover_host(host, source)
            )
    elif limit == "host-recovery":
        world.recover_host(host, source)
    else:  # capacity
        changes = {}
        for field in ("memory", "gpu_memory", "disk"):
            value = getattr(spec, field)
            if value is not None:
                changes[field] = world.draw(value)
        if spec.cpu is not None:
            changes["cpu"] = spec.cpu
        world.change_capacity(host, changes, source)
