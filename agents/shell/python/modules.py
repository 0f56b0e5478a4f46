"""The modules the Python subset models, and how: the table a newcomer extends.

Three kinds of names, looked up in this order by :func:`attribute`:

* :data:`CONSTANTS`: values (``sys.argv``, ``os.environ``, ``socket.AF_INET``…), each a
  function of the running program;
* :data:`CALLS`: functions answered from the virtual host (``os.listdir``,
  ``socket.socket``, ``subprocess.run``, ``time.sleep``…), each registered with
  :func:`modelled`;
* :data:`PURE`: modules that touch nothing outside the program (``json``, ``math``,
  ``re``, ``collections``…): their real functions run as they are.

Any other name of a standard-library module fails as Python fails for a name a module
lacks (``AttributeError: module 'os' has no attribute 'fork'``); a module outside the
standard library fails to import (``ModuleNotFoundError``). Nothing answers with a
placeholder.
"""

from __future__ import annotations

import importlib
import posixpath
import shlex
from collections import namedtuple
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from agents.shell.fs import address
from agents.shell.python.values import (
    PY_MODULES,
    Environ,
    Name,
    PyError,
    PyExit,
    ReadFile,
    Sock,
)
from agents.shell.syntax import ShellSyntaxError
from agents.shell.tools.net import http, parse_url
from agents.shell.util import when
from sim.machine import USER
from sim.world import Host

if TYPE_CHECKING:
    from agents.shell.python.interp import Py

__all__ = ["CALLS", "CONSTANTS", "PURE", "attribute", "modelled", "run_sync"]

#: Modules whose real functions run as they are: they touch nothing outside the program.
PURE = frozenset({
    "json", "math", "re", "collections", "string", "textwrap", "itertools", "functools",
    "hashlib", "base64", "operator", "statistics", "shlex", "fnmatch", "difflib", "heapq",
    "bisect", "copy", "pprint", "struct", "binascii", "decimal", "fractions", "errno",
    "stat", "html", "zlib", "urllib.parse", "dataclasses", "enum", "typing", "abc",
})  # fmt: skip

Call = Callable[["Py", list[Any], dict[str, Any]], Any]
#: Functions answered from the virtual host, by dotted name.
CALLS: dict[str, Call] = {}

DiskUsage = namedtuple("DiskUsage", ["total", "used", "free"])
DiskUsage.__name__ = "usage"


def modelled(*names: str) -> Callable[[Call], Call]:
    """Register a function of the virtual host under dotted ``names``."""

    def register(fn: Call) -> Call:
        for name in names:
            CALLS[name] = fn
        return fn

    return register


#: Values, by dotted name: functions of the running program.
CONSTANTS: dict[str, Callable[[Py], Any]] = {
    "socket.AF_INET": lambda py: 2,
    "socket.AF_INET6": lambda py: 10,
    "socket.SOCK_STREAM": lambda py: 1,
    "socket.SOCK_DGRAM": lambda py: 2,
    "socket.SOL_SOCKET": lambda py: 1,
    "socket.SO_REUSEADDR": lambda py: 2,
    "socket.error": lambda py: Name("OSError"),
    "socket.timeout": lambda py: Name("TimeoutError"),
    "socket.gaierror": lambda py: Name("socket.gaierror"),
    "sys.argv": lambda py: py.argv,
    "sys.version": lambda py: "3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]",
    "sys.version_info": lambda py: (3, 11, 2, "final", 0),
    "sys.platform": lambda py: "linux",
    "sys.executable": lambda py: "/usr/bin/python3",
    "sys.path": lambda py: ["", "/usr/lib/python311.zip", "/usr/lib/python3.11"],
    "sys.stdout": lambda py: Name("sys.stdout"),
    "sys.stderr": lambda py: Name("sys.stderr"),
    "sys.stdin": lambda py: py.stdin,
    "os.environ": lambda py: py.environ,
    "os.sep": lambda py: "/",
    "os.linesep": lambda py: "\n",
    "os.pathsep": lambda py: ":",
    "os.name": lambda py: "posix",
    "os.curdir": lambda py: ".",
    "os.devnull": lambda py: "/dev/null",
    "signal.SIGTERM": lambda py: 15,
    "signal.SIGINT": lambda py: 2,
    "signal.SIGHUP": lambda py: 1,
    "signal.SIGKILL": lambda py: 9,
    "signal.SIG_IGN": lambda py: 1,
    "signal.SIG_DFL": lambda py: 0,
    "subprocess.PIPE": lambda py: -1,
    "subprocess.STDOUT": lambda py: -2,
    "subprocess.DEVNULL": lambda py: -3,
    "subprocess.CalledProcessError": lambda py: Name("CalledProcessError"),
    "urllib.error.URLError": lambda py: Name("URLError"),
    "urllib.error.HTTPError": lambda py: Name("HTTPError"),
    "json.JSONDecodeError": lambda py: Name("JSONDecodeError"),
}


def attribute(py: Py, name: str) -> Any:
    """The value of a dotted name in a module (``os.path.join``, ``math.pi``).

    Raises:
        PyError: AttributeError, for a name the module does not have (or that is not
            modelled).
    """
    if name in CONSTANTS:
        return CONSTANTS[name](py)
    if name in CALLS or name in PY_MODULES or name in _SUBMODULES:
        return Name(name)
    module, _, attr = name.rpartition(".")
    if module in PURE or module.split(".")[0] in PURE - {"urllib"}:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            pass
    raise PyError("AttributeError", f"module '{module}' has no attribute '{attr}'")


_SUBMODULES = frozenset({"os.path", "urllib.request", "urllib.error", "urllib.parse",
                         "http.client", "http.server", "json.decoder"})  # fmt: skip


def call(py: Py, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call a modelled function by its dotted name."""
    fn = CALLS.get(name)
    if fn is None:
        module, _, attr = name.rpartition(".")
        if not module:
            raise PyError("TypeError", f"'module' object is not callable: {name}")
        raise PyError("AttributeError", f"module '{module}' has no attribute '{attr}'")
    return fn(py, args, kwargs)


# ------------------------------------------------------------------------------ os
def _path(py: Py, args: list[Any]) -> str:
    if not args:
        raise PyError("TypeError", "missing required argument: 'path'")
    return py.shell.abspath(str(args[0]))


def _missing(value: Any) -> PyError:
    return PyError("FileNotFoundError", f"[Errno 2] No such file or directory: '{value}'", 2)


@modelled("os.getcwd")
def _getcwd(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return py.shell.cwd


@modelled("os.getpid")
def _getpid(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return py.shell.pid + 1


@modelled("os.getuid", "os.geteuid")
def _getuid(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return py.shell.world.machine(py.shell.host).uid


@modelled("os.cpu_count", "multiprocessing.cpu_count")
def _cpu_count(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return max(1, int(min(py.shell.host.cpu, 1e6)))


@modelled("os.listdir")
def _listdir(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    path = py.shell.abspath(str(args[0]) if args else ".")
    fs = py.shell.fs()
    kind = fs.kind(path)
    if kind is None:
        raise _missing(args[0] if args else ".")
    if kind != "dir":
        raise PyError("NotADirectoryError", f"[Errno 20] Not a directory: '{args[0]}'", 20)
    return fs.read_order(path, fs.listdir(path))


def _kind_check(which: str) -> Call:
    def check(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
        fs = py.shell.fs()
        kind = fs.kind(_path(py, args))
        if which == "exists":
            return kind is not None
        if which == "isdir":
            return kind == "dir"
        if which == "isfile":
            return kind == "file"
        if kind is None:
            raise _missing(args[0])
        return int(fs.stat(_path(py, args))[1])

    return check


for _check in ("exists", "isdir", "isfile", "getsize"):
    CALLS[f"os.path.{_check}"] = _kind_check(_check)


def _pure_path(fn: Callable[..., Any]) -> Call:
    def pure(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            return fn(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise PyError.of(error) from None

    return pure


for _name in ("join", "dirname", "basename", "splitext", "split", "isabs", "normpath"):
    CALLS[f"os.path.{_name}"] = _pure_path(getattr(posixpath, _name))


@modelled("os.path.abspath", "os.path.realpath")
def _abspath(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _path(py, args)


@modelled("os.path.expanduser")
def _expanduser(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    text = str(args[0])
    home = py.environ.get("HOME", "/")
    return home + text[1:] if text == "~" or text.startswith("~/") else text


@modelled("os.getenv")
def _getenv(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return py.environ.get(str(args[0]), args[1] if len(args) > 1 else kwargs.get("default"))


@modelled("os.makedirs", "os.mkdir")
def _makedirs(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    flags = "-p " if kwargs.get("exist_ok") else ""
    status, _, err = run_sync(py, f"mkdir {flags}{shlex.quote(str(args[0]))}")
    if status:
        if "File exists" in err:
            raise PyError("FileExistsError", f"[Errno 17] File exists: '{args[0]}'", 17)
        if "Permission denied" in err:
            raise PyError("PermissionError", f"[Errno 13] Permission denied: '{args[0]}'", 13)
        raise _missing(args[0])
    return None


@modelled("os.remove", "os.unlink")
def _remove(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    status, _, err = run_sync(py, f"rm -- {shlex.quote(str(args[0]))}")
    if status:
        if "Permission denied" in err:
            raise PyError("PermissionError", f"[Errno 13] Permission denied: '{args[0]}'", 13)
        if "Is a directory" in err:
            raise PyError("IsADirectoryError", f"[Errno 21] Is a directory: '{args[0]}'", 21)
        raise _missing(args[0])
    return None


@modelled("os.system")
def _system(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    status, out, err = run_sync(py, str(args[0]))
    py.io.out.write(out)
    py.io.err.write(err)
    return status << 8


@modelled("os.walk")
def _walk(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    fs = py.shell.fs()
    top = str(args[0]) if args else "."
    found = []
    for path in fs.walk(py.shell.abspath(top), disk_order=True):
        if fs.kind(path) != "dir":
            continue
        names = fs.read_order(path, fs.listdir(path))
        dirs = [n for n in names if fs.kind(posixpath.join(path, n)) == "dir"]
        files = [n for n in names if n not in dirs]
        shown = (
            top.rstrip("/") + path[len(py.shell.abspath(top)) :]
            if top != "."
            else "." + (path[len(py.shell.cwd) :] if path != py.shell.cwd else "")
        )
        found.append((shown, dirs, files))
    return found


# --------------------------------------------------------------------- processes
def run_sync(py: Py, command: str, stdin: str = "") -> tuple[int, str, str]:
    """Run a command line from Python (``subprocess``, ``os.system``): in a new bash
    process of the virtual shell, at once, its time added to the program's.

    Raises:
        PyError: the command needs the world to act (a bundle copy, a server start);
            Python's wait for it is not modelled.
    """
    shell = py.shell.process()
    shell.frozen = [py.slept]
    try:
        done = shell.run_now(command, stdin)
    except ShellSyntaxError as error:
        return 2, "", f"/bin/sh: 1: {error}\n"
    if done is None:
        raise PyError("BlockingIOError", "[Errno 11] Resource temporarily unavailable", 11)
    py.slept = shell.frozen[0]
    return done


def _argv(args: list[Any], kwargs: dict[str, Any]) -> str:
    cmd = args[0] if args else kwargs.get("args", "")
    if isinstance(cmd, list | tuple):
        return shlex.join(str(a) for a in cmd)
    return str(cmd)


def _subprocess_call(which: str) -> Call:
    def run(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
        command = _argv(args, kwargs)
        if not kwargs.get("shell") and isinstance(args[0] if args else None, str):
            command = shlex.quote(command) if " " in command else command
        status, out, err = run_sync(py, command, str(kwargs.get("input") or ""))
        text = bool(kwargs.get("text") or kwargs.get("universal_newlines"))
        capture = which == "check_output" or kwargs.get("capture_output")
        if kwargs.get("stdout") == -1:
            capture = True
        if not capture:
            py.io.out.write(out)
        if which == "check_output" or kwargs.get("capture_output") or kwargs.get("stderr") == -1:
            pass
        else:
            py.io.err.write(err)
        if status == 127 and not kwargs.get("shell") and "command not found" in err:
            program = shlex.split(command)[0] if command else ""
            raise PyError(
                "FileNotFoundError", f"[Errno 2] No such file or directory: '{program}'", 2
            )
        check = which in ("check_call", "check_output") or kwargs.get("check")
        if check and status:
            raise PyError(
                "CalledProcessError",
                f"Command '{command}' returned non-zero exit status {status}.",
            )
        stdout: Any = out if text else out.encode()
        stderr: Any = err if text else err.encode()
        if which == "check_output":
            return stdout
        if which in ("call", "check_call"):
            return status
        return SimpleNamespace(
            args=args[0] if args else command,
            returncode=status,
            stdout=stdout if capture else None,
            stderr=stderr if kwargs.get("capture_output") or kwargs.get("stderr") == -1 else None,
        )

    return run


for _kind in ("run", "call", "check_call", "check_output"):
    CALLS[f"subprocess.{_kind}"] = _subprocess_call(_kind)


@modelled("os.popen")
def _popen(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    _, out, err = run_sync(py, str(args[0]))
    py.io.err.write(err)
    return ReadFile(out, str(args[0]))


@modelled("sys.exit")
def _exit(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    code = args[0] if args else 0
    if isinstance(code, str):
        py.io.err.write(code + "\n")
        raise PyExit(1)
    raise PyExit(int(code or 0))


@modelled("time.sleep")
def _sleep(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    py.slept += float(args[0]) if args else 0.0
    return None


@modelled("time.time", "time.monotonic", "time.perf_counter")
def _time(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return when(py.shell.world.env.now + py.slept).timestamp()


@modelled("signal.signal")
def _signal(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return 0


@modelled("platform.system")
def _system_name(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return "Linux"


@modelled("platform.machine")
def _machine(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return "x86_64"


@modelled("platform.node", "socket.gethostname")
def _node(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return py.shell.host.name


@modelled("platform.python_version")
def _python_version(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return "3.11.2"


@modelled("getpass.getuser", "os.getlogin")
def _getuser(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return USER


@modelled("shutil.disk_usage")
def _disk_usage(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    from agents.shell.tools.system import mounts

    path = _path(py, args)
    if py.shell.fs().kind(path) is None:
        raise _missing(args[0])
    best = max(
        (m for m in mounts(py.shell) if path == m[1] or path.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
    )
    total, used = int(best[2]), int(best[3])
    return DiskUsage(total, used, total - used)


@modelled("shutil.which")
def _which(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    name = str(args[0])
    return f"/usr/bin/{name}" if py.shell.fs().tool_here(name) else None


# ------------------------------------------------------------------------- network
def address_of(py: Py, args: list[Any]) -> tuple[Host | None, int]:
    if not args or not isinstance(args[0], tuple) or len(args[0]) != 2:
        raise PyError("TypeError", "AF_INET address must be a pair (host, port)")
    host, port = args[0]
    if not isinstance(port, int):
        raise PyError("TypeError", "'str' object cannot be interpreted as an integer")
    if host in ("", "0.0.0.0"):
        return py.shell.host, port
    return py.shell.resolve(str(host)), port


def listening(py: Py, host: Host | None, port: int) -> bool:
    if host is None:
        raise PyError("socket.gaierror", "[Errno -2] Name or service not known", -2)
    shell = py.shell
    if port == 22 and host.servers.get(22) is None:
        from agents.shell.processes import has_sshd

        return shell.reachable(host) and has_sshd(shell, host)
    return shell.reachable(host) and shell.world.probe(shell.replica, host, port)


@modelled("socket.socket")
def _socket(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return Sock()


@modelled("socket.create_connection")
def _create_connection(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    target, port = address_of(py, args)
    if not listening(py, target, port):
        raise PyError("ConnectionRefusedError", "[Errno 111] Connection refused", 111)
    return Sock()


@modelled("socket.gethostbyname")
def _gethostbyname(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    target = py.shell.resolve(str(args[0])) if args else None
    if target is None:
        raise PyError("socket.gaierror", "[Errno -2] Name or service not known", -2)
    return "127.0.0.1" if target is py.shell.host else address(target)


def socket_method(py: Py, sock: Sock, name: str, args: list[Any]) -> Any:
    """A method of a socket of the modelled network."""
    if name == "bind":
        host, port = address_of(py, args)
        servers = py.shell.host.servers
        if port == 0:
            port = 40000
            while port in servers or port in py.bound:
                port += 1
        elif port in servers or port in py.bound:
            raise PyError("OSError", "[Errno 98] Address already in use", 98)
        elif port < 1024:
            raise PyError("PermissionError", "[Errno 13] Permission denied", 13)
        sock.port = port
        py.bound.add(port)
        return None
    if name == "connect_ex":
        host, port = address_of(py, args)
        return 0 if listening(py, host, port) else 111
    if name == "connect":
        host, port = address_of(py, args)
        if not listening(py, host, port):
            raise PyError("ConnectionRefusedError", "[Errno 111] Connection refused", 111)
        return None
    if name == "getsockname":
        return ("0.0.0.0", sock.port or 0)
    if name == "close" and sock.port is not None:
        py.bound.discard(sock.port)
    if name in ("__enter__",):
        return sock
    if name in ("setsockopt", "settimeout", "close", "listen", "setblocking", "__exit__"):
        return None
    raise PyError("AttributeError", f"'socket' object has no attribute '{name}'")


class Response:
    """What ``urllib.request.urlopen`` returns."""

    def __init__(self, status: int, body: str, url: str) -> None:
        self.status = status
        self.code = status
        self.url = url
        self._body = body.encode()

    def read(self, *args: Any) -> bytes:
        body, self._body = self._body, b""
        return body

    def getcode(self) -> int:
        return self.status

    def close(self) -> None:
        pass


@modelled("urllib.request.urlopen")
def _urlopen(py: Py, args: list[Any], kwargs: dict[str, Any]) -> Any:
    shell = py.shell
    url = str(args[0]) if args else ""
    name, port, path = parse_url(shell, url)
    target = shell.resolve(name)
    if target is None:
        raise PyError("URLError", "<urlopen error [Errno -2] Name or service not known>")
    data = args[1] if len(args) > 1 else kwargs.get("data")
    answer = http(shell, target, port, "POST" if data else "GET", path, "")
    if not shell.reachable(target) or answer is None:
        raise PyError("URLError", "<urlopen error [Errno 111] Connection refused>")
    code, body = answer
    if code >= 400:
        reason = {404: "Not Found", 501: "Not Implemented"}.get(code, "Error")
        raise PyError("HTTPError", f"HTTP Error {code}: {reason}")
    return Response(code, body, url)


def environ(py: Py) -> Environ:
    """``os.environ``: the exported variables of the shell that started the program."""
    return Environ(py.shell.exported_env())
