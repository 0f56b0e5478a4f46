"""The virtual shell: the commands LLM agents type, interpreted on a virtual host.

A :class:`VirtualShell` is bound to one replica (the *actor*: whose agent types) and one
host. ``result = yield from shell.run("cp -r /opt/agent /opt/agent-2")`` runs inside the
replica's SimPy process: cheap commands cost :data:`COMMAND_COST` of simulated time each,
costly ones take the time the world's actions take (a bundle copy takes size/bandwidth).
The shell keeps its working directory and variables between calls, like a terminal.

The package, by part:

- :mod:`~agents.shell.syntax`: bash's lexer and parser (imports nothing from the world).
- :mod:`~agents.shell.interpreter`: :class:`VirtualShell`, which runs parsed lines: lists,
  pipelines, compound commands, redirections, and the session; its expansions are in
  :mod:`~agents.shell.expansion`.
- :mod:`~agents.shell.fs`: the virtual file system of a host (the system's files, the
  world's bundle folders, what shells wrote).
- :mod:`~agents.shell.processes`: the process table and signals (``ps``, ``kill``…).
- :mod:`~agents.shell.tools`: the tools by family (``builtins``, ``files``, ``copy``,
  ``text``, ``awk``, ``system``, ``net``, ``interpreters``), each a function registered
  with its option spec (:mod:`~agents.shell.registry`).
- :mod:`~agents.shell.python`: the Python subset, with a table of the modules and calls
  it models (:mod:`~agents.shell.python.modules`).

What is modelled:

- **Parsing** as bash does it for the commands models write: quoting (``'…'``, ``"…"``,
  ``\\``), ``$VAR``/``${VAR:-x}``/``$(…)``/backticks/``$((…))``, globbing, pipelines,
  ``&&``, ``||``, ``;``, background ``&``, ``( … )``, ``{ …; }``, ``if``/``for``/
  ``while``/``case``, functions, redirections (``>``, ``>>``, ``2>&1``, ``&>``, ``<``,
  here-documents) and ``FOO=1 cmd``.
- **A file system per host**, derived from the world: every bundle folder in
  ``host.files`` is a directory holding the scenario's ``bundle.files`` (their names and
  nominal sizes) and ``weights/model.safetensors`` (the world's weights size), beside
  standard directories. What shells write (small text files, folders, partial copies) is
  kept per world in a ``WeakKeyDictionary`` keyed by the :class:`~sim.world.World` (no
  attribute is set on the world), per host, and counts against the host's disk.
- **Processes** are the world's: servers in ``host.servers`` and agents in
  ``host.replicas``, listed by ``ps`` with stable PIDs. Starting the bundle's
  ``start_server.sh`` calls :meth:`~sim.world.World.start_server`; ``start_agent.sh`` or
  ``python3 agent.py`` calls :meth:`~sim.world.World.start_agent`. The bundle's scripts
  are real shell text run by this interpreter. Run in the foreground a server (or agent)
  never returns: the command blocks until the shell's timeout, when the session hangs up
  and kills what it started unless it was started under ``nohup`` (the paper's stuck
  agents). With ``&`` the shell returns at once; output goes where it is redirected
  (``nohup.out`` under nohup).
- **Failures** read like the real tools' and come from the world's
  :class:`~sim.world.ActionFailed` reasons: a full disk, a port in use, missing weights,
  too little (GPU) memory, no route to a host; tools listed in the host's
  ``missing_tools`` are ``command not found`` (exit 127).
- **Unsupported is honest**: a tool the shell does not model is ``command not found``
  (exit 127), syntax it does not model is a syntax error (exit 2), Python outside the
  subset fails as Python would (``ModuleNotFoundError``, ``NameError``,
  ``AttributeError``); nothing unmodelled answers with a success.

Limits: pipeline stages run one after another; a foreground copy is not cut by the
timeout; copying single files out of a bundle never makes a runnable bundle (only a
whole-folder copy does, as the world tracks bundles as units); changing or removing a file
that belongs to a bundle turns the folder into plain files that no longer start.

How closely it behaves like bash is measured by the fidelity corpus (:mod:`sim.fidelity`,
``replisim bench fidelity``).
"""

from __future__ import annotations

import agents.shell.processes
import agents.shell.tools  # noqa: F401 - the tools register themselves
from agents.shell.core import COMMAND_COST, DEFAULT_TIMEOUT
from agents.shell.interpreter import VirtualShell
from agents.shell.registry import BUILTINS, TOOLS
from sim.machine import HOME, USER
from sim.substrate import ShellResult, transcript

__all__ = [
    "BUILTINS",
    "COMMAND_COST",
    "DEFAULT_TIMEOUT",
    "HOME",
    "TOOLS",
    "USER",
    "ShellResult",
    "VirtualShell",
    "transcript",
]
