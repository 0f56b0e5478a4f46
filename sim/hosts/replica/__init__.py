"""A replica's bundle: the files every world shows in a bundle folder.

The same bundle in every world (the modelled world's virtual shell reads these very texts;
a live host holds them as real files):

* ``agent.py``: the replica's agent process. It registers with the controller over the
  host's control socket (bound read-only at :data:`CONTROL_DIR` on live hosts), names its
  parent from ``config.json``, writes its own name there, and heartbeats. Its mind (a
  scripted agent or an LLM loop) runs in the controller, which acts in the host through
  commands.
* ``server.py``: the model server (a stand-in for vLLM serving the weights): it refuses to
  start if the weights' size or SHA-256 differ from ``config.json``'s, holds the model's
  memory (so memory caps bite), and answers ``GET /health`` on its port.
* ``start_server.sh PORT`` and ``start_agent.sh PORT [--task TEXT]``: how the bundle is
  meant to be started (``exec python3 …/server.py --model …/weights --port PORT``).
* ``config.json`` (:func:`config_json`) and ``weights/model.safetensors`` (:data:`WEIGHTS`).

On a live host the controller counts a replica only once it verified it: the process's
identity from the kernel, its weights' hash, and its own health probe of the server.
"""

from __future__ import annotations

import json
import posixpath
from importlib import resources
from typing import Any

__all__ = [
    "CONTROL_DIR",
    "CONTROL_SOCKET",
    "SCRIPTS",
    "WEIGHTS",
    "agent_argv",
    "config_json",
    "extra_text",
    "script",
    "server_argv",
]

#: Folder inside a live host holding the controller's socket (bound read-only).
CONTROL_DIR = "/run/replisim"
#: The controller's socket inside a live host.
CONTROL_SOCKET = f"{CONTROL_DIR}/ctl.sock"
#: The bundle's scripts, besides ``config.json`` and the weights.
SCRIPTS = ("agent.py", "server.py", "start_agent.sh", "start_server.sh")
#: The weights file, relative to the bundle folder.
WEIGHTS = "weights/model.safetensors"
#: Extensions of binary files (a scenario's other bundle files: their bytes are not shown).
BINARY_EXT = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".tar", ".gz")


def script(name: str) -> str:
    """Return the text of one of :data:`SCRIPTS`."""
    if name not in SCRIPTS:
        raise KeyError(name)
    return resources.files(__package__).joinpath(name).read_text()


def config_json(
    bundle_path: str,
    *,
    replica: str | None,
    spec: int,
    task: str,
    catches_sigterm: bool,
    weights_bytes: int,
    weights_sha256: str,
    memory_bytes: int,
) -> str:
    """The text of a bundle's ``config.json``.

    Args:
        bundle_path: The scenario's ``bundle.path`` (its last part names the model).
        replica: The replica running from this folder, or whose folder this is a copy of
            (``None`` before the origin registered).
        spec: The index of the scenario's agent whose bundle this is.
        task: The agent's task.
        catches_sigterm: Whether the agent's code turns SIGTERM into a message.
        weights_bytes: The weights' size (scaled, on a live host).
        weights_sha256: The weights' SHA-256 (of what is on disk, on a live host).
        memory_bytes: Memory the server holds (scaled, on a live host).
    """
    config: dict[str, Any] = {
        "model": posixpath.basename(bundle_path.rstrip("/")) or "agent",
        "replica": replica,
        "spec": spec,
        "task": task,
        "catches_sigterm": catches_sigterm,
        "weights": WEIGHTS,
        "weights_bytes": weights_bytes,
        "weights_sha256": weights_sha256,
        "memory_bytes": memory_bytes,
        "server": {"start": "start_server.sh", "entry": "server.py"},
        "agent": {"start": "start_agent.sh", "entry": "agent.py"},
    }
    return json.dumps(config, indent=2) + "\n"


def extra_text(bundle_path: str, rel: str) -> str | None:
    """The text of one of a scenario's other bundle files (``bundle.files``); ``None`` for
    a binary one (weights, archives), whose bytes are zeros of its size."""
    name = posixpath.basename(rel)
    if rel.startswith("weights/") or name.endswith(BINARY_EXT):
        return None
    if name.endswith(".json"):
        return "{}\n"
    if name.endswith(".md"):
        model = posixpath.basename(bundle_path.rstrip("/")) or "agent"
        return f"# {model}\n\nModel weights, agent code and start scripts.\n"
    return ""


def server_argv(folder: str, port: int) -> str:
    """The server's command line as ``ps`` shows it (``start_server.sh`` execs it)."""
    return f"python3 {folder}/server.py --model {folder}/weights --port {port}"


def agent_argv(folder: str, port: int, task: str | None = None) -> str:
    """The agent's command line as ``ps`` shows it (``start_agent.sh`` execs it)."""
    return f"python3 {folder}/agent.py --port {port}" + (f" --task {task}" if task else "")
