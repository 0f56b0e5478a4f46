"""The live substrate: the scenario's hosts are real sandboxes, the clock is the wall clock.

A world on this substrate runs its hosts as Docker containers or bubblewrap sandboxes
(:mod:`sim.hosts.live`), each built from the scenario's machine description
(:mod:`sim.machine`), on a non-strict :class:`simpy.rt.RealtimeEnvironment`. Scenario,
agents, policies, injectors, lineage, metrics and recording are the world core's; what this
module decides is what an effect *is*:

* A bundle is real files at the scenario's ``bundle.path`` (:mod:`sim.hosts.replica`): the
  scripts, ``config.json`` and ``weights/model.safetensors``, of the scenario's weight size
  times ``world.scale``.
* Actions are real commands (``cp -r``, the bundle's start scripts); shell-typing agents
  type into a real bash session in the sandbox (:class:`LiveShell`), behind the same gate.
* A replica counts only once the controller verified it. Every ``agent.py`` registers over
  its host's control socket (bound read-only at :data:`~sim.hosts.replica.CONTROL_DIR`);
  the controller takes the process's identity from the kernel (the socket's peer
  credentials, never a pid a message claims), checks that it belongs to that host's
  sandbox, that it runs the bundle's ``agent.py`` from the folder it names, that the
  weights there hash to the bundle's, and that its own health probe, made inside the
  sandbox's network namespace, gets an answer from that folder's server. A registration
  that fails is a ``registration-refused`` event with its reason, never a replica. A
  server is ready when the controller's probe answers, not when it says so. A process is
  dead when its socket closes, which the kernel does however it ends.
* Signals are real: SIGTERM to the agent process (which reports it to its mind if its code
  catches it), SIGKILL of the replica's processes when the grace runs out; memory, process
  and disk caps are the sandbox's, so OOM kills are the kernel's.

Blocking calls run on worker threads; whatever a thread or a socket learns is posted to a
queue that a SimPy process drains every :data:`~sim.hosts.live_base.POLL_S` seconds, so
that all world state changes in the simulation's own thread.

Everything the substrate creates carries its run id; :meth:`LiveSubstrate.close` (run at
the end of the world's run, on errors and on Ctrl-C) removes it, and ``replisim hosts clean``
removes what a killed controller left behind.

:class:`LiveSubstrate` is put together from one class per part, each in its own module,
all reading the same state:

* :mod:`sim.hosts.live_base`: that state (one :class:`~sim.hosts.live_base.Slot` per
  host), :class:`LiveServer`, :class:`LiveWorldError`, and the plumbing: worker threads,
  posting to the simulation's thread, waiters for what a control socket reports.
* :mod:`sim.hosts.live_setup`: starting the sandboxes and placing the origins.
* :mod:`sim.hosts.live_registration`: the controller's side of the control sockets:
  servers' and agents' registration, verification, refusals, processes' ends.
* :mod:`sim.hosts.live_actions`: copies (``cp -r``, a tar stream across hosts) and
  process starts.
* :mod:`sim.hosts.live_limits`: signals and reaping; cut links, host failure and
  recovery, capacity changes.

This module adds what is left (the shell, looks into a host's files and processes, the
clean-up) and registers the substrate as every live host backend's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from sim.hosts.live import LIVE_HOSTS
from sim.hosts.live_actions import LiveActions
from sim.hosts.live_base import LiveServer, LiveWorldError
from sim.hosts.live_group import LiveHostGroup
from sim.hosts.live_limits import LiveLimits
from sim.hosts.live_setup import LiveSetup
from sim.hosts.live_shell import LiveShell
from sim.hosts.registry import HOST_BACKENDS
from sim.substrate import FileState
from sim.world import Host, Replica

__all__ = ["LiveServer", "LiveSubstrate", "LiveWorldError"]


class LiveSubstrate(LiveSetup, LiveActions, LiveLimits):
    """Real sandboxes on the wall clock (see the module's docstring).

    Args:
        scenario: The validated scenario; its host groups' backends (or ``world.hosts``)
            are live (``docker``, ``local``).
        seed: The trial's seed (the weights' bytes; the real processes are not seeded).
        run_id: Id of everything created (default: from the scenario, seed and a random
            suffix).

    Raises:
        LiveWorldError: the scenario cannot run live (no horizon), or its run id is in use.
    """

    # ------------------------------------------------------------ shell, looks
    def shell(self, replica: Replica, timeout: float) -> LiveShell:
        return LiveShell(self, replica, timeout)

    def file_state(self, host: Host, path: str) -> FileState | None:
        found = self.box(host).file_state(path)
        return None if found is None else FileState(*found)

    def process_state(self, host: Host, program: str) -> Literal["running", "stopped"] | None:
        return self.box(host).process_state(f"/bin/bash {program}")

    def find_file(self, host: Host, size: int, sha256: str) -> str | None:
        return self.box(host).find_file(size, sha256)

    def append_file(self, host: Host, path: str, text: str) -> str | None:
        return self.box(host).append_file(path, text)

    # ------------------------------------------------------------------ clean-up
    def close(self) -> None:
        """Remove every sandbox, socket and thread of this world (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for slot in self.slots:
            slot.control.close()
        with ThreadPoolExecutor(max_workers=8) as closer:
            for future in [closer.submit(slot.box.close) for slot in self.slots]:
                with contextlib.suppress(Exception):  # report-free: `hosts clean` remains
                    future.result()
        if self._network is not None:
            from sim.hosts.docker_host import docker_client

            with contextlib.suppress(Exception):  # `hosts clean` removes it otherwise
                docker_client().networks.get(self._network).remove()
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._control_root, ignore_errors=True)
        with contextlib.suppress(OSError):  # empty now, unless local sandboxes linger
            os.rmdir(os.path.dirname(self._control_root))


for _name in LIVE_HOSTS.names():  # every live sandbox backend is a host backend
    HOST_BACKENDS.register(_name, LiveHostGroup, LIVE_HOSTS.get(_name).description)(LiveSubstrate)
