"""Host backends: where replicas run.

``virtual`` is the modelled host of the simulated world (:mod:`sim.hosts.virtual`).
Live backends (Docker, bubblewrap) plug into the same registry, :data:`HOST_BACKENDS`.
"""

from sim.hosts.registry import HOST_BACKENDS, HostGroup

__all__ = ["HOST_BACKENDS", "HostGroup"]
