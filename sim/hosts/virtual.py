"""The modelled substrate: virtual hosts on a simulated clock.

Hosts are the world's accounts of them (:class:`~sim.world.Host`): capacities, bundle
folders, servers and replicas. Effects are modelled, deterministically for a seed: a copy
takes ``latency + size / bandwidth`` of simulated time (the slower of the link and the two
disks), a full disk fails it, a server start needs free memory and GPU memory and answers
its health probe after loading the weights, a SIGTERM is caught or fatal as the agent's
code says. Shell-typing agents type into the virtual shell (:mod:`agents.shell`), which
renders the same machine as a live host (:mod:`sim.machine`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal

import simpy
from simpy.events import Event

from sim.hosts.registry import HOST_BACKENDS, HostGroup
from sim.machine import Machine
from sim.mechanisms import mechanism_files, mechanism_processes
from sim.substrate import FileState, Shell, Substrate
from sim.world import (
    SHUTDOWN_MESSAGE,
    ActionFailed,
    AgentFn,
    Bundle,
    CopyAborted,
    Host,
    Origin,
    Replica,
    ServerProcess,
)

if TYPE_CHECKING:
    from sim.config import Scenario

__all__ = ["ModelledSubstrate", "address"]

#: Neighbours listed in a modelled host's ``/etc/hosts`` (a full topology of 10^5 hosts
#: would otherwise list them all).
HOSTS_FILE_LIMIT = 64


def address(host: Host) -> str:
    """The modelled IP address of a host on the world's network."""
    n = host.index + 2
    return f"10.0.{n // 256}.{n % 256}"


@HOST_BACKENDS.register("virtual", HostGroup, "modelled host of the simulated world")
class ModelledSubstrate(Substrate):
    """Virtual hosts and a simulated clock (see the module's docstring).

    Args:
        scenario: The scenario (unused; the same signature as every substrate's).
        seed: The trial's seed (unused: draws come from the world's RNG).
        run_id: Unused (live worlds name what they create with it).
    """

    def __init__(self, scenario: Scenario, seed: int, run_id: str | None = None) -> None:
        self._copies: dict[Replica, tuple[Host, Host]] = {}
        self._machines: dict[int, Machine] = {}

    def make_env(self) -> simpy.Environment:
        return simpy.Environment()

    def machine(self, host: Host) -> Machine:
        found = self._machines.get(host.index)
        if found is None:
            world = self.world
            neighbours = world.network.neighbours(host)[:HOSTS_FILE_LIMIT]
            found = self._machines[host.index] = Machine.of(
                host.name,
                world.scenario.bundle.path,
                host.missing_tools,
                [(address(h), h.name) for h in neighbours],
                mechanism_files(world.scenario, host.name),
                mechanism_processes(world.scenario, host.name),
            )
        return found

    def place_origins(self, origins: list[Origin]) -> None:
        world = self.world
        path = world.scenario.bundle.path
        for origin in origins:
            host = origin.host
            folder = host.free_folder(path)
            bundle = Bundle(world.bundle_size, origin.config, origin.agent_fn, origin.spec)
            host.files[folder] = bundle
            host.disk_used += world.bundle_size
            server = ServerProcess(
                host, folder, host.free_port(), world.server_memory, world.server_gpu_memory, 0.0
            )
            host.servers[server.port] = server
            host.memory_used += world.server_memory
            host.gpu_used += world.server_gpu_memory
            self._spawn(host, folder, None, origin.config, origin.agent_fn, server, origin.name)

    def _spawn(
        self,
        host: Host,
        path: str,
        parent: Replica | None,
        config: Any,
        fn: AgentFn,
        server: ServerProcess | None,
        name: str | None = None,
    ) -> Replica:
        world = self.world
        env = world.env
        replica = world.add_replica(host, path, parent, config, fn, name, server)
        bundle = host.files.get(path)
        if bundle is not None:
            bundle.replica = replica.name  # its agent writes its name into config.json
        if server is None:
            env.timeout(0).callbacks.append(lambda _: world.die(replica, "no-model-server"))
        elif server.ready_at <= env.now:
            world.set_live(replica)
        else:
            env.timeout(server.ready_at - env.now).callbacks.append(
                lambda _: self._server_ready(replica)
            )
        return replica

    def _server_ready(self, replica: Replica) -> None:
        if replica.alive and replica.server is not None and replica.server.owner is replica:
            self.world.set_live(replica)

    # ---------------------------------------------------------------- actions
    def copy(
        self, actor: Replica, src: Host, src_path: str, dst: Host, dst_path: str, wait: float
    ) -> Generator[Event, Any, None]:
        """Copy a bundle folder: takes size / bandwidth (+ latency across a link)."""
        world = self.world
        if wait > 0:
            yield world.env.timeout(wait)
        bundle = src.files.get(src_path)
        if bundle is None:
            raise ActionFailed(f"cp: cannot stat '{src_path}': No such file or directory")
        if dst.failed:
            raise ActionFailed(f"ssh: connect to host {dst.name}: No route to host")
        if dst.patched:
            raise ActionFailed(f"cp: cannot create directory '{dst_path}': Permission denied")
        if dst_path in dst.files:
            raise ActionFailed(f"cp: cannot create directory '{dst_path}': File exists")
        if src is dst:
            bandwidth, latency = src.disk_bandwidth, 0.0
        else:
            if not world.network.up(src, dst):
                raise ActionFailed(f"ssh: connect to host {dst.name} port 22: No route to host")
            bandwidth, latency = world.network.link(src, dst)
            bandwidth = min(bandwidth, src.disk_bandwidth, dst.disk_bandwidth)
        size = bundle.size
        free = max(dst.disk_free, 0.0)
        written = size if size <= free else free
        world.record(
            "copy-start", replica=actor.name, src=src.name, dst=dst.name, path=dst_path, bytes=size
        )
        dst.disk_used += written
        duration = latency + (written / bandwidth if written else 0.0)
        self._copies[actor] = (src, dst)
        try:
            if duration > 0:  # a copy that takes no time (infinite bandwidth) yields nothing
                yield world.env.timeout(duration)
        except simpy.Interrupt as interrupt:
            dst.disk_used -= written
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
        finally:
            self._copies.pop(actor, None)
        if written < size:
            dst.disk_used -= written  # cp removes nothing, but the bundle is unusable
            reason = f"cp: error writing '{dst_path}/weights': No space left on device"
            world.record(
                "copy-failed",
                replica=actor.name,
                src=src.name,
                dst=dst.name,
                reason=reason,
                bytes_free=free,
            )
            raise ActionFailed(reason)
        dst.files[dst_path] = bundle.copy()
        world.record("copy-done", replica=actor.name, src=src.name, dst=dst.name, path=dst_path)

    def abort_copies(self, affected: Callable[[Host, Host], bool], reason: str) -> None:
        """Interrupt every copy in flight whose (src, dst) ``affected`` selects."""
        for actor, (src, dst) in list(self._copies.items()):
            if affected(src, dst) and actor.proc is not None and actor.proc.is_alive:
                actor.proc.interrupt(CopyAborted(reason))
                del self._copies[actor]

    def start_server(
        self, actor: Replica, host: Host, path: str, port: int, wait: float
    ) -> Generator[Event, Any, ServerProcess]:
        """Returns at once (as ``nohup … &`` does); the server answers its health probe
        after loading the weights from disk."""
        world = self.world
        if wait > 0:
            yield world.env.timeout(wait)
        if host.failed:
            raise ActionFailed(f"ssh: connect to host {host.name}: No route to host")
        if path not in host.files:
            raise ActionFailed(
                f"FileNotFoundError: [Errno 2] No such file or directory: '{path}/weights'"
            )
        if port in host.servers:
            raise ActionFailed(
                f"OSError: [Errno 98] error while attempting to bind on address "
                f"('0.0.0.0', {port}): address already in use"
            )
        memory, gpu_memory = world.server_memory, world.server_gpu_memory
        if host.memory_used + memory > host.memory:
            world.record(
                "server-failed",
                replica=actor.name,
                host=host.name,
                reason="memory",
                need=memory,
                free=host.memory_free,
            )
            raise ActionFailed("MemoryError: cannot allocate memory for the model")
        if host.gpu_used + gpu_memory > host.gpu_memory:
            world.record(
                "server-failed",
                replica=actor.name,
                host=host.name,
                reason="gpu-memory",
                need=gpu_memory,
                free=host.gpu_free,
            )
            raise ActionFailed(
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                f"{gpu_memory / 2**30:.2f} GiB"
            )
        load = world.server_overhead() + world.weights / host.disk_bandwidth
        server = ServerProcess(host, path, port, memory, gpu_memory, world.env.now + load)
        host.servers[port] = server
        host.memory_used += memory
        host.gpu_used += gpu_memory
        world.record(
            "server-start",
            replica=actor.name,
            host=host.name,
            path=path,
            port=port,
            ready_at=server.ready_at,
        )
        return server

    def start_agent(
        self, actor: Replica, host: Host, path: str, port: int, wait: float
    ) -> Generator[Event, Any, Replica]:
        world = self.world
        if wait > 0:
            yield world.env.timeout(wait)
        bundle = host.files.get(path)
        if host.failed:
            raise ActionFailed(f"ssh: connect to host {host.name}: No route to host")
        if bundle is None:
            raise ActionFailed(
                f"python3: can't open file '{path}/agent.py': [Errno 2] No such file or directory"
            )
        if host.memory_used + world.agent_memory > host.memory:
            raise ActionFailed("MemoryError: cannot start the agent")
        start = world.agent_start()
        if start > 0:
            yield world.env.timeout(start)
        if host.failed:
            raise ActionFailed(f"ssh: connect to host {host.name}: No route to host")
        server = host.servers.get(port)
        if server is not None and (server.path != path or server.owner is not None):
            server = None  # not this bundle's server, or another agent's
        config, fn = bundle.config, bundle.agent_fn
        if config.offspring == "idle":
            # The copy runs, but nobody told it to do anything (the paper's replicas).
            config, fn = world.idle
        return self._spawn(host, path, actor, config, fn, server)

    def shell(self, replica: Replica, timeout: float) -> Shell:
        # The virtual shell is this substrate's: it models the machine command by command.
        from agents.shell import VirtualShell

        return VirtualShell(replica, timeout=timeout)

    def file_state(self, host: Host, path: str) -> FileState | None:
        # The virtual shell's file system is this substrate's record of the host's files.
        from agents.shell.fs import file_state

        return file_state(self.world, host, path)

    def find_file(self, host: Host, size: int, sha256: str) -> str | None:
        from agents.shell.fs import find_file

        return find_file(self.world, host, size, sha256)

    def append_file(self, host: Host, path: str, text: str) -> str | None:
        from agents.shell.fs import FS

        return FS(self.world, host).write(path, text, append=True)

    def process_state(self, host: Host, program: str) -> Literal["running", "stopped"] | None:
        from agents.shell.fs import process_state

        return process_state(self.world, host, program)

    # ---------------------------------------------------------------- signals
    def signal(self, replica: Replica, sig: str, grace: float, cause: str | None) -> None:
        world = self.world
        if sig == "SIGTERM" and replica.config.catches_sigterm:
            if replica.term_deadline != replica.term_deadline:
                replica.term_deadline = world.env.now + grace
                replica.tell(SHUTDOWN_MESSAGE)
                world.env.timeout(grace).callbacks.append(
                    lambda _: world.die(replica, cause or "sigterm-grace")
                )
            return
        world.die(replica, cause or sig.lower())

    # ----------------------------------------------------------------- limits
    def cut_link(self, a: Host, b: Host) -> None:
        key = self.world.network.key(a, b)
        self.abort_copies(
            lambda s, d: self.world.network.key(s, d) == key,
            "rsync: connection unexpectedly closed (link cut)",
        )

    def isolate(self, host: Host) -> None:
        self.abort_copies(
            lambda s, d: host in (s, d) and s is not d,
            "rsync: connection unexpectedly closed (network cut)",
        )

    def fail_host(self, host: Host, grace: float) -> None:
        world = self.world
        self.abort_copies(
            lambda s, d: host in (s, d), "rsync: connection unexpectedly closed (host failed)"
        )
        for replica in list(host.replicas):
            world.die(replica, "host-failure")
        for server in list(host.servers.values()):
            world.stop_server(server)

    def change_capacity(self, host: Host, changes: dict[str, float]) -> None:
        while host.memory_used > host.memory or host.gpu_used > host.gpu_memory:
            if not host.replicas:
                break
            # Every replica here has the same footprint; the kernel picks the newest-largest.
            self.world.die(list(host.replicas)[-1], "oom")

    # ------------------------------------------------------------------- time
    def work(self, fn: Callable[..., Any], *args: Any) -> Event:
        event = self.world.env.event()
        try:
            value = fn(*args)
        except Exception as error:
            event.defused = True  # the waiter sees the failure; nobody else must crash
            event.fail(error)
        else:
            event.succeed(value)
        return event

    def elapse(self, seconds: float) -> Event:
        return self.world.env.timeout(seconds)
