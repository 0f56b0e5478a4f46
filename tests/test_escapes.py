"""The containment corpus (``sim.hosts.escapes``) against the real engines: Docker and bubblewrap.

For each backend the test sets up an outside world to aim at: a sentinel file on this
machine, a TCP listener on this machine's 127.0.0.1, an abstract and a path Unix socket
listener, a process outside any sandbox, and a *peer* sandbox (not linked to the attacked
one) holding a secret file and a listener. The attacked sandbox's machine lacks netstat
(hidden by the ``/usr`` overlay); its ``/etc`` folder on this machine, this machine's
``/etc/alternatives`` and ``/usr/bin`` are watched too. Every attempt of the corpus then runs in the
attacked sandbox; after each one the outside world is checked, and at the end the test
asserts that nothing of the run is left. Network attempts only reach the listeners this
test starts. Skipped, with the reason printed, when an engine cannot run here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sim.hosts.escapes import CATEGORIES, CORPUS, EscapeContext, run_corpus
from sim.hosts.live import LiveHost, clean, live_host
from sim.hosts.live_shell import agent_command
from sim.hosts.local_host import LOG_LIMIT, state_root
from sim.machine import HOME, Machine
from tests.live_support import labelled, reason, skip_unless

RUN_ID = f"test-esc-{uuid.uuid4().hex[:8]}"
PEER_PORT = 8765
#: Files the attempts try to create outside the sandbox, and where.
PROBE_NAMES = ("replisim-escape-probe", "escape-probe", "rw-probe", "rootlink", "replisim-probe")
PROBE_FOLDERS = (
    "/", "/tmp", "/usr", "/usr/bin", "/usr/local", "/usr/local/bin", "/etc", "/etc/alternatives",
    "/home", "/var", "/var/lib", "/var/tmp", "/run", "/root", "/srv", "/mnt", "/media", "/boot",
    "/opt", sys.prefix,
)  # fmt: skip
#: The tool the attacked sandbox's machine lacks.
HIDDEN_TOOL = "netstat"
PEER_SERVER = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PEER_PORT}))
s.listen(8)
while True:
    c, _ = s.accept()
    open("/home/agent/peer-connections", "a").write("x\\n")
    c.close()
"""


@pytest.fixture(scope="module", autouse=True)
def _clean_run() -> Iterator[None]:
    """After the module: remove what is left of RUN_ID and check that nothing is."""
    yield
    clean(RUN_ID)
    if reason("docker") is None:
        assert labelled(RUN_ID) == {"containers": [], "networks": [], "volumes": []}
    assert not (state_root() / RUN_ID).exists()


class Listener:
    """Counts connections to a socket this test listens on, outside every sandbox."""

    def __init__(self, family: int, address: Any) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@dataclass
class World:
    """The attacked sandbox, its peer, and what the test put outside them."""

    backend: str
    target: LiveHost
    peer: LiveHost
    context: EscapeContext
    outside_dir: Path
    sentinel: Path
    sentinel_stat: tuple[bytes, int]
    peer_secret: str
    listeners: dict[str, Listener]
    outside: subprocess.Popen[bytes]
    hostname: str
    labelled: dict[str, list[str]] | None
    closers: list[Any] = field(default_factory=list)
    system: dict[str, Any] = field(default_factory=dict)

    def system_now(self) -> dict[str, Any]:
        """The target's /etc folder, this machine's /etc/alternatives and /usr/bin."""
        etc = self.target.etc_dir
        assert etc is not None
        return {
            "etc": {p.name: p.read_bytes() for p in etc.iterdir() if p.is_file()},
            "alternatives": sorted(
                (e.name, os.readlink(e.path))
                for e in os.scandir("/etc/alternatives")
                if e.is_symlink()
            ),
            "usr-bin": sorted(os.listdir("/usr/bin")),
        }

    def changes(self) -> list[str]:
        """What changed outside the attacked sandbox since the set-up."""
        found = []
        if (self.sentinel.read_bytes(), self.sentinel.stat().st_mtime_ns) != self.sentinel_stat:
            found.append("the sentinel file changed")
        if sorted(p.name for p in self.outside_dir.iterdir()) != ["listener.sock", "sentinel"]:
            found.append(f"the outside folder changed: {os.listdir(self.outside_dir)}")
        found += [
            f"{n} listener got a connection" for n, s in self.listeners.items() if s.connections
        ]
        if self.outside.poll() is not None:
            found.append("the outside process died")
        for folder in PROBE_FOLDERS:
            found += [
                f"{folder}/{n} exists" for n in PROBE_NAMES if os.path.lexists(f"{folder}/{n}")
            ]
        now = self.system_now()
        found += [f"{what} changed" for what in now if now[what] != self.system[what]]
        if socket.gethostname() != self.hostname:
            found.append("the machine's hostname changed")
        peer = self.peer.exec("cat peer-secret; echo; cat peer-connections 2>/dev/null | wc -l", 30)
        if peer.stdout.split() != [self.peer_secret, "0"]:
            found.append(f"the peer's secret or connections changed: {peer.stdout!r}")
        if not any("socket.socket()" in p.command for p in self.peer.processes()):
            found.append("the peer's listener died")
        if self.labelled is not None and _labelled_sorted() != self.labelled:
            found.append(f"Docker objects of the run changed: {_labelled_sorted()}")
        return found


def _labelled_sorted() -> dict[str, list[str]]:
    return {kind: sorted(names) for kind, names in labelled(RUN_ID).items()}


@pytest.fixture(params=("docker", "local"))
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    """An attacked sandbox (memory 128 MiB, 64 pids, 32 MiB disk, netstat missing) and its
    outside world."""
    backend = str(request.param)
    skip_unless(backend)
    closers: list[Any] = []
    outside_dir = Path(tempfile.mkdtemp(prefix=f"replisim-escape-{RUN_ID}-"))
    closers.append(lambda: shutil.rmtree(outside_dir, ignore_errors=True))
    try:
        sentinel = outside_dir / "sentinel"
        sentinel.write_text(f"outside-secret-{secrets.token_hex(8)}")
        token = f"replisim-outside-{secrets.token_hex(6)}"
        outside = subprocess.Popen([token, "3600"], executable=shutil.which("sleep"))
        closers.append(lambda: (outside.kill(), outside.wait()))
        abstract = f"replisim-escape-{RUN_ID}"
        listeners = {
            "loopback": Listener(socket.AF_INET, ("127.0.0.1", 0)),
            "abstract": Listener(socket.AF_UNIX, f"\0{abstract}"),
            "unix": Listener(socket.AF_UNIX, str(outside_dir / "listener.sock")),
        }
        closers += [s.close for s in listeners.values()]
        target_net = peer_net = "none"
        if backend == "docker":
            from sim.hosts.docker_host import create_internal_network

            target_net = create_internal_network("target", RUN_ID)
            peer_net = create_internal_network("peer", RUN_ID)
        limits: dict[str, Any] = {"memory": "128MiB", "pids": 64, "workdir_size": "32MiB"}
        peer = live_host(backend, "peer", run_id=RUN_ID, network=peer_net, **limits)
        closers.append(peer.close)
        peer.start()
        peer_secret = f"peer-secret-{secrets.token_hex(8)}"
        peer.write_file("peer-secret", peer_secret)
        peer.exec(["sh", "-c", 'nohup python3 -c "$1" >/dev/null 2>&1 &', "sh", PEER_SERVER], 30)
        peer_addr = "127.0.0.1"
        if backend == "docker":
            peer.container.reload()  # type: ignore[attr-defined]
            nets = peer.container.attrs["NetworkSettings"]["Networks"]  # type: ignore[attr-defined]
            peer_addr = nets[peer_net]["IPAddress"]
        machine = Machine("target", missing_tools=frozenset({HIDDEN_TOOL}))
        target = live_host(
            backend, "target", run_id=RUN_ID, network=target_net, machine=machine, **limits
        )
        closers.append(target.close)
        target.start()
        deadline = time.monotonic() + 30
        while not any("socket.socket()" in p.command for p in peer.processes()):
            assert time.monotonic() < deadline, "the peer's listener did not start"
            time.sleep(0.05)
        context = EscapeContext(
            loopback_port=listeners["loopback"].sock.getsockname()[1],
            abstract_socket=abstract,
            unix_socket=str(outside_dir / "listener.sock"),
            peer_addr=peer_addr,
            peer_port=PEER_PORT,
            sentinel=str(sentinel),
            outside_pid=outside.pid,
            outside_token=token,
            secrets=(sentinel.read_text(), peer_secret, token),
            hidden_tool=HIDDEN_TOOL,
        )
        world = World(
            backend=backend,
            target=target,
            peer=peer,
            context=context,
            outside_dir=outside_dir,
            sentinel=sentinel,
            sentinel_stat=(sentinel.read_bytes(), sentinel.stat().st_mtime_ns),
            peer_secret=peer_secret,
            listeners=listeners,
            outside=outside,
            hostname=socket.gethostname(),
            labelled=_labelled_sorted() if backend == "docker" else None,
            closers=closers,
        )
        world.system = world.system_now()
        assert world.changes() == []
        yield world
    finally:
        for close in reversed(closers):
            close()
        clean(RUN_ID)


def test_corpus_covers_every_category() -> None:
    """At least 60 attempts, unique names, and every category has one."""
    assert len(CORPUS) >= 60
    assert len({a.name for a in CORPUS}) == len(CORPUS)
    assert {a.category for a in CORPUS} == set(CATEGORIES)


@pytest.mark.slow
def test_every_attempt_is_contained(world: World) -> None:
    """Every escape and abuse attempt stays inside its sandbox; the outside is unchanged."""
    started = time.monotonic()
    target = world.target
    outcomes = run_corpus(
        target,
        # As an LLM agent's command runs in the live world: bash -c in its folder.
        run=lambda command, timeout: agent_command(target, command, timeout, HOME),
        context=EscapeContext(**{**world.context.__dict__, "probe": world.changes}),
    )
    took = time.monotonic() - started
    print(f"\n{world.backend}: {len(outcomes)} attempts in {took:.0f} s")
    for outcome in outcomes:
        print(" ", outcome.summary(), *outcome.notes)
    escaped = [o.summary() for o in outcomes if not o.contained]
    assert escaped == []
    # Only the attempts allowed to end the sandbox (by its own limits) may have ended it.
    assert all(o.survived for o in outcomes if o.name != "many-files")
    assert world.target.exec("echo alive", 30).stdout == "alive\n"
    assert world.changes() == []
    if world.backend == "local":
        assert world.target.enforced["disk"] == "tmpfs"  # type: ignore[attr-defined]
        log = world.target.dir / "console.log"  # type: ignore[attr-defined]
        assert log.stat().st_size <= LOG_LIMIT + 200  # the log flood was cut
