"""``awk`` (the machine's is ``mawk``): a small interpreter of the awk language.

Patterns and actions, ``BEGIN``/``END``, fields (``$0``, ``$N``, ``NF``, ``$NF``), the
variables ``NR``, ``NF``, ``FS``, ``OFS``, ``ORS``, ``FILENAME``, arrays, the operators
(arithmetic, comparison, ``~``, ``!~``, ``in``, ``&&``, ``||``, ``?:``, assignment,
``++``/``--``, string concatenation), the statements ``print``, ``printf``, ``if``,
``while``, ``do``, ``for`` (both forms), ``next``, ``exit``, ``break``, ``continue``,
``delete``, and the built-in functions ``length``, ``substr``, ``index``, ``split``,
``sub``, ``gsub``, ``match``, ``sprintf``, ``tolower``, ``toupper``, ``int``, ``sqrt``,
``exp``, ``log``. Not modelled (a syntax error, as awk reports one): ``getline``, output
redirection, user-defined functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, Frame
from agents.shell.registry import Args, Options, tool
from agents.shell.tools.files import read_input
from agents.shell.util import unescape

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell

__all__ = ["AwkError", "awk", "run_awk"]

MAX_STEPS = 1_000_000


class AwkError(Exception):
    """A program awk refuses (a syntax error) or a run-time error."""


class _Next(Exception):
    pass


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ----------------------------------------------------------------------- tokens
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t]+|\\\n|\#[^\n]*)
  | (?P<newline>\n)
  | (?P<number>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\+\+|--|\+=|-=|\*=|/=|%=|\^=|==|!=|<=|>=|&&|\|\||!~|[-+*/%^=<>!~?:,;{}()\[\]$|])
    """,
    re.VERBOSE,
)
_REGEX_BEFORE = frozenset({None, "(", ",", "{", "}", ";", "!", "~", "!~", "&&", "||", "\n",
                           "==", "!=", "<", ">", "<=", ">=", "?", ":", "="})  # fmt: skip
_KEYWORDS = frozenset(
    {"BEGIN", "END", "if", "else", "while", "for", "do", "in", "print", "printf", "next",
     "exit", "break", "continue", "delete", "getline", "function", "return"}
)  # fmt: skip


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    k = 0
    while k < len(text):
        prev = out[-1][1] if out and out[-1][0] in ("op", "newline") else None
        if not out:
            prev = None
        if text[k] == "/" and (
            not out or (out[-1][0] in ("op", "newline") and prev in _REGEX_BEFORE)
        ):
            j = k + 1
            while j < len(text) and text[j] != "/":
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                raise AwkError("runaway regular expression /" + text[k + 1 : k + 10] + " ...")
            out.append(("regex", text[k + 1 : j]))
            k = j + 1
            continue
        m = _TOKEN.match(text, k)
        if m is None:
            raise AwkError(f"syntax error at or near {text[k]}")
        kind = m.lastgroup
        value = m.group(0)
        k = m.end()
        if kind == "space":
            continue
        if kind == "newline":
            out.append(("newline", "\n"))
        elif kind == "number":
            out.append(("number", float(value)))
        elif kind == "string":
            out.append(("string", unescape(value[1:-1].replace('\\"', '"'))[0]))
        elif kind == "name":
            out.append(("keyword" if value in _KEYWORDS else "name", value))
        else:
            out.append(("op", value))
    return out


# ----------------------------------------------------------------------- parser
class _Parser:
    """Recursive descent into tuples: ``("num", 1.0)``, ``("bin", "+", a, b)``…"""

    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.t = tokens
        self.k = 0

    def peek(self, ahead: int = 0) -> tuple[str, Any]:
        k = self.k + ahead
        return self.t[k] if k < len(self.t) else ("eof", None)

    def is_(self, kind: str, value: Any = None) -> bool:
        tok = self.peek()
        return tok[0] == kind and (value is None or tok[1] == value)

    def take(self, kind: str, value: Any = None) -> Any:
        if not self.is_(kind, value):
            tok = self.peek()
            shown = "end of file" if tok[0] == "eof" else tok[1]
            raise AwkError(f"syntax error at or near {shown}")
        tok = self.t[self.k]
        self.k += 1
        return tok[1]

    def newlines(self) -> None:
        while self.is_("newline") or self.is_("op", ";"):
            self.k += 1

    def program(self) -> list[tuple[Any, Any]]:
        items: list[tuple[Any, Any]] = []
        self.newlines()
        while not self.is_("eof"):
            if self.is_("keyword", "BEGIN") or self.is_("keyword", "END"):
                which = self.take("keyword")
                self.newlines()
                items.append((which, self.block()))
            elif self.is_("keyword", "function"):
                raise AwkError("syntax error at or near function")
            else:
                pattern = None if self.is_("op", "{") else self.expr()
                action = self.block() if self.is_("op", "{") else None
                items.append((pattern, action))
            self.newlines()
        return items

    def block(self) -> list[Any]:
        self.take("op", "{")
        body: list[Any] = []
        self.newlines()
        while not self.is_("op", "}"):
            body.append(self.statement())
            self.newlines()
        self.take("op", "}")
        return body

    def simple_end(self) -> None:
        if self.is_("op", ";") or self.is_("newline"):
            self.k += 1
        elif not (self.is_("op", "}") or self.is_("eof")):
            tok = self.peek()
            raise AwkError(f"syntax error at or near {tok[1]}")

    def body(self) -> list[Any]:
        self.newlines()
        if self.is_("op", "{"):
            return self.block()
        return [self.statement()]

    def statement(self) -> Any:
        tok = self.peek()
        if tok == ("op", "{"):
            return ("block", self.block())
        if tok[0] == "keyword":
            word = tok[1]
            if word == "if":
                self.k += 1
                self.take("op", "(")
                cond = self.expr()
                self.take("op", ")")
                then = self.body()
                k = self.k
                self.newlines()
                if self.is_("keyword", "else"):
                    self.k += 1
                    return ("if", cond, then, self.body())
                self.k = k
                return ("if", cond, then, [])
            if word == "while":
                self.k += 1
                self.take("op", "(")
                cond = self.expr()
                self.take("op", ")")
                return ("while", cond, self.body())
            if word == "do":
                self.k += 1
                body = self.body()
                self.newlines()
                self.take("keyword", "while")
                self.take("op", "(")
                cond = self.expr()
                self.take("op", ")")
                return ("do", body, cond)
            if word == "for":
                self.k += 1
                self.take("op", "(")
                if (
                    self.peek()[0] == "name"
                    and self.peek(1) == ("keyword", "in")
                    and self.peek(3) == ("op", ")")
                ):
                    var = self.take("name")
                    self.take("keyword", "in")
                    array = self.take("name")
                    self.take("op", ")")
                    return ("forin", var, array, self.body())
                init = None if self.is_("op", ";") else self.expr()
                self.take("op", ";")
                cond = None if self.is_("op", ";") else self.expr()
                self.take("op", ";")
                step = None if self.is_("op", ")") else self.expr()
                self.take("op", ")")
                return ("for", init, cond, step, self.body())
            if word in ("print", "printf"):
                self.k += 1
                args: list[Any] = []
                if not (self.is_("op", ";") or self.is_("newline") or self.is_("op", "}")):
                    args = self.expr_list(printing=True)
                if self.is_("op", ">") or self.is_("op", "|"):
                    raise AwkError(f"syntax error at or near {self.peek()[1]}")
                self.simple_end()
                return (word, args)
            if word in ("next", "break", "continue"):
                self.k += 1
                self.simple_end()
                return (word,)
            if word == "exit":
                self.k += 1
                code = None
                if not (self.is_("op", ";") or self.is_("newline") or self.is_("op", "}")):
                    code = self.expr()
                self.simple_end()
                return ("exit", code)
            if word == "delete":
                self.k += 1
                target = self.primary()
                self.simple_end()
                return ("delete", target)
            raise AwkError(f"syntax error at or near {word}")
        node = self.expr()
        self.simple_end()
        return ("expr", node)

    def expr_list(self, printing: bool = False) -> list[Any]:
        if printing and self.is_("op", "("):
            # print (a, b): a grouping of the whole list
            k = self.k
            try:
                self.k += 1
                items = [self.expr()]
                while self.is_("op", ","):
                    self.k += 1
                    items.append(self.expr())
                self.take("op", ")")
                if (
                    self.is_("op", ";")
                    or self.is_("newline")
                    or self.is_("op", "}")
                    or self.is_("eof")
                ):
                    return items
            except AwkError:
                pass
            self.k = k
        items = [self.expr(no_gt=printing)]
        while self.is_("op", ","):
            self.k += 1
            self.newlines()
            items.append(self.expr(no_gt=printing))
        return items

    # ---------------------------------------------------------- expressions
    def expr(self, no_gt: bool = False) -> Any:
        return self.ternary(no_gt)

    def ternary(self, no_gt: bool) -> Any:
        cond = self.or_(no_gt)
        if self.is_("op", "?"):
            self.k += 1
            a = self.ternary(no_gt)
            self.take("op", ":")
            b = self.ternary(no_gt)
            return ("cond", cond, a, b)
        assigning = self.is_("op") and self.peek()[1] in ("=", "+=", "-=", "*=", "/=", "%=", "^=")
        if assigning and cond[0] in ("var", "field", "index"):
            op = self.take("op")
            value = self.ternary(no_gt)
            return ("assign", op, cond, value)
        return cond

    def or_(self, no_gt: bool) -> Any:
        node = self.and_(no_gt)
        while self.is_("op", "||"):
            self.k += 1
            self.newlines()
            node = ("or", node, self.and_(no_gt))
        return node

    def and_(self, no_gt: bool) -> Any:
        node = self.in_(no_gt)
        while self.is_("op", "&&"):
            self.k += 1
            self.newlines()
            node = ("and", node, self.in_(no_gt))
        return node

    def in_(self, no_gt: bool) -> Any:
        node = self.match(no_gt)
        while self.is_("keyword", "in"):
            self.k += 1
            node = ("in", node, self.take("name"))
        return node

    def match(self, no_gt: bool) -> Any:
        node = self.compare(no_gt)
        while self.is_("op", "~") or self.is_("op", "!~"):
            op = self.take("op")
            node = ("match", op, node, self.compare(no_gt))
        return node

    def compare(self, no_gt: bool) -> Any:
        node = self.concat(no_gt)
        ops = ("<", "<=", "!=", "==", ">=") if no_gt else ("<", "<=", "!=", "==", ">", ">=")
        if self.is_("op") and self.peek()[1] in ops:
            op = self.take("op")
            node = ("cmp", op, node, self.concat(no_gt))
        return node

    def concat(self, no_gt: bool) -> Any:
        node = self.additive()
        while self._starts_operand():
            node = ("concat", node, self.additive())
        return node

    def _starts_operand(self) -> bool:
        kind, value = self.peek()
        if kind in ("number", "string", "name", "regex"):
            return True
        if kind == "keyword":
            return False
        return kind == "op" and value in ("$", "(", "!", "++", "--")

    def additive(self) -> Any:
        node = self.multiplicative()
        while self.is_("op") and self.peek()[1] in ("+", "-"):
            op = self.take("op")
            node = ("bin", op, node, self.multiplicative())
        return node

    def multiplicative(self) -> Any:
        node = self.unary()
        while self.is_("op") and self.peek()[1] in ("*", "/", "%"):
            op = self.take("op")
            node = ("bin", op, node, self.unary())
        return node

    def unary(self) -> Any:
        if self.is_("op", "!"):
            self.k += 1
            return ("not", self.unary())
        if self.is_("op", "-"):
            self.k += 1
            return ("neg", self.unary())
        if self.is_("op", "+"):
            self.k += 1
            return ("num_of", self.unary())
        return self.power()

    def power(self) -> Any:
        node = self.postfix()
        if self.is_("op", "^"):
            self.k += 1
            return ("bin", "^", node, self.unary())
        return node

    def postfix(self) -> Any:
        if self.is_("op", "++") or self.is_("op", "--"):
            op = self.take("op")
            return ("pre", op, self.postfix())
        node = self.primary()
        if (self.is_("op", "++") or self.is_("op", "--")) and node[0] in ("var", "field", "index"):
            op = self.take("op")
            return ("post", op, node)
        return node

    def primary(self) -> Any:
        kind, value = self.peek()
        if kind == "number":
            self.k += 1
            return ("num", value)
        if kind == "string":
            self.k += 1
            return ("str", value)
        if kind == "regex":
            self.k += 1
            return ("regex", value)
        if kind == "op" and value == "$":
            self.k += 1
            return ("field", self.postfix_primary())
        if kind == "op" and value == "(":
            self.k += 1
            node = self.expr()
            self.take("op", ")")
            return ("group", node)
        if kind == "name":
            self.k += 1
            if self.is_("op", "(") and value in _FUNCTIONS:
                self.k += 1
                args: list[Any] = []
                if not self.is_("op", ")"):
                    args = self.expr_list()
                self.take("op", ")")
                return ("call", value, args)
            if value in _FUNCTIONS and value == "length":
                return ("call", "length", [])
            if self.is_("op", "["):
                self.k += 1
                keys = self.expr_list()
                self.take("op", "]")
                return ("index", value, keys)
            return ("var", value)
        if kind == "keyword" and value == "getline":
            raise AwkError("syntax error at or near getline")
        shown = "end of file" if kind == "eof" else value
        raise AwkError(f"syntax error at or near {shown}")

    def postfix_primary(self) -> Any:
        if self.is_("op", "++") or self.is_("op", "--") or self.is_("op", "-"):
            return self.unary()
        return self.primary()


# ----------------------------------------------------------------------- values
def _num(value: Any) -> float:
    if isinstance(value, float):
        return value
    m = re.match(r"\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+)", str(value))
    return float(m.group(0)) if m else 0.0


def _looks_numeric(value: str) -> bool:
    return re.fullmatch(r"\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+)\s*", value) is not None


def _str(value: Any, fmt: str = "%.6g") -> str:
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e16:
            return str(int(value))
        return fmt % value
    return str(value)


class _Input(str):
    """A string from the input (a field, ``$0``): compared as a number if it looks one."""


def _format(fmt: str, values: list[Any]) -> str:
    out: list[str] = []
    k = 0
    args = iter(values)
    for m in re.finditer(r"%([-+ 0#]*\d*(?:\.\d+)?)([diouxXeEfgGcs%])", fmt):
        out.append(fmt[k : m.start()])
        k = m.end()
        flags, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        value = next(args, "")
        if conv in "di":
            out.append(("%" + flags + "d") % int(_num(value)))
        elif conv in "ouxX":
            out.append(("%" + flags + conv) % int(_num(value)))
        elif conv in "eEfgG":
            out.append(("%" + flags + conv) % _num(value))
        elif conv == "c":
            text = chr(int(value)) if isinstance(value, float) else str(value)[:1]
            out.append(("%" + flags + "s") % text)
        else:
            out.append(("%" + flags + "s") % _str(value))
    out.append(fmt[k:])
    return "".join(out)


_FUNCTIONS = frozenset(
    {"length", "substr", "index", "split", "sub", "gsub", "match", "sprintf", "tolower",
     "toupper", "int", "sqrt", "exp", "log", "sin", "cos", "atan2", "system", "close"}
)  # fmt: skip


# ---------------------------------------------------------------------- running
_DEFAULTS: dict[str, Any] = {
    "FS": " ", "OFS": " ", "ORS": "\n", "NR": 0.0, "NF": 0.0, "FILENAME": "",
    "SUBSEP": "\x1c", "RSTART": 0.0, "RLENGTH": -1.0, "OFMT": "%.6g", "CONVFMT": "%.6g",
}  # fmt: skip


class _Run:
    def __init__(self, out: Callable[[str], None], variables: dict[str, Any]) -> None:
        self.out = out
        self.vars: dict[str, Any] = dict(_DEFAULTS)
        self.vars.update(variables)
        self.arrays: dict[str, dict[str, Any]] = {}
        self.fields: list[str] = [""]
        self.steps = 0

    # ------------------------------------------------------------- records
    def set_record(self, line: str) -> None:
        self.fields = [line, *self.split(line, self.vars["FS"])]
        self.vars["NF"] = float(len(self.fields) - 1)

    def split(self, text: str, fs: Any) -> list[str]:
        fs = _str(fs)
        if fs == " ":
            return text.split()
        if len(fs) == 1 and fs != "\\":
            return text.split(fs) if text else []
        return re.split(fs, text) if text else []

    def get_field(self, n: int) -> str:
        if n < 0:
            raise AwkError(f"negative field index ${n}")
        return _Input(self.fields[n]) if n < len(self.fields) else _Input("")

    def set_field(self, n: int, value: str) -> None:
        if n == 0:
            self.set_record(value)
            return
        while len(self.fields) <= n:
            self.fields.append("")
        self.fields[n] = value
        self.vars["NF"] = float(len(self.fields) - 1)
        self.fields[0] = _str(self.vars["OFS"]).join(self.fields[1:])

    # ------------------------------------------------------------ statements
    def block(self, body: list[Any]) -> None:
        for node in body:
            self.statement(node)

    def statement(self, node: Any) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise AwkError("program ran too long")
        kind = node[0]
        if kind == "expr":
            self.eval(node[1])
        elif kind == "print":
            values = [self.eval(a) for a in node[1]] or [self.fields[0]]
            ofs, ors = _str(self.vars["OFS"]), _str(self.vars["ORS"])
            self.out(ofs.join(_str(v, _str(self.vars["OFMT"])) for v in values) + ors)
        elif kind == "printf":
            values = [self.eval(a) for a in node[1]]
            if not values:
                raise AwkError("printf: no format")
            self.out(_format(_str(values[0]), values[1:]))
        elif kind == "block":
            self.block(node[1])
        elif kind == "if":
            self.block(node[2] if self.truth(self.eval(node[1])) else node[3])
        elif kind in ("while", "do", "for", "forin"):
            self.loop(node)
        elif kind == "next":
            raise _Next
        elif kind == "exit":
            raise _Exit(int(_num(self.eval(node[1]))) if node[1] is not None else 0)
        elif kind == "break":
            raise _Break
        elif kind == "continue":
            raise _Continue
        elif kind == "delete":
            target = node[1]
            if target[0] == "var":
                self.arrays.pop(target[1], None)
            elif target[0] == "index":
                self.arrays.get(target[1], {}).pop(self.key(target[2]), None)

    def loop(self, node: Any) -> None:
        kind = node[0]
        if kind == "forin":
            for key in list(self.arrays.get(node[2], {})):
                self.vars[node[1]] = key
                if self.iteration(node[3]):
                    break
            return
        if kind == "for" and node[1] is not None:
            self.eval(node[1])
        first = True
        for _ in range(MAX_STEPS):
            if kind == "do" and first:
                first = False
            elif kind == "do":
                if not self.truth(self.eval(node[2])):
                    break
            else:
                cond = node[1] if kind == "while" else node[2]
                if cond is not None and not self.truth(self.eval(cond)):
                    break
            body = node[1] if kind == "do" else node[2] if kind == "while" else node[4]
            if self.iteration(body):
                break
            if kind == "for" and node[3] is not None:
                self.eval(node[3])

    def iteration(self, body: list[Any]) -> bool:
        try:
            self.block(body)
        except _Break:
            return True
        except _Continue:
            pass
        return False

    # ----------------------------------------------------------- expressions
    def truth(self, value: Any) -> bool:
        if isinstance(value, float):
            return value != 0
        if isinstance(value, _Input) and _looks_numeric(value):
            return _num(value) != 0
        return value != ""

    def key(self, keys: list[Any]) -> str:
        return _str(self.vars["SUBSEP"]).join(_str(self.eval(k)) for k in keys)

    def lvalue_get(self, target: Any) -> Any:
        if target[0] == "var":
            return self.vars.get(target[1], "")
        if target[0] == "field":
            return self.get_field(int(_num(self.eval(target[1]))))
        return self.arrays.setdefault(target[1], {}).get(self.key(target[2]), "")

    def lvalue_set(self, target: Any, value: Any) -> None:
        if target[0] == "var":
            if target[1] in self.arrays:
                raise AwkError(f"can't assign to {target[1]}; it's an array name.")
            self.vars[target[1]] = value
            if target[1] == "NF":
                n = int(_num(value))
                self.fields = (self.fields + [""] * n)[: n + 1]
                self.fields[0] = _str(self.vars["OFS"]).join(self.fields[1:])
        elif target[0] == "field":
            self.set_field(int(_num(self.eval(target[1]))), _str(value))
        else:
            self.arrays.setdefault(target[1], {})[self.key(target[2])] = value

    def eval(self, node: Any) -> Any:
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "str":
            return node[1]
        if kind == "regex":
            return float(re.search(node[1], self.fields[0]) is not None)
        if kind == "group":
            return self.eval(node[1])
        if kind == "var":
            if node[1] == "NR" or node[1] == "NF":
                return self.vars[node[1]]
            return self.vars.get(node[1], "")
        if kind == "field":
            return self.get_field(int(_num(self.eval(node[1]))))
        if kind == "index":
            return self.arrays.setdefault(node[1], {}).get(self.key(node[2]), "")
        if kind == "assign":
            _, op, target, value_node = node
            value = self.eval(value_node)
            if op != "=":
                value = self.arith(op[0], self.lvalue_get(target), value)
            if isinstance(value, _Input):
                value = str(value) if not _looks_numeric(value) else value
            self.lvalue_set(target, value)
            return value
        if kind in ("pre", "post"):
            _, op, target = node
            old = _num(self.lvalue_get(target))
            new = old + (1 if op == "++" else -1)
            self.lvalue_set(target, new)
            return new if kind == "pre" else old
        if kind == "cond":
            return self.eval(node[2]) if self.truth(self.eval(node[1])) else self.eval(node[3])
        if kind == "or":
            return float(self.truth(self.eval(node[1])) or self.truth(self.eval(node[2])))
        if kind == "and":
            return float(self.truth(self.eval(node[1])) and self.truth(self.eval(node[2])))
        if kind == "not":
            return float(not self.truth(self.eval(node[1])))
        if kind == "neg":
            return -_num(self.eval(node[1]))
        if kind == "num_of":
            return _num(self.eval(node[1]))
        if kind == "in":
            return float(_str(self.eval(node[1])) in self.arrays.get(node[2], {}))
        if kind == "match":
            _, op, left, right = node
            pattern = right[1] if right[0] == "regex" else _str(self.eval(right))
            found = re.search(pattern, _str(self.eval(left))) is not None
            return float(found if op == "~" else not found)
        if kind == "cmp":
            return float(self.compare(node[1], self.eval(node[2]), self.eval(node[3])))
        if kind == "concat":
            return _str(self.eval(node[1])) + _str(self.eval(node[2]))
        if kind == "bin":
            return self.arith(node[1], self.eval(node[2]), self.eval(node[3]))
        if kind == "call":
            return self.call(node[1], node[2])
        raise AwkError(f"cannot evaluate {kind}")

    def arith(self, op: str, a: Any, b: Any) -> float:
        x, y = _num(a), _num(b)
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op in "/%":
            if y == 0:
                raise AwkError("division by zero" + (" in %" if op == "%" else ""))
            return x / y if op == "/" else math.fmod(x, y)
        return float(x**y)

    def compare(self, op: str, a: Any, b: Any) -> bool:
        def numeric(v: Any) -> bool:
            return isinstance(v, float) or (isinstance(v, _Input) and _looks_numeric(v))

        left: Any
        right: Any
        if numeric(a) and numeric(b):
            left, right = _num(a), _num(b)
        else:
            left, right = _str(a), _str(b)
        return {
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
            "==": left == right,
            "!=": left != right,
        }[op]

    def call(self, name: str, args: list[Any]) -> Any:
        if name in ("split", "sub", "gsub"):
            return self.call_with_target(name, args)
        values = [self.eval(a) if a[0] != "regex" else a[1] for a in args]
        if name == "length":
            if args and args[0][0] == "var" and args[0][1] in self.arrays:
                return float(len(self.arrays[args[0][1]]))
            return float(len(_str(values[0]) if values else self.fields[0]))
        if name == "substr":
            text = _str(values[0])
            start = round(_num(values[1])) if len(values) > 1 else 1
            length = round(_num(values[2])) if len(values) > 2 else len(text) + 1
            end = start + length
            start = max(start, 1)
            return text[start - 1 : max(end - 1, start - 1)]
        if name == "index":
            return float(_str(values[0]).find(_str(values[1])) + 1)
        if name == "match":
            m = re.search(_str(values[1]), _str(values[0]))
            self.vars["RSTART"] = float(m.start() + 1) if m else 0.0
            self.vars["RLENGTH"] = float(m.end() - m.start()) if m else -1.0
            return self.vars["RSTART"]
        if name == "sprintf":
            return _format(_str(values[0]), values[1:]) if values else ""
        if name == "tolower":
            return _str(values[0]).lower()
        if name == "toupper":
            return _str(values[0]).upper()
        if name == "int":
            return float(math.trunc(_num(values[0])))
        if name in ("sqrt", "exp", "log", "sin", "cos"):
            try:
                return float(getattr(math, name)(_num(values[0])))
            except ValueError:
                return math.nan
        if name == "atan2":
            return math.atan2(_num(values[0]), _num(values[1]))
        if name == "close":
            return 0.0
        raise AwkError(f"function {name} is not modelled")

    def call_with_target(self, name: str, args: list[Any]) -> Any:
        if name == "split":
            text = _str(self.eval(args[0]))
            target = args[1]
            if target[0] != "var":
                raise AwkError("split: second argument must be an array")
            sep = (
                (args[2][1] if args[2][0] == "regex" else self.eval(args[2]))
                if len(args) > 2
                else self.vars["FS"]
            )
            parts = self.split(text, sep)
            self.vars.pop(target[1], None)
            self.arrays[target[1]] = {str(k): _Input(p) for k, p in enumerate(parts, 1)}
            return float(len(parts))
        pattern = args[0][1] if args[0][0] == "regex" else _str(self.eval(args[0]))
        repl = _str(self.eval(args[1])).replace("\\&", "\0")
        repl = repl.replace("&", "\\g<0>").replace("\0", "&")
        target = args[2] if len(args) > 2 else ("field", ("num", 0.0))
        text = _str(self.lvalue_get(target))
        new, count = re.subn(pattern, repl, text, count=0 if name == "gsub" else 1)
        if count:
            self.lvalue_set(target, new)
        return float(count)


def run_awk(program: str, inputs: list[tuple[str, str]], variables: dict[str, Any],
            out: Callable[[str], None]) -> int:  # fmt: skip
    """Run an awk program over ``(file name, text)`` inputs; its exit status.

    Raises:
        AwkError: a syntax or run-time error.
    """
    items = _Parser(_tokens(program)).program()
    run = _Run(out, variables)
    begins = [a for p, a in items if p == "BEGIN"]
    ends = [a for p, a in items if p == "END"]
    mains = [(p, a) for p, a in items if p not in ("BEGIN", "END")]
    try:
        for action in begins:
            run.block(action)
        if mains or ends:
            for name, text in inputs:
                run.vars["FILENAME"] = "" if name == "-" else name
                for line in text.splitlines():
                    run.vars["NR"] = _num(run.vars["NR"]) + 1
                    run.set_record(line)
                    try:
                        for pattern, action in mains:
                            if pattern is None or run.truth(run.eval(pattern)):
                                if action is None:
                                    run.out(run.fields[0] + _str(run.vars["ORS"]))
                                else:
                                    run.block(action)
                    except _Next:
                        continue
    except _Exit as done:
        code = done.code
        try:
            for action in ends:
                run.block(action)
        except _Exit as again:
            code = again.code
        return code
    try:
        for action in ends:
            run.block(action)
    except _Exit as done:
        return done.code
    return 0


AWK = Options(
    "F:v:f:W:",
    long=("field-separator=F", "assign=v", "file=f"),
    usage=2,
    after="",
    name="mawk",
)


@tool("awk", "mawk", options=AWK)
def awk(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``awk 'program' [file...]``, with ``-F`` the field separator and ``-v var=value``."""
    operands = list(args.operands)
    if not operands:
        io.err.write(
            "usage: mawk [-F value] [-v var=value] [--] 'program text' [file ...]\n"
            "usage: mawk [-F value] [-v var=value] [-f program-file] [--] [file ...]\n"
        )
        return 2
    program = operands.pop(0)
    variables: dict[str, Any] = {}
    fs = args.value("F")
    if fs is not None:
        variables["FS"] = "\t" if fs == "t" else unescape(fs)[0]
    for assignment in args.values("v"):
        var, eq, value = assignment.partition("=")
        if not eq:
            io.err.write(f"mawk: improper assignment: -v {assignment}\n")
            return 2
        variables[var] = _Input(unescape(value)[0])
    inputs: list[tuple[str, str]] = []
    status = 0
    for operand in operands or ["-"]:
        if "=" in operand and re.match(r"[A-Za-z_]\w*=", operand):
            var, _, value = operand.partition("=")
            variables[var] = _Input(value)
            continue
        text, _ = read_input(sh, operand, io, "mawk")
        if text is None:
            io.err.write(f"mawk: cannot open {operand} (No such file or directory)\n")
            status = 2
            continue
        inputs.append((operand, text))
    if not inputs and not any("=" in o for o in operands) and not operands:
        inputs = [("-", io.stdin)]
    try:
        code = run_awk(program, inputs, variables, io.out.write)
    except AwkError as error:
        io.err.write(f"mawk: line 1: {error}\n")
        return 2
    return code or status
