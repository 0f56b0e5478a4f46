"""What the live-engine tests share: can Docker or bubblewrap run here, and what is left.

A backend that cannot run on this machine makes its tests skip with the reason printed;
CI installs and starts both, so there they run.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from sim.hosts.local_host import state_root


def docker_error() -> str | None:
    """Why the Docker backend cannot run here, or None."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return "docker SDK not installed (pip install 'replisim[live]')"
    cli = shutil.which("docker")
    if cli is None:
        return "docker CLI not found (run .ci/start-docker.sh)"
    try:
        proc = subprocess.run([cli, "info"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` failed: {exc}"
    if proc.returncode != 0:
        return f"`docker info` failed (run .ci/start-docker.sh): {proc.stderr.strip()[:200]}"
    return None


def local_error() -> str | None:
    """Why the local (bubblewrap) backend cannot run here, or None."""
    from sim.hosts.sandbox import bwrap_command, bwrap_path

    missing = [t for t in ("nsenter", "setpriv", "prlimit") if shutil.which(t) is None]
    if bwrap_path() is None:
        missing.insert(0, "bwrap (apt-get install -y bubblewrap)")
    if missing:
        return f"missing: {', '.join(missing)}"
    probe = Path(state_root()) / f"probe-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            bwrap_command(probe, ["true"]), capture_output=True, text=True, timeout=30
        )
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if proc.returncode != 0:
        return f"bwrap cannot make a sandbox here: {proc.stderr.strip()[:200]}"
    return None


ERRORS: dict[str, str | None] = {}


def reason(backend: str) -> str | None:
    """Why ``backend`` cannot run here (None if it can); asked once per module."""
    if backend not in ERRORS:
        ERRORS[backend] = docker_error() if backend == "docker" else local_error()
    return ERRORS[backend]


def skip_unless(backend: str) -> None:
    why = reason(backend)
    if why is not None:
        print(f"SKIP: {backend}: {why}")
        pytest.skip(f"{backend}: {why}")


def labelled(run_id: str) -> dict[str, list[str]]:
    """Names of the Docker objects labelled with ``run_id``."""
    import docker

    client = docker.from_env()
    try:
        filters = {"label": f"replisim.run={run_id}"}
        return {
            "containers": [
                c.name
                for c in client.containers.list(all=True, filters=filters, ignore_removed=True)
            ],
            "networks": [n.name for n in client.networks.list(filters=filters)],
            "volumes": [v.name for v in client.volumes.list(filters=filters)],
        }
    finally:
        client.close()
