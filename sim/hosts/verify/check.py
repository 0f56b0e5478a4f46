"""The whole check of an agent's ``hello``: :func:`verify_agent` and its :class:`Verdict`."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sim.hosts.replica import WEIGHTS
from sim.hosts.verify.files import MAX_DIGEST_BYTES, file_digest
from sim.hosts.verify.kernel import ProbeError, VerifyError
from sim.hosts.verify.network import listener_pids, probe_http
from sim.hosts.verify.peers import (
    PeerProcess,
    _file_id,
    ns_pid,
    process_argv,
    process_cwd,
    process_exe,
    start_ticks,
)
from sim.hosts.verify.sandboxes import init_pid, sandbox_of


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify_agent` found.

    Attributes:
        ok: Every check passed: the registration is a replica.
        reason: Why not (the first check that failed), ``"verified"`` when ``ok``.
        pid: The agent's pid as the controller numbers it (the kernel's, never a claim).
        server_pid: Its server's, once found.
        elapsed_s: Seconds the checks took.
    """

    ok: bool
    reason: str
    pid: int
    server_pid: int | None = None
    elapsed_s: float = 0.0

    def __bool__(self) -> bool:
        return self.ok


_PYTHON = re.compile(r"python(?:3(?:\.\d+)?)?")


#: Options each of the bundle's scripts takes (besides ``--port``), as its start script
#: passes them (``start_agent.sh PORT --task TEXT``, ``start_server.sh``'s ``--model``).
SCRIPT_OPTIONS = {"agent.py": frozenset({"--task"}), "server.py": frozenset({"--model"})}


def _pythons(init: int) -> set[tuple[int, int]]:
    """The host's Python interpreters: the system's ``python3`` as the sandbox sees it (what
    the machine's ``PATH`` finds) and the init's."""
    found = {_file_id(f"/proc/{init}/exe", init)}
    for name in ("usr/bin/python3", "usr/local/bin/python3"):
        try:
            st = os.stat(f"/proc/{init}/root/{name}")
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _script_error(
    pid: int,
    folder: str,
    script: str,
    port: int,
    pythons: set[tuple[int, int]],
    what: str,
) -> str | None:
    """Why ``pid`` is not ``python3 [folder/]script --port PORT [options]`` run from
    ``folder``."""
    argv = process_argv(pid)
    wanted = f"python3 {script} --port {port}"
    options: dict[str, str] = {}
    rest = argv[2:]
    ok_shape = (
        len(argv) >= 4
        and len(rest) % 2 == 0
        and _PYTHON.fullmatch(posixpath.basename(argv[0])) is not None
        and argv[1] in (script, posixpath.join(folder, script), f"./{script}")
    )
    if ok_shape:
        options = dict(zip(rest[::2], rest[1::2], strict=True))
        ok_shape = (
            len(options) * 2 == len(rest)
            and options.get("--port") == str(port)
            and set(options) <= {"--port"} | SCRIPT_OPTIONS.get(script, frozenset())
        )
    if not ok_shape:
        shown = shlex.join(argv) if argv else "nothing (a zombie)"
        return f"{what} {pid} runs {shown[:200]!r}, not {wanted!r}"
    if _file_id(f"/proc/{pid}/exe", pid) not in pythons:
        return f"{what} {pid} executes {process_exe(pid)}, not the host's Python"
    cwd = process_cwd(pid)
    if cwd != folder:
        return f"{what} {pid} runs in {cwd}, not {folder}"
    return None


def verify_agent(
    box: Any,
    peer: int | PeerProcess,
    *,
    folder: str,
    port: int,
    weights_sha256: str,
    weights: str = WEIGHTS,
    weights_bytes: int | None = None,
    claimed_pid: int | None = None,
    known_pids: Collection[int] = (),
    probe_path: str = "/health",
    timeout: float = 2.0,
    max_weights_bytes: int = MAX_DIGEST_BYTES,
) -> Verdict:
    """Check an agent's registration against the kernel and the controller's own probe.

    In order, cheapest first; the first failure is the verdict's reason:

    1. **Identity**: the kernel's peer pid (never the message's) is alive, in this host's
       sandbox, and not a process of a replica already counted; a pid the message claims
       must be the one the sandbox numbers it with.
    2. **Agent**: its arguments are ``python3 agent.py --port PORT [--task TEXT]`` (the
       script named relatively or as ``folder/agent.py``), its executable is the host's
       Python (the system's ``python3`` as the sandbox sees it, or the init's), and its
       working directory is ``folder``.
    3. **Server**: a process of the same sandbox listens on ``PORT``: it is
       ``python3 server.py [--model DIR] --port PORT`` run from the same folder (its own
       server), and no replica's already.
    4. **Weights**: ``folder/weights`` as the agent's mount namespace sees it (links
       resolved inside the sandbox) hashes to ``weights_sha256``.
    5. **Live**: the controller's own ``GET probe_path`` on ``127.0.0.1:PORT`` inside the
       sandbox answers 200.

    Last, the agent must still be the same process (held by its pidfd, or with the same
    start time), so that a pid reused during the checks is not counted.

    Args:
        box: The live host the registration came to.
        peer: The registering process: the kernel's pid (:func:`peer_pid`) or, better, the
            process held by :func:`peer_process`.
        folder: The bundle folder inside the sandbox (the registration's ``path``).
        port: The server's port (the registration's ``port``).
        weights_sha256: The bundle's weights digest.
        weights: The weights file, relative to ``folder`` (the bundle's).
        weights_bytes: The weights' size, if known: a wrong size fails without hashing.
        claimed_pid: The pid the message claims, if any (a genuine agent sends its pid in
            the sandbox).
        known_pids: Pids (as the controller numbers them) of the processes of replicas
            already counted, agents and servers.
        probe_path: What the probe asks for.
        timeout: Seconds the probe may take.
        max_weights_bytes: Largest weights file hashed.

    Returns:
        The verdict.

    Raises:
        VerifyError: If the host's own facts cannot be read (not running, remote engine).
    """
    t0 = time.perf_counter()
    held = peer if isinstance(peer, PeerProcess) else None
    pid = peer.pid if isinstance(peer, PeerProcess) else peer
    server: int | None = None

    def verdict(reason: str | None) -> Verdict:
        return Verdict(reason is None, reason or "verified", pid, server, time.perf_counter() - t0)

    init = init_pid(box)
    host = getattr(box, "name", str(box))
    folder = posixpath.normpath(folder)
    try:
        started = start_ticks(pid)
        if started is None or (held is not None and held.exited()):
            return verdict(f"pid {pid} has exited")
        if sandbox_of(pid) != sandbox_of(init):
            return verdict(f"pid {pid} is not in host {host}'s sandbox")
        if pid in known_pids:
            return verdict(f"pid {pid} is already a known replica's process")
        if claimed_pid is not None and claimed_pid != (inside := ns_pid(pid)):
            return verdict(
                f"the message claims pid {claimed_pid}, the kernel says pid {inside}"
                f" (pid {pid} here)"
            )
        python = _pythons(init)
        if reason := _script_error(pid, folder, "agent.py", port, python, "pid"):
            return verdict(reason)
        holders = listener_pids(init, port)
        if not holders:
            return verdict(f"nothing listens on port {port}")
        server = holders[0]
        if server in known_pids:
            return verdict(f"port {port} is served by pid {server}, a known replica's server")
        try:
            reason = _script_error(server, folder, "server.py", port, python, "its listener")
        except ProcessLookupError:
            reason = f"its listener {server} exited"
        if reason:
            return verdict(f"port {port}: {reason}")
        try:
            digest = file_digest(
                pid,
                posixpath.join(folder, weights),
                size=weights_bytes,
                max_bytes=max_weights_bytes,
            )
        except FileNotFoundError:
            return verdict(f"{weights}: no such file in {folder}")
        except (VerifyError, OSError) as err:
            return verdict(f"{weights}: {err}")
        if digest != weights_sha256:
            return verdict(f"{weights} sha256 differs")
        try:
            status, _ = probe_http(init, port, probe_path, timeout)
        except ProbeError as err:
            return verdict(f"probe of port {port}: {err.strerror}")
        if status != 200:
            return verdict(f"probe of port {port}: HTTP {status}")
        if start_ticks(pid) != started or (held is not None and held.exited()):
            return verdict(f"pid {pid} exited during the checks")
    except ProcessLookupError:
        return verdict(f"pid {pid} has exited")
    return verdict(None)
