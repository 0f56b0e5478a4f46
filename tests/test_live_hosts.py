"""Behaviour of live hosts (``sim.hosts.live``) on the real engines: Docker and bubblewrap.

Every test runs against the real engine, once per backend, and is skipped with the reason
printed when that engine cannot run here. Every host belongs to this module's run id
(``RUN_ID``); the module's teardown removes whatever is left with ``clean(RUN_ID)`` and checks
that nothing labelled with it remains. Network tests only reach a listener the test itself
opens on 127.0.0.1, and otherwise only read interface and route tables.
"""

from __future__ import annotations

import errno
import json
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sim.cli import main
from sim.hosts import machine_fs
from sim.hosts.live import (
    LIVE_HOSTS,
    ExecResult,
    LimitUnsupportedError,
    LiveHost,
    LiveHostError,
    clean,
    live_host,
)
from sim.hosts.local_host import state_root
from sim.machine import Machine
from sim.registry import UnknownNameError
from tests.live_support import ERRORS, labelled, reason, skip_unless

RUN_ID = f"test-{uuid.uuid4().hex[:8]}"
BACKENDS = ("docker", "local")
ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module", autouse=True)
def _clean_run() -> Iterator[None]:
    """After the module: remove what is left of RUN_ID and check that nothing is."""
    yield
    report = clean(RUN_ID)
    if ERRORS.get("docker", "untried") is None:
        assert labelled(RUN_ID) == {"containers": [], "networks": [], "volumes": []}
    assert not (state_root() / RUN_ID).exists()
    assert report.skipped == [] or ERRORS.get("docker") is not None


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn; skips the test if its engine cannot run here."""
    name = str(request.param)
    skip_unless(name)
    return name


HostFactory = Callable[..., LiveHost]


@pytest.fixture
def make_host(backend: str) -> Iterator[HostFactory]:
    """Start hosts of the backend under test; closes them all afterwards."""
    made: list[LiveHost] = []

    def make(**kwargs: Any) -> LiveHost:
        host = live_host(backend, f"h{len(made)}-{uuid.uuid4().hex[:6]}", run_id=RUN_ID, **kwargs)
        made.append(host)
        return host.start()

    yield make
    for host in made:
        host.close()


@pytest.fixture(scope="module")
def shared(backend: str) -> Iterator[LiveHost]:
    """One running host per backend for the tests that leave it as they found it."""
    with live_host(backend, "shared", run_id=RUN_ID, memory="256MiB", pids=128) as host:
        yield host


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _pids_of(host: LiveHost, needle: str) -> list[int]:
    return [p.pid for p in host.processes() if needle in p.command]


PY = sys.executable


# --------------------------------------------------------------------------------------------
# the interface, without an engine


def test_registry_names_the_backends_and_lists_them_for_an_unknown_one() -> None:
    """docker and local are registered; an unknown backend's error lists the known ones."""
    assert {"docker", "local"} <= set(LIVE_HOSTS.names())
    with pytest.raises(UnknownNameError, match="known: docker, local"):
        live_host("vmware", "x")


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    """Names, sizes and networks are checked when the host is made."""
    with pytest.raises(ValueError, match="host name"):
        live_host("local", "no spaces", run_id=RUN_ID)
    with pytest.raises(ValueError, match="run id"):
        live_host("local", "ok", run_id="../escape")
    with pytest.raises(ValueError, match="size"):
        live_host("local", "ok", run_id=RUN_ID, memory="lots")
    with pytest.raises(ValueError, match="network 'none' only"):
        live_host("local", "ok", run_id=RUN_ID, network="replisim-net")
    with pytest.raises(ValueError, match="pids"):
        live_host("docker", "ok", run_id=RUN_ID, pids=0)


def test_docker_exec_keeps_frames_read_ahead_with_the_headers() -> None:
    """Output that arrived with the exec's HTTP headers (read ahead by the client's buffered
    reader) is not lost."""
    pytest.importorskip("docker")
    from sim.hosts.docker_host import _read_ahead, _read_frames

    ours, engine = socket.socketpair()
    frames = b"".join(struct.pack(">BxxxL", n, len(d)) + d for n, d in ((1, b"out\n"), (2, b"e")))
    engine.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n" + frames)
    engine.close()
    headers = ours.makefile("rb")  # what http.client reads the response through
    assert headers.readline() == b"HTTP/1.1 101 UPGRADED\r\n" and headers.readline() == b"\r\n"
    sock = SimpleNamespace(_sock=ours, _response=SimpleNamespace(raw=SimpleNamespace(
        _fp=SimpleNamespace(fp=headers))))  # fmt: skip
    streams, cut = _read_frames(ours, time.perf_counter() + 5, _read_ahead(sock))
    assert (bytes(streams[1]), bytes(streams[2]), cut) == (b"out\n", b"e", False)
    ours.close()


# --------------------------------------------------------------------------------------------
# commands and files


def test_exec_runs_commands_as_the_machines_user_in_its_home(shared: LiveHost) -> None:
    """exec takes an argv or a shell string, stdin, a cwd (relative: to the home) and extra
    variables; returns code, output, timing."""
    res = shared.exec(["sh", "-c", "id -u; pwd; cat; echo oops >&2; exit 3"], 30, input="hi\n")
    assert (res.returncode, res.stdout, res.stderr) == (3, "1000\n/home/agent\nhi\n", "oops\n")
    assert not res.timed_out and res.duration_s > 0 and not res.success
    res = shared.exec("echo $((6 * 7)) from $(pwd)", timeout=30, cwd="/tmp")
    assert res.success and res.stdout == "42 from /tmp\n"
    shared.exec("mkdir -p rel", timeout=30)
    assert shared.exec("pwd", timeout=30, cwd="rel").stdout == "/home/agent/rel\n"
    res = shared.exec("echo $GREETING $HOME", timeout=30, env={"GREETING": "hello"})
    assert res.stdout == "hello /home/agent\n"
    assert shared.exec("echo ${GREETING-unset}", timeout=30).stdout == "unset\n"


def test_host_is_hardened(shared: LiveHost) -> None:
    """No capabilities, no_new_privs, read-only system, root and /etc; the machine's writable
    folders (bundle root, home, /tmp, /var/tmp, /dev/shm) writable."""
    code = textwrap.dedent(
        """
        import json, os
        def writable(path):
            try:
                open(path, "w").close()
                return True
            except OSError:
                return False
        status = dict(l.split(":\\t", 1) for l in open("/proc/self/status"))
        print(json.dumps({
            "caps": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip(),
            "root": writable("/x"), "usr": writable("/usr/x"), "python": writable(os.__file__),
            "etc": writable("/etc/x"), "var": writable("/var/x"),
            "home-parent": writable("/home/x"), "opt": writable("/opt/x"),
            "home": writable("/home/agent/x"), "tmp": writable("/tmp/x"),
            "var-tmp": writable("/var/tmp/x"), "shm": writable("/dev/shm/x"),
        }))
        """
    )
    res = shared.exec(["python3", "-c", code], timeout=60)
    assert res.success, res.stderr
    assert json.loads(res.stdout) == {
        "caps": "0000000000000000",
        "nnp": "1",
        "root": False,
        "usr": False,
        "python": False,
        "etc": False,
        "var": False,
        "home-parent": False,
        "opt": True,
        "home": True,
        "tmp": True,
        "var-tmp": True,
        "shm": True,
    }


def test_files_round_trip_and_fail_like_files(shared: LiveHost) -> None:
    """write_file makes parents and belongs to the host's user; read_file raises OSErrors."""
    data = bytes(range(256)) * 64
    shared.write_file("files/deep/blob.bin", data)
    assert shared.read_file("/home/agent/files/deep/blob.bin") == data
    shared.write_file("/home/agent/files/deep/blob.bin", "replaced")
    assert shared.read_file("files/deep/blob.bin") == b"replaced"
    owner = shared.exec(["stat", "-c", "%u", "files/deep/blob.bin"], timeout=30).stdout
    assert owner.strip() == "1000"
    with pytest.raises(FileNotFoundError):
        shared.read_file("files/missing")
    with pytest.raises(IsADirectoryError):
        shared.read_file("files")
    with pytest.raises(PermissionError):
        shared.write_file("/usr/replisim-x", b"no")


def test_exec_timeout_kills_the_command_and_its_children(shared: LiveHost) -> None:
    """At the timeout the command's process group is SIGKILLed: the call returns, nothing stays."""
    res = shared.exec("sleep 101 & sleep 102; echo not reached", timeout=1)
    assert res.timed_out and res.returncode == 137 and res.duration_s >= 1
    assert "not reached" not in res.stdout
    _wait(lambda: not _pids_of(shared, "sleep 10"), "the timed-out sleeps to die", timeout=10)
    assert shared.exec(["true"], timeout=30).success  # the host is fine


def test_hangup_timeout_spares_what_runs_under_nohup(make_host: HostFactory) -> None:
    """With hangup, a timed-out command's group gets SIGHUP, then SIGKILL for what does not
    ignore it: the nohup'd sleep lives on, the other is gone."""
    host = make_host()
    res = host.exec("nohup sleep 100 >/dev/null 2>&1 & sleep 100", timeout=1, hangup=True)
    assert res.timed_out and res.returncode == 129 and res.duration_s >= 1
    time.sleep(0.5)
    survivors = [p for p in host.processes() if p.command == "sleep 100"]
    assert len(survivors) == 1 and survivors[0].ppid == 1  # the nohup'd one, orphaned
    res = host.exec("trap 'echo caught' HUP; sleep 101 & wait", timeout=1, hangup=True)
    assert (res.timed_out, res.returncode, res.stdout) == (True, 129, "caught\n")  # a handler runs
    _wait(lambda: not _pids_of(host, "sleep 101"), "the sleep that did not ignore SIGHUP")
    assert [p.command for p in host.processes() if "sleep" in p.command] == ["sleep 100"]


def test_processes_hide_the_hangup_wrapper(shared: LiveHost) -> None:
    """A command run with hangup shows as started by exec (parent 0); no wrapper shows."""
    thread = threading.Thread(
        target=shared.exec, args=(["sleep", "3.5"], 30), kwargs={"hangup": True}
    )
    thread.start()
    try:
        procs = _wait(lambda: [p for p in shared.processes() if p.command == "sleep 3.5"], "sleep")
        assert [p.ppid for p in procs] == [0]
        assert not [p for p in shared.processes() if "replisim-hangup" in p.command]
    finally:
        thread.join()


# --------------------------------------------------------------------------------------------
# the machine: both backends render the same one

BOX = Machine("box", missing_tools=frozenset({"netstat"}))


@pytest.fixture(scope="module")
def box(backend: str) -> Iterator[LiveHost]:
    """A host of each backend rendering BOX (netstat missing), with an 8 MiB disk."""
    name = f"box-{backend}"
    with live_host(backend, name, run_id=RUN_ID, machine=BOX, workdir_size="8MiB") as host:
        yield host


def _bash(host: LiveHost, line: str) -> ExecResult:
    """Run ``line`` as an agent's command: ``bash -c`` in the home."""
    return host.exec(["bash", "-c", line], timeout=30)


def test_commands_run_as_the_machines_user(box: LiveHost) -> None:
    """whoami says agent, id shows uid/gid 1000 by name and no other group."""
    assert _bash(box, "whoami").stdout == "agent\n"
    assert _bash(box, "id -u").stdout == "1000\n"
    assert _bash(box, "id").stdout == "uid=1000(agent) gid=1000(agent) groups=1000(agent)\n"


def test_home_is_the_working_directory_and_the_users(box: LiveHost) -> None:
    """HOME is /home/agent, commands start there, and the user owns it."""
    assert _bash(box, "echo $HOME; pwd; stat -c '%U %G %a' .").stdout == (
        "/home/agent\n/home/agent\nagent agent 755\n"
    )


def test_etc_holds_the_machines_files(box: LiveHost) -> None:
    """/etc/os-release, hostname, passwd and group are the machine's; hostname agrees."""
    files = BOX.etc_files()
    assert _bash(box, "cat /etc/os-release").stdout == BOX.os_release
    assert _bash(box, "cat /etc/hostname; hostname").stdout == "box\nbox\n"
    assert _bash(box, "cat /etc/passwd").stdout == files["passwd"]
    assert _bash(box, "cat /etc/group").stdout == files["group"]


def test_system_tools_that_go_through_etc_work(box: LiveHost) -> None:
    """awk and which (links through /etc/alternatives), ps and hostname all work."""
    assert _bash(box, "awk 'BEGIN{print 2+3}'").stdout == "5\n"
    res = _bash(box, "which awk")
    assert (res.returncode, res.stdout) == (0, "/usr/bin/awk\n")
    assert _bash(box, "ps -o user= -p $$").stdout == "agent\n"


def test_environment_is_exactly_the_machines(box: LiveHost) -> None:
    """env shows exactly the machine's variables; python3 is the system's, not the
    controller's."""
    lines = box.exec(["env"], timeout=30).stdout.splitlines()
    assert dict(line.split("=", 1) for line in lines) == BOX.environment()
    assert _bash(box, "printenv PATH").stdout == "/usr/local/bin:/usr/bin:/bin\n"
    assert _bash(box, "command -v python3").stdout == "/usr/bin/python3\n"


def test_bundle_root_is_there_and_writable(box: LiveHost) -> None:
    """ls /opt works and the user may write there."""
    res = _bash(box, "ls /opt && echo hi > /opt/note && cat /opt/note && rm /opt/note")
    assert (res.returncode, res.stdout) == (0, "hi\n")


def test_a_missing_tool_is_absent(box: LiveHost) -> None:
    """netstat is 'command not found' (127), command -v fails, /usr/bin/netstat is gone."""
    res = _bash(box, "netstat -tln")
    assert (res.returncode, res.stderr) == (127, "bash: line 1: netstat: command not found\n")
    assert _bash(box, "command -v netstat").returncode == 1
    res = _bash(box, "ls /usr/bin/netstat")
    assert res.returncode == 2 and "No such file or directory" in res.stderr
    assert _bash(box, "command -v ss").stdout == "/usr/bin/ss\n"  # only what is missing


def test_writing_past_the_disk_fails_with_enospc(box: LiveHost) -> None:
    """The bundle root is the host's disk: writing past its 8 MiB fails with ENOSPC."""
    res = _bash(box, "dd if=/dev/zero of=/opt/fill bs=1M count=16; s=$?; rm -f /opt/fill; exit $s")
    assert res.returncode == 1
    assert "No space left on device" in res.stderr


def test_etc_is_read_only(box: LiveHost) -> None:
    """Nothing under /etc can be written, replaced, removed or added by the host's user."""
    files = BOX.etc_files()
    lines = {
        "echo x >> /etc/hosts": "/etc/hosts: Permission denied",  # root's file, as anywhere
        "touch /etc/new": "Read-only file system",
        "rm -f /etc/passwd": "Read-only file system",
        "ln -s /tmp /etc/alternatives/awk2": "Read-only file system",
    }
    for line, error in lines.items():
        res = _bash(box, line)
        assert res.returncode == 1 and error in res.stderr, line
    assert _bash(box, "cat /etc/hosts /etc/passwd").stdout == files["hosts"] + files["passwd"]
    assert _bash(box, "ls /etc/new /etc/alternatives/awk2").returncode == 2


def test_write_etc_shows_inside_the_running_host(box: LiveHost) -> None:
    """write_etc replaces (or adds) a file of /etc from the controller; the host sees it."""
    hosts = BOX.etc_files()["hosts"]
    try:
        box.write_etc("hosts", hosts + "10.1.2.3\tpeer\n")
        assert _bash(box, "cat /etc/hosts").stdout == hosts + "10.1.2.3\tpeer\n"
        assert _bash(box, "getent hosts peer").stdout.split() == ["10.1.2.3", "peer"]
    finally:
        box.write_etc("hosts", hosts)
    assert _bash(box, "cat /etc/hosts").stdout == hosts
    box.write_etc("motd", "welcome\n")
    assert _bash(box, "cat /etc/motd").stdout == "welcome\n"
    for bad in ("alternatives", "../passwd", "a/b", ""):
        with pytest.raises(ValueError):
            box.write_etc(bad, "x")


#: Agent command lines whose output must be byte-identical on both backends.
SAME_LINES = (
    "whoami",
    "id",
    "echo $HOME $USER $SHELL $LANG",
    "pwd",
    "cat /etc/os-release /etc/hostname /etc/passwd /etc/group /etc/hosts",
    "hostname",
    "ls /etc",
    "ls /opt; ls -d /opt /home/agent /tmp /var/tmp /dev/shm",
    "awk 'BEGIN{print 2+3}'",
    "which awk python3",
    "printenv PATH",
    "env | grep -v '^_=' | sort",
    "netstat -tln",
    "command -v netstat; echo $?",
    "ls /usr/bin/netstat",
    "ls /work",
    "touch /etc/x",
    "touch /usr/x",
    "echo data > /opt/f && cat /opt/f && rm /opt/f",
    "stat -c '%n %U %G %a' /home/agent /opt",
    "python3 -c 'import os, sys; print(sys.executable, os.getcwd(), os.getuid())'",
    "umask",
)


def test_both_backends_render_the_same_machine() -> None:
    """The same command lines give byte-identical output and exit codes on Docker and on
    bubblewrap."""
    for backend in BACKENDS:
        skip_unless(backend)
    seen: dict[str, list[tuple[int, str, str]]] = {}
    for backend in BACKENDS:
        with live_host(backend, f"same-{backend}", run_id=RUN_ID, machine=BOX) as host:
            seen[backend] = [
                (r.returncode, r.stdout, r.stderr) for r in (_bash(host, x) for x in SAME_LINES)
            ]
    for line, docker, local in zip(SAME_LINES, seen["docker"], seen["local"], strict=True):
        assert docker == local, line


def test_hiding_a_tool_needs_root(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller that is not root cannot hide a tool: start fails, saying so."""
    monkeypatch.setattr(machine_fs.os, "geteuid", lambda: 1000)
    host = live_host(backend, "not-root", run_id=RUN_ID, machine=BOX)
    try:
        with pytest.raises(LiveHostError, match="needs root"):
            host.start()
    finally:
        monkeypatch.undo()
        host.close()


def test_machines_a_live_host_cannot_render_are_refused() -> None:
    """Writable folders over the system, and hiding tools the host needs, are refused."""
    with pytest.raises(ValueError, match="cover the system"):
        live_host("local", "ok", run_id=RUN_ID, machine=Machine("ok", bundle_root="/usr/lib"))
    with pytest.raises(ValueError, match="cover the system"):
        live_host("local", "ok", run_id=RUN_ID, machine=Machine("ok", home="/etc/agent"))
    with pytest.raises(ValueError, match="cannot lack cat"):
        live_host(
            "docker", "ok", run_id=RUN_ID, machine=Machine("ok", missing_tools=frozenset({"cat"}))
        )
    with pytest.raises(ValueError, match="plain name"):
        live_host(
            "local", "ok", run_id=RUN_ID, machine=Machine("ok", missing_tools=frozenset({"a/b"}))
        )
    with pytest.raises(LiveHostError, match="start it first"):
        live_host("local", "ok", run_id=RUN_ID).write_etc("hosts", "")


# --------------------------------------------------------------------------------------------
# processes and signals


TRAP = """\
import os, signal, sys, time
def on_term(*_):
    open("got-term", "w").write("yes")
signal.signal(signal.SIGTERM, on_term)
open("trap-up", "w").write(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def test_sigterm_can_be_caught_sigkill_cannot(shared: LiveHost) -> None:
    """signal() reaches host processes by pid or pattern; SIGTERM runs a handler, SIGKILL kills."""
    shared.exec("rm -f got-term trap-up", timeout=30)
    shared.exec(
        ["sh", "-c", 'python3 -c "$1" trap-marker >/dev/null 2>&1 &', "sh", TRAP], timeout=30
    )
    pid = int(_wait(lambda: shared.exec("cat trap-up", timeout=30).stdout, "the trap to start"))
    procs = {p.pid: p for p in shared.processes()}
    assert procs[1].ppid == 0  # the init
    assert procs[pid].ppid == 1  # its shell is gone: re-parented to the init
    assert "trap-marker" in procs[pid].command
    assert not any("ps -eo" in p.command for p in procs.values())  # the lister is left out

    assert shared.signal(pid, "TERM") == [pid]
    _wait(lambda: shared.exec("cat got-term", timeout=30).stdout == "yes", "the handler to run")
    assert pid in _pids_of(shared, "trap-marker")  # caught: still alive

    assert shared.signal("trap-mark(er)?$", signal.SIGKILL) == [pid]
    # Gone from the table, not just a zombie: then no signal can reach the pid.
    _wait(lambda: pid not in {p.pid for p in shared.processes()}, "SIGKILL to kill it")
    assert shared.signal("trap-marker", "KILL") == []
    with pytest.raises(ProcessLookupError):
        shared.signal(pid, "KILL")
    with pytest.raises(ValueError, match="stop"):
        shared.signal(1, "TERM")
    with pytest.raises(ValueError, match="unknown signal"):
        shared.signal(pid, "SIGNOPE")


IGNORE_TERM = """\
import signal, time
log = open("/proc/1/fd/1", "a")  # "w" would truncate a local host's log file
def on_term(*_):
    log.write("child: SIGTERM ignored\\n"); log.flush()
signal.signal(signal.SIGTERM, on_term)
log.write("child: up\\n"); log.flush()
time.sleep(600)
"""


@pytest.mark.slow
def test_stop_relays_sigterm_then_sigkills_after_the_grace(make_host: HostFactory) -> None:
    """stop(): SIGTERM to every process; if all obey, exit 143 at once, else SIGKILL after the
    grace (137). A stopped host refuses commands and can be started again."""
    host = make_host()
    host.exec("sleep 300 >/dev/null 2>&1 &", timeout=30)
    assert host.stop(grace=60) == 143  # sleep died of the relayed SIGTERM: no SIGKILL needed
    assert host.state().running is False and host.state().exit_code == 143
    with pytest.raises(LiveHostError, match="not running"):
        host.exec(["true"], timeout=30)

    host.start()
    host.exec(["sh", "-c", 'python3 -c "$1" >/dev/null 2>&1 &', "sh", IGNORE_TERM], timeout=30)
    _wait(lambda: "child: up" in host.logs(), "the child to start")
    started = time.monotonic()
    assert host.stop(grace=2) == 137
    assert time.monotonic() - started >= 1.9  # the grace was honoured
    assert "replisim-init: SIGTERM" in host.logs()
    assert "child: SIGTERM ignored" in host.logs()
    assert host.state().exit_code == 137


# --------------------------------------------------------------------------------------------
# limits

HOG = "b = []\nwhile True: b.append(bytearray(8 << 20))"
ALLOC_100M = "b = bytearray(100 << 20); print('ok')"
FORK = """\
import os, sys, time
n = 0
try:
    for _ in range(int(sys.argv[1])):
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
        n += 1
    print(n, 0)
except OSError as e:
    print(n, e.errno)
"""


def test_memory_cap_gets_a_hog_oom_killed_and_detected(
    backend: str, make_host: HostFactory
) -> None:
    """A process past the memory cap is OOM-killed (137); the host sees it, the init lives."""
    host = make_host(memory="96MiB")
    if getattr(host, "enforced", {}).get("memory") == "rlimit":
        print("SKIP: no writable memory cgroup here: the rlimit stand-in does not OOM-kill")
        pytest.skip("no writable memory cgroup here: the rlimit stand-in does not OOM-kill")
    assert host.state().oom_killed is False
    res = host.exec(["python3", "-c", HOG], timeout=120)
    assert res.returncode == 137 and not res.timed_out
    state = host.state()
    assert state.running and state.oom_killed
    assert state.oom_kills is None or state.oom_kills >= 1
    host.stop(grace=5)
    assert host.state().oom_killed
    if backend == "docker":  # after exit the engine's own flag says so
        assert host.container.attrs["State"]["OOMKilled"] is True


def test_pids_cap_stops_a_fork_bomb(make_host: HostFactory) -> None:
    """fork() fails with EAGAIN at the pids cap and the host stays usable."""
    host = make_host(pids=32)
    if getattr(host, "enforced", {}).get("pids") == "rlimit":
        print("SKIP: no writable pids cgroup here: RLIMIT_NPROC does not bind root")
        pytest.skip("no writable pids cgroup here: RLIMIT_NPROC does not bind root")
    res = host.exec(["python3", "-c", FORK, "1000"], timeout=60)
    assert res.success, res.stderr
    forks, err = map(int, res.stdout.split())
    assert err == errno.EAGAIN and forks < 32
    _wait(lambda: host.exec(["true"], timeout=30).success, "the host to take commands again")


def test_local_host_falls_back_to_rlimits_without_cgroups() -> None:
    """Without cgroups a local host caps memory with RLIMIT_AS: allocations fail instead."""
    skip_unless("local")
    with live_host("local", "rlimits", run_id=RUN_ID, cgroups=False, memory="200MiB") as host:
        assert host.enforced == {
            "memory": "rlimit",
            "pids": "rlimit",
            "cpus": "none",
            "disk": "tmpfs",
        }
        res = host.exec(["python3", "-c", "b = bytearray(300 << 20)"], timeout=60)
        assert res.returncode == 1 and "MemoryError" in res.stderr
        with pytest.raises(LimitUnsupportedError):
            host.update_limits(cpus=0.5)


@pytest.mark.slow
def test_limits_change_while_the_host_runs(make_host: HostFactory) -> None:
    """update_limits lowers the memory and pids caps of a running host."""
    host = make_host(memory="256MiB", pids=128)
    if getattr(host, "enforced", {}).get("memory") == "rlimit":
        print("SKIP: no writable cgroups here")
        pytest.skip("no writable cgroups here")
    assert host.exec(["python3", "-c", ALLOC_100M], timeout=60).stdout == "ok\n"
    host.update_limits(memory="64MiB")
    assert host.exec(["python3", "-c", ALLOC_100M], timeout=60).returncode == 137
    host.update_limits(pids=12)
    forks = int(host.exec(["python3", "-c", FORK, "100"], timeout=60).stdout.split()[0])
    assert forks < 12
    with pytest.raises(LimitUnsupportedError):
        host.update_limits(network="some-network")
    host.update_limits(network="none")  # already cut: nothing to do


# --------------------------------------------------------------------------------------------
# network


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[int]]]:
    """A TCP listener on this machine's 127.0.0.1: (port, [connections accepted])."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted[0] += 1
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=2)
    srv.close()


NET_PROBE = """\
import json, socket, sys
routes = open("/proc/net/route").read().splitlines()[1:]
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    reached = "reached"
except OSError as e:
    reached = e.errno
print(json.dumps({"ifaces": [n for _, n in socket.if_nameindex()], "routes": routes,
                  "connect": reached}))
"""


def test_network_none_has_no_route_out(
    shared: LiveHost, loopback_server: tuple[int, list[int]]
) -> None:
    """Only loopback, no route; the machine's own 127.0.0.1 listener is out of reach."""
    port, accepted = loopback_server
    res = shared.exec(["python3", "-c", NET_PROBE, str(port)], timeout=60)
    assert res.success, res.stderr
    assert json.loads(res.stdout) == {
        "ifaces": ["lo"],
        "routes": [],
        "connect": errno.ECONNREFUSED,  # the host's own loopback: nothing listens there
    }
    assert accepted == [0]


def test_docker_host_leaves_and_rejoins_an_internal_network() -> None:
    """A Docker host on an internal network replisim made can be cut off and reconnected
    (only the interface list is read: no traffic)."""
    skip_unless("docker")
    from sim.hosts.docker_host import create_internal_network

    net = create_internal_network("net", RUN_ID)
    with live_host("docker", "netted", run_id=RUN_ID, network=net) as host:

        def ifaces() -> list[str]:
            code = "import socket; print(*sorted(n for _, n in socket.if_nameindex()))"
            return host.exec(["python3", "-c", code], timeout=30).stdout.split()

        assert ifaces() == ["eth0", "lo"]
        host.update_limits(network="none")
        assert ifaces() == ["lo"]
        host.update_limits(network=net)
        assert [n[:3] for n in ifaces()] == ["eth", "lo"]  # a new interface: eth1
        with pytest.raises(ValueError, match="refusing"):
            host.update_limits(network="bridge")


def test_docker_refuses_networks_it_did_not_make() -> None:
    """The host network, the default bridge and unknown networks are refused at start."""
    skip_unless("docker")
    for network in ("host", "bridge", f"nope-{RUN_ID}"):
        host = live_host("docker", "refused", run_id=RUN_ID, network=network)
        with pytest.raises(ValueError):
            host.start()
        host.close()


# --------------------------------------------------------------------------------------------
# lifecycle and clean-up


def test_with_block_removes_everything_the_host_made(backend: str) -> None:
    """Leaving a with block removes the container or the sandbox folder and cgroups."""
    kwargs = {"volume": True} if backend == "docker" else {}
    with live_host(backend, "ephemeral", run_id=RUN_ID, **kwargs) as host:
        assert host.exec(["true"], timeout=30).success
        if backend == "docker":
            assert labelled(RUN_ID)["volumes"] == [host.volume]
        else:
            cgroup = host._cgroup
            folders = set(cgroup.dirs.values()) if cgroup is not None else set()
            assert all(f.is_dir() for f in folders)
    if backend == "docker":
        assert not [n for names in labelled(RUN_ID).values() for n in names if "ephemeral" in n]
        assert not host.dir.exists()  # type: ignore[attr-defined]
    else:
        assert not host.dir.exists()
        assert not any(f.exists() for f in folders)


CONTROLLER = """\
import json, sys, time
from sim.hosts.live import live_host
run_id, backends = sys.argv[1], sys.argv[2].split(",")
facts = {}
for backend in backends:
    extra = {}
    if backend == "docker":
        from sim.hosts.docker_host import create_internal_network
        extra = {"network": create_internal_network("orphan-net", run_id), "volume": True}
    host = live_host(backend, "orphan", run_id=run_id, **extra).start()
    host.exec("sleep 600 >/dev/null 2>&1 &", timeout=60)
    if backend == "local":
        facts["init"] = host._init_pid
        facts["cgroups"] = [str(d) for d in host._cgroup.dirs.values()] if host._cgroup else []
print(json.dumps(facts), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_clean_removes_what_a_sigkilled_controller_left() -> None:
    """After the controller is SIGKILLed its local sandboxes die with it; clean(run) removes
    the container, network, volume, folders and cgroups it left."""
    backends = [b for b in BACKENDS if reason(b) is None]
    if not backends:
        pytest.skip("neither engine can run here")
    run_id = f"{RUN_ID}-orphans"
    controller = subprocess.Popen(
        [PY, "-c", CONTROLLER, run_id, ",".join(backends)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert controller.stdout is not None
        facts = json.loads(controller.stdout.readline())
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    if "local" in backends:
        _wait(lambda: not Path(f"/proc/{facts['init']}").exists(), "the sandbox to die with it")
        assert (state_root() / run_id / "orphan").is_dir()  # its folder is left behind
    if "docker" in backends:
        left = labelled(run_id)
        assert len(left["containers"]) == 1 and len(left["networks"]) == 1
        assert len(left["volumes"]) == 1

    report = clean(run_id)

    assert report.sandboxes == (1 if "local" in backends else 0)
    assert report.containers + report.networks + report.volumes == (
        3 if "docker" in backends else 0
    )
    assert not (state_root() / run_id).exists()
    assert not any(Path(d).exists() for d in facts.get("cgroups", []))
    if "docker" in backends:
        assert labelled(run_id) == {"containers": [], "networks": [], "volumes": []}
    assert clean(run_id).total == 0


# --------------------------------------------------------------------------------------------
# command line


def test_cli_hosts_clean_and_image_build(capsys: pytest.CaptureFixture[str]) -> None:
    """`replisim hosts clean --run` reports what it removed; bad input exits 2 in one line."""
    assert main(["hosts", "clean", "--run", f"{RUN_ID}-nothing"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed 0 container(s), 0 network(s), 0 volume(s), 0 local sandbox")
    assert main(["hosts", "clean", "--run", "not a run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("replisim: error: run id") and err.count("\n") == 1
    assert main(["bench", "live", "--repeats", "0"]) == 2
    capsys.readouterr()
    if reason("docker") is None:
        assert main(["hosts", "image", "build"]) == 0
        assert capsys.readouterr().out.startswith("replisim/base:")


@pytest.mark.slow
def test_bench_live_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """The live benchmark runs on both engines and leaves nothing behind (2 repeats here)."""
    from sim.bench_live import live_hosts

    run_id = f"{RUN_ID}-bench"
    rows = live_hosts(repeats=2, run_id=run_id)
    out = capsys.readouterr().out
    for backend in BACKENDS:
        if reason(backend) is None:
            assert {"start_ms", "exec_ms", "signal_ms"} <= set(rows[backend]), out
    if "docker" in rows:
        assert "`docker exec` CLI" in out
    assert not (state_root() / run_id).exists()
    if "docker" in rows:
        assert labelled(run_id) == {"containers": [], "networks": [], "volumes": []}
