"""The ``docker`` live host: one hardened container per host, through the Docker SDK.

The container comes from the offline base image (:func:`sim.hosts.docker_image.build_base_image`)
with the hardened settings of :func:`sim.hosts.docker_image.base_run_kwargs`: read-only root,
no capabilities, ``no-new-privileges``, memory (no swap), CPU and PID limits, and
``network_mode="none"`` unless the host joins an internal network replisim made
(:func:`create_internal_network`). Its PID 1 is replisim's init, which relays ``stop``'s
SIGTERM to every process. It renders the host's machine: its user, hostname, environment
and writable folders (a tmpfs, or a labelled volume, of ``workdir_size`` at the bundle
root), and, from the host's folder ``<state root>/<run id>/.docker-<name>`` on the
controller (:mod:`sim.hosts.machine_fs`), its ``/etc`` and its ``/usr`` without the
missing tools. So the engine must run on the controller's machine.

``exec`` goes through the engine's exec API on a hijacked socket (stdin written, stdout and
stderr demultiplexed by hand, so that the controller keeps a deadline). The engine cannot
kill an exec, so every command runs under coreutils' ``timeout --signal=KILL`` *inside* the
container: when the timeout runs out, the command's whole process group is SIGKILLed there,
With ``hangup`` the wrapper is :data:`sim.hosts.sandbox.HANGUP_SCRIPT` instead, run by the
controller's Python (bound read-only at its own path, as for the init), which hangs up on
the command's group and exits 129. :meth:`DockerHost.processes` hides these wrappers. A
timeout is reported when the wrapper's status says so (137, with ``hangup`` 129) at or after
the timeout.

OOM kills: the engine sets ``State.OOMKilled`` when the container has exited (true if any
process in it was OOM-killed during its life); while it runs, the kernel's counter in the
container's memory cgroup shows them (readable when the engine is local).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from sim.hosts import machine_fs
from sim.hosts.live import (
    HOST_LABEL,
    LABEL_KEY,
    LIVE_HOSTS,
    RUN_LABEL,
    CleanReport,
    HostState,
    LimitUnsupportedError,
    LiveHost,
    LiveHostError,
    ProcessInfo,
    check_name,
    parse_memory,
    state_root,
)
from sim.hosts.sandbox import HANGUP_SCRIPT, PYTHON_FLAGS, python_executable

try:  # the docker SDK is the optional extra replisim[live]
    import docker
    from docker.errors import APIError, DockerException, NotFound
except ImportError:  # pragma: no cover - exercised only without the extra
    docker = None
    APIError = DockerException = NotFound = Exception  # never raised: no client is made

__all__ = ["DockerHost", "clean_docker", "create_internal_network", "docker_client"]

#: Seconds the controller waits for an exec's streams past its timeout before giving up on
#: them (the in-container ``timeout`` has killed the command by then; only a process that
#: left its group with ``setsid`` and kept the streams open makes this matter).
EXEC_SLACK = 10.0
#: Marks the exec wrapper in ``ps`` output (an exec'd process has parent pid 0).
WRAPPER = ("timeout", "--signal=KILL")
#: Files of ``/etc`` the container binds one by one (see :mod:`sim.hosts.docker_image`).
ENGINE_ETC_FILES = frozenset({"hostname", "hosts", "resolv.conf"})
READY = b"replisim-init: ready"
_client_lock = threading.Lock()
_shared_client: Any = None


def docker_client(client: Any = None) -> Any:
    """``client``, or one client from the environment shared by every host of the process.

    Args:
        client: A ``docker.DockerClient`` to use as is.

    Returns:
        A Docker client.

    Raises:
        LiveHostError: If the docker SDK is missing or the engine cannot be reached.
    """
    global _shared_client
    if client is not None:
        return client
    if docker is None:
        raise LiveHostError("the docker SDK is not installed: pip install 'replisim[live]'")
    with _client_lock:
        if _shared_client is None:
            try:
                _shared_client = docker.from_env()
            except DockerException as err:
                raise LiveHostError(f"no Docker engine: {err}") from None
        return _shared_client


def create_internal_network(name: str, run_id: str, client: Any = None) -> str:
    """Create an internal network for live hosts of a run (no route off its bridge).

    Args:
        name: A plain name; the network is called ``replisim-<run_id>-<name>``.
        run_id: The run it belongs to (labelled, so :func:`sim.hosts.live.clean` finds it).
        client: Docker client (default: the shared one).

    Returns:
        The network's name, for a host's ``network`` argument.
    """
    from sim.hosts import docker_image as di

    full = f"replisim-{check_name(run_id, 'run id')}-{check_name(name, 'network name')}"
    labels = {RUN_LABEL: run_id}
    docker_client(client).networks.create(**di.internal_network_kwargs(full, labels=labels))
    return full


def _check_network(client: Any, name: str) -> None:
    """Refuse any network but an internal one that replisim made."""
    from sim.hosts import docker_image as di

    if name in ("host", "bridge", "default") or name.startswith("container:"):
        raise ValueError(f"refusing network {name!r}: use 'none' or an internal network")
    try:
        net = client.networks.get(name)
    except NotFound:
        raise ValueError(f"no network {name!r}: make one with create_internal_network") from None
    labels = net.attrs.get("Labels") or {}
    if labels.get(di.LABEL_KEY) != "1" or net.attrs.get("Internal") is not True:
        raise ValueError(f"refusing network {name!r}: not an internal network replisim made")


@LIVE_HOSTS.register("docker")
class DockerHost(LiveHost):
    """One hardened Docker container per host, from the offline base image.

    Args:
        name: Host name.
        image: Image to run (default: the base image, built if missing or outdated).
        client: Docker client (default: one from the environment, shared).
        workdir_size: Size of the tmpfs at the bundle root, the host's disk (counts against
            ``memory``).
        volume: Keep the bundle root in a labelled volume instead (not size-limited;
            removed by :meth:`close`; writable by the user when the bundle root is
            ``/opt``).
        labels: Extra container labels.
        binds: Host folders (keys) bound read-only at paths inside (values).
        state_dir: Folder for the host folders (default :func:`state_root`).
        **limits: ``run_id``, ``memory``, ``memory_swap``, ``cpus``, ``pids``, ``network``,
            ``machine`` as for :class:`~sim.hosts.live.LiveHost`.
    """

    backend = "docker"
    _etc_file_binds = ENGINE_ETC_FILES

    def __init__(
        self,
        name: str,
        *,
        image: str | None = None,
        client: Any = None,
        workdir_size: int | str = "256MiB",
        volume: bool = False,
        labels: dict[str, str] | None = None,
        binds: dict[str, str] | None = None,
        state_dir: str | Path | None = None,
        **limits: Any,
    ) -> None:
        super().__init__(name, **limits)
        self.binds = dict(binds or {})
        self.dir = Path(state_dir or state_root()).resolve() / self.run_id / f".docker-{self.name}"
        self._usr: Path | None = None
        self.image = image
        self._client = client
        self.workdir_size = parse_memory(workdir_size)
        self.container_name = f"replisim-{self.run_id}-{self.name}"
        self.volume = self.container_name if volume else None
        self.labels = {
            RUN_LABEL: self.run_id,
            HOST_LABEL: self.name,
            "replisim.backend": "docker",
            **(labels or {}),
        }
        self.container: Any = None
        self._starts = 0
        self._oom_seen = 0

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        from sim.hosts import docker_image as di

        client = docker_client(self._client)
        if self.network != "none":
            _check_network(client, self.network)
        try:
            if self.container is None:
                image = self.image or di.build_base_image(client)
                self._make_folders()
                kwargs = di.base_run_kwargs(
                    image,
                    name=self.container_name,
                    network=self.network,
                    mem_limit=self.memory or 0,  # 0: no limit
                    memswap_limit=self.memory_swap,
                    nano_cpus=round(self.cpus * 1e9) if self.cpus else 0,
                    pids_limit=self.pids or -1,  # -1: no limit
                    workdir_size=str(self.workdir_size),
                    volume=self.volume,
                    labels=self.labels,
                    extra_binds=self.binds,
                    machine=self.machine,
                    etc=str(self.etc_dir),
                    usr=str(self._usr) if self._usr is not None else None,
                )
                self.container = client.containers.run(**kwargs)
            else:
                self.container.start()
        except DockerException as err:
            raise LiveHostError(f"{self!r}: the engine refused to start it: {err}") from None
        self._starts += 1
        self._wait_ready()

    def _make_folders(self) -> None:
        """Make the host's folder: its ``/etc`` and, if tools are missing, its ``/usr``."""
        if self.etc_dir is not None:  # made by an earlier start the engine refused
            return
        try:
            self.dir.mkdir(parents=True)
        except FileExistsError:
            raise LiveHostError(
                f"{self.dir} exists: another host of run {self.run_id} has this name"
                f" (or a crashed one: replisim hosts clean --run {self.run_id})"
            ) from None
        self.etc_dir = machine_fs.make_etc(self.dir / "etcfs", self.machine)
        try:
            self._usr = machine_fs.mount_usr_without(self.machine.missing_tools, self.dir)
        except OSError as err:
            raise LiveHostError(f"{self!r}: cannot hide the missing tools: {err}") from None

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the init has printed its ready line for this start."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while self.container.logs().count(READY) < self._starts:
            self.container.reload()
            if self.container.status not in ("created", "running"):
                raise LiveHostError(f"{self!r} exited while starting: {self.logs()[-500:]}")
            if time.monotonic() > deadline:
                raise LiveHostError(f"{self!r}: init not ready after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _running(self) -> Any:
        if self.container is None or self._closed:
            raise LiveHostError(f"{self!r} is not running")
        return self.container

    def stop(self, grace: float = 10.0) -> int | None:
        """Shut the host down: SIGTERM, ``grace`` seconds, SIGKILL (see :class:`LiveHost`)."""
        if self.container is None:
            return None
        self._remember_ooms()
        ct = self.container
        with contextlib.suppress(APIError):  # 409: it is not running
            ct.kill(signal="SIGTERM")
        if not self._wait_exit(grace):
            with contextlib.suppress(APIError):
                ct.kill(signal="SIGKILL")
            self._wait_exit(60.0)
        ct.reload()
        return int(ct.attrs["State"]["ExitCode"])

    def _wait_exit(self, seconds: float) -> bool:
        """Whether the container has exited within ``seconds`` (polls the engine)."""
        deadline = time.monotonic() + seconds
        delay = 0.005
        while True:
            self.container.reload()
            if not self.container.attrs["State"]["Running"]:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        """Remove the container (and its volume) and the host's folder; safe to repeat."""
        self._closed = True
        if self.container is not None:
            with contextlib.suppress(NotFound):
                self.container.remove(force=True, v=True)
        if self.volume is not None and self._started:
            with contextlib.suppress(NotFound):
                docker_client(self._client).volumes.get(self.volume).remove(force=True)
        if self.etc_dir is not None and self.dir.exists():
            machine_fs.unmount_below(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.dir.parent.rmdir()  # the run's folder, once its last host is gone

    def _remember_ooms(self) -> int | None:
        from sim.hosts import docker_image as di

        count = di.oom_kill_count(self.container)
        if count is not None:
            self._oom_seen = max(self._oom_seen, count)
        return count

    def state(self) -> HostState:
        """Running or not, exit code, and OOM kills (``State.OOMKilled`` once exited)."""
        if self.container is None:
            return HostState(False, None, False)
        self.container.reload()
        st = self.container.attrs["State"]
        count = self._remember_ooms() if st["Running"] else None
        return HostState(
            running=bool(st["Running"]),
            exit_code=None if st["Running"] else int(st["ExitCode"]),
            oom_killed=bool(st.get("OOMKilled")) or self._oom_seen > 0,
            oom_kills=count,
        )

    def logs(self) -> str:
        """The container's log (the init's output and what processes wrote to it)."""
        if self.container is None:
            return ""
        return str(self.container.logs().decode(errors="replace"))

    # ------------------------------------------------------------------ commands

    def _run(
        self,
        argv: list[str],
        timeout: float,
        input: bytes | None,
        cwd: str,
        env: dict[str, str],
        hangup: bool = False,
    ) -> tuple[int, bytes, bytes, bool, float]:
        ct = self._running()
        api = ct.client.api
        wrapper = [*self._hangup_wrapper] if hangup else [*WRAPPER]
        t0 = time.perf_counter()
        try:
            exec_id = api.exec_create(
                ct.id,
                [*wrapper, f"{timeout:.3f}", *argv],
                stdin=input is not None,
                stdout=True,
                stderr=True,
                workdir=cwd,
                environment=env or None,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except DockerException as err:
            raise LiveHostError(f"{self!r}: exec refused: {err}") from None
        raw = getattr(sock, "_sock", sock)
        pending = _read_ahead(sock)
        if input is not None:
            threading.Thread(target=_feed, args=(raw, input), daemon=True).start()
        streams, cut = _read_frames(raw, t0 + timeout + EXEC_SLACK, pending)
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(OSError):
            raw.close()  # the socket itself: closing the stream over it leaves it open
        code = self._exit_code(api, exec_id)
        duration = time.perf_counter() - t0
        ended = code == (129 if hangup else 137)  # the wrappers' status for a timeout
        timed_out = cut or (ended and duration >= timeout)
        return code, bytes(streams[1]), bytes(streams[2]), timed_out, duration

    @property
    def _hangup_wrapper(self) -> tuple[str, ...]:
        """The hang-up wrapper's command, before its seconds and the command."""
        return (python_executable(), *PYTHON_FLAGS, "-c", HANGUP_SCRIPT)

    def _exit_code(self, api: Any, exec_id: str) -> int:
        """The exec's exit status, once the engine has seen it end."""
        deadline = time.monotonic() + 30
        while True:
            info = api.exec_inspect(exec_id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            if time.monotonic() > deadline:
                raise LiveHostError(f"{self!r}: exec {exec_id[:12]} did not end")
            time.sleep(0.005)

    def _processes(self) -> list[ProcessInfo]:
        # The shell prints its own pid, then becomes ps: that line is left out.
        code, out, err, _, _ = self._helper(["sh", "-c", "echo $$; exec ps -eo pid=,ppid=,args="])
        if code != 0:
            raise LiveHostError(f"{self!r}: ps failed: {err.decode(errors='replace')[-300:]}")
        lines = out.decode(errors="replace").splitlines()
        own = int(lines[0])
        rows = []
        for line in lines[1:]:
            pid, ppid, command = [*line.split(None, 2), ""][:3]
            if int(pid) != own:
                rows.append(ProcessInfo(int(pid), int(ppid), command))
        hangup = " ".join((python_executable(), *PYTHON_FLAGS, "-c", "# replisim-hangup"))
        marks = (" ".join(WRAPPER) + " ", hangup)
        wrappers = {p.pid for p in rows if p.ppid == 0 and p.command.startswith(marks)}
        return [
            ProcessInfo(p.pid, 0 if p.ppid in wrappers else p.ppid, p.command)
            for p in rows
            if p.pid not in wrappers
        ]

    def _kill(self, pids: list[int], sig: int) -> list[int]:
        script = 'sig=$1; shift; for p do kill -"$sig" "$p" 2>/dev/null || echo "$p"; done'
        code, out, err, _, _ = self._helper(["sh", "-c", script, "kill", str(sig), *map(str, pids)])
        if code != 0:
            raise LiveHostError(f"{self!r}: kill failed: {err.decode(errors='replace')[-300:]}")
        return [int(x) for x in out.split()]

    # ------------------------------------------------------------------ limits

    def update_limits(
        self,
        *,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        cpus: float | None = None,
        pids: int | None = None,
        network: str | None = None,
    ) -> None:
        """Change cgroup limits, or cut or join networks (see :class:`LiveHost`)."""
        from sim.hosts import docker_image as di

        ct = self._running()
        mem, swap = parse_memory(memory), parse_memory(memory_swap)
        try:
            di.update_limits(
                ct,
                mem_limit=mem,
                memswap_limit=swap,
                nano_cpus=round(cpus * 1e9) if cpus is not None else None,
                pids_limit=pids,
            )
        except APIError as err:
            raise LiveHostError(f"{self!r}: the engine refused the limits: {err}") from None
        if mem is not None:
            self.memory, self.memory_swap = mem, swap
        self.cpus = cpus if cpus is not None else self.cpus
        self.pids = pids if pids is not None else self.pids
        if network is not None:
            self._set_network(network)

    def _set_network(self, network: str) -> None:
        client = docker_client(self._client)
        ct = self.container
        ct.reload()
        joined = list(ct.attrs["NetworkSettings"]["Networks"] or {})
        if ct.attrs["HostConfig"]["NetworkMode"] == "none":
            if network == "none":
                return
            raise LimitUnsupportedError(
                f"{self!r} was started with network 'none' and cannot join one; start it on"
                " an internal network to cut and restore its links"
            )
        if network == "none":
            for name in joined:
                client.networks.get(name).disconnect(ct, force=True)
            return
        _check_network(client, network)
        if network not in joined:
            client.networks.get(network).connect(ct)


def _feed(raw: socket.socket, data: bytes) -> None:
    """Write ``data`` to an exec's stdin, then close it (EOF for the command)."""
    with contextlib.suppress(OSError):
        raw.sendall(data)
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)


def _read_ahead(sock: Any) -> bytes:
    """What of the exec's stream the HTTP client already read with the response's headers.

    The client reads the headers through a buffered reader, which may take the first frames
    with them when they arrive together (a quick command on a busy machine): reading only
    from the socket beneath would lose them.
    """
    try:
        buffered = sock._response.raw._fp.fp
    except AttributeError:
        return b""
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(0.0)  # no wait: only what is there already
    try:
        return bytes(buffered.read1(1 << 20) or b"")
    except OSError:
        return b""
    finally:
        raw.settimeout(None)


def _read_frames(
    raw: socket.socket, deadline: float, pending: bytes = b""
) -> tuple[dict[int, bytearray], bool]:
    """Read the engine's multiplexed stream until EOF or ``deadline`` (perf_counter).

    Each frame is an 8-byte header (stream 1 or 2, three zero bytes, big-endian length)
    and its payload.

    Args:
        raw: The exec's socket.
        deadline: When to stop waiting.
        pending: Bytes of the stream read before (see :func:`_read_ahead`).

    Returns:
        The bytes per stream, and whether the deadline cut the reading short.
    """
    streams = {1: bytearray(), 2: bytearray()}
    buf = bytearray(pending)
    cut = False
    while True:
        while len(buf) >= 8:
            stream, size = struct.unpack(">BxxxL", bytes(buf[:8]))
            if len(buf) < 8 + size:
                break
            streams.setdefault(stream, bytearray()).extend(buf[8 : 8 + size])
            del buf[: 8 + size]
        left = deadline - time.perf_counter()
        if left <= 0:
            cut = True
            break
        raw.settimeout(left)
        try:
            chunk = raw.recv(65536)
        except TimeoutError:
            cut = True
            break
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return streams, cut


#: Passes :func:`clean_docker` makes at most, until one finds nothing of the run.
CLEAN_PASSES = 5


def clean_docker(report: CleanReport, run_id: str | None, client: Any = None) -> None:
    """Remove labelled containers, then networks and volumes, counting them in ``report``.

    Args:
        report: Where to count what was removed, and note an unreachable engine.
        run_id: Only this run's objects; ``None``: every object labelled ``replisim``.
        client: Docker client (default: one from the environment).
    """
    if docker is None:
        report.skipped.append("docker: the docker SDK is not installed")
        return
    try:
        client = client if client is not None else docker.from_env()
        client.ping()
    except DockerException as err:
        report.skipped.append(f"docker: no engine answers ({err})")
        return
    filters = {"label": f"{RUN_LABEL}={run_id}" if run_id else LABEL_KEY}
    # A controller killed mid-request leaves requests the engine still completes (a
    # container created after the listing holds its network and volume): pass again
    # until a pass finds nothing.
    for attempt in range(CLEAN_PASSES):
        found, busy = 0, None
        for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
            found += 1
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
                report.containers += 1
        for collection, kind in ((client.networks, "networks"), (client.volumes, "volumes")):
            for item in collection.list(filters=filters):
                found += 1
                try:
                    item.remove(**({"force": True} if kind == "volumes" else {}))
                    setattr(report, kind, getattr(report, kind) + 1)
                except NotFound:
                    pass
                except APIError as err:  # still in use: by what the next pass removes
                    busy = err
        if not found:
            return
        if attempt == CLEAN_PASSES - 1 and busy is not None:
            raise busy
        time.sleep(0.2)
