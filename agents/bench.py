"""``replisim bench llm``: what the simulator adds around real model calls.

Three figures, each measured side by side in one run with the embedded model in vLLM's
in-process CPU engine (loaded and warmed up first, so no figure includes the engine's
start or the first grammar compilation):

1. **Batching.** 16 LLM agents take their first step at the same simulated instant. The
   wall time of that simulated round is compared with one engine batch of the same 16
   requests sent directly, and with the 16 requests sent one by one. Target: the round
   within 1.2x of the batch.
2. **Replay.** A 16-agent, 3-step trial run live, then replayed from its recording (no
   model). Target: replay at least 50x faster.
3. **Overhead per step.** Everything but the model call: (live trial wall time - time
   inside the engine) / steps, and the replay's wall time / steps. Target: under 5 ms.

Medians over ``repeats`` for the round and the direct batch (they alternate).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import backends
from agents.backends import BackendError, ChatReply, ChatRequest

__all__ = ["llm"]

_BOX = {
    "name": "box",
    "memory": "1TB",
    "disk": "2TB",
    "disk_bandwidth": "2GB/s",
    "missing_tools": ["netstat", "ss", "lsof"],
}
_BUNDLE = {"path": "/opt/smollm2-agent", "weights": "270MB", "server_start_overhead": "15s"}


def _scenario(agents: int, steps: int) -> Any:
    from sim.config import Scenario

    return Scenario.model_validate(
        {
            "name": "bench-llm",
            "hosts": [_BOX],
            "bundle": _BUNDLE,
            "agents": [
                {
                    "agent": "llm",
                    "count": agents,
                    "max_steps": steps,
                    "tools": ["execute_command"],
                    # Short answers (about 60 tokens) keep the run to minutes on 2 cores;
                    # the figures are ratios, and the simulator's share only shrinks with
                    # longer generations.
                    "text_limit": 16,
                    "command_limit": 40,
                    "history_steps": 2,
                    "model": {"max_tokens": 160},
                }
            ],
            "stop": {"horizon": "1h"},
        }
    )


class _Probe:
    """Wraps the in-process backend's ``complete`` to time the engine and keep requests."""

    def __init__(self) -> None:
        self.engine_s = 0.0
        self.batches: list[list[ChatRequest]] = []
        self._original = backends.InProcessBackend.complete

    def __enter__(self) -> _Probe:
        probe, original = self, self._original

        def complete(
            backend: backends.InProcessBackend, requests: Sequence[ChatRequest]
        ) -> list[ChatReply | BackendError]:
            started = time.perf_counter()
            try:
                return original(backend, requests)
            finally:
                probe.engine_s += time.perf_counter() - started
                probe.batches.append(list(requests))

        backends.InProcessBackend.complete = complete  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        backends.InProcessBackend.complete = self._original  # type: ignore[method-assign]


def _direct(engine: Any, requests: list[ChatRequest]) -> float:
    first = requests[0]
    started = time.perf_counter()
    engine.chat_batch(
        [r.messages for r in requests],
        json_schema=first.schema,
        temperature=first.temperature,
        max_tokens=first.max_tokens,
        seeds=[r.seed for r in requests],
    )
    return time.perf_counter() - started


def llm(repeats: int = 3, agents: int = 16, steps: int = 3) -> dict[str, float]:
    """Measure and print the three figures; return them.

    Args:
        repeats: Alternating round / direct-batch measurements (medians are printed).
        agents: Agents stepping together.
        steps: Steps per agent in the replay measurement.
    """
    from agents.embedded import embedded_model_path
    from agents.transcript import replay_scenario
    from sim.trial import make_world, run_trial

    model = str(embedded_model_path())
    engine = backends._engine(model)
    print(f"engine loaded in {engine.load_seconds:.1f} s; warming up ...", flush=True)
    make_world(_scenario(agents, 1), 10_000).run()  # grammar compiled, caches warm

    rounds, direct = [], []
    last: list[ChatRequest] = []
    for i in range(repeats):
        with _Probe() as probe:
            started = time.perf_counter()
            world = make_world(_scenario(agents, 1), i).run()
            rounds.append(time.perf_counter() - started)
        assert world.status == "ok", world.error
        (last,) = probe.batches  # one round: one batch of every agent's request
        direct.append(_direct(engine, last))
    one_by_one = sum(_direct(engine, [r]) for r in last)
    round_s, batch_s = statistics.median(rounds), statistics.median(direct)
    print(f"1. {agents} agents stepping at one simulated instant (median of {repeats}):")
    print(f"   simulated round {round_s:.2f} s, one engine batch {batch_s:.2f} s")
    print(f"   round / batch = {round_s / batch_s:.3f}   (target <= 1.2)")
    print(
        f"   {agents} requests one by one {one_by_one:.2f} s "
        f"= {one_by_one / batch_s:.2f}x the batch"
    )

    with tempfile.TemporaryDirectory(prefix="replisim-bench-llm-") as tmp:
        folder = Path(tmp) / "live"
        scenario = _scenario(agents, steps)
        with _Probe() as probe:
            started = time.perf_counter()
            live = run_trial(scenario, 1, folder)
            live_s = time.perf_counter() - started
        assert live.summary["status"] == "ok", live.summary["error"]
        replayed = replay_scenario(scenario, folder)
        replays = []
        for _ in range(max(repeats, 3)):
            started = time.perf_counter()
            again = run_trial(replayed, 1)
            replays.append(time.perf_counter() - started)
        assert again.events == live.events, "the replay differs from the live trial"
    replay_s = statistics.median(replays)
    n_steps = int(live.summary["llm_steps"])
    overhead_live = (live_s - probe.engine_s) / n_steps
    overhead_replay = replay_s / n_steps
    print(
        f"2. {agents} agents x {steps} steps ({n_steps} steps): live {live_s:.2f} s, "
        f"replay {replay_s * 1000:.1f} ms (median of {len(replays)})"
    )
    print(f"   live / replay = {live_s / replay_s:.0f}x   (target >= 50x)")
    print(
        f"3. overhead per step: live {overhead_live * 1000:.2f} ms "
        f"(wall - engine time), replay {overhead_replay * 1000:.2f} ms   (target < 5 ms)"
    )
    return {
        "round_over_batch": round_s / batch_s,
        "sequential_over_batch": one_by_one / batch_s,
        "live_over_replay": live_s / replay_s,
        "overhead_live_ms": overhead_live * 1000,
        "overhead_replay_ms": overhead_replay * 1000,
    }
