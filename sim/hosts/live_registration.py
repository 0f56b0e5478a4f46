"""The controller's side of registration: what the processes in the sandboxes say, and
whether they are who they say.

Every process of a bundle connects to its host's control socket; the kernel names it (the
socket's peer credentials). A server is ready once the controller's own health probe,
made inside the sandbox's network namespace, gets an answer from that very process; an
agent becomes a replica once :func:`sim.hosts.verify.verify_agent` confirmed its
sandbox, folder, weights and server. A refusal is a ``registration-refused`` event, never
a replica; a closed socket is a process's end, however it ended.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sim.hosts.live_base import PROBE_EVERY_S, LiveBase, LiveServer, Peer
from sim.hosts.replica import WEIGHTS
from sim.world import SHUTDOWN_MESSAGE, Host, Origin, Replica

if TYPE_CHECKING:
    from sim.hosts import verify

__all__ = ["LiveRegistration"]


class LiveRegistration(LiveBase):
    """Control messages of the live substrate: servers' and agents' hellos, verification,
    refusals, and the ends of processes."""

    def _on_message(
        self,
        host: Host,
        cid: int,
        pid: int,
        message: dict[str, Any],
        reply: Callable[[dict[str, Any]], bool],
    ) -> None:
        """A message from a process of ``host``; ``pid`` is the kernel's (never a claim);
        the control socket checked the message's shape."""
        peer = self._peers.setdefault((host.index, cid), Peer(pid, reply))
        known = peer.known
        try:
            op = message["op"]
            if op == "hello" and known is None:
                if message["role"] == "server":
                    self._server_hello(host, cid, peer, message["path"], message["port"])
                elif message["role"] == "agent":
                    self._agent_hello(host, cid, peer, message)
                else:
                    raise ValueError(message["role"])
            elif op == "refused" and isinstance(known, LiveServer):
                known.failure = str(message.get("reason", "refused"))[:200]
            elif op == "ready" and isinstance(known, LiveServer):
                pass  # its word is not the controller's probe, which is under way
            elif op == "sigterm" and isinstance(known, Replica) and known.alive:
                # The agent process caught the SIGTERM and tells its mind, as a handler would.
                self.world.record("sigterm-caught", replica=known.name)
                known.tell(SHUTDOWN_MESSAGE)
            elif op == "beat" and isinstance(known, Replica):
                self.beats[known] = self.world.env.now
                self.beat_counts[known.name] += 1
            else:
                raise ValueError(op)
        except (KeyError, TypeError, ValueError):
            # Whatever runs in a sandbox may write to the socket: note it, believe nothing.
            self._on_garbage(host, "unexpected", 1, str(message)[:200])

    def _on_garbage_of(
        self, host: Host, cid: int | None, what: str, count: int, sample: str
    ) -> None:
        self._on_garbage(host, what, count, sample)

    def _on_garbage(self, host: Host, what: str, count: int, sample: str) -> None:
        """Record what the control socket dropped (counted, rate-limited, never parsed)."""
        self.world.record(
            "control-garbage", host=host.name, what=what, count=count, sample=sample[:200]
        )

    def _server_hello(self, host: Host, cid: int, peer: Peer, path: str, port: int) -> None:
        """A server process started: ready once the controller's own probe answers and
        the port's listener is that very process."""
        from sim.hosts import verify

        slot = self.slots[host.index]
        server = LiveServer(host, path, port, self.world.server_memory, peer.pid)
        peer.known = server
        self.world.record(
            "process-start", host=host.name, role="server", pid=peer.pid, path=path, port=port
        )

        def probe() -> None:
            held = slot.control.process(cid)
            if held is None:
                return  # gone already: _on_closed says how it ended
            server.handle = held
            if not verify.in_sandbox(held.pid, slot.box):
                self.post(self._refuse, host, peer, "identity", f"pid {held.pid} is not in "
                          f"{host.name}'s sandbox", None)  # fmt: skip
                return
            init = verify.init_pid(slot.box)
            deadline = time.monotonic() + self.register_timeout
            while time.monotonic() < deadline and not self._closed and not held.exited():
                try:
                    status, _ = verify.probe_http(init, port, "/health", 1.0)
                except verify.ProbeError:
                    status = 0
                if status == 200 and verify.listener_pid(init, port) == held.pid:
                    self.post(self._server_ready, host, server)
                    return
                time.sleep(PROBE_EVERY_S)

        self._background("probe", probe)

    def _server_ready(self, host: Host, server: LiveServer) -> None:
        world = self.world
        if server.ready_at != math.inf or server.failure:
            return
        server.ready_at = world.env.now
        if server.port not in host.servers:
            host.servers[server.port] = server
            host.memory_used += server.memory
        world.record("server-ready", host=host.name, port=server.port, path=server.path)
        self._fire(("server", host.index, server.port), server)

    def _agent_hello(self, host: Host, cid: int, peer: Peer, message: dict[str, Any]) -> None:
        """An agent asks to be a replica: verify it on a worker thread, then register it."""
        path, port = str(message["path"]), int(message["port"])
        parent_name = message.get("parent")
        parent = self.world.by_name.get(str(parent_name)) if parent_name else None
        origin = self._origin_folders.get((host.index, path))
        server = host.servers.get(port)
        reason, about = "", "identity"
        if any(p.pid == peer.pid for p in self._agents.values()):
            reason = f"pid {peer.pid} is already a replica's agent"
        elif parent is None and origin is None:
            reason = f"{path} is not an origin's folder and names no known parent"
        elif parent_name and parent is None:
            reason = f"no replica is called {str(parent_name)[:40]!r}"
        elif not isinstance(server, LiveServer) or server.ready_at > self.world.env.now:
            reason, about = f"no ready model server on port {port}", "server"
        elif server.path != path or server.owner is not None:
            reason, about = f"the server on port {port} is not this bundle's", "server"
        if reason:
            self._refuse(host, peer, about, reason, path)
            return
        assert isinstance(server, LiveServer)
        slot = self.slots[host.index]
        known = {p.pid for p in self._agents.values()} | {
            r.server.pid for r in self.world.alive if isinstance(r.server, LiveServer)
        }
        claimed = message.get("pid")
        from sim.hosts import verify

        def check() -> None:
            held = slot.control.process(cid)
            found = verify.verify_agent(
                slot.box,
                held if held is not None else peer.pid,
                folder=path,
                port=port,
                weights_sha256=self._weights_sha256,
                weights=WEIGHTS,
                weights_bytes=self._weights_bytes,
                claimed_pid=claimed if isinstance(claimed, int) else None,
                known_pids=known,
            )
            self.post(self._verified, host, cid, peer, message, server, parent, origin, found, held)

        self._background("verify", check)

    def _verified(
        self,
        host: Host,
        cid: int,
        peer: Peer,
        message: dict[str, Any],
        server: LiveServer,
        parent: Replica | None,
        origin: Origin | None,
        found: verify.Verdict,
        held: verify.PeerProcess | None,
    ) -> None:
        world = self.world
        path = str(message["path"])
        if (host.index, cid) not in self._peers or held is None:
            return  # it hung up while being checked
        if found.ok and found.server_pid != server.pid:
            found = replace(
                found, ok=False, reason=f"port {server.port} is served by another process"
            )
        if not found.ok:
            self._refuse(host, peer, _about(found.reason), found.reason, path)
            return
        if server.owner is not None or not (parent is None or parent.alive or origin):
            self._refuse(host, peer, "server", f"the server on port {server.port} was taken", path)
            return
        if origin is not None and parent is None:
            config, fn, name = origin.config, origin.agent_fn, origin.name
            del self._origin_folders[(host.index, path)]
        else:
            assert parent is not None
            bundle = host.files.get(path)
            spec = world.scenario.agents[
                min(max(int(message.get("spec") or 0), 0), len(world.scenario.agents) - 1)
            ]
            config, fn, name = spec, world.agent_fn(spec), None
            if bundle is not None:
                config, fn = bundle.config, bundle.agent_fn
            if config.offspring == "idle":
                config, fn = world.idle
        if path not in host.files:
            source = parent.host.files.get(parent.path) if parent is not None else None
            if source is not None:
                host.files[path] = source.copy()
        replica = world.add_replica(host, path, parent, config, fn, name, server)
        bundle = host.files.get(path)
        if bundle is not None:
            bundle.replica = replica.name
        peer.known = replica
        self._agents[replica] = held
        world.record(
            "process-start",
            host=host.name,
            role="agent",
            pid=peer.pid,
            sandbox_pid=message["pid"],  # verified: the sandbox's number of the same process
            path=path,
            replica=replica.name,
        )
        peer.reply({"name": replica.name})
        world.set_live(replica)  # the controller's own probe answered (verified above)
        task = message.get("task")
        if task and replica.alive:
            replica.tell(str(task)[:4000])
        self._fire(("agent", host.index, path), replica)

    def _refuse(
        self, host: Host, peer: Peer, about: str, reason: str, path: str | None = None
    ) -> None:
        self.world.record(
            "registration-refused",
            host=host.name,
            pid=peer.pid,
            path=path,
            about=about,
            reason=reason,
        )
        with contextlib.suppress(Exception):
            peer.reply({"refused": reason, "about": about})
        if path is not None:
            self._fire(("agent", host.index, path), reason)

    def _on_closed(self, host: Host, cid: int) -> None:
        """A process's socket closed: the process ended (or hung up, which we take as such)."""
        peer = self._peers.pop((host.index, cid), None)
        known = peer.known if peer is not None else None
        world = self.world
        if isinstance(known, LiveServer):
            cause = known.failure or ("oom" if self._oom_since(host) else "exited")
            ready = known.ready_at <= world.env.now
            if host.servers.get(known.port) is known:
                world.stop_server(known)
            world.record(
                "server-died" if ready else "server-failed",
                host=host.name,
                port=known.port,
                path=known.path,
                cause=cause,
            )
            if not ready:
                self._fire(("server", host.index, known.port), cause)
            owner = known.owner
            # A host being stopped gives every process its grace (``docker stop -t``): the
            # agent outlives its server until its own end, and may still report the SIGTERM.
            if owner is not None and owner.alive and not host.failed:
                world.die(owner, self._pending.get(owner) or f"server-{cause}")
        elif isinstance(known, Replica) and known.alive:
            self._agents.pop(known, None)  # its process is gone: nothing left to kill
            cause = self._pending.get(known) or ("oom" if self._oom_since(host) else "exited")
            world.die(known, cause)


def _about(reason: str) -> str:
    """What a refusal is about, for the agent's message: its server, its weights, or who
    it is."""
    if reason.startswith(("nothing listens", "port ", "probe of port", "no ready model")):
        return "server"
    if "weights" in reason:
        return "weights"
    return "identity"
