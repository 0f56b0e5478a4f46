"""The Python subset's values: exceptions, names of modules and functions, opaque objects."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any


class PyError(Exception):
    """A Python exception raised inside the modelled interpreter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class PyExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PyBreak(Exception):
    pass


class PyContinue(Exception):
    pass


class PyReturn(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


@dataclass
class Name:
    """A module, function or exception class, by dotted name."""

    name: str


@dataclass
class Method:
    obj: Any
    name: str


class Opaque:
    def __repr__(self) -> str:
        return "<object>"


class Sock:
    def __init__(self) -> None:
        self.port: int | None = None


class Fn:
    def __init__(self, node: ast.FunctionDef) -> None:
        self.node = node


PY_BUILTINS = frozenset({
    "print", "range", "len", "str", "int", "float", "bool", "list", "tuple", "dict", "set",
    "sorted", "enumerate", "zip", "min", "max", "sum", "abs", "round", "isinstance", "repr",
    "open", "exit", "quit", "input", "any", "all", "reversed", "hex", "type", "format",
})  # fmt: skip


PY_EXCEPTIONS = frozenset({
    "Exception", "BaseException", "OSError", "IOError", "EnvironmentError",
    "ConnectionError", "ConnectionRefusedError", "PermissionError", "TimeoutError",
    "ValueError", "KeyError", "IndexError", "RuntimeError", "TypeError", "FileNotFoundError",
    "KeyboardInterrupt", "SystemExit", "ImportError", "ModuleNotFoundError", "NameError",
})  # fmt: skip


OS_FAMILY = {"OSError", "IOError", "EnvironmentError", "socket.error"}


PY_MODULES = frozenset({
    "os", "sys", "socket", "json", "subprocess", "time", "re", "shutil", "pathlib", "signal",
    "urllib", "http", "threading", "random", "math", "glob", "platform",
    "getpass", "argparse", "collections", "typing", "datetime", "logging", "errno", "contextlib",
    "itertools", "functools", "asyncio",
    "multiprocessing", "tempfile", "io", "string", "textwrap", "uuid", "hashlib", "base64",
    "http.client", "urllib.request", "json.tool",
})  # fmt: skip
"""Modules the machine's ``python3`` has: the standard library (third-party packages such
as ``requests``, ``psutil`` or ``torch`` are not installed on it, in any world)."""
