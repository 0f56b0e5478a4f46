"""The ``inspect`` model backend: any model Inspect AI supports, by its model string.

``model: {backend: inspect, name: anthropic/claude-sonnet-4-0}`` sends an agent's chat
requests through Inspect's model API (``inspect_ai.model.get_model``), so every provider
Inspect has (``openai/...``, ``anthropic/...``, ``google/...``, ``vllm/...``, ``hf/...``,
``openai-api/<service>/...``, ``mockllm/model``) drives replisim's scaffold. ``base_url``
and ``args`` (the provider's model arguments) go to ``get_model``; the API key is the
provider's own variable (``ANTHROPIC_API_KEY`` ...) unless ``api_key_env`` names another.

The step's JSON schema goes to the provider as Inspect's ``response_schema``, which each
provider turns into its own structured output (or ignores, where it has none: the scaffold
then finds the object in free text). Inspect drops a schema's length bounds for
OpenAI-compatible servers; a vLLM server (``vllm/...``) honours them, so for it the whole
schema goes in vLLM's own ``structured_outputs`` request field instead: a small model then
closes every field, as it does through the ``vllm`` backend.

Inspect's model API is asynchronous; one event loop per process, on its own thread, runs
every request, so a batch is sent concurrently (a server batches it) and the clients Inspect
keeps per model stay on the loop they were made on. Retries and backoff are the agent's
(Inspect's own are off), so a failure is recorded and counted as with every backend.
Answers are recorded in ``llm/responses.jsonl`` and replayed by ``replay`` like any other.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from agents.backends import BACKENDS, Backend, BackendError, ChatReply, ChatRequest, ModelConfig

__all__ = ["InspectBackend", "inspect_available"]

#: Providers that are vLLM servers: they get the whole schema (bounds included).
VLLM_PROVIDERS = ("vllm/",)

_LOOP: tuple[int, asyncio.AbstractEventLoop] | None = None
_LOOP_LOCK = threading.Lock()


def inspect_available() -> bool:
    """Whether Inspect AI is installed (``pip install 'replisim[inspect]'``)."""
    import importlib.util

    return importlib.util.find_spec("inspect_ai") is not None


def _loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for Inspect's model API, running on a daemon thread.

    Made again in a forked child (a pool worker), where the parent's thread does not run.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP[0] != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="replisim-inspect", daemon=True)
            thread.start()
            _LOOP = (os.getpid(), loop)
        return _LOOP[1]


def _messages(messages: Sequence[Mapping[str, str]]) -> list[Any]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {
        "system": ChatMessageSystem,
        "user": ChatMessageUser,
        "assistant": ChatMessageAssistant,
    }
    return [kinds[m["role"]](content=m["content"]) for m in messages]


_STOP_REASONS = {"max_tokens": "length", "model_length": "length", "stop": "stop"}


class InspectBackend(Backend):
    """Chat requests through Inspect's model API (``get_model(name)``)."""

    def __init__(self, config: ModelConfig) -> None:
        if not inspect_available():
            raise BackendError(
                "the inspect backend needs Inspect AI: pip install 'replisim[inspect]'", False
            )
        assert config.name is not None
        self.config = config
        self.name = config.name
        self._model: Any = None
        api_key = None
        if config.api_key_env is not None:
            api_key = os.environ.get(config.api_key_env)
            if api_key is None:
                raise BackendError(f"the variable {config.api_key_env} is not set", False)
        self._api_key = api_key

    def _get_model(self) -> Any:
        """The Inspect model (made on the loop's thread, where its clients live)."""
        if self._model is None:
            from inspect_ai.model import GenerateConfig, get_model

            seconds = max(1, math.ceil(self.config.timeout))
            self._model = get_model(
                self.name,
                base_url=self.config.base_url,
                api_key=self._api_key,
                config=GenerateConfig(
                    max_retries=0,  # the agent retries, and records every attempt
                    timeout=seconds,
                    attempt_timeout=seconds,
                    max_connections=self.config.concurrency,
                ),
                **self.config.args,
            )
        return self._model

    def _generate_config(self, request: ChatRequest) -> Any:
        from inspect_ai.model import GenerateConfig, ResponseSchema
        from inspect_ai.util import JSONSchema

        options: dict[str, Any] = {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
        }
        if request.schema is not None:
            if self.name.startswith(VLLM_PROVIDERS):
                options["extra_body"] = {"structured_outputs": {"json": dict(request.schema)}}
            else:
                options["response_schema"] = ResponseSchema(
                    name="agent_step",
                    json_schema=JSONSchema.model_validate(request.schema),
                    strict=True,
                )
        return GenerateConfig(**options)

    async def _one(self, request: ChatRequest) -> ChatReply | BackendError:
        started = time.perf_counter()
        try:
            model = self._get_model()
            output = await model.generate(
                _messages(request.messages), config=self._generate_config(request)
            )
        except Exception as err:  # every provider's errors: the agent decides what next
            text = " ".join(str(err).split())[:300] or type(err).__name__
            return BackendError(f"inspect model {self.name}: {type(err).__name__}: {text}")
        wall = time.perf_counter() - started
        if output.error:
            return BackendError(f"inspect model {self.name}: {output.error}")
        usage = output.usage
        return ChatReply(
            output.completion,
            usage.input_tokens if usage else 0,
            usage.output_tokens if usage else 0,
            wall,
            _STOP_REASONS.get(output.stop_reason, output.stop_reason),
        )

    async def _batch(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Send the requests concurrently through Inspect; answers in order."""
        future = asyncio.run_coroutine_threadsafe(self._batch(requests), _loop())
        # Each request is bounded by Inspect's timeout; this bounds a stuck provider too.
        deadline = self.config.timeout * 2 + 30
        try:
            return future.result(timeout=deadline)
        except TimeoutError:
            future.cancel()
            reason = f"inspect model {self.name}: no answer within {deadline:g} s"
            return [BackendError(reason)] * len(requests)


@BACKENDS.register("inspect", ModelConfig, "any model Inspect AI supports, by its model string")
def inspect_backend(config: ModelConfig) -> Backend:
    """Inspect's model API for the model string ``name`` (``openai/gpt-4o``, ``vllm/...``)."""
    return InspectBackend(config)
