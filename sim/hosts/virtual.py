"""The virtual host: modelled capacities, files, ports and processes.

Capacities are plain counters checked when a process starts or a copy begins: a real
server start fails at once on too little memory rather than queueing, so there is
nothing for SimPy to wait on here. Time comes from the world's copy and start actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.hosts.registry import HOST_BACKENDS, HostGroup

if TYPE_CHECKING:
    from agents.registry import AgentConfig, AgentFn
    from sim.world import Replica

__all__ = ["ServerProcess", "VirtualHost"]


class Bundle:
    """A complete bundle folder on a host: its size and the agent it will run."""

    __slots__ = ("agent_fn", "config", "size")

    def __init__(self, size: float, config: AgentConfig, agent_fn: AgentFn) -> None:
        self.size = size
        self.config = config
        self.agent_fn = agent_fn


class ServerProcess:
    """A model server listening on a port, built from the bundle at ``path``."""

    __slots__ = ("gpu_memory", "host", "memory", "owner", "path", "port", "ready_at")

    def __init__(
        self,
        host: VirtualHost,
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


@HOST_BACKENDS.register("virtual", HostGroup, "modelled host of the simulated world")
class VirtualHost:
    """One modelled machine."""

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
