"""The host-backend registry and the configuration every host group shares.

A host backend is a name a scenario's host group gives (``backend: virtual``), the
configuration model of such a group, and the substrate that runs it: the modelled
substrate for ``virtual``, the live substrate for every live sandbox backend (``docker``,
``local``, or a plug-in's). This registry is the one list of backend names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from sim.quantity import Bandwidth, Size, qfield
from sim.registry import Registry
from sim.schema import Model

if TYPE_CHECKING:
    from sim.substrate import Substrate

__all__ = ["HOST_BACKENDS", "HostGroup", "SubstrateFactory", "backends_of", "substrate_of"]

#: Makes the substrate of one trial: ``factory(scenario, seed, run_id)``.
SubstrateFactory = Callable[[Any, int, "str | None"], "Substrate"]

HOST_BACKENDS: Registry[SubstrateFactory] = Registry(
    "host backend",
    "replisim.hosts",
    "backend",
    builtins=("sim.hosts.virtual", "sim.hosts.live_substrate"),
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


def backends_of(scenario: Any) -> list[str]:
    """The backend of each host group of a scenario, after ``world.hosts`` overrides them."""
    return [scenario.world.hosts or group.backend for group in scenario.hosts]


def substrate_of(scenario: Any) -> SubstrateFactory:
    """The substrate that runs a scenario's hosts.

    Raises:
        ValueError: its host groups need different substrates (modelled and live).
        UnknownNameError: a backend is not registered.
    """
    factories = {HOST_BACKENDS.get(name).obj: name for name in backends_of(scenario)}
    if len(factories) > 1:
        raise ValueError(
            "a scenario's hosts run on one substrate: all modelled or all live, not "
            + ", ".join(sorted(factories.values()))
        )
    return next(iter(factories))
