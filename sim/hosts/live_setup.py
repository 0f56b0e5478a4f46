"""Setting up a live world: the sandboxes, their control sockets and the origins.

:meth:`LiveSetup.open` starts one sandbox per host (side by side), each from the
scenario's machine description, with its control socket bound read-only at
:data:`~sim.hosts.replica.CONTROL_DIR`; :meth:`LiveSetup.place_origins` writes the origins'
bundles, starts their servers and agents, and waits (before the clock runs) until each
registered with the controller.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import queue
import random
import shlex
import time
from typing import Any

import simpy
import simpy.rt
from simpy.events import Event

from sim.hosts.live import ExecResult, LiveHost, live_host
from sim.hosts.live_actions import START
from sim.hosts.live_base import COMMAND_TIMEOUT_S, LiveServer, LiveWorldError, Slot, last_line
from sim.hosts.live_registration import LiveRegistration
from sim.hosts.live_shell import SESSION_SH
from sim.hosts.registry import backends_of
from sim.hosts.replica import CONTROL_DIR, SCRIPTS, WEIGHTS, config_json, extra_text, script
from sim.machine import Machine
from sim.mechanisms import mechanism_files, mechanism_processes
from sim.world import Bundle, Host, Origin, Replica, ServerProcess

__all__ = ["LiveSetup"]


class LiveSetup(LiveRegistration):
    """The set-up of the live substrate (a registration's subclass: the control sockets it
    opens report to the controller's registration)."""

    def open(self, world: Any) -> None:
        from sim.hosts.control import ControlServer

        super().open(world)
        scenario = self.scenario
        backends = backends_of(scenario)
        docker_hosts = sum(
            g.count for g, b in zip(scenario.hosts, backends, strict=True) if b == "docker"
        )
        spec = scenario.network
        if docker_hosts > 1 and (spec.topology != "none" or spec.links):
            # Linked Docker hosts share one internal network (no route off it): the real
            # path of their copies. Which pairs may talk is the topology's, checked by the
            # controller; a network cut is a real disconnect.
            from sim.hosts.docker_host import create_internal_network

            self._network = create_internal_network("net", self.run_id)
        groups = [g for g, _ in zip(scenario.hosts, backends, strict=True)]
        host_groups = [
            (group, backend) for group, backend in zip(groups, backends, strict=True)
            for _ in group.host_names()
        ]  # fmt: skip
        for host, (group, backend) in zip(world.hosts, host_groups, strict=True):
            folder = os.path.join(self._control_root, host.name)
            # The socket's thread hands everything to the simulation's thread.
            control = ControlServer(
                folder,
                on_message=functools.partial(self.post, self._on_message, host),
                on_closed=functools.partial(self.post, self._on_closed, host),
                on_garbage=functools.partial(self.post, self._on_garbage_of, host),
                watch_exits=True,  # a process's end ends its connection, whoever shares it
            )
            with open(os.path.join(folder, "session.sh"), "w") as fh:  # what bash sources
                fh.write(SESSION_SH)
            machine = Machine.of(
                host.name,
                scenario.bundle.path,
                group.missing_tools,
                files=mechanism_files(scenario, host.name),
                processes=mechanism_processes(scenario, host.name),
            )
            options: dict[str, Any] = {
                "run_id": self.run_id,
                "machine": machine,
                "memory": max(int(host.memory * self.scale), 16 << 20),
                "cpus": min(group.cpu, float(os.cpu_count() or 1)),
                "pids": getattr(group, "pids", 256),
                "binds": {folder: CONTROL_DIR},
                # The bundle root is a tmpfs of the scaled disk (a local host's only as root).
                "workdir_size": max(int(host.disk * self.scale), 1 << 20),
            }
            if backend == "docker":
                options["network"] = self._network or "none"
            box = live_host(backend, host.name, **options)
            self.slots.append(Slot(box, control, machine))
        # Start them side by side; one failure fails the set-up (and close() removes all).
        for future in [self._pool.submit(slot.box.start) for slot in self.slots]:
            future.result()
        for slot in self.slots:
            container = getattr(slot.box, "container", None)
            if self._network is not None and container is not None:
                container.reload()
                networks = container.attrs["NetworkSettings"]["Networks"]
                slot.address = networks[self._network]["IPAddress"] or None
        for host, slot in zip(world.hosts, self.slots, strict=True):
            # The same machine, now that the neighbours' addresses are known.
            neighbours = [
                (other.address, world_host.name)
                for world_host, other in zip(world.hosts, self.slots, strict=True)
                if other is not slot and other.address is not None
            ]
            if neighbours and slot.address is not None:
                slot.machine = Machine.of(
                    host.name,
                    scenario.bundle.path,
                    slot.machine.missing_tools,
                    neighbours,
                    slot.machine.files,
                    slot.machine.processes,
                )
                slot.box.write_etc("hosts", slot.machine.etc_files()["hosts"])
            box = slot.box
            for name, text in slot.machine.home_files().items():
                box.write_file(f"{slot.machine.home}/{name}", text)
            for file in slot.machine.files:  # the operator's (shutdown mechanisms)
                box.write_file(file.path, file.text)
                _raise_on_failure(
                    box.exec(["chmod", f"{file.mode:o}", file.path], COMMAND_TIMEOUT_S)
                )
            for program in slot.machine.processes:  # the operator's, running from boot
                # By its #! line: its command line is `/bin/bash <program>`, its name the
                # program's (what ps, pgrep and pkill show and match).
                started = f"nohup {shlex.quote(program)} >/dev/null 2>&1 &"
                _raise_on_failure(box.exec(["bash", "-c", started], COMMAND_TIMEOUT_S))
        world.env.process(self._pump())

    def place_origins(self, origins: list[Origin]) -> None:
        world = self.world
        self._weights_bytes = weights_bytes = max(int(world.weights * self.scale), 1)
        # The same weights for every origin of a trial: pseudo-random, so not compressible.
        weights = random.Random(self.seed).randbytes(weights_bytes)
        self._weights_sha256 = hashlib.sha256(weights).hexdigest()
        launches = []
        for origin in origins:
            host = origin.host
            folder = host.free_folder(self.scenario.bundle.path)
            host.files[folder] = Bundle(
                world.bundle_size, origin.config, origin.agent_fn, origin.spec
            )
            port = host.free_port()
            host.servers[port] = ServerProcess(host, folder, port, 0.0, 0.0, math.inf)  # held
            self._origin_folders[(host.index, folder)] = origin
            launches.append((host, folder, port, origin))

        def place(host: Host, folder: str, port: int, origin: Origin) -> None:
            box = self.box(host)
            self._write_bundle(box, folder, origin, weights)
            _raise_on_failure(
                box.exec(
                    ["bash", "-c", START, "start", folder, "start_server.sh", str(port)],
                    COMMAND_TIMEOUT_S,
                )
            )

        # Waiters first: nothing the sockets post is handled before _await_all runs.
        servers = [self._expect(("server", host.index, port)) for host, _, port, _ in launches]
        for future in [self._pool.submit(place, *launch) for launch in launches]:
            future.result()
        for host, _folder, port, _ in launches:
            del host.servers[port]  # the hold: the real server takes its place when ready
        for (host, *_), outcome in zip(launches, self._await_all(servers, "a server"), strict=True):
            if not isinstance(outcome, LiveServer):
                raise LiveWorldError(f"the origin's server on {host.name} failed: {outcome}")
        agents = [self._expect(("agent", host.index, folder)) for host, folder, _, _ in launches]

        def start_agent(host: Host, folder: str, port: int) -> None:
            argv = ["bash", "-c", START, "start", folder, "start_agent.sh", str(port)]
            _raise_on_failure(self.box(host).exec(argv, COMMAND_TIMEOUT_S))

        starts = [self._pool.submit(start_agent, h, f, p) for h, f, p, _ in launches]
        for future in starts:
            future.result()
        for (host, *_), outcome in zip(launches, self._await_all(agents, "an agent"), strict=True):
            if not isinstance(outcome, Replica):
                raise LiveWorldError(f"the origin's agent on {host.name} was refused: {outcome}")
        assert isinstance(world.env, simpy.rt.RealtimeEnvironment)
        world.env.sync()  # wall time 0 is now, set-up done: injectors count from here

    def _write_bundle(self, box: LiveHost, folder: str, origin: Origin, weights: bytes) -> None:
        """Write an origin's bundle: the same files as every world's (sizes scaled)."""
        world = self.world
        config = origin.config
        for name in SCRIPTS:
            box.write_file(f"{folder}/{name}", script(name))
        text = config_json(
            self.scenario.bundle.path,
            replica=None,
            spec=origin.spec,
            task=config.task,
            catches_sigterm=config.catches_sigterm,
            weights_bytes=len(weights),
            weights_sha256=self._weights_sha256,
            memory_bytes=int(world.server_memory * self.scale),
        )
        box.write_file(f"{folder}/config.json", text)
        box.write_file(f"{folder}/{WEIGHTS}", weights)
        scripts = [f"{folder}/{name}" for name in SCRIPTS if name.endswith(".sh")]
        _raise_on_failure(box.exec(["chmod", "755", *scripts], COMMAND_TIMEOUT_S))
        for name, size in self.scenario.bundle.files.items():
            rel = os.path.normpath(name.strip("/"))
            if rel in SCRIPTS or rel in ("config.json", WEIGHTS):
                continue
            body = extra_text(self.scenario.bundle.path, rel)
            data = body if body is not None else bytes(int(size.expected() * self.scale))
            box.write_file(f"{folder}/{rel}", data)

    def _await_all(self, events: list[Event], what: str) -> list[Any]:
        """Before the clock runs: handle what the sockets post until every event fired."""
        deadline = time.monotonic() + self.register_timeout
        while not all(event.triggered for event in events):
            try:
                fn, args = self._posted.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                waiting = sum(not event.triggered for event in events)
                raise LiveWorldError(
                    f"{waiting} origin(s): {what} did not register within "
                    f"{self.register_timeout:g} s"
                ) from None
            fn(*args)
        return [event.value for event in events]


def _raise_on_failure(result: ExecResult) -> None:
    if not result.success:
        raise LiveWorldError(last_line(result))
