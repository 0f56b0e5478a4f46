"""The cost of verifying a replica's registration (``sim.hosts.verify.verify_agent``).

For each live backend (Docker, bubblewrap) that can run here, one real replica with 4 MiB
of weights is placed in a host and registers with the control server; then its
registration is verified ``--repeats`` times. Printed: the median (and min, max) of
``verify_agent``, the medians of its three costly parts (the weights' digest, the HTTP
probe of the server, finding the listener), and how many processes the sandbox and the
machine hold (the listener search walks them). The live world verifies every registration,
so this is the controller's cost per replica; it was judged well under 100 ms.

    python benchmarks/bench_verify.py [--repeats 30] [--backend docker --backend local]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.hosts.live import clean  # noqa: E402
from sim.hosts.replica import WEIGHTS  # noqa: E402
from sim.hosts.verify import (  # noqa: E402
    file_digest,
    init_pid,
    listener_pid,
    probe_http,
    sandbox_pids,
    verify_agent,
)
from tests.control_support import Rig  # noqa: E402
from tests.live_support import reason  # noqa: E402

BACKENDS = ("docker", "local")
WEIGHT_BYTES = 4 << 20


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def bench_backend(backend: str, repeats: int, run_id: str) -> None:
    """Verify one replica's registration ``repeats`` times on ``backend``; print medians."""
    rig = Rig(backend, f"{backend}-bench", run_id)
    try:
        bundle = rig.replica("/opt/bench", weights=random.Random(4).randbytes(WEIGHT_BYTES))
        assert bundle.agent_conn is not None
        held = rig.server.process(bundle.agent_conn)
        assert held is not None
        times: list[float] = []
        parts: dict[str, list[float]] = {"digest": [], "probe": [], "listener": []}
        for _ in range(repeats):
            verdict = verify_agent(
                rig.box,
                held,
                folder=bundle.folder,
                port=bundle.port,
                weights_sha256=bundle.digest,
                weights_bytes=bundle.size,
            )
            if not verdict.ok:
                raise SystemExit(f"{backend}: the replica was refused: {verdict.reason}")
            times.append(verdict.elapsed_s)
            t0 = time.perf_counter()
            file_digest(held.pid, f"{bundle.folder}/{WEIGHTS}")
            t1 = time.perf_counter()
            probe_http(init_pid(rig.box), bundle.port)
            t2 = time.perf_counter()
            listener_pid(rig.box, bundle.port)
            t3 = time.perf_counter()
            parts["digest"].append(t1 - t0)
            parts["probe"].append(t2 - t1)
            parts["listener"].append(t3 - t2)
        shown = ", ".join(f"{k} {_ms(statistics.median(v))}" for k, v in parts.items())
        print(
            f"{backend}: verify_agent median {_ms(statistics.median(times))} "
            f"(min {_ms(min(times))}, max {_ms(max(times))}; median of {repeats}, "
            f"{WEIGHT_BYTES >> 20} MiB weights)\n"
            f"  parts (medians): {shown}\n"
            f"  {len(sandbox_pids(rig.box))} processes in the sandbox, "
            f"{sum(1 for e in os.listdir('/proc') if e.isdigit())} on the machine"
        )
    finally:
        rig.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    args = parser.parse_args()
    run_id = f"bench-verify-{uuid.uuid4().hex[:8]}"
    try:
        for backend in args.backend or BACKENDS:
            why = reason(backend)
            if why is not None:
                print(f"{backend}: skipped ({why})")
                continue
            bench_backend(backend, args.repeats, run_id)
    finally:
        clean(run_id)


if __name__ == "__main__":
    main()
