"""Behaviour of the real sandbox engines replisim's live world runs on: Docker and bubblewrap.

These tests talk to the local Docker engine (started by ``.ci/start-docker.sh``) and run
``bwrap``; they are skipped, with the reason, when either is missing. Every Docker object
they create carries the labels ``replisim=1`` and ``replisim.test=<run id>`` and is removed
in the fixtures' teardown (the base image is kept and reused). Network traffic stays on
loopback and on networks and containers the tests create.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

docker = pytest.importorskip("docker", reason="docker SDK not installed (pip install docker)")

from sim.hosts import docker_image as di  # noqa: E402
from sim.hosts.sandbox import bwrap_command, bwrap_path, python_executable  # noqa: E402
from sim.machine import HOME, UID  # noqa: E402
from tests.live_support import docker_error  # noqa: E402

RUN_ID = uuid.uuid4().hex[:8]
TEST_LABELS = {"replisim.test": RUN_ID}

# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A Docker client; skips the test if the engine does not answer."""
    reason = docker_error()
    if reason is not None:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    dc = docker.from_env()
    yield dc
    di.remove_labelled(dc, f"replisim.test={RUN_ID}")
    dc.close()


@pytest.fixture(scope="module")
def base_image(client: Any) -> str:
    """The offline base image (built once, reused)."""
    return di.build_base_image(client)


ContainerFactory = Callable[..., Any]


@pytest.fixture
def make_container(client: Any, base_image: str) -> Iterator[ContainerFactory]:
    """Start hardened sandboxes from ``base_run_kwargs``; removes them all afterwards."""
    created: list[Any] = []

    def make(**kwargs: Any) -> Any:
        labels = {**TEST_LABELS, **kwargs.pop("labels", {})}
        container = client.containers.run(**di.base_run_kwargs(base_image, labels=labels, **kwargs))
        created.append(container)
        return container

    yield make
    for container in created:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def _wait_for_log(container: Any, text: str, timeout: float = 60.0) -> None:
    """Block until ``text`` is in the container's log."""
    deadline = time.monotonic() + timeout
    while text.encode() not in container.logs():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in log: {container.logs()!r}")
        time.sleep(0.05)


def _py(container: Any, code: str, *args: str) -> tuple[int, str]:
    """Run ``code`` with the controller's Python (bound at its path) in the container."""
    result = container.exec_run([python_executable(), "-c", code, *args])
    return result.exit_code, result.output.decode(errors="replace")


@pytest.fixture
def loopback_server() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 (a port sandboxes must not reach)."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"host")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    srv.close()


CONNECT = """\
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("OK", s.recv(100).decode())
except OSError as e:
    print("ERR", e.errno)
"""

# --------------------------------------------------------------------------------------------
# Docker: image and hardening


def test_base_image_is_offline_tiny_labelled_and_reused(client: Any, base_image: str) -> None:
    """Building the base image twice gives the same tiny, labelled image without a registry."""
    assert di.build_base_image(client) == base_image
    image = client.images.get(di.DEFAULT_TAG)
    assert image.id == base_image
    assert image.labels[di.LABEL_KEY] == "1"
    assert image.attrs["Size"] < 64 * 1024


def test_container_runs_host_python_as_the_machines_user(make_container: ContainerFactory) -> None:
    """A sandbox runs the host's Python from read-only binds, as the user, in its home."""
    ct = make_container()
    code, out = _py(ct, "import os, sys; print(sys.version_info[:2], os.getuid(), os.getcwd())")
    assert code == 0, out
    assert out.split() == [f"({sys.version_info[0]},", f"{sys.version_info[1]})", str(UID), HOME]


def test_container_is_hardened(make_container: ContainerFactory) -> None:
    """Root and binds are read-only, the bundle root and home writable, no capabilities, no
    network but lo."""
    ct = make_container()
    code, out = _py(
        ct,
        """
import json, os, socket
def writable(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")]
nnp = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")]
print(json.dumps({
    "root": writable("/x"), "usr": writable("/usr/x"), "python": writable(os.__file__ + "x"),
    "opt": writable("/opt/x"), "home": writable("/home/agent/x"), "tmp": writable("/tmp/x"),
    "caps": caps[0], "nnp": nnp[0],
    "ifaces": [n for _, n in socket.if_nameindex()],
}))
""",
    )
    assert code == 0, out
    facts = json.loads(out)
    assert facts == {
        "root": False,
        "usr": False,
        "python": False,
        "opt": True,
        "home": True,
        "tmp": True,
        "caps": "0000000000000000",
        "nnp": "1",
        "ifaces": ["lo"],
    }


def test_labelled_volume_can_be_the_bundle_root(
    client: Any, make_container: ContainerFactory
) -> None:
    """A named volume at /opt is created with the labels and is writable by the user."""
    name = f"rs-vol-{RUN_ID}"
    ct = make_container(volume=name)
    code, out = _py(ct, "open('/opt/f', 'w').write('x'); import os; print(os.stat('/opt').st_uid)")
    assert (code, out.strip()) == (0, str(UID))
    assert client.volumes.get(name).attrs["Labels"] == {**di.LABELS, **TEST_LABELS}


def test_base_run_kwargs_refuses_non_internal_networks() -> None:
    """base_run_kwargs refuses the host network and the default bridge."""
    for network in ("host", "bridge", "default", "container:abc"):
        with pytest.raises(ValueError):
            di.base_run_kwargs(network=network)


# --------------------------------------------------------------------------------------------
# Docker: limits and signals


def test_exec_oom_kill_is_counted_and_reported_at_exit(
    client: Any, make_container: ContainerFactory
) -> None:
    """An exec'd process past mem_limit is OOM-killed (137); the cgroup counter and an 'oom'
    event show it at once, State.OOMKilled only once the container has exited."""
    ct = make_container(mem_limit="96m")
    since = int(time.time()) - 1
    assert di.oom_kill_count(ct) == 0
    code, _ = _py(ct, "b = []\nwhile True: b.append(bytearray(16 << 20))")
    assert code == di.EXIT_SIGKILL
    assert di.oom_kill_count(ct) == 1
    events = client.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": ct.id}
    )
    assert "oom" in [e.get("Action") for e in events]
    ct.reload()
    assert ct.status == "running"  # PID 1 survived
    assert ct.attrs["State"]["OOMKilled"] is False
    ct.stop(timeout=5)
    ct.reload()
    assert ct.attrs["State"]["OOMKilled"] is True


def test_pid1_oom_kill_sets_oomkilled(client: Any, make_container: ContainerFactory) -> None:
    """When PID 1 itself allocates past mem_limit the container is OOM-killed (exit 137)."""
    since = int(time.time()) - 1
    ct = make_container(
        mem_limit="64m",
        command=["python3", "-c", "b = []\nwhile True: b.append(bytearray(8 << 20))"],
    )
    assert ct.wait(timeout=120)["StatusCode"] == di.EXIT_SIGKILL
    ct.reload()
    # The engine sets OOMKilled from the kernel's OOM event; on a loaded machine the flag can
    # lag the exit, but the event itself is always in the engine's event log.
    events = client.events(
        since=since,
        until=int(time.time()) + 1,
        decode=True,
        filters={"container": ct.id, "event": "oom"},
    )
    assert ct.attrs["State"]["OOMKilled"] is True or any(True for _ in events)


def test_pids_limit_stops_fork_bomb_and_init_reaps_orphans(
    make_container: ContainerFactory,
) -> None:
    """fork() fails with EAGAIN at pids_limit; the container lives and PID 1 reaps orphans."""
    ct = make_container(pids_limit=32, mem_limit="512m")
    code, out = _py(
        ct,
        """
import os, time
n = 0
try:
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(1)
            os._exit(0)
        n += 1
except OSError as e:
    print(n, e.errno)
""",
    )
    assert code == 0, out
    forks, err = map(int, out.split())
    assert err == errno.EAGAIN
    assert forks < 32
    deadline = time.monotonic() + 60
    while True:  # the orphans exit after 1 s; the init must reap them
        res = ct.exec_run(["cat", "/sys/fs/cgroup/pids/pids.current"])
        if res.exit_code == 0 and int(res.output) <= 3:
            break
        assert time.monotonic() < deadline, res.output
        time.sleep(0.2)
    ct.reload()
    assert ct.status == "running"


@pytest.mark.slow
def test_stop_sends_sigterm_then_sigkill_after_grace(make_container: ContainerFactory) -> None:
    """stop(timeout=N) relays SIGTERM to every process, waits N s, then SIGKILLs: exit 137."""
    ct = make_container()
    _wait_for_log(ct, "replisim-init: ready")
    ct.exec_run(
        [
            "python3",
            "-c",
            "import signal, time\n"
            "log = open('/proc/1/fd/1', 'w')\n"
            "def on_term(*_):\n"
            "    log.write('child: SIGTERM ignored\\n'); log.flush()\n"
            "signal.signal(signal.SIGTERM, on_term)\n"
            "log.write('child: up\\n'); log.flush()\n"
            "time.sleep(60)\n",
        ],
        detach=True,
    )
    _wait_for_log(ct, "child: up")
    t0 = time.monotonic()
    ct.stop(timeout=2)
    elapsed = time.monotonic() - t0
    ct.reload()
    assert ct.attrs["State"]["ExitCode"] == di.EXIT_SIGKILL
    assert elapsed >= 1.9  # the grace was honoured (an upper bound would only measure load)
    log = ct.logs().decode()
    assert "replisim-init: SIGTERM" in log
    assert "child: SIGTERM ignored" in log


def test_stop_is_quick_and_clean_when_processes_obey(make_container: ContainerFactory) -> None:
    """If every process dies on SIGTERM the container exits 143 well before the grace ends."""
    ct = make_container()
    ct.exec_run(["sleep", "60"], detach=True)
    _wait_for_log(ct, "replisim-init: ready")
    ct.stop(timeout=10)
    ct.reload()
    # 143 (SIGTERM) rather than 137: every process was gone before the grace ran out.
    assert ct.attrs["State"]["ExitCode"] == di.EXIT_SIGTERM


def test_sigterm_from_inside_does_not_stop_the_container(make_container: ContainerFactory) -> None:
    """A process in the sandbox cannot stop it by signalling PID 1."""
    ct = make_container()
    _wait_for_log(ct, "replisim-init: ready")
    res = ct.exec_run(["sh", "-c", "kill -TERM 1; kill -INT 1; kill -KILL 1; sleep 0.3"])
    assert res.exit_code == 0
    ct.reload()
    assert ct.status == "running"


def test_limits_can_be_changed_while_running(make_container: ContainerFactory) -> None:
    """container.update(mem_limit=...) and update_limits(pids, cpus) change the live cgroup."""
    ct = make_container(mem_limit="256m")
    alloc = "b = bytearray(100 << 20); b[::4096] = b'x' * len(b[::4096]); print('ok')"
    assert _py(ct, alloc)[0] == 0
    ct.update(mem_limit="64m", memswap_limit="64m")
    limit = ct.exec_run(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).output
    assert int(limit) == 64 << 20
    assert _py(ct, alloc)[0] == di.EXIT_SIGKILL
    with pytest.raises(docker.errors.APIError):  # above memswap without changing it
        ct.update(mem_limit="512m")
    assert di.update_limits(ct, pids_limit=16, nano_cpus=500_000_000) == []
    assert int(ct.exec_run(["cat", "/sys/fs/cgroup/pids/pids.max"]).output) == 16
    quota = ct.exec_run(["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"]).output
    period = ct.exec_run(["cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"]).output
    assert int(quota) / int(period) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# Docker: networks


SERVER = """\
import socket
s = socket.create_server(("0.0.0.0", 8000))
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello")
    c.close()
"""


@pytest.mark.slow
def test_internal_network_links_containers_while_none_is_isolated(
    client: Any, make_container: ContainerFactory, loopback_server: int
) -> None:
    """Containers on an internal network reach each other; network_mode=none reaches nothing,
    neither the other container nor the host's loopback; the host has no address on the
    internal bridge."""
    net_name = f"rs-test-{RUN_ID}"
    net = client.networks.create(**di.internal_network_kwargs(net_name, labels=TEST_LABELS))
    try:
        net.reload()
        assert net.attrs["Internal"] is True
        bridge = f"br-{net.id[:12]}"
        srv = make_container(
            name=f"rs-srv-{RUN_ID}", network=net_name, command=["python3", "-c", SERVER]
        )
        peer = make_container(name=f"rs-peer-{RUN_ID}", network=net_name)
        iso = make_container(name=f"rs-iso-{RUN_ID}")
        _wait_for_log(srv, "listening")
        srv.reload()
        ip = srv.attrs["NetworkSettings"]["Networks"][net_name]["IPAddress"]
        assert _py(peer, CONNECT, f"rs-srv-{RUN_ID}", "8000")[1].split() == ["OK", "hello"]
        assert _py(peer, CONNECT, ip, "8000")[1].split() == ["OK", "hello"]
        assert _py(iso, CONNECT, ip, "8000")[1].split() == ["ERR", str(errno.ENETUNREACH)]
        refused = ["ERR", str(errno.ECONNREFUSED)]
        assert _py(iso, CONNECT, "127.0.0.1", str(loopback_server))[1].split() == refused
        addrs = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True
        )
        assert addrs.returncode == 0 and addrs.stdout.strip() == ""
    finally:
        for ct in client.containers.list(
            all=True, filters={"network": net_name}, ignore_removed=True
        ):
            ct.remove(force=True)
        net.remove()


# --------------------------------------------------------------------------------------------
# bubblewrap


@pytest.fixture(scope="module")
def bwrap() -> str:
    """Path of bwrap; skips the test if bubblewrap is not installed."""
    path = bwrap_path()
    if path is None:
        reason = "bwrap not found (apt-get install -y bubblewrap)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


def _bwrap_py(disk: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the controller's Python in a bubblewrap sandbox on ``disk``."""
    cmd = bwrap_command(disk, [python_executable(), "-c", code, *args])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_bwrap_command_unshares_everything() -> None:
    """The command unshares all namespaces and dies with its parent; net only on request."""
    cmd = bwrap_command(Path("/tmp"), ["true"], bwrap="/usr/bin/bwrap")
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--disable-userns"):
        assert flag in cmd
    assert "--share-net" not in cmd
    assert "--share-net" in bwrap_command(Path("/tmp"), ["true"], share_net=True, bwrap="x")
    assert cmd[cmd.index("--") + 1 :] == ["true"]
    with pytest.raises(ValueError):
        bwrap_command(Path("/tmp"), [])


def test_bwrap_runs_python_in_home_with_the_disk_at_opt(bwrap: str, tmp_path: Path) -> None:
    """bubblewrap starts the host's Python as the user in its home; /opt is the disk folder."""
    proc = _bwrap_py(
        tmp_path,
        "import json, os, sys; open('/opt/out.txt', 'w').write('hi'); "
        "print(json.dumps([sys.executable, os.getuid(), os.getcwd(), os.getpid()]))",
    )
    assert proc.returncode == 0, proc.stderr
    exe, uid, cwd, pid = json.loads(proc.stdout)
    assert Path(exe).resolve() == Path(sys.executable).resolve()
    assert (uid, cwd) == (UID, HOME)
    assert pid <= 3  # own PID namespace: bwrap's reaper is PID 1
    assert (tmp_path / "out.txt").read_text() == "hi"


def test_bwrap_hides_host_files(bwrap: str, tmp_path: Path) -> None:
    """Only the binds are visible: not the repo, /etc, /var/lib, the machine's /home or files
    next to the disk folder."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host only")
    disk = tmp_path / "w"
    repo = str(Path(__file__).resolve().parent.parent)
    code = (
        "import os, sys; print([p for p in sys.argv[1:] if os.path.exists(p)], os.listdir('/home'))"
    )
    proc = _bwrap_py(disk, code, str(secret), repo, "/etc/passwd", "/var/lib", "/proc/1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['/proc/1'] ['agent']"


def test_bwrap_binds_are_read_only(bwrap: str, tmp_path: Path) -> None:
    """Writing into the system or Python binds fails with EROFS."""
    code = """
import errno, os, sys
for path in ("/usr/replisim-x", os.path.join(os.path.dirname(os.__file__), "x.py")):
    try:
        open(path, "w")
        print("WROTE", path)
    except OSError as e:
        print(errno.errorcode[e.errno])
"""
    proc = _bwrap_py(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["EROFS", "EROFS"]


def test_bwrap_has_only_loopback(bwrap: str, tmp_path: Path, loopback_server: int) -> None:
    """The sandbox has only lo: its own loopback works, the host's loopback is unreachable."""
    code = """
import socket, sys
print([n for _, n in socket.if_nameindex()])
own = socket.create_server(("127.0.0.1", 0))
c = socket.create_connection(own.getsockname(), timeout=2)
print("own-loopback-ok")
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    print("reached-host")
except OSError as e:
    print("host", e.errno)
"""
    proc = _bwrap_py(tmp_path, code, str(loopback_server))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == ["['lo']", "own-loopback-ok", f"host {errno.ECONNREFUSED}"]


def _pids_with_arg(marker: str) -> list[int]:
    """PIDs of host processes whose command line contains ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = proc.joinpath("cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in args:
            pids.append(int(proc.name))
    return pids


def test_bwrap_sandbox_dies_with_its_parent(bwrap: str, tmp_path: Path) -> None:
    """When the process that started bwrap is SIGKILLed, the sandboxed command dies too."""
    marker = f"{int(RUN_ID, 16) % 1000 + 1000}.25"  # unique `sleep` argument
    launcher = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(60)"
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher, *bwrap_command(tmp_path, ["sleep", marker])]
    )
    try:
        deadline = time.monotonic() + 10
        while len(_pids_with_arg(marker)) < 3:  # launcher, bwrap (outside + reaper), sleep
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _pids_with_arg(marker):
        assert time.monotonic() < deadline, f"left behind: {_pids_with_arg(marker)}"
        time.sleep(0.05)
