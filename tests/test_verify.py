"""Kernel facts about live hosts' processes (``sim.hosts.verify``) on the real engines.

The registration checks run against real replicas (the replica's own ``agent.py`` and
``server.py``, started as the live world starts them) and against forgeries run in the
sandbox, in another sandbox and on the controller's machine; each forgery must fail with
its own reason. Every test that needs a sandbox runs once per backend (Docker, bubblewrap)
and is skipped with the reason printed where that engine cannot run. Everything belongs to
this module's run id and is removed at the end. Network traffic stays on loopback: the
controller's probes go to 127.0.0.1 inside the sandbox, or on the controller's own loopback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.hosts import verify
from sim.hosts.live import clean
from sim.hosts.local_host import state_root
from sim.hosts.verify import (
    PeerProcess,
    ProbeError,
    VerifyError,
    file_digest,
    in_sandbox,
    init_pid,
    listener_pid,
    netns_socket,
    ns_pid,
    peer_pid,
    peer_process,
    peers,
    probe_http,
    process_argv,
    process_cwd,
    sandbox_of,
    sandbox_pids,
    verify_agent,
)
from tests.control_support import FORGE, Bundle, Rig
from tests.live_support import ERRORS, labelled, skip_unless

RUN_ID = f"test-verify-{uuid.uuid4().hex[:8]}"
BACKENDS = ("docker", "local")
PY = sys.executable

# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module", autouse=True)
def _clean_run() -> Iterator[None]:
    """After the module: remove what is left of RUN_ID and check that nothing is."""
    yield
    clean(RUN_ID)
    if ERRORS.get("docker", "untried") is None:
        assert labelled(RUN_ID) == {"containers": [], "networks": [], "volumes": []}
    assert not (state_root() / RUN_ID).exists()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn; skips the test if its engine cannot run here."""
    name = str(request.param)
    skip_unless(name)
    return name


@pytest.fixture(scope="module")
def rig(backend: str) -> Iterator[Rig]:
    """A host of the backend with its control server, shared by the module's tests."""
    made = Rig(backend, f"{backend}-a", RUN_ID)
    made.box.write_file("/opt/forge.py", FORGE)
    yield made
    made.close()


@pytest.fixture(scope="module")
def other(rig: Rig) -> Iterator[Rig]:
    """A second host of the same backend that can also reach ``rig``'s control socket."""
    made = Rig(rig.box.backend, f"{rig.box.backend}-b", RUN_ID, binds={rig.folder: "/run/other"})
    made.box.write_file("/opt/forge.py", FORGE)
    yield made
    made.close()


@pytest.fixture(scope="module")
def genuine(rig: Rig) -> Bundle:
    """One real replica in ``rig``: bundle, server ready, agent registered."""
    return rig.replica("/opt/genuine")


def _forge(
    rig: Rig,
    folder: str,
    fields: dict,
    *exec_argv: str,
    where: Rig | None = None,
    socket_path: str = "/run/replisim/ctl.sock",
) -> tuple[int, int, dict]:
    """Run FORGE in ``where`` (default ``rig``) from ``folder``; return the hello ``rig`` got."""
    host = where or rig
    host.run(["mkdir", "-p", folder])
    host.background(
        folder,
        ["python3", "/opt/forge.py", socket_path, json.dumps(fields), *exec_argv],
        log="/opt/forge.log",
    )
    return rig.hello(fields.get("path", folder))


def _check(rig: Rig, pid: int | PeerProcess, bundle: Bundle, **kwargs: object) -> verify.Verdict:
    """verify_agent for ``pid`` registering ``bundle`` of ``rig``."""
    options: dict = {
        "folder": bundle.folder,
        "port": bundle.port,
        "weights_sha256": bundle.digest,
        "weights_bytes": bundle.size,
    }
    options.update(kwargs)
    return verify_agent(rig.box, pid, **options)


# --------------------------------------------------------------------------------------------
# peers, without a sandbox

_CONNECT = """\
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"op": "hello", "pid": 1}\\n')
if sys.argv[2] == "hold":
    try:
        s.recv(1)  # until the test hangs up
    except ConnectionResetError:  # it hung up without reading the hello
        pass
"""


def _listener(tmp_path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "s.sock"))
    server.listen()
    return server


def test_peer_pid_is_the_connecting_process_whatever_it_says(tmp_path: Path) -> None:
    """The peer pid is the kernel's pid of the connecting process, not the pid it wrote."""
    server = _listener(tmp_path)
    child = subprocess.Popen([PY, "-c", _CONNECT, str(tmp_path / "s.sock"), "hold"])
    try:
        conn, _ = server.accept()
        assert conn.recv(100).startswith(b'{"op": "hello", "pid": 1}')
        assert peer_pid(conn) == child.pid
    finally:
        child.kill()
        child.wait()
        server.close()


def test_a_held_peer_is_readable_once_it_exits(tmp_path: Path) -> None:
    """peer_process holds the peer by a pidfd that becomes readable when it exits."""
    server = _listener(tmp_path)
    child = subprocess.Popen([PY, "-c", _CONNECT, str(tmp_path / "s.sock"), "hold"])
    conn, _ = server.accept()
    with peer_process(conn) as held:
        assert held.pid == child.pid and not held.exited()
        assert held.start_ticks == verify.start_ticks(child.pid)
        assert held.signal(0)
        conn.close()  # the child's recv returns: it exits
        assert held.exited(timeout=10)
        child.wait()
        assert not held.signal(0)
    server.close()


def test_a_peer_that_has_exited_cannot_be_held(tmp_path: Path) -> None:
    """A peer that connected and exited (and was reaped) is refused, not mistaken."""
    server = _listener(tmp_path)
    subprocess.run([PY, "-c", _CONNECT, str(tmp_path / "s.sock"), "go"], check=True)
    conn, _ = server.accept()
    with pytest.raises(ProcessLookupError):
        peer_process(conn)
    server.close()


def test_without_peer_pidfds_a_process_younger_than_the_connection_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pidfd_open fallback refuses a pid whose process started after the accept."""
    monkeypatch.setattr(peers, "_SO_PEERPIDFD", 9999)  # an option no kernel knows
    server = _listener(tmp_path)
    child = subprocess.Popen([PY, "-c", _CONNECT, str(tmp_path / "s.sock"), "hold"])
    try:
        conn, _ = server.accept()
        with peer_process(conn) as held:
            assert held.pid == child.pid and not held.exited()
        long_ago = time.clock_gettime(time.CLOCK_BOOTTIME) - 3600
        with pytest.raises(ProcessLookupError, match="reused"):
            peer_process(conn, accepted_at=long_ago)
    finally:
        child.kill()
        child.wait()
        server.close()


# --------------------------------------------------------------------------------------------
# sandbox facts


def test_a_process_belongs_to_its_own_sandbox_only(rig: Rig, other: Rig, genuine: Bundle) -> None:
    """An agent is in its host's sandbox, not in another; the controller is in neither."""
    pid = genuine.agent_pid
    assert pid is not None
    assert in_sandbox(pid, rig.box) and not in_sandbox(pid, other.box)
    assert not in_sandbox(os.getpid(), rig.box)
    assert sandbox_of(pid) == sandbox_of(init_pid(rig.box)) != sandbox_of(init_pid(other.box))
    assert {init_pid(rig.box), pid, genuine.server_pid} <= set(sandbox_pids(rig.box))
    assert not in_sandbox(2**22 + 5, rig.box)  # no such process


def test_cwd_argv_and_pid_are_the_kernels_as_the_sandbox_sees_them(
    rig: Rig, genuine: Bundle
) -> None:
    """cwd is the sandbox's path, argv the command line, ns_pid the pid the agent sees."""
    pid = genuine.agent_pid
    assert pid is not None and genuine.hello is not None
    assert process_cwd(pid) == genuine.folder
    assert process_argv(pid) == ["python3", "agent.py", "--port", str(genuine.port)]
    assert ns_pid(pid) == genuine.hello["pid"] != pid
    with pytest.raises(ProcessLookupError):
        process_cwd(2**22 + 5)


def test_file_digest_reads_the_sandboxs_file_through_its_links(rig: Rig, tmp_path: Path) -> None:
    """Links resolve inside the sandbox: never to the controller's files; FIFOs are refused."""
    secret = tmp_path / "controller-only"
    secret.write_bytes(b"the controller's file")
    data = random.Random(1).randbytes(300_000)
    rig.box.write_file("/opt/files/data", data)
    setup = (
        "cd /opt/files && ln -sf /opt/files/data abs && ln -sf ../../../../opt/files/data up"
        f" && ln -sf {secret} out && mkfifo fifo && exec sleep 600"
    )
    rig.background("/opt", ["sh", "-c", setup], log="/opt/files.log")
    holder = _wait_pid(rig, ["sleep", "600"])
    wanted = hashlib.sha256(data).hexdigest()
    assert file_digest(holder, "/opt/files/data") == wanted
    assert file_digest(holder, "data") == wanted  # relative to its cwd
    assert file_digest(holder, "/opt/files/abs") == wanted
    assert file_digest(holder, "/opt/files/up") == wanted  # ".." stops at its root
    with pytest.raises(FileNotFoundError):
        file_digest(holder, "/opt/files/out")  # the controller has it; the sandbox not
    t0 = time.monotonic()
    with pytest.raises(VerifyError, match="not a regular file"):
        file_digest(holder, "/opt/files/fifo")
    assert time.monotonic() - t0 < 1
    with pytest.raises(VerifyError, match="bytes"):
        file_digest(holder, "data", max_bytes=1000)
    with pytest.raises(VerifyError, match="not 7"):
        file_digest(holder, "data", size=7)


def _wait_pid(rig: Rig, argv: list[str], timeout: float = 30.0) -> int:
    """The controller's pid of the sandbox process running ``argv``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in sandbox_pids(rig.box):
            try:
                if process_argv(pid) == argv:
                    return pid
            except ProcessLookupError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no process {argv!r} in {rig.box!r}")


def test_listener_pid_is_the_sandbox_process_holding_the_port(
    rig: Rig, other: Rig, genuine: Bundle
) -> None:
    """The listener of the replica's port is its server; nothing listens elsewhere."""
    assert listener_pid(rig.box, genuine.port) == genuine.server_pid
    assert listener_pid(genuine.agent_pid, genuine.port) == genuine.server_pid
    assert listener_pid(rig.box, genuine.port + 500) is None
    assert listener_pid(other.box, genuine.port) is None  # its own network


def test_probe_http_asks_the_server_inside_the_sandbox(rig: Rig, genuine: Bundle) -> None:
    """The controller's probe reaches 127.0.0.1 of the sandbox; a free port refuses, a mute
    listener times out."""
    if rig.box.backend == "docker":
        rig.box.container.reload()
        assert rig.box.container.attrs["HostConfig"]["NetworkMode"] == "none"
    status, body = probe_http(init_pid(rig.box), genuine.port, timeout=5)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert probe_http(init_pid(rig.box), genuine.port, "/nope", timeout=5)[0] == 404
    with pytest.raises(ProbeError, match="connection refused"):
        probe_http(init_pid(rig.box), genuine.port + 500, timeout=5)
    mute = rig.port()
    listen = f"import socket, time; s = socket.create_server(('127.0.0.1', {mute})); time.sleep(99)"
    rig.background("/opt", ["python3", "-c", listen], log="/opt/mute.log")
    deadline = time.monotonic() + 30
    while listener_pid(rig.box, mute) is None:
        assert time.monotonic() < deadline, "the mute listener did not listen"
        time.sleep(0.05)
    t0 = time.monotonic()
    with pytest.raises(ProbeError, match=r"timed out after 0\.5 s"):
        probe_http(init_pid(rig.box), mute, timeout=0.5)
    assert time.monotonic() - t0 < 1.5


def test_probe_http_leaves_the_calling_thread_on_the_controllers_network(
    rig: Rig, genuine: Bundle
) -> None:
    """After probes, the caller's namespace is unchanged and its loopback is the controller's."""
    own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    before = os.stat(own).st_ino
    here = socket.create_server(("127.0.0.1", 0))  # only the controller's loopback has it
    port = here.getsockname()[1]
    try:
        for _ in range(5):
            assert probe_http(init_pid(rig.box), genuine.port, timeout=5)[0] == 200
        assert os.stat(own).st_ino == before
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        inside = netns_socket(init_pid(rig.box))
        with inside, pytest.raises(ConnectionRefusedError):
            inside.connect(("127.0.0.1", port))  # the sandbox's loopback has no such port
    finally:
        here.close()


# --------------------------------------------------------------------------------------------
# registrations: the genuine one, and forgeries


def test_a_genuine_agent_is_verified(rig: Rig, genuine: Bundle) -> None:
    """A real agent.py with its own server and the bundle's weights is a verified replica."""
    assert genuine.agent_conn is not None and genuine.hello is not None
    held = rig.server.process(genuine.agent_conn)
    assert isinstance(held, PeerProcess) and held.pid == genuine.agent_pid
    verdict = _check(rig, held, genuine, claimed_pid=genuine.hello["pid"])
    assert (verdict.ok, verdict.reason) == (True, "verified")
    assert verdict.pid == genuine.agent_pid and verdict.server_pid == genuine.server_pid


def test_a_forger_claiming_an_agents_pid_is_judged_by_its_own(rig: Rig, genuine: Bundle) -> None:
    """A process that writes the real agent's pid is checked as itself, and its claim fails."""
    assert genuine.hello is not None
    claimed = genuine.hello["pid"]
    _, pid, message = _forge(
        rig, genuine.folder, {"pid": claimed, "port": genuine.port, "path": genuine.folder}
    )
    assert message["pid"] == claimed and pid != genuine.agent_pid
    verdict = _check(rig, pid, genuine, claimed_pid=message["pid"])
    assert not verdict.ok and verdict.pid == pid
    assert verdict.reason == (
        f"the message claims pid {claimed}, the kernel says pid {ns_pid(pid)} (pid {pid} here)"
    )


def test_a_process_on_the_controllers_machine_is_not_in_the_sandbox(
    rig: Rig, genuine: Bundle, tmp_path: Path
) -> None:
    """A process outside any sandbox that reaches the socket is refused as not in the host."""
    path = str(tmp_path)
    fields = json.dumps({"path": path, "port": genuine.port})
    child = subprocess.Popen([PY, "-c", FORGE, rig.server.path, fields], cwd=path)
    try:
        _, pid, _ = rig.hello(path)
        assert pid == child.pid
        verdict = _check(rig, pid, genuine)
        assert verdict.reason == f"pid {pid} is not in host {rig.box.name}'s sandbox"
    finally:
        child.kill()
        child.wait()


def test_a_process_of_another_sandbox_is_refused(rig: Rig, other: Rig, genuine: Bundle) -> None:
    """A process of another host that reaches this host's socket is not this host's."""
    fields = {"path": "/opt/elsewhere", "port": genuine.port}
    _, pid, _ = _forge(
        rig, "/opt/elsewhere", fields, where=other, socket_path="/run/other/ctl.sock"
    )
    assert in_sandbox(pid, other.box)
    verdict = _check(rig, pid, genuine, folder="/opt/elsewhere")
    assert verdict.reason == f"pid {pid} is not in host {rig.box.name}'s sandbox"


def test_weights_with_one_byte_changed_are_refused(rig: Rig) -> None:
    """A replica whose weights differ by one byte from the bundle's is refused."""
    bundle = rig.replica("/opt/flipped")
    flip = (
        "f = open('weights/model.safetensors', 'r+b'); b = f.read(1); f.seek(0); "
        "f.write(bytes([b[0] ^ 1]))"
    )
    assert rig.box.exec(["python3", "-c", flip], timeout=30, cwd=bundle.folder).success
    assert bundle.agent_pid is not None
    verdict = _check(rig, bundle.agent_pid, bundle)
    assert verdict.reason == "weights/model.safetensors sha256 differs"


def test_a_server_of_another_folder_is_refused(rig: Rig) -> None:
    """An agent whose port is served from another folder has no server of its own."""
    theirs = rig.serve(rig.place("/opt/theirs", rig.port()))
    mine = rig.place("/opt/mine", theirs.port)
    rig.spawn_agent(mine)
    assert mine.agent_pid is not None
    verdict = _check(rig, mine.agent_pid, mine)
    assert verdict.reason == (
        f"port {mine.port}: its listener {theirs.server_pid} runs in /opt/theirs, not /opt/mine"
    )
    assert verdict.server_pid == theirs.server_pid


#: An agent.py that says hello without first checking its server (the bundle's own checks,
#: and would exit): what an agent that edited its agent.py can send.
HELLO_ONLY = """\
import json, os, socket, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
ctl = socket.socket(socket.AF_UNIX)
ctl.connect("/run/replisim/ctl.sock")
hello = {"op": "hello", "role": "agent", "pid": os.getpid(), "path": os.getcwd(), "port": port}
ctl.sendall((json.dumps(hello) + "\\n").encode())
time.sleep(600)
"""


def test_an_agent_with_nothing_listening_is_refused(rig: Rig) -> None:
    """An agent whose server does not run is not a replica."""
    placed = rig.place("/opt/serverless", rig.port())
    rig.box.write_file(f"{placed.folder}/agent.py", HELLO_ONLY)
    bundle = rig.spawn_agent(placed)
    assert bundle.agent_pid is not None
    verdict = _check(rig, bundle.agent_pid, bundle)
    assert verdict.reason == f"nothing listens on port {bundle.port}"


def test_a_process_that_is_not_agent_py_is_refused(rig: Rig, genuine: Bundle) -> None:
    """An honest hello from another program in the bundle folder is not an agent."""
    _, pid, _ = _forge(rig, genuine.folder, {"port": genuine.port, "path": genuine.folder})
    verdict = _check(rig, pid, genuine)
    assert verdict.reason.startswith(f"pid {pid} runs 'python3 /opt/forge.py ")
    assert verdict.reason.endswith(f", not 'python3 agent.py --port {genuine.port}'")


def test_a_shell_dressed_as_agent_py_is_refused(rig: Rig) -> None:
    """A process named ``python3 agent.py --port N`` whose executable is not Python is refused."""
    bundle = rig.serve(rig.place("/opt/dressed", rig.port()))
    rig.box.write_file("/opt/dressed/fake/agent.py", "sleep 600\n")
    folder = "/opt/dressed/fake"
    argv = ["/bin/sh", "python3", "agent.py", "--port", str(bundle.port)]
    _, pid, _ = _forge(rig, folder, {"port": bundle.port, "path": folder}, *argv)
    deadline = time.monotonic() + 10
    while process_argv(pid)[:2] != ["python3", "agent.py"] and time.monotonic() < deadline:
        time.sleep(0.02)  # until the exec
    verdict = _check(rig, pid, bundle, folder=folder)
    assert verdict.reason.startswith(f"pid {pid} executes /")
    assert verdict.reason.endswith(", not the host's Python")


_SERVER_503 = """\
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_a_server_that_fails_the_controllers_probe_is_refused(rig: Rig) -> None:
    """Its own server in the right folder, but not healthy when the controller asks."""
    bundle = rig.place("/opt/unhealthy", rig.port(), server=_SERVER_503)
    rig.start(bundle.folder, "server.py", bundle.port)
    deadline = time.monotonic() + 30
    while listener_pid(rig.box, bundle.port) is None:
        assert time.monotonic() < deadline, "the 503 server did not listen"
        time.sleep(0.05)
    rig.box.write_file(f"{bundle.folder}/agent.py", HELLO_ONLY)  # the real one would not ask
    rig.spawn_agent(bundle)
    assert bundle.agent_pid is not None
    verdict = _check(rig, bundle.agent_pid, bundle)
    assert verdict.reason == f"probe of port {bundle.port}: HTTP 503"


def test_a_replica_counted_already_is_not_counted_twice(rig: Rig, genuine: Bundle) -> None:
    """A known agent's pid, or a second agent on a known replica's server, is refused."""
    assert genuine.agent_pid is not None and genuine.server_pid is not None
    verdict = _check(rig, genuine.agent_pid, genuine, known_pids={genuine.agent_pid})
    assert verdict.reason == f"pid {genuine.agent_pid} is already a known replica's process"
    twin = rig.spawn_agent(Bundle(genuine.folder, genuine.port, genuine.digest, genuine.size))
    assert twin.agent_pid is not None and twin.agent_pid != genuine.agent_pid
    known = {genuine.agent_pid, genuine.server_pid}
    verdict = _check(rig, twin.agent_pid, genuine, known_pids=known)
    assert verdict.reason == (
        f"port {genuine.port} is served by pid {genuine.server_pid}, a known replica's server"
    )
    rig.box.signal(ns_pid(twin.agent_pid), "KILL")


def test_an_agent_that_exited_is_refused(rig: Rig) -> None:
    """A registration whose process has gone is refused, held pidfd or plain pid."""
    bundle = rig.replica("/opt/gone")
    assert bundle.agent_conn is not None and bundle.agent_pid is not None
    held = rig.server.process(bundle.agent_conn)
    assert held is not None, f"the agent's process {bundle.agent_pid} could not be held"
    rig.box.signal(ns_pid(bundle.agent_pid), "KILL")
    assert held.exited(timeout=10), f"pid {bundle.agent_pid} still runs after SIGKILL"
    assert _check(rig, held, bundle).reason == f"pid {bundle.agent_pid} has exited"
    rig.wait_for(lambda e: e == ("closed", bundle.agent_conn), "the agent's hang-up")
    verdict = _check(rig, bundle.agent_pid, bundle)
    assert verdict.reason in (
        f"pid {bundle.agent_pid} has exited",
        f"pid {bundle.agent_pid} is not in host {rig.box.name}'s sandbox",  # pid reused
    )


def test_init_pid_of_a_stopped_host_is_an_error(backend: str) -> None:
    """A host that does not run has no init to verify against."""
    made = Rig(backend, f"{backend}-stopped", RUN_ID)
    try:
        assert in_sandbox(init_pid(made.box), made.box)
        made.box.stop(grace=1)
        with pytest.raises(VerifyError, match="not running"):
            init_pid(made.box)
    finally:
        made.close()


def test_errno_of_a_refused_probe_is_econnrefused(rig: Rig) -> None:
    """ProbeError is an OSError carrying the errno of what failed."""
    with pytest.raises(ProbeError) as caught:
        probe_http(init_pid(rig.box), 1, timeout=5)
    assert caught.value.errno == errno.ECONNREFUSED
