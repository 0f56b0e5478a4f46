"""The tools, by family. Importing this package registers every one of them
(:data:`agents.shell.registry.TOOLS` and :data:`~agents.shell.registry.BUILTINS`)."""

from agents.shell.tools import awk, builtins, copy, files, interpreters, net, system, text

__all__ = ["awk", "builtins", "copy", "files", "interpreters", "net", "system", "text"]
