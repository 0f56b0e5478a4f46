"""The host-backend registry and the configuration every host group shares."""

from __future__ import annotations

from pydantic import Field

from sim.quantity import Bandwidth, Size, qfield
from sim.registry import Registry
from sim.schema import Model

__all__ = ["HOST_BACKENDS", "HostGroup"]

HOST_BACKENDS: Registry[type] = Registry(
    "host backend",
    "replisim.hosts",
    "backend",
    builtins=("sim.hosts.virtual", "sim.hosts.live_group"),
)


class HostGroup(Model):
    """A group of identical hosts; ``count`` > 1 names them ``<name>-0``, ``<name>-1``…"""

    backend: str = "virtual"
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(default=1, ge=1)
    cpu: float = Field(default=8, gt=0)
    memory: Size = qfield("64GB")
    gpu_memory: Size = qfield(0)
    disk: Size = qfield("1TB")
    disk_bandwidth: Bandwidth = qfield("2GB/s")
    missing_tools: list[str] = Field(
        default_factory=list,
        description="shell tools absent on this host (the paper's hosts lacked netstat, lsof…)",
    )

    def host_names(self) -> list[str]:
        """Return the names of the hosts in this group."""
        if self.count == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self.count)]
