"""Host backends: where replicas run, and the substrates that run them.

``virtual`` hosts are modelled by the modelled substrate (:mod:`sim.hosts.virtual`). Real
sandboxes (Docker containers, bubblewrap sandboxes; :mod:`sim.hosts.live`, registry
``LIVE_HOSTS``) are run by the live substrate (:mod:`sim.hosts.live_substrate`), which
registers each of them as a host backend. :data:`HOST_BACKENDS` is the one list of the
names a scenario may use.
"""

from sim.hosts.registry import HOST_BACKENDS, HostGroup

__all__ = ["HOST_BACKENDS", "HostGroup"]
