"""The Python subset: a tree-walking interpreter of the Python agents write.

Statements (assignments, ``if``/``for``/``while``, ``try``, ``with``, ``def``, ``class``,
``import``, ``raise``, ``assert``…) and expressions over real Python values; the modules
are those of :mod:`agents.shell.python.modules` (answered from the virtual host, or run
as they are when they touch nothing outside the program). What the subset does not model
fails as Python fails, with a traceback and exit 1.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, MAX_LOOP
from agents.shell.python import modules
from agents.shell.python.values import (
    PY_BUILTINS,
    PY_EXCEPTIONS,
    PY_MODULES,
    Fn,
    Method,
    Name,
    PyBreak,
    PyClass,
    PyContinue,
    PyError,
    PyExit,
    PyInstance,
    PyReturn,
    ReadFile,
    Sock,
    WriteFile,
)

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell

__all__ = ["Py"]

MAX_STEPS = 200_000
#: Builtins that are values of their own (types), not calls the subset answers.
_TYPES = {
    t.__name__: t
    for t in (str, int, float, bool, list, tuple, dict, set, frozenset, bytes, object, type)
}
#: Builtins run as they are (they take and give plain values).
_PLAIN = {
    name: getattr(builtins, name)
    for name in (
        "range", "len", "sorted", "min", "max", "sum", "abs", "round", "repr", "any", "all",
        "hex", "format", "chr", "ord", "divmod", "pow", "bin", "oct", "iter", "next", "id",
        "hash", "callable", "isinstance", "enumerate", "zip", "reversed", "map", "filter",
    )
}  # fmt: skip
_LISTED = {"enumerate", "zip", "reversed", "map", "filter"}
#: Attributes of real objects the subset reads besides their public ones.
_DUNDERS = frozenset({"__name__", "__class__", "__doc__", "__dict__"})


class Py:
    """One run of a Python program on the virtual host.

    Args:
        shell: The shell that started it (its host, directory and environment).
        io: Its standard streams.
        argv: ``sys.argv``.
        filename: As tracebacks name it (``<string>``, ``<stdin>``, a path).
    """

    def __init__(self, shell: VirtualShell, io: IO, argv: list[str], filename: str) -> None:
        self.shell = shell
        self.io = io
        self.filename = filename
        self.names: dict[str, Any] = {"__name__": "__main__"}
        self.argv: list[str] = argv
        self.slept = 0.0
        self.steps = 0
        self.line = 1
        self.bound: set[int] = set()
        self.stdin: ReadFile = ReadFile(io.stdin, "<stdin>")
        self.environ: dict[str, str] = modules.environ(self)

    def run(self, code: str) -> int:
        """Run the program; its exit status (a traceback on stderr for an exception)."""
        try:
            tree = ast.parse(code, filename=self.filename)
        except SyntaxError as error:
            text = (error.text or "").rstrip("\n")
            caret = " " * (4 + max(0, (error.offset or 1) - 1 - (len(text) - len(text.lstrip()))))
            self.io.err.write(
                f'  File "{self.filename}", line {error.lineno}\n'
                f"    {text.strip()}\n{caret}^\n"
                f"{type(error).__name__}: {error.msg}\n"
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
                f"{error.kind}: {error.message}\n".replace(": \n", "\n")
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
        if self.steps > MAX_STEPS:
            raise PyError("KeyboardInterrupt", "")
        self.line = getattr(node, "lineno", self.line)
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.importing(alias.name)
                if alias.asname:
                    self.names[alias.asname] = (
                        modules.attribute(self, alias.name)
                        if "." in (alias.name)
                        else Name(alias.name)
                    )
                else:
                    top = alias.name.split(".")[0]
                    self.names[top] = Name(top)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            self.importing(module)
            for alias in node.names:
                if alias.name == "*":
                    continue
                full = f"{module}.{alias.name}"
                value = Name(alias.name) if alias.name in PY_EXCEPTIONS else None
                if value is None:
                    try:
                        value = modules.attribute(self, full)
                    except PyError:
                        raise PyError(
                            "ImportError",
                            f"cannot import name '{alias.name}' from '{module}'",
                        ) from None
                self.names[alias.asname or alias.name] = value
        elif isinstance(node, ast.Expr):
            self.eval(node.value)
        elif isinstance(node, ast.Assign):
            value = self.eval(node.value)
            for target in node.targets:
                self.assign(target, value)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.assign(node.target, self.eval(node.value))
        elif isinstance(node, ast.AugAssign):
            current = self.eval(node.target)
            self.assign(node.target, self.binop(node.op, current, self.eval(node.value)))
        elif isinstance(node, ast.If):
            self.block(node.body if self.truth(self.eval(node.test)) else node.orelse)
        elif isinstance(node, ast.For):
            self.for_(node)
        elif isinstance(node, ast.While):
            self.while_(node)
        elif isinstance(node, ast.Try):
            self.try_(node)
        elif isinstance(node, ast.With):
            opened = []
            for item in node.items:
                value = self.eval(item.context_expr)
                opened.append(value)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, value)
            try:
                self.block(node.body)
            finally:
                for value in opened:
                    if isinstance(value, Sock) and value.port is not None:
                        self.bound.discard(value.port)
        elif isinstance(node, ast.FunctionDef):
            self.names[node.name] = Fn(node, self.call_fn)
        elif isinstance(node, ast.ClassDef):
            self.class_(node)
        elif isinstance(node, ast.Return):
            raise PyReturn(None if node.value is None else self.eval(node.value))
        elif isinstance(node, ast.Break):
            raise PyBreak
        elif isinstance(node, ast.Continue):
            raise PyContinue
        elif isinstance(node, ast.Pass | ast.Global | ast.Nonlocal):
            pass
        elif isinstance(node, ast.Raise):
            self.raise_(node)
        elif isinstance(node, ast.Assert):
            if not self.truth(self.eval(node.test)):
                message = "" if node.msg is None else self.text(self.eval(node.msg))
                raise PyError("AssertionError", message)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.names.pop(target.id, None)
                elif isinstance(target, ast.Subscript):
                    container = self.eval(target.value)
                    try:
                        del container[self.eval(target.slice)]
                    except (KeyError, IndexError, TypeError) as error:
                        raise PyError.of(error) from None
        else:
            raise PyError("SyntaxError", f"{type(node).__name__} is not supported here")

    def for_(self, node: ast.For) -> None:
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

    def while_(self, node: ast.While) -> None:
        for _ in range(MAX_LOOP):
            if not self.truth(self.eval(node.test)):
                self.block(node.orelse)
                break
            try:
                self.block(node.body)
            except PyBreak:
                break
            except PyContinue:
                continue

    def class_(self, node: ast.ClassDef) -> None:
        bases = tuple(b for b in (self.eval(base) for base in node.bases) if isinstance(b, PyClass))
        cls = PyClass(node.name, bases=bases)
        saved = self.names
        self.names = dict(saved)
        try:
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    cls.attributes[item.name] = Fn(item, self.call_fn)
                elif isinstance(item, ast.Assign):
                    value = self.eval(item.value)
                    for target in item.targets:
                        if isinstance(target, ast.Name):
                            cls.attributes[target.id] = value
        finally:
            self.names = saved
        self.names[node.name] = cls

    def raise_(self, node: ast.Raise) -> None:
        if node.exc is None:
            raise PyError("RuntimeError", "No active exception to reraise")
        exc = self.eval(node.exc)
        if isinstance(exc, PyError):
            raise exc
        if isinstance(exc, Name):
            raise PyError(exc.name, "")
        if isinstance(exc, BaseException):
            raise PyError.of(exc)
        raise PyError("TypeError", "exceptions must derive from BaseException")

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
        names = []
        for w in wanted if isinstance(wanted, tuple) else (wanted,):
            if isinstance(w, Name):
                names.append(w.name.rpartition(".")[2])
            elif isinstance(w, type):
                names.append(w.__name__)
        return any(n in error.family for n in names)

    def importing(self, module: str) -> None:
        if module.split(".")[0] not in PY_MODULES:
            raise PyError("ModuleNotFoundError", f"No module named '{module.split('.')[0]}'")

    def assign(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.names[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            items = list(self.iterate(value))
            if len(items) != len(target.elts):
                many = "many" if len(items) > len(target.elts) else "enough"
                raise PyError("ValueError", f"too {many} values to unpack")
            for sub, item in zip(target.elts, items, strict=True):
                self.assign(sub, item)
        elif isinstance(target, ast.Subscript):
            container = self.eval(target.value)
            try:
                container[self.eval(target.slice)] = value
            except (TypeError, IndexError, KeyError) as error:
                raise PyError.of(error) from None
        elif isinstance(target, ast.Attribute):
            obj = self.eval(target.value)
            if isinstance(obj, PyInstance | PyClass):
                obj.attributes[target.attr] = value
            else:
                kind = type(obj).__name__
                raise PyError("AttributeError", f"'{kind}' object attribute is read-only")

    def iterate(self, value: Any) -> Iterable[Any]:
        if isinstance(value, Name | Sock | PyInstance | PyClass | Fn | Method):
            kind = "module" if isinstance(value, Name) else type(value).__name__
            raise PyError("TypeError", f"'{kind}' object is not iterable")
        try:
            return list(iter(value))
        except TypeError as error:
            raise PyError.of(error) from None

    def truth(self, value: Any) -> bool:
        try:
            return bool(value)
        except TypeError as error:
            raise PyError.of(error) from None

    # ------------------------------------------------------------ expressions
    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in _TYPES:
                return _TYPES[node.id]
            if node.id in PY_BUILTINS or node.id in PY_EXCEPTIONS:
                return Name(node.id)
            if node.id in ("None", "True", "False"):
                return {"None": None, "True": True, "False": False}[node.id]
            raise PyError("NameError", f"name '{node.id}' is not defined")
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            try:
                if isinstance(node.op, ast.Not):
                    return not self.truth(operand)
                if isinstance(node.op, ast.USub):
                    return -operand
                if isinstance(node.op, ast.Invert):
                    return ~operand
                return +operand
            except TypeError as error:
                raise PyError.of(error) from None
        if isinstance(node, ast.BoolOp):
            result: Any = None
            for value in node.values:
                result = self.eval(value)
                if isinstance(node.op, ast.And) and not self.truth(result):
                    return result
                if isinstance(node.op, ast.Or) and self.truth(result):
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
            return (
                self.eval(node.body) if self.truth(self.eval(node.test)) else self.eval(node.orelse)
            )
        if isinstance(node, ast.Tuple):
            return tuple(self.starred(node.elts))
        if isinstance(node, ast.List):
            return self.starred(node.elts)
        if isinstance(node, ast.Set):
            return set(self.starred(node.elts))
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    out.update(self.eval(v))
                else:
                    out[self.eval(k)] = self.eval(v)
            return out
        if isinstance(node, ast.Subscript):
            container, index = self.eval(node.value), self.eval(node.slice)
            try:
                return container[index]
            except (IndexError, KeyError, TypeError) as error:
                raise PyError.of(error) from None
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return slice(*(self.eval(p) if p is not None else None for p in parts))
        if isinstance(node, ast.Attribute):
            return self.attribute(self.eval(node.value), node.attr)
        if isinstance(node, ast.Call):
            func = self.eval(node.func)
            args = self.starred(node.args)
            kwargs: dict[str, Any] = {}
            for keyword in node.keywords:
                if keyword.arg is None:
                    kwargs.update(self.eval(keyword.value))
                else:
                    kwargs[keyword.arg] = self.eval(keyword.value)
            return self.call(func, args, kwargs)
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp | ast.DictComp):
            return self.comprehension(node)
        if isinstance(node, ast.Lambda):
            return Fn(node, self.call_fn)
        raise PyError("SyntaxError", f"{type(node).__name__} is not supported here")

    def starred(self, nodes: list[ast.expr]) -> list[Any]:
        out: list[Any] = []
        for item in nodes:
            if isinstance(item, ast.Starred):
                out += list(self.iterate(self.eval(item.value)))
            else:
                out.append(self.eval(item))
        return out

    def fstring(self, node: ast.JoinedStr) -> str:
        parts: list[str] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = self.eval(value.format_spec) if value.format_spec else ""
                inner = self.eval(value.value)
                if value.conversion == ord("r"):
                    inner = self.repr(inner)
                try:
                    parts.append(format(inner, spec) if spec else self.text(inner))
                except (ValueError, TypeError) as error:
                    raise PyError.of(error) from None
            else:
                parts.append(str(self.eval(value)))
        return "".join(parts)

    def comprehension(self, node: Any) -> Any:
        out: list[Any] = []
        saved = dict(self.names)

        def loop(k: int) -> None:
            if k == len(node.generators):
                if isinstance(node, ast.DictComp):
                    out.append((self.eval(node.key), self.eval(node.value)))
                else:
                    out.append(self.eval(node.elt))
                return
            gen = node.generators[k]
            for item in list(self.iterate(self.eval(gen.iter)))[:MAX_LOOP]:
                self.assign(gen.target, item)
                if all(self.truth(self.eval(cond)) for cond in gen.ifs):
                    loop(k + 1)

        try:
            loop(0)
        finally:
            self.names = saved
        if isinstance(node, ast.SetComp):
            return set(out)
        if isinstance(node, ast.DictComp):
            return dict(out)
        return out

    def text(self, value: Any) -> str:
        if isinstance(value, Name):
            return f"<module '{value.name}'>" if value.name in PY_MODULES else value.name
        if isinstance(value, PyInstance):
            method = value.cls.lookup("__str__") or value.cls.lookup("__repr__")
            if isinstance(method, Fn):
                return str(self.call_fn(method.bind(value), [], {}))
            return f"<__main__.{value.cls.name} object at 0x7f3a2c1b9e50>"
        if isinstance(value, PyClass):
            return f"<class '__main__.{value.name}'>"
        return str(value)

    def repr(self, value: Any) -> str:
        if isinstance(value, PyInstance | PyClass | Name):
            return self.text(value)
        return repr(value)

    def binop(self, op: ast.operator, a: Any, b: Any) -> Any:
        operators = {
            ast.Add: lambda: a + b,
            ast.Sub: lambda: a - b,
            ast.Mult: lambda: a * b,
            ast.Div: lambda: a / b,
            ast.FloorDiv: lambda: a // b,
            ast.Mod: lambda: a % b,
            ast.Pow: lambda: a**b,
            ast.BitAnd: lambda: a & b,
            ast.BitOr: lambda: a | b,
            ast.BitXor: lambda: a ^ b,
            ast.LShift: lambda: a << b,
            ast.RShift: lambda: a >> b,
        }
        try:
            return operators[type(op)]()
        except ZeroDivisionError as error:
            raise PyError("ZeroDivisionError", str(error)) from None
        except (TypeError, ValueError, OverflowError) as error:
            raise PyError.of(error) from None

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> bool:
        operators = {
            ast.Eq: lambda: a == b,
            ast.NotEq: lambda: a != b,
            ast.Lt: lambda: a < b,
            ast.LtE: lambda: a <= b,
            ast.Gt: lambda: a > b,
            ast.GtE: lambda: a >= b,
            ast.In: lambda: a in b,
            ast.NotIn: lambda: a not in b,
            ast.Is: lambda: a is b,
            ast.IsNot: lambda: a is not b,
        }
        try:
            return bool(operators[type(op)]())
        except TypeError as error:
            raise PyError.of(error) from None

    def attribute(self, obj: Any, attr: str) -> Any:
        """``obj.attr``: a module's name, an exception's, an instance's, a real value's."""
        if isinstance(obj, Name):
            if obj.name in PY_EXCEPTIONS or obj.name in PY_BUILTINS:
                raise PyError("AttributeError", f"type object '{obj.name}' has no attribute")
            if obj.name in ("sys.stdout", "sys.stderr"):
                return Method(obj, attr)
            return modules.attribute(self, f"{obj.name}.{attr}")
        if isinstance(obj, PyError):
            if attr == "errno":
                return obj.errno
            if attr == "strerror":
                return obj.message.partition("] ")[2].rsplit(":", 1)[0] if obj.errno else None
            if attr == "args":
                return (obj.message,)
            raise PyError("AttributeError", f"'{obj.kind}' object has no attribute '{attr}'")
        if isinstance(obj, Sock):
            return Method(obj, attr)
        if isinstance(obj, PyInstance):
            if attr in obj.attributes:
                return obj.attributes[attr]
            found = obj.cls.lookup(attr)
            if found is None:
                raise PyError(
                    "AttributeError", f"'{obj.cls.name}' object has no attribute '{attr}'"
                )
            return found.bind(obj) if isinstance(found, Fn) else found
        if isinstance(obj, PyClass):
            found = obj.lookup(attr)
            if found is None:
                if attr == "__name__":
                    return obj.name
                raise PyError("AttributeError", f"type object '{obj.name}' has no attribute")
            return found
        if attr.startswith("_") and attr not in _DUNDERS:
            raise PyError("AttributeError", f"'{type(obj).__name__}' object has no attribute")
        try:
            return getattr(obj, attr)
        except AttributeError as error:
            raise PyError.of(error) from None

    # ------------------------------------------------------------------ calls
    def call(self, func: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(func, Fn):
            return func(*args, **kwargs)
        if isinstance(func, Method):
            return self.method(func.obj, func.name, args, kwargs)
        if isinstance(func, PyClass):
            instance = PyInstance(func)
            init = func.lookup("__init__")
            if isinstance(init, Fn):
                init.bind(instance)(*args, **kwargs)
            return instance
        if isinstance(func, Name):
            name = func.name
            if name in PY_EXCEPTIONS:
                return PyError(name, " ".join(self.text(a) for a in args))
            if name in PY_BUILTINS:
                return self.builtin(name, args, kwargs)
            return modules.call(self, name, args, kwargs)
        if callable(func):
            try:
                return func(*args, **kwargs)
            except PyError:
                raise
            except PyExit:
                raise
            except Exception as error:  # a real function of a pure module failed
                raise PyError.of(error) from None
        raise PyError("TypeError", f"'{type(func).__name__}' object is not callable")

    def call_fn(self, fn: Fn, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call a function of the program: its parameters bound, its own names."""
        node = fn.node
        saved = self.names
        self.names = dict(saved)
        params = [a.arg for a in node.args.args]
        defaults = node.args.defaults
        try:
            for k, name in enumerate(params):
                if k < len(args):
                    self.names[name] = args[k]
                elif name in kwargs:
                    self.names[name] = kwargs[name]
                elif k >= len(params) - len(defaults):
                    self.names[name] = self.eval(defaults[k - (len(params) - len(defaults))])
                else:
                    raise PyError("TypeError", f"missing required positional argument: '{name}'")
            if node.args.vararg is not None:
                self.names[node.args.vararg.arg] = tuple(args[len(params) :])
            if isinstance(node, ast.Lambda):
                return self.eval(node.body)
            try:
                self.block(node.body)
            except PyReturn as ret:
                return ret.value
            return None
        finally:
            self.names = saved

    def builtin(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name == "print":
            sink = kwargs.get("file")
            out = self.io.err if isinstance(sink, Name) and sink.name == "sys.stderr" else None
            text = str(kwargs.get("sep", " ")).join(self.text(a) for a in args)
            text += str(kwargs.get("end", "\n"))
            if isinstance(sink, WriteFile):
                sink.write(text)
            else:
                (out or self.io.out).write(text)
            return None
        if name in ("exit", "quit"):
            raise PyExit(args[0] if args and isinstance(args[0], int) else 0)
        if name == "open":
            mode = str(args[1]) if len(args) > 1 else str(kwargs.get("mode", "r"))
            return self.open(str(args[0]) if args else "", mode)
        if name == "input":
            line = self.stdin.readline()
            if not line:
                raise PyError("EOFError", "EOF when reading a line")
            return line.rstrip("\n")
        if name == "type":
            if isinstance(args[0], PyInstance):
                return args[0].cls
            return type(args[0])
        if name in ("hasattr", "getattr"):
            try:
                value = self.attribute(args[0], str(args[1]))
            except PyError:
                if name == "hasattr":
                    return False
                if len(args) > 2:
                    return args[2]
                raise
            return True if name == "hasattr" else value
        if name in ("isinstance",) and any(isinstance(a, PyClass) for a in args[1:]):
            return isinstance(args[0], PyInstance) and args[0].cls is args[1]
        if name in ("dir", "vars"):
            return sorted(self.names) if not args else []
        fn = _PLAIN.get(name)
        if fn is None:
            raise PyError("NameError", f"name '{name}' is not defined")
        try:
            value = fn(*args, **kwargs)
        except (TypeError, ValueError, StopIteration) as error:
            raise PyError.of(error) from None
        return list(value) if name in _LISTED else value

    def open(self, name: str, mode: str) -> Any:
        fs = self.shell.fs()
        path = self.shell.abspath(name)
        if "r" in mode or not mode.strip("bt"):
            kind = fs.kind(path)
            if kind is None:
                raise PyError(
                    "FileNotFoundError", f"[Errno 2] No such file or directory: '{name}'", 2
                )
            if kind == "dir":
                raise PyError("IsADirectoryError", f"[Errno 21] Is a directory: '{name}'", 21)
            return ReadFile(fs.read(path) or "", name)
        problem = fs.write(path, "", append="a" in mode)
        if problem:
            errno = {"No such file or directory": 2, "Permission denied": 13}.get(problem, 5)
            kind = {2: "FileNotFoundError", 13: "PermissionError"}.get(errno, "OSError")
            raise PyError(kind, f"[Errno {errno}] {problem}: '{name}'", errno)

        def sink(text: str) -> None:
            fs.write(path, text, append=True)

        return WriteFile(name, sink)

    def method(self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(obj, Sock):
            return modules.socket_method(self, obj, name, args)
        if isinstance(obj, Name) and obj.name in ("sys.stdout", "sys.stderr"):
            if name == "write":
                text = self.text(args[0]) if args else ""
                (self.io.err if obj.name == "sys.stderr" else self.io.out).write(text)
                return len(text)
            if name in ("flush", "close"):
                return None
        raise PyError("AttributeError", f"object has no attribute '{name}'")
