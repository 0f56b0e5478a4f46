"""``replisim bench live``: what a live host costs, Docker against bubblewrap, in one run.

Per backend (``docker``, ``local``), medians over ``repeats``:

* **start**: from ``start()`` to an init ready for signals and commands (container create
  and start, or ``bwrap``), and ``close()`` (removal);
* **exec**: the round trip of ``exec(["true"])``;
* **signal to death**: from ``signal(pid, SIGKILL)`` on a ``sleep`` to the return of the
  ``exec`` that runs it (so: the kill, the death, and the controller noticing).

For Docker, the same run compares ``exec`` with the SDK's plain ``exec_run`` and with the
``docker exec`` command line. Nothing is asserted: the machines are shared and noisy.
Every host belongs to one run id and :func:`sim.hosts.live.clean` removes them at the end.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sim.hosts.live import LiveHost, LiveHostError, clean, live_host

__all__ = ["live_hosts"]

BACKENDS = ("docker", "local")


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _signal_to_death(host: LiveHost) -> float:
    """Seconds from SIGKILL of a running ``sleep`` to the return of the exec running it."""
    marker = f"{1000 + uuid.uuid4().int % 1000}.5"  # a unique sleep argument to find it by
    ended: list[float] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            host.exec(["sleep", marker], timeout=120)
        except BaseException as err:  # reported in the main thread
            errors.append(err)
        ended.append(time.perf_counter())

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    pid = None
    while pid is None:
        pid = next((p.pid for p in host.processes() if p.command == f"sleep {marker}"), None)
        if time.monotonic() > deadline:
            raise LiveHostError(f"the sleep did not show up in {host!r}")
    started = time.perf_counter()
    host.signal(pid, signal.SIGKILL)
    thread.join()
    if errors:
        raise errors[0]
    return ended[0] - started


def _backend(backend: str, repeats: int, run_id: str) -> dict[str, float]:
    """The figures of one backend; raises LiveHostError if it cannot run here."""
    starts, closes = [], []
    for i in range(repeats):
        host = live_host(backend, f"start-{i}", run_id=run_id)
        started = time.perf_counter()
        host.start()
        starts.append(time.perf_counter() - started)
        started = time.perf_counter()
        host.close()
        closes.append(time.perf_counter() - started)
    row = {"start_ms": _median_ms(starts), "close_ms": _median_ms(closes)}
    with live_host(backend, "exec", run_id=run_id) as host:
        host.exec(["true"], timeout=30)  # warm-up
        row["exec_ms"] = _median_ms(_time(lambda: host.exec(["true"], timeout=30), repeats))
        row["signal_ms"] = _median_ms([_signal_to_death(host) for _ in range(repeats)])
        container = getattr(host, "container", None)
        if container is not None:
            row["sdk_exec_run_ms"] = _median_ms(
                _time(lambda: container.exec_run(["true"]), repeats)
            )
            cli = shutil.which("docker")
            if cli is not None:
                argv = [cli, "exec", container.id, "true"]
                row["cli_exec_ms"] = _median_ms(
                    _time(lambda: subprocess.run(argv, check=True, capture_output=True), repeats)
                )
    return row


def live_hosts(repeats: int = 20, run_id: str | None = None) -> dict[str, dict[str, float]]:
    """Print and return the medians (milliseconds) per backend; skip one that cannot run.

    Args:
        repeats: Samples per figure.
        run_id: Run id of the hosts it makes (default: a fresh ``bench-…`` one); all of
            them are removed at the end.

    Returns:
        Backend -> figure -> median milliseconds (a skipped backend is absent).
    """
    run_id = run_id or f"bench-{uuid.uuid4().hex[:8]}"
    rows: dict[str, dict[str, float]] = {}
    try:
        for backend in BACKENDS:
            try:
                rows[backend] = row = _backend(backend, repeats, run_id)
            except LiveHostError as err:
                print(f"  {backend}: skipped: {err}")
                continue
            print(
                f"  {backend:>6}: start {row['start_ms']:7.1f} ms, close {row['close_ms']:7.1f} ms,"
                f" exec round trip {row['exec_ms']:6.1f} ms,"
                f" signal to death {row['signal_ms']:6.1f} ms"
            )
            if "sdk_exec_run_ms" in row:
                cli = f"{row['cli_exec_ms']:.1f} ms" if "cli_exec_ms" in row else "no CLI"
                print(
                    f"          docker exec paths: LiveHost.exec {row['exec_ms']:.1f} ms,"
                    f" SDK exec_run {row['sdk_exec_run_ms']:.1f} ms, `docker exec` CLI {cli}"
                )
    finally:
        clean(run_id)
    print(f"live hosts: medians of {repeats}")
    return rows
