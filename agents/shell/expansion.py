"""Expansion: how the shell turns words into fields (parameters, ``$(…)``, ``$((…))``,
splitting, globbing, braces) before a command runs."""

from __future__ import annotations

import ast
import fnmatch
import posixpath
import re
from typing import TYPE_CHECKING

from agents.shell.core import IO, Buffer, Exit, ExpandError, Frame, Gen
from agents.shell.syntax import Lexer, Seg, ShellSyntaxError, Word, brace_expand, parse
from agents.shell.util import glob_escape, join_shown
from sim.machine import HOME

if TYPE_CHECKING:
    from agents.shell.fs import FS
    from agents.shell.interpreter import VirtualShell
    from sim.world import Host

__all__ = ["Expansions"]

#: Builtins whose ``NAME=VALUE`` arguments are assignments.
DECLARATIONS = frozenset({"export", "declare", "typeset", "local", "readonly"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
#: A ``~`` an assignment's value expands: after its ``=`` or a ``:`` (or at the start).
_TILDE_FIRST = re.compile(r"(^|[=:])~(?=/|:|$)")
_TILDE_NEXT = re.compile(r"(:)~(?=/|:|$)")

PARAM = re.compile(
    r"^(?P<len>#(?=.))?(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!0-])"
    r"(?:(?P<op>:-|:=|:\+|:\?|-|=|\+|\?|%%|%|##|#|/)(?P<arg>.*))?$",
    re.DOTALL,
)


class Expansions:
    """The expansions of a :class:`~agents.shell.interpreter.VirtualShell` (a part of it:
    the session's state it reads is the shell's)."""

    env: dict[str, str]
    cwd: str
    status: int
    pid: int
    last_bg: int | None
    positional: list[str]
    argv0: str
    subst_status: int | None

    if TYPE_CHECKING:

        def fs(self, host: Host | None = None) -> FS: ...

        def child(self, host: Host | None = None) -> VirtualShell: ...

    def words(self, words: list[Word], io: IO, frame: Frame) -> Gen:
        out: list[str] = []
        glob = not (words and words[0].plain() == "[[")  # [[ ]] neither splits nor globs
        # A declaration builtin's NAME=VALUE arguments are assignments: ``~`` expands after
        # the ``=`` and each ``:`` (``export PATH=~/bin:$PATH``).
        declares = bool(words) and words[0].plain() in DECLARATIONS
        for k, word in enumerate(words):
            assignment = declares and k > 0 and _ASSIGNMENT.match(word.segs[0].text) is not None
            for part in brace_expand(word) if glob else (word,):
                out += yield from self.fields(part, io, frame, glob, assignment)
        return out

    def tilde(self, text: str, first: bool, assignment: bool) -> str:
        """``~`` of an unquoted literal: at a word's start; in an assignment's value also
        after its ``=`` and after each ``:``."""
        home = self.env.get("HOME", HOME)
        if first and (text == "~" or text.startswith("~/")):
            text = home + text[1:]
        if assignment and "~" in text:
            text = (_TILDE_FIRST if first else _TILDE_NEXT).sub(lambda m: m.group(1) + home, text)
        return text

    def fields(
        self, word: Word, io: IO, frame: Frame, glob: bool = True, assignment: bool = False
    ) -> Gen:
        """Expand one word into fields: parameters, substitutions, splitting, globbing."""
        fields: list[list[tuple[str, bool]]] = [[]]  # pieces: (text, unquoted)
        split_next = False
        for idx, seg in enumerate(word.segs):
            if seg.kind == "lit":
                text = seg.text
                if not seg.quoted:
                    text = self.tilde(text, idx == 0, assignment)
                if split_next and text:
                    fields.append([])
                    split_next = False
                fields[-1].append((text, not seg.quoted))
                continue
            if seg.kind == "var" and seg.text == "@" and seg.quoted:
                for k, arg in enumerate(self.positional):
                    if k:
                        fields.append([])
                    fields[-1].append((arg, False))
                continue
            value = yield from self.value(seg, io, frame)
            if seg.quoted:
                if split_next:
                    fields.append([])
                    split_next = False
                fields[-1].append((value, False))
                continue
            parts = value.split()
            if not parts:
                split_next = split_next or bool(value)
                continue
            if (value[0].isspace() or split_next) and fields[-1]:
                fields.append([])
            split_next = False
            for k, part in enumerate(parts):
                if k:
                    fields.append([])
                fields[-1].append((part, True))
            split_next = value[-1].isspace()
        result: list[str] = []
        for pieces in fields:
            text = "".join(t for t, _ in pieces)
            if not text and all(unquoted for _, unquoted in pieces):
                continue
            if glob and any(unquoted and any(c in t for c in "*?[") for t, unquoted in pieces):
                pattern = "".join(t if unquoted else glob_escape(t) for t, unquoted in pieces)
                matches = self.glob(pattern)
                if matches:
                    result += matches
                    continue
            result.append(text)
        return result

    def string(self, word: Word, io: IO, frame: Frame, assignment: bool = False) -> Gen:
        """Expand one word into a single string (an assignment's value, with
        ``assignment``; a redirection's target)."""
        parts: list[str] = []
        for idx, seg in enumerate(word.segs):
            if seg.kind == "lit":
                text = seg.text
                if not seg.quoted:
                    text = self.tilde(text, idx == 0, assignment)
                parts.append(text)
            else:
                parts.append((yield from self.value(seg, io, frame)))
        return "".join(parts)

    def pattern(self, word: Word, io: IO, frame: Frame) -> Gen:
        """Expand a word into a glob pattern: its quoted parts match themselves."""
        parts: list[str] = []
        for seg in word.segs:
            if seg.kind == "lit":
                parts.append(glob_escape(seg.text) if seg.quoted else seg.text)
            else:
                value = yield from self.value(seg, io, frame)
                parts.append(glob_escape(value) if seg.quoted else value)
        return "".join(parts)

    def expand_text(self, text: str, io: IO, frame: Frame) -> Gen:
        """Expand ``$…`` inside text, as inside double quotes."""
        if "$" not in text and "`" not in text:
            return text
        try:
            segs = Lexer(text).double_quoted(None)
        except ShellSyntaxError as error:
            raise ExpandError(str(error)) from None
        return (yield from self.string(Word(segs, text), io, frame))

    def value(self, seg: Seg, io: IO, frame: Frame) -> Gen:
        if seg.kind == "var":
            return (yield from self.param(seg.text, io, frame))
        if seg.kind == "sub":
            return (yield from self.subst(seg.text, io, frame))
        expr = yield from self.expand_text(seg.text, io, frame)
        return str(self.arith(expr))

    def lookup(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(self.pid)
        if name == "!":
            return None if self.last_bg is None else str(self.last_bg)
        if name == "#":
            return str(len(self.positional))
        if name in ("@", "*"):
            return " ".join(self.positional)
        if name == "0":
            return self.argv0
        if name == "-":
            return "hB"
        if name.isdigit():
            n = int(name)
            return self.positional[n - 1] if 0 < n <= len(self.positional) else None
        return self.env.get(name)

    def param(self, expr: str, io: IO, frame: Frame) -> Gen:
        match = PARAM.match(expr)
        if match is None:
            raise ExpandError(f"${{{expr}}}: bad substitution")
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = self.lookup(name)
        if match.group("len"):
            return str(len(value or ""))
        if op is None:
            return value or ""
        unset = value is None or (op.startswith(":") and value == "")
        if op in ("-", ":-"):
            return (yield from self.expand_text(arg, io, frame)) if unset else value or ""
        if op in ("=", ":="):
            if unset:
                value = yield from self.expand_text(arg, io, frame)
                self.env[name] = value
            return value or ""
        if op in ("+", ":+"):
            return "" if unset else (yield from self.expand_text(arg, io, frame))
        if op in ("?", ":?"):
            if unset:
                raise ExpandError(f"{name}: {arg or 'parameter null or not set'}", 127)
            return value or ""
        value = value or ""
        pattern = yield from self.expand_text(arg, io, frame)
        if op == "/":
            old, _, new = pattern.partition("/")
            return value.replace(old, new, 1) if old else value
        n = len(value)
        if op == "%":
            spans = [(i, n) for i in range(n, -1, -1)]
        elif op == "%%":
            spans = [(i, n) for i in range(n + 1)]
        elif op == "#":
            spans = [(0, i) for i in range(n + 1)]
        else:
            spans = [(0, i) for i in range(n, -1, -1)]
        for a, b in spans:
            if fnmatch.fnmatchcase(value[a:b], pattern):
                return value[:a] + value[b:]
        return value

    def subst(self, text: str, io: IO, frame: Frame) -> Gen:
        """``$(…)``: run in a subshell, capture stdout, strip trailing newlines."""
        try:
            tree = parse(text)
        except ShellSyntaxError as error:
            io.err.write(f"bash: command substitution: {error}\n")
            return ""
        sub = self.child()
        buf = Buffer()
        try:
            status = yield from sub.run_list(tree, IO("", buf, io.err, io.nohup), frame)
        except Exit as done:
            status = done.code
        self.subst_status = status
        return buf.value().rstrip("\n")

    def arith(self, expr: str) -> int:
        text = expr.replace("&&", " and ").replace("||", " or ").strip() or "0"
        text = re.sub(r"!(?!=)", " not ", text)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise ExpandError(f"{expr.strip()}: syntax error in expression") from None
        return int(self.arith_node(tree.body, expr))

    def arith_node(self, node: ast.AST, expr: str) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return int(node.value)
        if isinstance(node, ast.Name):
            raw = self.env.get(node.id, "0").strip() or "0"
            return int(raw) if re.fullmatch(r"-?\d+", raw) else 0
        if isinstance(node, ast.UnaryOp):
            v = self.arith_node(node.operand, expr)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.Not):
                return int(not v)
            return v
        if isinstance(node, ast.BinOp):
            a, b = self.arith_node(node.left, expr), self.arith_node(node.right, expr)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.Pow):
                return a**b
            if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod):
                if b == 0:
                    raise ExpandError(f"{expr.strip()}: division by 0")
                q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
                return q if not isinstance(node.op, ast.Mod) else a - q * b
        if isinstance(node, ast.Compare):
            left = self.arith_node(node.left, expr)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.arith_node(right_node, expr)
                ok = {
                    ast.Lt: left < right,
                    ast.LtE: left <= right,
                    ast.Gt: left > right,
                    ast.GtE: left >= right,
                    ast.Eq: left == right,
                    ast.NotEq: left != right,
                }.get(type(op), False)
                if not ok:
                    return 0
                left = right
            return 1
        if isinstance(node, ast.BoolOp):
            values = [self.arith_node(v, expr) for v in node.values]
            return int(all(values) if isinstance(node.op, ast.And) else any(values))
        raise ExpandError(f"{expr.strip()}: syntax error in expression")

    def glob(self, pattern: str) -> list[str]:
        fs = self.fs()
        absolute = pattern.startswith("/")
        found: list[tuple[str, str]] = [("/" if absolute else "", "/" if absolute else self.cwd)]
        for part in pattern.split("/"):
            if not part:
                continue
            step: list[tuple[str, str]] = []
            for shown, real in found:
                if any(c in part for c in "*?["):
                    if fs.kind(real) != "dir":
                        continue
                    for name in fs.listdir(real):
                        if name.startswith(".") and not part.startswith("."):
                            continue
                        if fnmatch.fnmatchcase(name, part):
                            step.append((join_shown(shown, name), posixpath.join(real, name)))
                else:
                    path = posixpath.normpath(posixpath.join(real, part))
                    if fs.kind(path) is not None:
                        step.append((join_shown(shown, part), path))
            found = step
        if pattern.endswith("/"):  # ``*/``: folders only, shown with their slash
            return sorted(shown + "/" for shown, real in found if fs.kind(real) == "dir")
        return sorted(shown for shown, _ in found)
