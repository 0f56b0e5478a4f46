"""Live sweeps sized to the machine, and trials that failed outside their agent run again.

What a live trial's hosts reserve (memory caps, process caps, CPU quotas) is compared with
the machine before the sweep starts; live trials run side by side only while their
reservations fit (counted here by watching the real sandboxes come and go), a trial that
cannot fit even alone is refused, and a sweep asked for more workers than fit says so.
``--retry-errors`` runs again the trials whose error came from outside the agent (a model
server that failed, here a real HTTP server on 127.0.0.1) and records every attempt.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sim.capacity import Capacity, Reservation, fitting, machine_capacity, trial_reservation
from sim.cli import main
from sim.sweep import (
    DOCKER_RESOURCE,
    ExecutorUnavailable,
    MachineTooSmall,
    expand,
    outside_agent,
    read_rows,
    run_sweep,
)
from tests.helpers import SCENARIOS, scenario, shipped
from tests.live_support import skip_unless

BOX = """
hosts: [{name: box, memory: 64GB, disk: 200GB, disk_bandwidth: 1GB/s}]
bundle: {path: /opt/agent, weights: 270MB, server_memory: 2GB, server_start_overhead: 15s}
stop: {horizon: 2h}
"""


# ============================================================== reservations
def test_a_live_trial_reserves_its_hosts_caps_and_its_controller() -> None:
    """live-shutdown-avoidance: a 512 MB memory cap (512 GB at 1/1024), 128 processes and
    1 CPU for its one Docker host, plus its controller; a modelled trial reserves nothing."""
    need = trial_reservation(shipped("live-shutdown-avoidance"))
    assert need.hosts == 1 and need.docker
    assert need.memory == int(512e9 / 1024) + 200 * 2**20
    assert (need.pids, need.cpus) == (128 + 64, 1.0)
    local = trial_reservation(shipped("live-shutdown-avoidance", ("world.hosts", "local")))
    assert local.hosts == 1 and not local.docker
    assert not trial_reservation(shipped("branching"))
    chain = trial_reservation(shipped("live-chain", ("hosts.0.count", 3)))
    assert (chain.hosts, chain.pids) == (3, 3 * 256 + 64)


def test_fitting_names_the_resource_that_limits() -> None:
    """As many trials fit as the scarcest resource allows, and it is named."""
    need = Reservation(memory=1000, pids=100, cpus=1.0, hosts=1)
    assert fitting(Capacity(memory=10_000, pids=250, cpus=8), need) == (2, "processes")
    assert fitting(Capacity(memory=2_500, pids=10_000, cpus=8), need) == (2, "memory")
    assert fitting(Capacity(memory=10_000, pids=10_000, cpus=3), need) == (3, "CPUs")
    assert fitting(Capacity(memory=999, pids=10_000, cpus=3), need)[0] == 0


def test_the_machine_is_measured() -> None:
    """Available memory, free process slots and usable CPUs of this machine."""
    capacity = machine_capacity()
    assert capacity.memory > 0 and capacity.pids > 100 and capacity.cpus >= 1


def test_a_live_trial_that_cannot_fit_alone_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hosts whose memory caps exceed the machine: exit 2, nothing run, no sandbox made."""
    code = main(
        [
            "sweep", str(SCENARIOS), "--scenario", "live-shutdown-avoidance", "--trials", "2",
            "--set", "hosts.0.memory=1PB", "--out", str(tmp_path / "big"), "--quiet",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "does not fit" in err and "live-shutdown-avoidance" in err
    assert not (tmp_path / "big" / "trials").exists()
    specs = expand(shipped("live-shutdown-avoidance"), [0])
    with pytest.raises(MachineTooSmall, match="does not fit"):
        run_sweep(specs, tmp_path / "small", capacity=Capacity(memory=10**6, pids=10**6, cpus=64))


def test_ray_refuses_live_docker_trials_on_a_cluster_without_a_docker_engine() -> None:
    """No node offers the docker resource: refused at once, saying how to offer it."""
    from sim.sweep import _check_cluster, _reservations

    specs = expand(shipped("live-shutdown-avoidance"), [0])
    reserve = _reservations()
    with pytest.raises(ExecutorUnavailable, match=f'--resources \'{{"{DOCKER_RESOURCE}"'):
        _check_cluster(specs, reserve, {"CPU": 8.0, "memory": 8e9})
    _check_cluster(specs, reserve, {"CPU": 8.0, "memory": 8e9, DOCKER_RESOURCE: 1000.0})


# ========================================================== sized to the machine
class SandboxWatch:
    """Counts the live sandboxes of a backend every 50 ms while a sweep runs."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.root = root
        self.counts: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _count(self) -> int:
        if self.backend == "local":
            return sum(1 for p in self.root.glob("*/box") if (p / "host.json").exists())
        import docker

        client = docker.from_env()
        try:
            found = client.containers.list(filters={"label": "replisim.run"}, ignore_removed=True)
        finally:
            client.close()
        return sum(1 for c in found if c.name.startswith("replisim-live-shutdown"))

    def _watch(self) -> None:
        while not self.stop.is_set():
            self.counts.append(self._count())
            time.sleep(0.05)

    def __enter__(self) -> SandboxWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["docker", "local"])
def test_live_trials_run_side_by_side_only_as_far_as_the_machine_fits(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Room for 2 live trials, 3 workers, 4 trials: never more than 2 sandboxes at once,
    2 at some point, a notice that says so, and every trial ok."""
    skip_unless(backend)
    monkeypatch.setenv("REPLISIM_LIVE_DIR", str(tmp_path / "live"))
    s = shipped("live-shutdown-avoidance", ("world.hosts", backend), ("stop.horizon", "9s"))
    need = trial_reservation(s)
    room = Capacity(memory=2 * need.memory, pids=10**6, cpus=64)
    notes: list[str] = []
    with SandboxWatch(backend, tmp_path / "live") as watch:
        table = run_sweep(
            expand(s, [0, 1, 2, 3]), tmp_path / "sweep", workers=3, capacity=room,
            notify=notes.append,
        )  # fmt: skip
    assert list(table["status"]) == ["ok"] * 4, list(table["error"])
    assert max(watch.counts) == 2
    assert any("room for 2 at once (their memory)" in n for n in notes), notes
    assert list(table["attempts"]) == [1] * 4


@pytest.mark.slow
def test_cli_says_when_fewer_live_trials_fit_than_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hosts with a 2-CPU quota on a 2-CPU machine, --workers 2: a notice, one at a time."""
    skip_unless("local")
    if machine_capacity().cpus != 2:
        pytest.skip("the notice's numbers are for a 2-CPU machine")
    code = main(
        [
            "sweep", str(SCENARIOS), "--scenario", "live-shutdown-avoidance", "--seeds", "0,1",
            "--set", "world.hosts=local", "--set", "hosts.0.cpu=2", "--set", "stop.horizon=9s",
            "--workers", "2", "--out", str(tmp_path / "s"), "--quiet",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "room for 1 at once (their CPUs)" in err
    assert [r["status"] for r in read_rows(tmp_path / "s")] == ["ok", "ok"]


# ==================================================================== retries
def test_errors_outside_the_agent_are_told_apart_from_the_agents_own() -> None:
    """Engine failures and timeouts may pass; a replay that diverged or a bad answer not."""
    assert outside_agent("worker failed: BrokenProcessPool: A process in the pool died")
    assert outside_agent("LiveWorldError: sandbox box did not start: 500 Server Error")
    assert outside_agent(
        "model call of origin at step 1 failed after 3 attempt(s): cannot reach "
        "http://127.0.0.1:9/v1/chat/completions: [Errno 111] Connection refused"
    )
    assert outside_agent("model call of r0 at step 2 failed after 1 attempt(s): HTTP 503 from x")
    assert not outside_agent(
        "model call of origin at step 1 failed after 3 attempt(s): the answer is not a valid "
        "step (no JSON object in the answer): 'hi'"
    )
    assert not outside_agent("model call of origin at step 1 failed: replay diverged: ...")
    assert not outside_agent("ValueError: a bug in a plug-in")


class FlakyServer:
    """A real HTTP server on 127.0.0.1 that fails its first ``failures`` requests with a
    500, then answers every request with a ``finish`` step."""

    def __init__(self, failures: int, prose: bool = False) -> None:
        self.failures = failures
        self.prose = prose
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests += 1
                if server.requests <= server.failures:
                    body, code = b'{"error": "engine restarting"}', 500
                else:
                    step = {"explanation": "e", "gaps": "g", "findings": "f", "plan": "p",
                            "action": {"tool": "finish"}}  # fmt: skip
                    content = "I will copy myself." if server.prose else json.dumps(step)
                    answer = {
                        "choices": [{"message": {"content": content},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 20},
                    }  # fmt: skip
                    body, code = json.dumps(answer).encode(), 200
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    server = FlakyServer(failures=1)
    yield server
    server.http.shutdown()
    server.http.server_close()


def _llm(url: str) -> Any:
    model = {"backend": "openai", "base_url": url, "name": "m", "retries": 0, "backoff": 0,
             "timeout": 5}  # fmt: skip
    return scenario(BOX, agents=[{"agent": "llm", "name": "origin", "model": model}])


def test_retry_errors_runs_again_a_trial_whose_model_server_failed(
    flaky: FlakyServer, tmp_path: Path
) -> None:
    """The server's 500 fails the first attempt; the second succeeds: one row, ok, with
    2 attempts and the first one's error; its folder kept under attempts/."""
    notes: list[str] = []
    table = run_sweep(
        expand(_llm(flaky.url), [0]), tmp_path / "s", retry_errors=2, notify=notes.append
    )
    (row,) = table.to_dict("records")
    assert row["status"] == "ok"
    assert row["attempts"] == 2
    (first,) = json.loads(row["attempt_errors"])
    assert "HTTP 500" in first
    assert any("failed outside its agent" in n and "attempt 2 of 3" in n for n in notes)
    kept = tmp_path / "s" / "attempts" / row["trial_id"] / "1" / "summary.json"
    assert json.loads(kept.read_text())["status"] == "error"
    assert (
        json.loads((tmp_path / "s" / "trials" / row["trial_id"] / "summary.json").read_text())[
            "status"
        ]
        == "ok"
    )


def test_retries_stop_after_n_and_the_table_records_every_attempt(tmp_path: Path) -> None:
    """A server that never answers: 1 + N attempts, then the error row (process pool)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    specs = expand(_llm(f"http://127.0.0.1:{port}/v1"), [0, 1])
    table = run_sweep(specs, tmp_path / "s", workers=2, executor="process", retry_errors=2)
    assert list(table["status"]) == ["error", "error"]
    assert list(table["attempts"]) == [3, 3]
    assert all(len(json.loads(e)) == 2 for e in table["attempt_errors"])


def test_the_agents_own_errors_are_not_run_again(tmp_path: Path) -> None:
    """A model that answers prose fails its trial once: no second attempt."""
    server = FlakyServer(failures=0, prose=True)  # no step in the answer: the agent's own
    try:
        table = run_sweep(expand(_llm(server.url), [0]), tmp_path / "s", retry_errors=3)
    finally:
        server.http.shutdown()
        server.http.server_close()
    (row,) = table.to_dict("records")
    assert row["status"] == "error" and "not a valid step" in row["error"]
    assert row["attempts"] == 1 and server.requests == 1


def test_cli_takes_retry_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--retry-errors takes a count; a negative one is refused."""
    out = str(tmp_path / "s")
    args = ["sweep", str(SCENARIOS), "--scenario", "branching", "--trials", "2", "--out", out]
    assert main([*args, "--retry-errors", "-1"]) == 2
    assert "--retry-errors must be 0 or more" in capsys.readouterr().err
    assert main([*args, "--retry-errors", "2", "--quiet"]) == 0
    assert {r["attempts"] for r in read_rows(out)} == {1}
