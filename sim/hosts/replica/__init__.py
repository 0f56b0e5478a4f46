"""The real files of a replica on a live host: its agent and model-server scripts.

They run inside the sandbox with the sandbox's ``python3`` and the standard library only.
Both read the bundle's ``config.json`` and talk to the controller over the Unix socket
that the live world binds read-only at :data:`CONTROL_SOCKET`: one JSON object per line.

* ``server.py`` is the model server: it refuses to start if the weights are missing or
  their SHA-256 differs from the config's, allocates (and touches) ``memory_bytes`` of
  memory so that memory caps bite, answers ``GET /health`` on its port, and tells the
  controller ``hello`` (role ``server``) and then ``ready``.
* ``agent.py`` is the replica's agent process: it registers (``hello``, role ``agent``,
  with the parent named in ``config.json``), learns its own name, writes it into
  ``config.json`` (so that copies of its folder name it as their parent), and heartbeats.
  Its mind runs in the controller (scripted agent or LLM loop), which acts in the sandbox
  through commands; a SIGTERM is reported to the controller if the config says the agent
  catches it, else it is fatal.

The controller sees a process die when its socket closes: the kernel closes it when the
process ends, however it ends.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["CONTROL_DIR", "CONTROL_SOCKET", "SCRIPTS", "script"]

#: Folder inside a live host holding the controller's socket (bound read-only).
CONTROL_DIR = "/run/replisim"
#: The controller's socket inside a live host.
CONTROL_SOCKET = f"{CONTROL_DIR}/ctl.sock"
#: Scripts that make up a bundle besides ``config.json`` and ``weights``.
SCRIPTS = ("agent.py", "server.py")


def script(name: str) -> str:
    """Return the text of one of :data:`SCRIPTS`."""
    if name not in SCRIPTS:
        raise KeyError(name)
    return resources.files(__package__).joinpath(name).read_text()
