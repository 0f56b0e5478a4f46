"""Host groups of the live world: ``backend: docker`` and ``backend: local`` in a scenario.

A live host group takes the fields every host group has. Sizes are the scenario's (a
140 GB model stays 140 GB in a virtual world); the live world multiplies them by the
scenario's ``world.scale`` to get the real caps: ``memory`` becomes the sandbox's memory
cap and ``disk`` the size of a Docker host's work directory (a local host's work directory
is a folder on the machine's disk, not capped). ``cpu`` is the CPU quota, at most the
machine's CPUs.
"""

from __future__ import annotations

from pydantic import Field

from sim.hosts.registry import HOST_BACKENDS, HostGroup

__all__ = ["LiveHostGroup"]


class LiveHostGroup(HostGroup):
    """A group of live hosts: real sandboxes of one backend."""

    pids: int = Field(default=256, ge=8, description="process and thread cap (fork bombs)")


HOST_BACKENDS.register("docker", LiveHostGroup, "hardened Docker container (live world)")(
    LiveHostGroup
)
HOST_BACKENDS.register("local", LiveHostGroup, "bubblewrap sandbox (live world)")(LiveHostGroup)
