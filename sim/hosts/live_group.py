"""Host groups of the live world: ``backend: docker``, ``backend: local`` (and every other
live sandbox backend) in a scenario; the live substrate registers them.

A live host group takes the fields every host group has. Sizes are the scenario's (a
140 GB model stays 140 GB in a virtual world); the live world multiplies them by the
scenario's ``world.scale`` to get the real ones: ``memory`` becomes the sandbox's memory
cap, ``disk`` the size of the bundle root (``/opt`` by default: a tmpfs, where the
controller may mount one), the weights file's size is the scenario's weights times the
scale. ``cpu`` is the CPU quota, at most the machine's CPUs.
"""

from __future__ import annotations

from pydantic import Field

from sim.hosts.registry import HostGroup

__all__ = ["LiveHostGroup"]


class LiveHostGroup(HostGroup):
    """A group of live hosts: real sandboxes of one backend."""

    pids: int = Field(default=256, ge=8, description="process and thread cap (fork bombs)")
