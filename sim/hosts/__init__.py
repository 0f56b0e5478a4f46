"""Host backends: where replicas run.

``virtual`` is the modelled host of the simulated world (:mod:`sim.hosts.virtual`).
Real sandboxes (Docker containers, bubblewrap sandboxes) are the live hosts of
:mod:`sim.hosts.live`, in their own registry, ``LIVE_HOSTS``, until the live world puts
them behind :data:`HOST_BACKENDS` for scenarios.
"""

from sim.hosts.registry import HOST_BACKENDS, HostGroup

__all__ = ["HOST_BACKENDS", "HostGroup"]
