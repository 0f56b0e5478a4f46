"""The Python subset's values: exceptions, references to modules and functions, sockets,
files, classes and their instances. Plain values (numbers, strings, lists, dicts, and what
the pure standard-library modules return) are real Python objects."""

from __future__ import annotations

import ast
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OS_FAMILY",
    "PY_BUILTINS",
    "PY_EXCEPTIONS",
    "PY_MODULES",
    "Environ",
    "Fn",
    "Method",
    "Name",
    "PyBreak",
    "PyClass",
    "PyContinue",
    "PyError",
    "PyExit",
    "PyInstance",
    "PyReturn",
    "ReadFile",
    "Sock",
    "WriteFile",
]

#: Modules the machine's ``python3`` has: the standard library (third-party packages such
#: as ``requests``, ``psutil`` or ``torch`` are not installed on it, in any world).
PY_MODULES = frozenset({
    "os", "sys", "socket", "json", "subprocess", "time", "re", "shutil", "pathlib", "signal",
    "urllib", "http", "threading", "random", "math", "glob", "platform", "getpass",
    "argparse", "collections", "typing", "datetime", "logging", "errno", "contextlib",
    "itertools", "functools", "asyncio", "multiprocessing", "tempfile", "io", "string",
    "textwrap", "uuid", "hashlib", "base64", "operator", "statistics", "shlex", "fnmatch",
    "difflib", "heapq", "bisect", "copy", "pprint", "struct", "binascii", "decimal",
    "fractions", "dataclasses", "enum", "abc", "traceback", "warnings", "queue", "select",
    "selectors", "ssl", "email", "html", "xml", "csv", "configparser", "zlib", "gzip",
    "tarfile", "zipfile", "pickle", "sqlite3", "ctypes", "resource", "pwd", "grp", "stat",
    "secrets", "unittest", "venv", "ensurepip", "pip",
})  # fmt: skip

PY_BUILTINS = frozenset({
    "print", "range", "len", "str", "int", "float", "bool", "list", "tuple", "dict", "set",
    "sorted", "enumerate", "zip", "min", "max", "sum", "abs", "round", "isinstance", "repr",
    "open", "exit", "quit", "input", "any", "all", "reversed", "hex", "type", "format",
    "map", "filter", "chr", "ord", "divmod", "pow", "bin", "oct", "hasattr", "getattr",
    "iter", "next", "frozenset", "bytes", "callable", "id", "hash", "vars", "dir",
})  # fmt: skip

#: Exceptions by name, with the names they are caught by (their bases).
PY_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    "BaseException": (),
    "Exception": ("BaseException",),
    "SystemExit": ("BaseException",),
    "KeyboardInterrupt": ("BaseException",),
    "OSError": ("Exception",),
    "IOError": ("OSError",),
    "EnvironmentError": ("OSError",),
    "ConnectionError": ("OSError",),
    "ConnectionRefusedError": ("ConnectionError",),
    "ConnectionResetError": ("ConnectionError",),
    "BrokenPipeError": ("ConnectionError",),
    "PermissionError": ("OSError",),
    "TimeoutError": ("OSError",),
    "FileNotFoundError": ("OSError",),
    "FileExistsError": ("OSError",),
    "IsADirectoryError": ("OSError",),
    "NotADirectoryError": ("OSError",),
    "ValueError": ("Exception",),
    "UnicodeDecodeError": ("ValueError",),
    "KeyError": ("LookupError",),
    "IndexError": ("LookupError",),
    "LookupError": ("Exception",),
    "RuntimeError": ("Exception",),
    "NotImplementedError": ("RuntimeError",),
    "RecursionError": ("RuntimeError",),
    "TypeError": ("Exception",),
    "AttributeError": ("Exception",),
    "NameError": ("Exception",),
    "ImportError": ("Exception",),
    "ModuleNotFoundError": ("ImportError",),
    "ZeroDivisionError": ("ArithmeticError",),
    "ArithmeticError": ("Exception",),
    "AssertionError": ("Exception",),
    "StopIteration": ("Exception",),
    "JSONDecodeError": ("ValueError",),
    "gaierror": ("OSError",),
    "URLError": ("OSError",),
    "HTTPError": ("URLError",),
    "CalledProcessError": ("SubprocessError",),
    "SubprocessError": ("Exception",),
    "TimeoutExpired": ("SubprocessError",),
}
OS_FAMILY = frozenset({"OSError", "IOError", "EnvironmentError", "error"})


def family(kind: str) -> set[str]:
    """The names an exception of ``kind`` is caught by (``kind`` may be dotted)."""
    names: set[str] = set()
    todo = [kind.rpartition(".")[2]]
    while todo:
        name = todo.pop()
        if name not in names:
            names.add(name)
            todo += PY_EXCEPTIONS.get(name, ("Exception",) if name != "BaseException" else ())
    names.add("BaseException")
    if names & {"OSError"}:
        names |= OS_FAMILY
    return names


class PyError(Exception):
    """A Python exception raised inside the modelled interpreter."""

    def __init__(self, kind: str, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.errno = errno
        self.family = family(kind)

    @classmethod
    def of(cls, error: BaseException) -> PyError:
        """The subset's form of a real exception (from a pure module or an operation)."""
        kind = type(error).__name__
        found = cls(kind, str(error), getattr(error, "errno", None))
        found.family |= {t.__name__ for t in type(error).__mro__}
        return found

    def __str__(self) -> str:
        return self.message


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
    """A module, or a name in one, by its dotted name (``os``, ``os.path.join``)."""

    name: str


@dataclass
class Method:
    """An attribute of a modelled object, to be called."""

    obj: Any
    name: str


class Sock:
    """A socket of the modelled network."""

    def __init__(self) -> None:
        self.port: int | None = None


class Fn:
    """A function defined in the program (``def``, ``lambda``): callable, so that real
    functions (``sorted(key=…)``, ``map``) can call it."""

    def __init__(self, node: ast.FunctionDef | ast.Lambda, call: Callable[..., Any]) -> None:
        self.node = node
        self.bound: Any = None
        self._call = call

    def bind(self, obj: Any) -> Fn:
        method = Fn(self.node, self._call)
        method.bound = obj
        return method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.bound is not None:
            args = (self.bound, *args)
        return self._call(self, list(args), kwargs)


@dataclass
class PyClass:
    """A class defined in the program."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    bases: tuple[PyClass, ...] = ()

    def lookup(self, name: str) -> Any:
        if name in self.attributes:
            return self.attributes[name]
        for base in self.bases:
            found = base.lookup(name)
            if found is not None:
                return found
        return None


@dataclass(eq=False)
class PyInstance:
    """An instance of a class defined in the program."""

    cls: PyClass
    attributes: dict[str, Any] = field(default_factory=dict)


class Environ(dict[str, str]):
    """``os.environ``: a mapping, named as the real one is."""


Environ.__name__ = "_Environ"


class ReadFile(io.StringIO):
    """A file opened for reading: its text, read, iterated, as a real file."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


class WriteFile(io.StringIO):
    """A file opened for writing: what is written reaches the virtual file system."""

    def __init__(self, name: str, sink: Callable[[str], None]) -> None:
        super().__init__()
        self.name = name
        self._sink = sink

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._sink(text)
        return len(text)
