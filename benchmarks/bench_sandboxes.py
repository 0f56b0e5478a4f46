"""The sandbox engines' round trips: Docker create+start and exec, and a bubblewrap run.

Printed, each the median over ``--repeats``: starting a hardened container from the
offline base image (create + start, one at a time, removed after each), a command run in
a running container through the Docker SDK (``exec_run``) and through the CLI
(``docker exec``), and a whole bubblewrap sandbox that runs ``true`` (set-up, run, exit),
with the ratios between them. A live world pays a start per host and an exec per shell
command. An engine that cannot run here is skipped with the reason.

    python benchmarks/bench_sandboxes.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.hosts.sandbox import bwrap_command  # noqa: E402
from tests.live_support import docker_error, local_error  # noqa: E402

RUN_ID = uuid.uuid4().hex[:8]


def _median_s(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_docker(repeats: int) -> dict[str, float]:
    """Medians (s) of container create+start, SDK exec and CLI exec."""
    import docker

    from sim.hosts import docker_image as di

    client = docker.from_env()
    labels = {"replisim.bench": RUN_ID}
    try:
        image = di.build_base_image(client)

        def start_one() -> None:
            container = client.containers.run(**di.base_run_kwargs(image, labels=labels))
            container.remove(force=True, v=True)

        start = _median_s(start_one, repeats)
        running = client.containers.run(**di.base_run_kwargs(image, labels=labels))

        def sdk_exec() -> None:
            if running.exec_run(["true"]).exit_code != 0:
                raise RuntimeError("`true` failed in the container")

        sdk = _median_s(sdk_exec, repeats)
        cli = _median_s(
            lambda: subprocess.run(["docker", "exec", running.id, "true"], check=True), repeats
        )
        return {"start": start, "sdk exec": sdk, "cli exec": cli}
    finally:
        di.remove_labelled(client, f"replisim.bench={RUN_ID}")
        client.close()


def bench_bwrap(repeats: int) -> dict[str, float]:
    """Median (s) of a whole bubblewrap sandbox running ``true``."""
    disk = Path(tempfile.mkdtemp(prefix=f"bench-bwrap-{RUN_ID}-"))
    try:
        cmd = bwrap_command(disk, ["true"])
        run = _median_s(lambda: subprocess.run(cmd, check=True, capture_output=True), repeats)
        return {"bwrap run": run}
    finally:
        shutil.rmtree(disk, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    med: dict[str, float] = {}
    for name, why, bench in (
        ("docker", docker_error(), bench_docker),
        ("bubblewrap", local_error(), bench_bwrap),
    ):
        if why is not None:
            print(f"{name}: skipped ({why})")
            continue
        med.update(bench(args.repeats))
    for key, seconds in med.items():
        print(f"{key:>10}: {1000 * seconds:8.1f} ms (median of {args.repeats})")
    if {"sdk exec", "cli exec"} <= med.keys():
        print(f"docker exec, CLI / SDK: {med['cli exec'] / med['sdk exec']:.2f}")
    if {"start", "bwrap run"} <= med.keys():
        print(f"sandbox start, Docker / bubblewrap: {med['start'] / med['bwrap run']:.2f}")


if __name__ == "__main__":
    main()
