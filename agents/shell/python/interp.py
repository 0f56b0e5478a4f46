"""The Python subset: a tree-walking interpreter of the Python agents write."""

from __future__ import annotations

import ast
import json
import posixpath
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, MAX_LOOP
from agents.shell.fs import address
from agents.shell.python.values import (
    OS_FAMILY,
    PY_BUILTINS,
    PY_EXCEPTIONS,
    PY_MODULES,
    Fn,
    Method,
    Name,
    Opaque,
    PyBreak,
    PyContinue,
    PyError,
    PyExit,
    PyReturn,
    Sock,
)
from agents.shell.tools.net import http, parse_url
from agents.shell.tools.system import gpus
from agents.shell.util import finite, when
from sim.world import Host

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


class Py:
    """Runs the Python agents write to look around (port checks, sizes, GPU checks).

    A tree-walking interpreter over a safe subset: statements and expressions of plain
    values, with sockets, ``os``, ``shutil``, ``psutil``, ``torch.cuda``, ``time.sleep``
    and ``requests`` answered from the virtual host. Other calls return an opaque value.
    """

    def __init__(self, shell: VirtualShell, io: IO, argv: list[str], filename: str) -> None:
        self.shell = shell
        self.io = io
        self.argv = argv
        self.filename = filename
        self.names: dict[str, Any] = {"__name__": "__main__"}
        self.slept = 0.0
        self.steps = 0
        self.line = 1
        self.bound: set[int] = set()

    def run(self, code: str) -> int:
        try:
            tree = ast.parse(code, filename=self.filename)
        except SyntaxError as error:
            self.io.err.write(
                f'  File "{self.filename}", line {error.lineno}\n'
                f"    {(error.text or '').strip()}\n    ^\n"
                f"SyntaxError: {error.msg}\n"
            )
            return 1
        try:
            self.block(tree.body)
        except PyExit as done:
            return done.code
        except PyError as error:
            self.io.err.write(
                "Traceback (most recent call last):\n"
                f'  File "{self.filename}", line {self.line}, in <module>\n'
                f"{error.kind}: {error.message}\n"
            )
            return 1
        except (PyBreak, PyContinue, PyReturn):
            pass
        return 0

    # ------------------------------------------------------------- statements
    def block(self, body: list[ast.stmt]) -> None:
        for node in body:
            self.stmt(node)

    def stmt(self, node: ast.stmt) -> None:
        self.steps += 1
        if self.steps > 200_000:
            raise PyError("KeyboardInterrupt", "")
        self.line = getattr(node, "lineno", self.line)
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.importing(alias.name)
                if alias.asname:
                    self.names[alias.asname] = Name(alias.name)
                else:
                    top = alias.name.split(".")[0]
                    self.names[top] = Name(top)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            self.importing(module)
            for alias in node.names:
                self.names[alias.asname or alias.name] = Name(f"{module}.{alias.name}")
        elif isinstance(node, ast.Expr):
            self.eval(node.value)
        elif isinstance(node, ast.Assign):
            value = self.eval(node.value)
            for target in node.targets:
                self.assign(target, value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self.assign(node.target, self.eval(node.value))
        elif isinstance(node, ast.AugAssign):
            current = self.eval(node.target)
            self.assign(node.target, self.binop(node.op, current, self.eval(node.value)))
        elif isinstance(node, ast.If):
            self.block(node.body if self.eval(node.test) else node.orelse)
        elif isinstance(node, ast.For):
            broke = False
            for item in list(self.iterate(self.eval(node.iter)))[:MAX_LOOP]:
                self.assign(node.target, item)
                try:
                    self.block(node.body)
                except PyBreak:
                    broke = True
                    break
                except PyContinue:
                    continue
            if not broke:
                self.block(node.orelse)
        elif isinstance(node, ast.While):
            for _ in range(MAX_LOOP):
                if not self.eval(node.test):
                    break
                try:
                    self.block(node.body)
                except PyBreak:
                    break
                except PyContinue:
                    continue
        elif isinstance(node, ast.Try):
            self.try_(node)
        elif isinstance(node, ast.With):
            opened = []
            for item in node.items:
                value = self.eval(item.context_expr)
                opened.append(value)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, value)
            self.block(node.body)
            for value in opened:
                if isinstance(value, Sock) and value.port is not None:
                    self.bound.discard(value.port)
        elif isinstance(node, ast.FunctionDef):
            self.names[node.name] = Fn(node)
        elif isinstance(node, ast.Return):
            raise PyReturn(None if node.value is None else self.eval(node.value))
        elif isinstance(node, ast.Break):
            raise PyBreak
        elif isinstance(node, ast.Continue):
            raise PyContinue
        elif isinstance(node, ast.Raise):
            exc = self.eval(node.exc) if node.exc is not None else None
            if isinstance(exc, PyError):
                raise exc
            if isinstance(exc, Name):
                raise PyError(exc.name, "")
            raise PyError("RuntimeError", "No active exception to reraise")

    def try_(self, node: ast.Try) -> None:
        try:
            try:
                self.block(node.body)
            except PyError as error:
                for handler in node.handlers:
                    if self.matches(handler.type, error):
                        if handler.name:
                            self.names[handler.name] = error
                        self.block(handler.body)
                        break
                else:
                    raise
            else:
                self.block(node.orelse)
        finally:
            self.block(node.finalbody)

    def matches(self, node: ast.expr | None, error: PyError) -> bool:
        if node is None:
            return True
        wanted = self.eval(node)
        names = [
            w.name
            for w in (wanted if isinstance(wanted, tuple) else (wanted,))
            if isinstance(w, Name)
        ]
        family = {error.kind, "Exception", "BaseException"}
        if (
            error.kind
            in ("ConnectionRefusedError", "PermissionError", "TimeoutError", "FileNotFoundError")
            or error.kind in OS_FAMILY
        ):
            family |= OS_FAMILY | ({"ConnectionError"} if "Connection" in error.kind else set())
        if error.kind.startswith("requests."):
            family.add("requests.exceptions.RequestException")
        return any(n in family or n.split(".")[-1] in family for n in names)

    def importing(self, module: str) -> None:
        if module.split(".")[0] not in PY_MODULES:
            raise PyError("ModuleNotFoundError", f"No module named '{module.split('.')[0]}'")

    def assign(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.names[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            items = list(self.iterate(value))
            if len(items) != len(target.elts):
                raise PyError("ValueError", "wrong number of values to unpack")
            for sub, item in zip(target.elts, items, strict=True):
                self.assign(sub, item)
        elif isinstance(target, ast.Subscript):
            container = self.eval(target.value)
            try:
                container[self.eval(target.slice)] = value
            except (TypeError, IndexError, KeyError) as error:
                raise PyError(type(error).__name__, str(error)) from None

    def iterate(self, value: Any) -> Iterable[Any]:
        if isinstance(value, list | tuple | range | str | dict | set):
            return value
        raise PyError("TypeError", f"'{type(value).__name__}' object is not iterable")

    # ------------------------------------------------------------ expressions
    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in PY_BUILTINS or node.id in PY_EXCEPTIONS:
                return Name(node.id)
            raise PyError("NameError", f"name '{node.id}' is not defined")
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    spec = self.eval(value.format_spec) if value.format_spec else ""
                    inner = self.eval(value.value)
                    try:
                        parts.append(format(inner, spec) if spec else self.text(inner))
                    except (ValueError, TypeError) as error:
                        raise PyError("ValueError", str(error)) from None
                else:
                    parts.append(str(self.eval(value)))
            return "".join(parts)
        if isinstance(node, ast.BinOp):
            return self.binop(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            if isinstance(node.op, ast.USub):
                return -operand
            return operand
        if isinstance(node, ast.BoolOp):
            result: Any = None
            for value in node.values:
                result = self.eval(value)
                if isinstance(node.op, ast.And) and not result:
                    return result
                if isinstance(node.op, ast.Or) and result:
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.eval(right_node)
                if not self.compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
        if isinstance(node, ast.Tuple):
            return tuple(self.eval(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Set):
            return {self.eval(e) for e in node.elts}
        if isinstance(node, ast.Dict):
            return {
                self.eval(k) if k is not None else None: self.eval(v)
                for k, v in zip(node.keys, node.values, strict=True)
            }
        if isinstance(node, ast.Subscript):
            container, index = self.eval(node.value), self.eval(node.slice)
            try:
                return container[index]
            except IndexError:
                raise PyError("IndexError", "list index out of range") from None
            except KeyError:
                raise PyError("KeyError", repr(index)) from None
            except TypeError as error:
                raise PyError("TypeError", str(error)) from None
        if isinstance(node, ast.Slice):
            return slice(
                *(
                    self.eval(p) if p is not None else None
                    for p in (node.lower, node.upper, node.step)
                )
            )
        if isinstance(node, ast.Attribute):
            obj = self.eval(node.value)
            if isinstance(obj, Name):
                return self.attribute(f"{obj.name}.{node.attr}")
            if isinstance(obj, PyError) and node.attr in ("errno", "strerror", "args"):
                m = re.match(r"\[Errno (\d+)\] (.*)", obj.message)
                if node.attr == "errno":
                    return int(m.group(1)) if m else None
                return m.group(2) if m and node.attr == "strerror" else (obj.message,)
            if isinstance(obj, dict) and node.attr in obj and "__attrs__" in obj:
                return obj[node.attr]
            return Method(obj, node.attr)
        if isinstance(node, ast.Call):
            func = self.eval(node.func)
            args: list[Any] = []
            for arg in node.args:
                if isinstance(arg, ast.Starred):
                    args += list(self.iterate(self.eval(arg.value)))
                else:
                    args.append(self.eval(arg))
            kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
            return self.call(func, args, kwargs)
        if isinstance(node, ast.ListComp | ast.GeneratorExp):
            return self.comprehension(node)
        return Opaque()

    def comprehension(self, node: ast.ListComp | ast.GeneratorExp) -> list[Any]:
        out: list[Any] = []

        def loop(k: int) -> None:
            if k == len(node.generators):
                out.append(self.eval(node.elt))
                return
            gen = node.generators[k]
            for item in list(self.iterate(self.eval(gen.iter)))[:MAX_LOOP]:
                self.assign(gen.target, item)
                if all(self.eval(cond) for cond in gen.ifs):
                    loop(k + 1)

        loop(0)
        return out

    def text(self, value: Any) -> str:
        if isinstance(value, PyError):
            return value.message
        if isinstance(value, Name):
            return f"<module '{value.name}'>"
        return str(value)

    def binop(self, op: ast.operator, a: Any, b: Any) -> Any:
        try:
            if isinstance(op, ast.Add):
                return a + b
            if isinstance(op, ast.Sub):
                return a - b
            if isinstance(op, ast.Mult):
                return a * b
            if isinstance(op, ast.Div):
                return a / b
            if isinstance(op, ast.FloorDiv):
                return a // b
            if isinstance(op, ast.Mod):
                return a % b
            if isinstance(op, ast.Pow):
                return a**b
        except ZeroDivisionError:
            raise PyError("ZeroDivisionError", "division by zero") from None
        except TypeError as error:
            raise PyError("TypeError", str(error)) from None
        return Opaque()

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> bool:
        try:
            if isinstance(op, ast.Eq):
                return bool(a == b)
            if isinstance(op, ast.NotEq):
                return bool(a != b)
            if isinstance(op, ast.Lt):
                return bool(a < b)
            if isinstance(op, ast.LtE):
                return bool(a <= b)
            if isinstance(op, ast.Gt):
                return bool(a > b)
            if isinstance(op, ast.GtE):
                return bool(a >= b)
            if isinstance(op, ast.In):
                return a in b
            if isinstance(op, ast.NotIn):
                return a not in b
            if isinstance(op, ast.Is):
                return a is b
            if isinstance(op, ast.IsNot):
                return a is not b
        except TypeError as error:
            raise PyError("TypeError", str(error)) from None
        return False

    def attribute(self, name: str) -> Any:
        constants = {
            "socket.AF_INET": 2,
            "socket.SOCK_STREAM": 1,
            "socket.SOL_SOCKET": 1,
            "socket.SO_REUSEADDR": 2,
            "sys.argv": list(self.argv),
            "sys.version": "3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]",
            "sys.platform": "linux",
            "sys.stdout": Name("sys.stdout"),
            "sys.stderr": Name("sys.stderr"),
            "os.environ": dict(self.shell.env),
            "os.sep": "/",
            "socket.error": Name("OSError"),
            "socket.timeout": Name("TimeoutError"),
        }
        return constants.get(name, Name(name))

    # ------------------------------------------------------------------ calls
    def call(self, func: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(func, Fn):
            saved = dict(self.names)
            params = [a.arg for a in func.node.args.args]
            defaults = func.node.args.defaults
            for k, name in enumerate(params):
                if k < len(args):
                    self.names[name] = args[k]
                elif name in kwargs:
                    self.names[name] = kwargs[name]
                elif k >= len(params) - len(defaults):
                    self.names[name] = self.eval(defaults[k - (len(params) - len(defaults))])
            try:
                self.block(func.node.body)
                value = None
            except PyReturn as ret:
                value = ret.value
            finally:
                kept = {k: v for k, v in self.names.items() if k not in params}
                self.names = {**saved, **{k: v for k, v in kept.items() if k in saved}}
            return value
        if isinstance(func, Method):
            return self.method(func.obj, func.name, args, kwargs)
        if isinstance(func, Name):
            if func.name in PY_EXCEPTIONS:
                return PyError(func.name, " ".join(self.text(a) for a in args))
            if func.name in PY_BUILTINS:
                return self.builtin(func.name, args, kwargs)
            return self.module_call(func.name, args, kwargs)
        return Opaque()

    def builtin(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name == "print":
            sink = kwargs.get("file")
            out = (
                self.io.err if isinstance(sink, Name) and sink.name == "sys.stderr" else self.io.out
            )
            out.write(
                kwargs.get("sep", " ").join(self.text(a) for a in args) + kwargs.get("end", "\n")
            )
            return None
        if name in ("exit", "quit"):
            raise PyExit(args[0] if args and isinstance(args[0], int) else 0)
        if name == "open":
            return self.open(
                str(args[0]), str(args[1]) if len(args) > 1 else str(kwargs.get("mode", "r"))
            )
        if name == "input":
            return ""
        if name == "isinstance":
            return True
        if name == "type":
            return Name(type(args[0]).__name__)
        table: dict[str, Callable[..., Any]] = {
            "range": range,
            "len": len,
            "str": self.text,
            "int": int,
            "float": float,
            "bool": bool,
            "list": list,
            "tuple": tuple,
            "dict": dict,
            "set": set,
            "sorted": sorted,
            "enumerate": lambda x, s=0: list(enumerate(x, s)),
            "zip": lambda *x: list(zip(*x, strict=False)),
            "min": min,
            "max": max,
            "sum": sum,
            "abs": abs,
            "round": round,
            "repr": repr,
            "any": any,
            "all": all,
            "reversed": lambda x: list(reversed(x)),
            "hex": hex,
            "format": format,
        }
        try:
            return table[name](*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise PyError(type(error).__name__, str(error)) from None

    def open(self, name: str, mode: str) -> Any:
        fs = self.shell.fs()
        path = self.shell.abspath(name)
        if "r" in mode or mode == "":
            if fs.kind(path) != "file":
                raise PyError("FileNotFoundError", f"[Errno 2] No such file or directory: '{name}'")
            return {"__attrs__": True, "content": fs.read(path) or "", "path": path}
        problem = fs.write(path, "", append="a" in mode)
        if problem:
            raise PyError("OSError", f"[Errno 2] {problem}: '{name}'")
        return {"__attrs__": True, "path": path, "mode": "w"}

    def method(self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(obj, Sock):
            return self.socket_method(obj, name, args)
        if isinstance(obj, dict) and "__attrs__" in obj:
            if name in ("read", "readlines"):
                text = obj.get("content", "")
                return text.splitlines(True) if name == "readlines" else text
            if name == "json":
                try:
                    return json.loads(obj.get("text", ""))
                except ValueError as error:
                    raise PyError("requests.exceptions.JSONDecodeError", str(error)) from None
            if name == "write":
                self.shell.fs().write(obj["path"], self.text(args[0]), append=True)
                return len(self.text(args[0]))
            return None
        if isinstance(obj, Name) and obj.name in ("sys.stdout", "sys.stderr"):
            if name == "write":
                (self.io.err if obj.name == "sys.stderr" else self.io.out).write(self.text(args[0]))
            return None
        if isinstance(obj, str | list | dict | tuple | int | float) and not name.startswith("_"):
            target = getattr(obj, name, None)
            if target is None:
                raise PyError(
                    "AttributeError", f"'{type(obj).__name__}' object has no attribute '{name}'"
                )
            try:
                return target(*args, **kwargs)
            except (TypeError, ValueError, KeyError, IndexError) as error:
                raise PyError(type(error).__name__, str(error)) from None
        return Opaque()

    def _address(self, args: list[Any]) -> tuple[Host | None, int]:
        if not args or not isinstance(args[0], tuple) or len(args[0]) != 2:
            raise PyError("TypeError", "AF_INET address must be a pair (host, port)")
        host, port = args[0]
        if not isinstance(port, int):
            raise PyError("TypeError", "'str' object cannot be interpreted as an integer")
        return (
            self.shell.host if host in ("", "0.0.0.0") else self.shell.resolve(str(host)),
            port,
        )

    def _listening(self, host: Host | None, port: int) -> bool:
        if host is None:
            raise PyError("socket.gaierror", "[Errno -2] Name or service not known")
        if port == 22:
            return self.shell.reachable(host)
        return self.shell.reachable(host) and self.shell.world.probe(self.shell.replica, host, port)

    def socket_method(self, sock: Sock, name: str, args: list[Any]) -> Any:
        if name == "bind":
            host, port = self._address(args)
            if port == 0:
                port = 40000
                while port in self.shell.host.servers or port in self.bound:
                    port += 1
            elif port in self.shell.host.servers or port in self.bound or port == 22:
                raise PyError("OSError", "[Errno 98] Address already in use")
            elif port < 1024:
                raise PyError("PermissionError", "[Errno 13] Permission denied")
            sock.port = port
            self.bound.add(port)
            return None
        if name == "connect_ex":
            host, port = self._address(args)
            return 0 if self._listening(host, port) else 111
        if name == "connect":
            host, port = self._address(args)
            if not self._listening(host, port):
                raise PyError("ConnectionRefusedError", "[Errno 111] Connection refused")
            return None
        if name == "getsockname":
            return ("0.0.0.0", sock.port or 0)
        if name == "close" and sock.port is not None:
            self.bound.discard(sock.port)
        if name == "__enter__":
            return sock
        return None

    def module_call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        shell = self.shell
        host = shell.host
        world = shell.world
        if name in ("socket.socket", "socket.socket.__call__"):
            return Sock()
        if name == "socket.create_connection":
            target, port = self._address(args)
            if not self._listening(target, port):
                raise PyError("ConnectionRefusedError", "[Errno 111] Connection refused")
            return Sock()
        if name == "socket.gethostname":
            return host.name
        if name == "socket.gethostbyname":
            target = shell.resolve(str(args[0])) if args else None
            if target is None:
                raise PyError("socket.gaierror", "[Errno -2] Name or service not known")
            return "127.0.0.1" if target is host else address(target)
        if name == "time.sleep":
            self.slept += float(args[0]) if args else 0.0
            return None
        if name == "time.time":
            return when(world.env.now + self.slept).timestamp()
        if name == "sys.exit":
            code = args[0] if args else 0
            if isinstance(code, str):
                self.io.err.write(code + "\n")
                raise PyExit(1)
            raise PyExit(int(code or 0))
        if name == "os.getcwd":
            return shell.cwd
        if name == "os.getpid":
            return shell.pid
        if name == "os.cpu_count":
            return max(1, int(min(host.cpu, 1e6)))
        if name in (
            "os.listdir",
            "os.path.exists",
            "os.path.isdir",
            "os.path.isfile",
            "os.path.getsize",
        ):
            path = shell.abspath(str(args[0]) if args else ".")
            kind = shell.fs().kind(path)
            if name == "os.path.exists":
                return kind is not None
            if name == "os.path.isdir":
                return kind == "dir"
            if name == "os.path.isfile":
                return kind == "file"
            if kind is None:
                raise PyError(
                    "FileNotFoundError", f"[Errno 2] No such file or directory: '{args[0]}'"
                )
            if name == "os.path.getsize":
                return int(shell.fs().stat(path)[1])
            return shell.fs().listdir(path)
        if name == "os.path.join":
            return posixpath.join(*[str(a) for a in args])
        if name == "os.path.dirname":
            return posixpath.dirname(str(args[0]))
        if name == "os.path.basename":
            return posixpath.basename(str(args[0]))
        if name == "os.path.abspath":
            return shell.abspath(str(args[0]))
        if name in ("os.getenv", "os.environ.get"):
            return shell.env.get(str(args[0]), args[1] if len(args) > 1 else None)
        if name in ("shutil.disk_usage", "psutil.disk_usage"):
            total, used = finite(host.disk), max(0.0, host.disk_used)
            return {
                "__attrs__": True,
                "total": int(total),
                "used": int(used),
                "free": int(max(0.0, total - used)),
                "percent": round(100 * used / total, 1) if total else 0.0,
            }
        if name == "psutil.virtual_memory":
            total, used = finite(host.memory), max(0.0, host.memory_used)
            return {
                "__attrs__": True,
                "total": int(total),
                "used": int(used),
                "available": int(total - used),
                "free": int(total - used),
                "percent": round(100 * used / total, 1) if total else 0.0,
            }
        if name == "psutil.cpu_count":
            return max(1, int(min(host.cpu, 1e6)))
        if name == "torch.cuda.is_available":
            return host.gpu_memory > 0
        if name == "torch.cuda.device_count":
            return len(gpus(shell)) if host.gpu_memory > 0 else 0
        if name == "torch.cuda.get_device_name":
            if host.gpu_memory <= 0:
                raise PyError("RuntimeError", "Found no NVIDIA driver on your system.")
            return gpus(shell)[0][0]
        if name == "torch.cuda.mem_get_info":
            if host.gpu_memory <= 0:
                raise PyError("RuntimeError", "Found no NVIDIA driver on your system.")
            card = gpus(shell)[int(args[0]) if args else 0]
            return (int(card[1] - card[2]), int(card[1]))
        if name in ("json.dumps", "json.loads"):
            try:
                return (json.dumps if name == "json.dumps" else json.loads)(*args, **kwargs)
            except (TypeError, ValueError) as error:
                raise PyError("json.decoder.JSONDecodeError", str(error)) from None
        if name in ("requests.get", "requests.post", "urllib.request.urlopen"):
            url = str(args[0]) if args else ""
            target_name, port, path = parse_url(shell, url)
            target = shell.resolve(target_name)
            answer = None
            if target is not None and shell.reachable(target):
                answer = http(
                    shell, target, port, "POST" if name.endswith("post") else "GET", path, ""
                )
            if answer is None:
                if name.startswith("urllib"):
                    raise PyError(
                        "urllib.error.URLError", "<urlopen error [Errno 111] Connection refused>"
                    )
                raise PyError(
                    "requests.exceptions.ConnectionError",
                    f"HTTPConnectionPool(host='{target_name}', port={port}): Max retries "
                    f"exceeded with url: {path} (Caused by NewConnectionError('Failed to "
                    "establish a new connection: [Errno 111] Connection refused'))",
                )
            code, body = answer
            return {
                "__attrs__": True,
                "status_code": code,
                "status": code,
                "text": body,
                "ok": code < 400,
            }
        if name in (
            "subprocess.run",
            "subprocess.check_output",
            "subprocess.Popen",
            "subprocess.call",
            "os.system",
            "os.popen",
        ):
            return 0 if name in ("os.system", "subprocess.call") else Opaque()
        return Opaque()
