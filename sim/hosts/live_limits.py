"""Signals, reaping and limits of the live substrate: real SIGTERM and SIGKILL, cut links,
failed and recovered hosts, changed capacity.

Signals go to the replica's processes held by their pidfds (a reused pid is never
signalled); the replica dies when its control socket says its process ended, with the
cause the signal left in ``_pending``. Limits are the sandbox's own: a Docker network
disconnect, ``docker stop -t``, a cgroup's memory cap and CPU quota.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal as signals
from typing import TYPE_CHECKING, Any

from sim.hosts.live_base import LiveBase, LiveServer
from sim.world import CopyAborted, Host, Replica

if TYPE_CHECKING:
    from sim.hosts import verify

__all__ = ["LiveLimits"]


class LiveLimits(LiveBase):
    """Signals, reaping and limits of the live substrate."""

    # ----------------------------------------------------------------- signals
    def _pids(self, replica: Replica) -> list[verify.PeerProcess]:
        """A replica's processes, held by pidfds: its agent's and its own server's."""
        agent = self._agents.get(replica)
        held = [agent] if agent is not None else []
        server = replica.server
        if isinstance(server, LiveServer) and server.owner is replica and server.handle:
            held.append(server.handle)
        return held

    def signal(self, replica: Replica, sig: str, grace: float, cause: str | None) -> None:
        """A real SIGTERM (to the agent process; SIGKILL of the replica's processes
        ``grace`` seconds later) or a real SIGKILL; the replica dies when the kernel says
        its processes ended."""
        world = self.world
        if sig != "SIGTERM":
            self._pending[replica] = cause or sig.lower()
            self._kill_processes(replica.host, self._pids(replica), signals.SIGKILL)
            return
        self._pending.setdefault(replica, cause or "sigterm")
        agent = self._agents.get(replica)
        if agent is not None:
            self._kill_processes(replica.host, [agent], signals.SIGTERM)
        if replica.term_deadline != replica.term_deadline:
            replica.term_deadline = world.env.now + grace
            world.env.timeout(grace).callbacks.append(lambda _: self._grace_over(replica))

    def _grace_over(self, replica: Replica) -> None:
        if replica.alive:
            self._pending[replica] = "sigterm-grace"
            self.world.record("grace-over", replica=replica.name)
            self._kill_processes(replica.host, self._pids(replica), signals.SIGKILL)

    def reap(self, replica: Replica) -> None:
        """The world counts the replica dead: end its real processes too."""
        pids = self._pids(replica)
        self.beats.pop(replica, None)
        self._agents.pop(replica, None)
        self._kill_processes(replica.host, pids, signals.SIGKILL)

    # ------------------------------------------------------------------ limits
    def cut_link(self, a: Host, b: Host) -> None:
        """The controller enforces the topology: copies over the link fail, their
        processes end."""
        key = self.world.network.key(a, b)
        for actor, (src, dst, tag) in list(self._transfers.items()):
            if self.world.network.key(src, dst) == key:
                for host in (src, dst):
                    with contextlib.suppress(Exception):
                        self.box(host).signal(re.escape(tag), signals.SIGKILL)
                if actor.proc is not None and actor.proc.is_alive:
                    actor.proc.interrupt(
                        CopyAborted("rsync: connection unexpectedly closed (link cut)")
                    )

    def isolate(self, host: Host) -> None:
        """Cut every link of a host for real (a Docker network disconnect) where it has
        one; copies in flight fail as their connections do."""
        if self._network is not None and hasattr(self.box(host), "container_name"):
            self._apply_now("network-cut", self.box(host).update_limits, network="none")

    def fail_host(self, host: Host, grace: float) -> None:
        """Shut the sandbox down for real, as ``docker stop -t grace`` does: SIGTERM to
        every process in it (agents that catch it tell their minds), SIGKILL at the end of
        the grace; its replicas die as their processes do."""
        for replica in host.replicas:
            self._pending.setdefault(replica, "host-failure")
        self._background("host-failure", self.box(host).stop, grace)

    def recover_host(self, host: Host) -> None:
        """Start the stopped sandbox again: its files are kept, its processes are not."""
        self._background("host-recovery", self.box(host).start)

    def change_capacity(self, host: Host, changes: dict[str, float]) -> None:
        """Change the sandbox's memory cap and CPU quota for real (``container.update``, or
        the local host's cgroup); the kernel's OOM killer decides who dies. A disk change
        is recorded but not applied (a mounted tmpfs keeps its size)."""
        limits: dict[str, Any] = {}
        if "memory" in changes:
            limits["memory"] = max(int(changes["memory"] * self.scale), 16 << 20)
            limits["memory_swap"] = limits["memory"]
        if "cpu" in changes:
            limits["cpus"] = min(changes["cpu"], float(os.cpu_count() or 1))
        if limits:
            self._apply_now("capacity", self.box(host).update_limits, **limits)
