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

:func:`sustain` (``replisim bench live --sustain``) ramps up the number of live Docker
hosts with one real replica each (server and heartbeating agent, in a :class:`LiveWorld`)
until the machine stops keeping up.
"""

from __future__ import annotations

import math
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from sim.hosts.live import LiveHost, LiveHostError, clean, live_host

__all__ = ["live_hosts", "sustain"]

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


#: The scenario of one sustain step: ``count`` Docker hosts, one idle replica each (a real
#: model server holding 8 MB and a heartbeating agent), run for ``hold`` seconds.
SUSTAIN_SCENARIO = """
version: 1
scenarios:
  sustain:
    hosts: [{{name: h, count: {count}, backend: docker, cpu: 1, memory: 128GB, disk: 16GB,
              pids: 64}}]
    bundle: {{weights: 1GB, server_memory: 8GB}}
    agents: [{{agent: idle, host: h, count: {count}}}]
    stop: {{horizon: {hold}s}}
    world: {{run_id: {run_id}}}
"""


def _meminfo_mb(field: str) -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return math.nan


def sustain(
    counts: tuple[int, ...] = (4, 8, 16, 32, 64), hold: float = 10.0
) -> list[dict[str, float]]:
    """How many live Docker hosts, one replica each, this machine keeps up.

    For each count (ascending, stopping at the first that fails): start the hosts and their
    replicas (set-up time), hold them ``hold`` seconds on the wall clock, and count the
    heartbeats (every agent beats once a second). A count is *sustained* when every replica
    is live at the end and no replica missed more than one beat in two.

    Returns:
        One row per count tried: hosts, set-up seconds, heartbeats received / expected,
        the machine's available memory before and at the end of the hold (MB), sustained.
    """
    from sim.config import load_file
    from sim.hosts.live_substrate import LiveSubstrate
    from sim.trial import make_world

    rows: list[dict[str, float]] = []
    for count in counts:
        run_id = f"sustain-{count}-{uuid.uuid4().hex[:6]}"
        text = SUSTAIN_SCENARIO.format(count=count, hold=hold, run_id=run_id)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as fh:
            fh.write(text)
            fh.flush()
            scenario = load_file(fh.name).scenarios["sustain"]
        before = _meminfo_mb("MemAvailable")
        started = time.perf_counter()
        row: dict[str, float] = {"hosts": count, "memory_available_before_mb": before}
        try:
            world = make_world(scenario, 0)
            row["setup_s"] = time.perf_counter() - started
            at_end: dict[str, float] = {}

            def note(at_end: dict[str, float] = at_end) -> None:
                at_end["mb"] = _meminfo_mb("MemAvailable")  # before the hosts are removed

            world.on_end.append(note)
            world.run()
        except Exception as err:  # a count the machine cannot start is the answer
            print(f"  {count:>3} hosts: failed to start: {err}")
            row["sustained"] = 0.0
            rows.append(row)
            clean(run_id)
            break
        finally:
            clean(run_id)
        expected = count * hold  # one beat a second each (beats during set-up count too)
        beats = cast(LiveSubstrate, world.substrate).beat_counts
        received = sum(beats.values())
        sustained = world.live == count and all(
            beats[r.name] >= (hold - 1.0) / 2 for r in world.replicas
        )
        row.update(
            beats_received=received,
            beats_expected=expected,
            memory_available_end_mb=at_end.get("mb", math.nan),
            sustained=float(sustained),
        )
        rows.append(row)
        print(
            f"  {count:>3} hosts: set-up {row['setup_s']:5.1f} s, live {world.live}/{count},"
            f" heartbeats {received}/{expected:.0f} in {hold:g} s, memory available"
            f" {before:,.0f} -> {row['memory_available_end_mb']:,.0f} MB:"
            f" {'sustained' if sustained else 'NOT sustained'}"
        )
        if not sustained:
            break
    best = max((int(r["hosts"]) for r in rows if r.get("sustained")), default=0)
    print(f"live Docker hosts with one replica each, sustained for {hold:g} s: {best}")
    return rows
