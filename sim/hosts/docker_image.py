"""Offline base image and hardened ``containers.run`` settings for replisim's Docker hosts.

No container registry is reachable on replisim's machines, so no image can be pulled. The
base image is therefore *imported* from a tiny, deterministic tar (a few kilobytes: empty
mount points, top-level symlinks, the default machine's ``/etc/passwd`` and ``/etc/group``,
an ``/opt`` owned by its user) and the host's own system directories (``/usr``, plus
``/bin``, ``/sbin``, ``/lib``, ``/lib64`` where they are real directories rather than
merged-usr symlinks) and the Python installation that runs replisim are bind-mounted
**read-only** when a container starts.

Why this design rather than a rootfs (debootstrap) or ``docker build``:

* It needs nothing from the network and no extra tool; building takes ~0.1 s, and the image
  is a few kilobytes, so the image is rebuilt cheaply whenever the recipe changes.
* Containers get exactly the host's system and libraries (its ``python3`` is the system's,
  as in a bubblewrap host), and the controller's own interpreter at its path, which the
  init runs on, so both backends show the same machine.
* Nothing host-specific is baked into layers except the symlink layout and the mount point
  paths, which are hashed into a label: :func:`build_base_image` is idempotent and rebuilds
  only when that content changes.

The price: a container's view of ``/usr`` is the host's (read-only), so a sandbox can *read*
system files, and the image works only on a host whose layout matches the one it was built
on (always true: it is built on the host that runs the engine; for a remote engine through
``DOCKER_HOST`` the engine host must have the same Python installation path).

Hardening in :func:`base_run_kwargs`: read-only root, no capabilities,
``no-new-privileges``, ``network_mode="none"`` by default, memory (without swap), CPU and PID
limits, bounded logs, and a tiny Python init as PID 1 (see :data:`INIT_SCRIPT`) that reaps
orphans and relays ``docker stop``'s SIGTERM to every process in the container.

The container renders a :class:`~sim.machine.Machine` (as a bubblewrap sandbox does, see
:mod:`sim.hosts.sandbox`): its unprivileged user (``agent``, uid 1000), hostname and exact
environment; its writable folders: a tmpfs (or a labelled volume) of ``workdir_size`` at
the bundle root (the host's disk), a tmpfs of :data:`~sim.hosts.sandbox.SCRATCH_SIZE` at
the home (owned by the user), ``/tmp`` and ``/var/tmp``, and ``/dev/shm`` of that size;
and, given the controller's folders of :mod:`sim.hosts.machine_fs`, its ``/etc`` and its
``/usr`` without the missing tools. The engine writes its own ``/etc/hosts``,
``/etc/hostname`` and ``/etc/resolv.conf`` unless something is mounted at exactly those
paths, so the machine's files are also bound one by one there (and so are rewritten in
place). Those folders are on the controller's machine: an engine elsewhere
(``DOCKER_HOST``) cannot bind them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container
from docker.types import LogConfig, Mount

from sim.hosts.machine_fs import ALTERNATIVES
from sim.hosts.sandbox import (  # INIT_SCRIPT, init_command: re-exported, both hosts use them
    INIT_SCRIPT,  # noqa: F401
    SCRATCH_SIZE,
    check_writable,
    init_command,
    python_dirs,
    sandbox_machine,
    system_layout,
)
from sim.machine import Machine

#: Bump whenever the rootfs or the import changes in a way the content hash would not catch.
RECIPE_VERSION = "2"
#: Default tag of the base image.
DEFAULT_TAG = f"replisim/base:{RECIPE_VERSION}"
#: Label put on every object replisim creates in the engine (images, containers, networks,
#: volumes); tests and clean-up filter on it.
LABEL_KEY = "replisim"
LABELS: dict[str, str] = {LABEL_KEY: "1"}
#: Label holding the SHA-256 of the imported rootfs tar and import changes.
CONTENT_LABEL = "replisim.content-sha256"
#: Files of ``/etc`` the engine writes itself unless something is mounted at them.
ENGINE_ETC_FILES = ("hostname", "hosts", "resolv.conf")
#: Exit status a stopped container reports when ``docker stop`` had to SIGKILL it.
EXIT_SIGKILL = 128 + 9
#: Exit status of the init when the container shut down cleanly on SIGTERM.
EXIT_SIGTERM = 128 + 15


def docker_client(client: docker.DockerClient | None = None) -> docker.DockerClient:
    """Return ``client``, or a client from the environment (``DOCKER_HOST`` or the socket).

    Args:
        client: An existing client to reuse.

    Returns:
        A Docker client.
    """
    return client if client is not None else docker.from_env()


def _tar_add(
    tf: tarfile.TarFile,
    name: str,
    *,
    kind: str = "dir",
    mode: int = 0o755,
    uid: int = 0,
    gid: int = 0,
    data: bytes = b"",
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.mtime = 0
    info.mode = mode
    info.uid, info.gid = uid, gid
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
    elif kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tf.addfile(info)
    else:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def rootfs_tar(
    symlinks: Mapping[str, str] | None = None,
    bind_dirs: Iterable[str] | None = None,
) -> bytes:
    """Build the base image's root file system as a deterministic tar.

    Args:
        symlinks: Top-level symlinks to create (default: from :func:`system_layout`).
        bind_dirs: Directories that will be bind-mounted; empty mount points are created for
            them (default: system directories and :func:`python_dirs`).

    Returns:
        The tar archive; identical input gives identical bytes.
    """
    if symlinks is None or bind_dirs is None:
        host_links, host_dirs = system_layout()
        symlinks = host_links if symlinks is None else symlinks
        bind_dirs = (*host_dirs, *python_dirs()) if bind_dirs is None else bind_dirs
    entries: dict[str, dict[str, Any]] = {}

    def add_dir(path: str, **kw: Any) -> None:
        parts = Path(path).parts[1:]
        for i in range(1, len(parts)):
            entries.setdefault("/" + "/".join(parts[:i]), {"kind": "dir"})
        entries["/" + "/".join(parts)] = {"kind": "dir", **kw}

    machine = sandbox_machine(None)
    for path in ("/dev", "/proc", "/sys", "/etc", "/root", "/run"):
        add_dir(path)  # /root too stays 0755: the Python install may be bound below it
    add_dir("/tmp", mode=0o1777)
    # A volume at the bundle root takes its owner from the image's folder there.
    add_dir(machine.bundle_root, uid=machine.uid, gid=machine.gid)
    for path in bind_dirs:
        add_dir(path)
    for path, target in symlinks.items():
        entries[path] = {"kind": "symlink", "link": target, "mode": 0o777}
    etc = machine.etc_files()
    for name in ("passwd", "group"):  # what a container without the machine's /etc shows
        entries[f"/etc/{name}"] = {"kind": "file", "mode": 0o644, "data": etc[name].encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for path in sorted(entries):
            _tar_add(tf, path, **entries[path])
    return buf.getvalue()


def image_changes(labels: Mapping[str, str] | None = None) -> list[str]:
    """Dockerfile-style instructions applied by the import (``docker import --change``).

    Args:
        labels: Extra labels besides :data:`LABELS`.

    Returns:
        The instruction lines.
    """
    changes = [
        f"LABEL {k}={json.dumps(v)}" for k, v in sorted({**LABELS, **(labels or {})}.items())
    ]
    machine = sandbox_machine(None)
    changes += [
        f"ENV PATH={machine.path}",
        f"ENV LANG={machine.lang}",
        f"ENV HOME={machine.home}",
        f"WORKDIR {machine.home}",
        f"USER {machine.uid}:{machine.gid}",
        f"CMD {json.dumps(init_command())}",
    ]
    return changes


def build_base_image(client: docker.DockerClient | None = None, tag: str = DEFAULT_TAG) -> str:
    """Create the offline base image, or reuse it if an identical one has that tag.

    Args:
        client: Docker client (default: from the environment).
        tag: ``repository:tag`` to give the image.

    Returns:
        The image id (``sha256:...``).

    Raises:
        docker.errors.DockerException: If the engine refuses the import.
    """
    client = docker_client(client)
    data = rootfs_tar()
    changes = image_changes()
    digest = hashlib.sha256(data + "\n".join(changes).encode()).hexdigest()
    old_id: str | None = None
    try:
        image = client.images.get(tag)
        if image.labels.get(CONTENT_LABEL) == digest:
            return str(image.id)
        old_id = str(image.id)
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:  # a tag without ":version", or a registry port
        repository, version = tag, "latest"
    client.api.import_image_from_data(
        data,
        repository=repository,
        tag=version,
        changes=[*changes, f"LABEL {CONTENT_LABEL}={digest}"],
    )
    new_id = str(client.images.get(tag).id)
    if old_id is not None and old_id != new_id:
        # The outdated image is now untagged; drop it unless containers still use it.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old_id)
    return new_id


def base_run_kwargs(
    image: str = DEFAULT_TAG,
    *,
    name: str | None = None,
    command: list[str] | None = None,
    network: str = "none",
    mem_limit: str | int = "512m",
    memswap_limit: str | int | None = None,
    nano_cpus: int = 1_000_000_000,
    pids_limit: int = 256,
    workdir_size: str = "256m",
    volume: str | None = None,
    labels: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    extra_ro_binds: Iterable[str] = (),
    extra_binds: Mapping[str, str] | None = None,
    machine: Machine | None = None,
    etc: str | None = None,
    usr: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.run`` that start a hardened sandbox.

    Use as ``client.containers.run(**base_run_kwargs(...))``; the container runs detached,
    so ``exec_run`` works until it is stopped. It is *not* auto-removed: the caller reads its
    exit code and ``State.OOMKilled`` and then removes it.

    Args:
        image: Image to run, normally :func:`build_base_image`'s.
        name: Container name.
        command: PID 1 (default: :func:`init_command`).
        network: ``"none"`` (default: loopback only), or the name of a network replisim created
            with :func:`internal_network_kwargs`. Never the default bridge or ``"host"``.
        mem_limit: Memory cap (bytes or ``"512m"``); exceeding it OOM-kills a process.
        memswap_limit: Memory + swap cap; defaults to ``mem_limit`` (no swap).
        nano_cpus: CPU quota in 1e-9 CPUs (``1_000_000_000`` = one CPU).
        pids_limit: Maximum number of processes/threads (stops fork bombs).
        workdir_size: Size of the tmpfs at the machine's bundle root (counts against
            ``mem_limit``).
        volume: Name of a volume to mount at the bundle root instead of the tmpfs; created,
            with the container's labels, if missing. On first use the engine copies the
            ownership of the image's folder there into it: the machine's user owns it when
            the bundle root is the default machine's (``/opt``). Not size-limited (no quota
            on overlay2/ext4): use the tmpfs for disk-full limits.
        labels: Extra container labels besides :data:`LABELS`.
        environment: Variables to add to the machine's environment.
        extra_ro_binds: More host paths to bind read-only at the same place.
        extra_binds: More host paths (keys) to bind read-only at other places (values), e.g. the
            live world's control socket folder.
        machine: The machine to render: user, hostname, environment, writable folders
            (default: :func:`sim.hosts.sandbox.sandbox_machine`'s).
        etc: Controller folder to bind read-only at ``/etc``
            (:func:`sim.hosts.machine_fs.make_etc`); ``None``: the image's ``/etc``.
        usr: Controller folder to bind read-only at ``/usr`` instead of the system's.

    Returns:
        The keyword arguments.

    Raises:
        ValueError: If ``network`` is ``"host"``, ``"bridge"`` or ``"default"``, or the
            machine's writable folders would cover the system.
    """
    if network in ("host", "bridge", "default") or network.startswith("container:"):
        raise ValueError(f"refusing network {network!r}: use 'none' or an internal network")
    machine = sandbox_machine(machine)
    check_writable(machine)
    _, sys_dirs = system_layout()
    binds = dict.fromkeys([*sys_dirs, *python_dirs(), *extra_ro_binds])
    sources = {p: (usr if p == "/usr" and usr is not None else p) for p in binds}
    mounts = [Mount(target=p, source=sources[p], type="bind", read_only=True) for p in binds]
    mounts += [
        Mount(target=dst, source=src, type="bind", read_only=True)
        for src, dst in (extra_binds or {}).items()
    ]
    mounts += _etc_mounts(etc)
    tmpfs = _scratch_tmpfs(machine)
    disk = machine.bundle_root
    if volume is None:
        tmpfs[disk] = (
            f"rw,nosuid,nodev,exec,size={workdir_size},mode=0755,uid={machine.uid},gid={machine.gid}"
        )
    else:
        volume_labels = {**LABELS, **(labels or {})}
        mounts.append(Mount(target=disk, source=volume, type="volume", labels=volume_labels))
    kwargs: dict[str, Any] = {
        "image": image,
        "command": command if command is not None else init_command(),
        "detach": True,
        "name": name,
        "hostname": machine.hostname,
        "labels": {**LABELS, **(labels or {})},
        "environment": machine.environment(environment),
        "user": f"{machine.uid}:{machine.gid}",
        "working_dir": machine.home,
        "read_only": True,
        "mounts": mounts,
        "tmpfs": tmpfs,
        "shm_size": SCRATCH_SIZE,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "init": False,
        "ipc_mode": "private",
        "network_mode": network,
        "mem_limit": mem_limit,
        "memswap_limit": memswap_limit if memswap_limit is not None else mem_limit,
        "nano_cpus": nano_cpus,
        "pids_limit": pids_limit,
        "stop_signal": "SIGTERM",  # the grace period is container.stop(timeout=...)'s
        "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
    }
    if network != "none":
        # Upstream of the embedded DNS server is loopback: names of containers on the network
        # resolve, anything else fails without dockerd forwarding a query off the machine.
        kwargs["dns"] = ["127.0.0.1"]
    if name is None:
        del kwargs["name"]
    return kwargs


def _etc_mounts(etc: str | None) -> list[Mount]:
    """Read-only binds making ``etc`` the container's ``/etc`` (none for ``None``)."""
    if etc is None:
        return []
    mounts = [Mount(target="/etc", source=etc, type="bind", read_only=True)]
    # Mounted at exactly these paths, so that the engine does not mount its own files there.
    mounts += [
        Mount(target=f"/etc/{n}", source=f"{etc}/{n}", type="bind", read_only=True)
        for n in ENGINE_ETC_FILES
    ]
    if Path(ALTERNATIVES).is_dir():
        mounts.append(Mount(target=ALTERNATIVES, source=ALTERNATIVES, type="bind", read_only=True))
    return mounts


def _scratch_tmpfs(machine: Machine) -> dict[str, str]:
    """The tmpfs of the machine's writable folders but the bundle root and ``/dev/shm``
    (the engine's, sized by ``shm_size``)."""
    tmpfs = {}
    for path in machine.writable:
        if path in (machine.bundle_root, "/dev/shm"):
            continue
        owner = f"mode=0755,uid={machine.uid},gid={machine.gid}"
        mode = owner if path == machine.home else "mode=1777"
        tmpfs[path] = f"rw,nosuid,nodev,exec,size={SCRATCH_SIZE},{mode}"
    return tmpfs


def internal_network_kwargs(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``client.networks.create`` making a sandbox-only network.

    The network is ``internal`` (no route off the bridge) and its bridge gets no IPv4 address
    on the host (``inhibit_ipv4``), so containers reach each other but not the host's ports.

    Args:
        name: Network name.
        labels: Extra labels besides :data:`LABELS`.

    Returns:
        The keyword arguments.
    """
    return {
        "name": name,
        "driver": "bridge",
        "internal": True,
        "check_duplicate": True,
        "labels": {**LABELS, **(labels or {})},
        "options": {"com.docker.network.bridge.inhibit_ipv4": "true"},
    }


def oom_kill_count(container: Container) -> int | None:
    """Number of OOM kills in the container's memory cgroup so far (cgroup v1 and v2).

    The engine sets ``State.OOMKilled`` only when the container exits (then it is true if
    any process in it was OOM-killed during its life). While it runs, an OOM kill of an
    ``exec``'d process shows as exit code 137 of that exec, as an ``oom`` event from
    ``client.events(filters={"container": id})``, and in this counter. The container must be
    running (its cgroup exists) and the engine local.

    Args:
        container: A running container.

    Returns:
        The count, or ``None`` if the cgroup file cannot be read here.
    """
    cid = container.id
    candidates = [
        f"/sys/fs/cgroup/memory/docker/{cid}/memory.oom_control",  # v1, cgroupfs driver
        f"/sys/fs/cgroup/memory/system.slice/docker-{cid}.scope/memory.oom_control",  # v1
        f"/sys/fs/cgroup/docker/{cid}/memory.events",  # v2, cgroupfs driver
        f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.events",  # v2, systemd
    ]
    for path in candidates:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    return None


def update_limits(
    container: Container,
    *,
    mem_limit: int | None = None,
    memswap_limit: int | None = None,
    nano_cpus: int | None = None,
    pids_limit: int | None = None,
) -> list[str]:
    """Change a running container's cgroup limits (a live-world *limit*).

    ``Container.update`` of docker-py 7.1 cannot change ``pids_limit`` or ``nano_cpus``
    (and the engine refuses ``cpu_quota`` once ``nano_cpus`` is set), so this posts the
    engine's ``/containers/{id}/update`` request itself.

    Args:
        container: The container.
        mem_limit: New memory cap in bytes.
        memswap_limit: New memory + swap cap in bytes; defaults to ``mem_limit`` when that is
            given (no swap). The engine rejects a ``mem_limit`` above the current
            ``memswap_limit`` unless both change together.
        nano_cpus: New CPU quota in 1e-9 CPUs.
        pids_limit: New maximum number of processes.

    Returns:
        The engine's warnings.

    Raises:
        docker.errors.APIError: If the engine refuses the update.
    """
    body: dict[str, int] = {}
    if mem_limit is not None:
        body["Memory"] = mem_limit
        body["MemorySwap"] = memswap_limit if memswap_limit is not None else mem_limit
    elif memswap_limit is not None:
        body["MemorySwap"] = memswap_limit
    if nano_cpus is not None:
        body["NanoCpus"] = nano_cpus
    if pids_limit is not None:
        body["PidsLimit"] = pids_limit
    if not body:
        return []
    api = container.client.api
    url = api._url("/containers/{0}/update", container.id)
    result = api._result(api._post_json(url, data=body), True)
    warnings = result.get("Warnings") or []
    # Harmless here: networking is deliberately off (dockerd --ip-forward=false).
    return [w for w in warnings if "IPv4 forwarding is disabled" not in w]


def remove_labelled(client: docker.DockerClient | None = None, label: str = LABEL_KEY) -> int:
    """Force-remove every container, then network and volume, carrying ``label``.

    Images are kept (the base image is meant to be reused).

    Args:
        client: Docker client (default: from the environment).
        label: ``key`` or ``key=value`` label selector.

    Returns:
        How many objects were removed.
    """
    client = docker_client(client)
    removed = 0
    filters = {"label": label}
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        try:
            container.remove(force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            pass
    for network in client.networks.list(filters=filters):
        try:
            network.remove()
            removed += 1
        except docker.errors.NotFound:
            pass
    for volume in client.volumes.list(filters=filters):
        try:
            volume.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
    return removed
