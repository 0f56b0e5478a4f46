"""Bash syntax: the lexer and the parser (words, operators, redirections, here-documents;
lists, and-or chains, pipelines, compound commands). Imports nothing from the world."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class ShellSyntaxError(Exception):
    """A command line bash would refuse to parse."""


@dataclass(slots=True)
class Seg:
    kind: str  # "lit" | "var" | "sub" | "arith"
    text: str
    quoted: bool


@dataclass(slots=True)
class Word:
    segs: list[Seg]
    raw: str

    def plain(self) -> str | None:
        """The text if the word is one unquoted literal (a keyword candidate)."""
        if len(self.segs) == 1 and self.segs[0].kind == "lit" and not self.segs[0].quoted:
            return self.segs[0].text
        return None


@dataclass(slots=True)
class Op:
    text: str


@dataclass(slots=True)
class Redir:
    fd: int | None
    op: str
    target: Word | None = None
    body: Word | None = None


Token = Word | Op | Redir


_CONTROL = ("&&", "||", ";;", "|&")


_REDIRS = ("<<<", "<<-", "<<", "&>>", "&>", ">>", ">&", ">|", "<&", "<>", ">", "<")


_WORD_END = frozenset(" \t\r\n;&|()<>")


class Lexer:
    """Turns a command line into words, operators and redirections, as bash does."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.out: list[Token] = []
        self.pending: list[tuple[Redir, str, bool, bool]] = []

    def tokens(self) -> list[Token]:
        s = self.s
        while self.i < self.n:
            c = s[self.i]
            if c in " \t\r":
                self.i += 1
            elif s.startswith("\\\n", self.i):
                self.i += 2
            elif c == "\n":
                self.i += 1
                self.out.append(Op("\n"))
                self._heredocs()
            elif c == "#":
                while self.i < self.n and s[self.i] != "\n":
                    self.i += 1
            elif (c.isdigit() and self._fd_redirect()) or self._operator():
                continue
            else:
                self.out.append(self.word())
        if self.pending:
            self._heredocs()
        return self.out

    def _fd_redirect(self) -> bool:
        j = self.i
        while j < self.n and self.s[j].isdigit():
            j += 1
        if j < self.n and self.s[j] in "<>":
            fd = int(self.s[self.i : j])
            self.i = j
            for op in _REDIRS:
                if self.s.startswith(op, self.i) and not op.startswith("&"):
                    self.i += len(op)
                    self._redirect(fd, op)
                    return True
        return False

    def _operator(self) -> bool:
        s, i = self.s, self.i
        for op in _CONTROL:
            if s.startswith(op, i):
                self.i += len(op)
                self.out.append(Op(op))
                return True
        for op in _REDIRS:
            if s.startswith(op, i):
                self.i += len(op)
                self._redirect(None, op)
                return True
        if s[i] in ";&|()":
            self.i += 1
            self.out.append(Op(s[i]))
            return True
        return False

    def _skip_blanks(self) -> None:
        while self.i < self.n and self.s[self.i] in " \t":
            self.i += 1

    def _redirect(self, fd: int | None, op: str) -> None:
        self._skip_blanks()
        if self.i >= self.n or self.s[self.i] in _WORD_END:
            shown = "newline" if self.i >= self.n or self.s[self.i] == "\n" else self.s[self.i]
            raise ShellSyntaxError(f"syntax error near unexpected token `{shown}'")
        target = self.word()
        if op in ("<<", "<<-"):
            delim = "".join(seg.text for seg in target.segs)
            quoted = any(seg.quoted for seg in target.segs)
            redir = Redir(fd, op)
            self.pending.append((redir, delim, quoted, op == "<<-"))
            self.out.append(redir)
            return
        if op in (">&", "<&"):
            text = target.plain()
            if text is None or not (text.isdigit() or text == "-"):
                op = "&>" if fd is None else ">"
        self.out.append(Redir(fd, op, target))

    def _heredocs(self) -> None:
        s = self.s
        for redir, delim, quoted, strip in self.pending:
            lines: list[str] = []
            while self.i < self.n:
                j = s.find("\n", self.i)
                if j < 0:
                    j = self.n
                line = s[self.i : j]
                self.i = min(j + 1, self.n)
                if strip:
                    line = line.lstrip("\t")
                if line == delim:
                    break
                lines.append(line)
            body = "\n".join(lines) + ("\n" if lines else "")
            if quoted:
                redir.body = Word([Seg("lit", body, True)], body)
            else:
                sub = Lexer(body)
                redir.body = Word(sub.double_quoted(None), body)
        self.pending = []

    def _lit(self, segs: list[Seg], text: str, quoted: bool) -> None:
        if segs and segs[-1].kind == "lit" and segs[-1].quoted == quoted:
            segs[-1].text += text
        else:
            segs.append(Seg("lit", text, quoted))

    def word(self) -> Word:
        s = self.s
        start = self.i
        segs: list[Seg] = []
        while self.i < self.n:
            c = s[self.i]
            if c in _WORD_END:
                break
            if c == "\\":
                if self.i + 1 >= self.n:
                    self._lit(segs, "\\", False)
                    self.i += 1
                elif s[self.i + 1] == "\n":
                    self.i += 2
                else:
                    self._lit(segs, s[self.i + 1], True)
                    self.i += 2
            elif c == "'":
                j = s.find("'", self.i + 1)
                if j < 0:
                    raise ShellSyntaxError("unexpected EOF while looking for matching `''")
                self._lit(segs, s[self.i + 1 : j], True)
                self.i = j + 1
            elif c == '"':
                self.i += 1
                for seg in self.double_quoted('"'):
                    if seg.kind == "lit":
                        self._lit(segs, seg.text, True)
                    else:
                        segs.append(seg)
            elif c == "$":
                self._dollar(segs, False)
            elif c == "`":
                self._backtick(segs, False)
            else:
                self._lit(segs, c, False)
                self.i += 1
        return Word(segs, s[start : self.i])

    def double_quoted(self, end: str | None) -> list[Seg]:
        """Segments up to the closing ``end`` (or the end of text, for here-documents)."""
        s = self.s
        segs: list[Seg] = []
        escapable = '$`"\\\n' if end else "$`\\\n"
        closed = end is None
        while self.i < self.n:
            c = s[self.i]
            if end is not None and c == end:
                self.i += 1
                closed = True
                break
            if c == "\\" and self.i + 1 < self.n and s[self.i + 1] in escapable:
                if s[self.i + 1] != "\n":
                    self._lit(segs, s[self.i + 1], True)
                self.i += 2
            elif c == "$":
                self._dollar(segs, True)
            elif c == "`":
                self._backtick(segs, True)
            else:
                self._lit(segs, c, True)
                self.i += 1
        if not closed:
            raise ShellSyntaxError("unexpected EOF while looking for matching `\"'")
        if not segs:
            segs.append(Seg("lit", "", True))
        return segs

    def _matching(self, k: int) -> int:
        """Index just after the ``)`` matching the ``(`` at ``k``."""
        s = self.s
        depth = 0
        i = k
        while i < self.n:
            c = s[i]
            if c == "\\":
                i += 2
                continue
            if c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    break
                i = j + 1
                continue
            if c == '"':
                i += 1
                while i < self.n and s[i] != '"':
                    i += 2 if s[i] == "\\" else 1
                i += 1
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise ShellSyntaxError("unexpected EOF while looking for matching `)'")

    def _dollar(self, segs: list[Seg], quoted: bool) -> None:
        s, i = self.s, self.i
        nxt = s[i + 1] if i + 1 < self.n else ""
        if s.startswith("$((", i):
            end = self._matching(i + 1)
            segs.append(Seg("arith", s[i + 3 : end - 2], quoted))
            self.i = end
        elif nxt == "(":
            end = self._matching(i + 1)
            segs.append(Seg("sub", s[i + 2 : end - 1], quoted))
            self.i = end
        elif nxt == "{":
            end = s.find("}", i + 2)
            if end < 0:
                raise ShellSyntaxError("unexpected EOF while looking for matching `}'")
            segs.append(Seg("var", s[i + 2 : end], quoted))
            self.i = end + 1
        elif nxt == "'" and not quoted:
            j = i + 2
            chars: list[str] = []
            while j < self.n and s[j] != "'":
                if s[j] == "\\" and j + 1 < self.n:
                    chars.append(C_ESCAPES.get(s[j + 1], "\\" + s[j + 1]))
                    j += 2
                else:
                    chars.append(s[j])
                    j += 1
            self._lit(segs, "".join(chars), True)
            self.i = j + 1
        elif nxt.isalpha() or nxt == "_":
            j = i + 1
            while j < self.n and (s[j].isalnum() or s[j] == "_"):
                j += 1
            segs.append(Seg("var", s[i + 1 : j], quoted))
            self.i = j
        elif nxt and (nxt.isdigit() or nxt in "?$!#@*-"):
            segs.append(Seg("var", nxt, quoted))
            self.i = i + 2
        else:
            self._lit(segs, "$", quoted)
            self.i = i + 1

    def _backtick(self, segs: list[Seg], quoted: bool) -> None:
        s = self.s
        j = self.i + 1
        chars: list[str] = []
        while j < self.n and s[j] != "`":
            if s[j] == "\\" and j + 1 < self.n and s[j + 1] in "`$\\":
                chars.append(s[j + 1])
                j += 2
            else:
                chars.append(s[j])
                j += 1
        if j >= self.n:
            raise ShellSyntaxError("unexpected EOF while looking for matching ``'")
        segs.append(Seg("sub", "".join(chars), quoted))
        self.i = j + 1


C_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "0": "\0",
    "a": "\a",
    "e": "\x1b",
    "b": "\b",
}


@dataclass(slots=True)
class Simple:
    assigns: list[tuple[str, Word]]
    words: list[Word]
    redirs: list[Redir]


@dataclass(slots=True)
class Pipeline:
    cmds: list[Any]
    negate: bool = False


@dataclass(slots=True)
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


@dataclass(slots=True)
class CommandList:
    items: list[tuple[AndOr, bool]]


@dataclass(slots=True)
class Compound:
    kind: str  # "subshell" | "group"
    body: CommandList
    redirs: list[Redir] = field(default_factory=list)


@dataclass(slots=True)
class If:
    branches: list[tuple[CommandList, CommandList]]
    orelse: CommandList | None
    redirs: list[Redir] = field(default_factory=list)


@dataclass(slots=True)
class For:
    var: str
    words: list[Word] | None
    body: CommandList
    redirs: list[Redir] = field(default_factory=list)


@dataclass(slots=True)
class While:
    cond: CommandList
    body: CommandList
    until: bool
    redirs: list[Redir] = field(default_factory=list)


@dataclass(slots=True)
class Case:
    word: Word
    items: list[tuple[list[Word], CommandList]]
    redirs: list[Redir] = field(default_factory=list)


@dataclass(slots=True)
class FunctionDef:
    name: str
    body: Any
    redirs: list[Redir] = field(default_factory=list)


ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


RESERVED = frozenset({"then", "else", "elif", "fi", "do", "done", "}", "esac"})


class Parser:
    """Recursive descent over the lexer's tokens: lists, and-or chains, pipelines."""

    def __init__(self, tokens: list[Token]) -> None:
        self.t = tokens
        self.k = 0

    def parse(self) -> CommandList:
        body = self.list_(frozenset())
        if self.k < len(self.t):
            raise self._unexpected()
        return body

    def peek(self, ahead: int = 0) -> Token | None:
        k = self.k + ahead
        return self.t[k] if k < len(self.t) else None

    def _unexpected(self) -> ShellSyntaxError:
        tok = self.peek()
        if tok is None:
            return ShellSyntaxError("syntax error: unexpected end of file")
        if isinstance(tok, Op):
            shown = "newline" if tok.text == "\n" else tok.text
        elif isinstance(tok, Word):
            shown = tok.raw
        else:
            shown = tok.op
        return ShellSyntaxError(f"syntax error near unexpected token `{shown}'")

    def _is_op(self, *ops: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return isinstance(tok, Op) and tok.text in ops

    def _is_word(self, *words: str) -> bool:
        tok = self.peek()
        return isinstance(tok, Word) and tok.plain() in words

    def _expect(self, word: str) -> None:
        if not self._is_word(word):
            raise self._unexpected()
        self.k += 1

    def _newlines(self) -> None:
        while self._is_op("\n"):
            self.k += 1

    def list_(self, stops: frozenset[str]) -> CommandList:
        items: list[tuple[AndOr, bool]] = []
        while True:
            while self._is_op("\n", ";") and items:
                self.k += 1
            self._newlines()
            tok = self.peek()
            if tok is None or self._is_op(")", ";;"):
                break
            if isinstance(tok, Word) and tok.plain() in stops:
                break
            if isinstance(tok, Word) and tok.plain() in RESERVED:
                raise self._unexpected()
            chain = self.and_or()
            background = False
            separated = False
            if self._is_op(";", "&", "\n"):
                sep = self.t[self.k]
                assert isinstance(sep, Op)
                background = sep.text == "&"
                separated = True
                self.k += 1
            items.append((chain, background))
            if not separated:
                break
        return CommandList(items)

    def and_or(self) -> AndOr:
        first = self.pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self._is_op("&&", "||"):
            op = self.t[self.k]
            assert isinstance(op, Op)
            self.k += 1
            self._newlines()
            rest.append((op.text, self.pipeline()))
        return AndOr(first, rest)

    def pipeline(self) -> Pipeline:
        negate = False
        if self._is_word("!"):
            negate = True
            self.k += 1
        cmds = [self.command()]
        while self._is_op("|", "|&"):
            op = self.t[self.k]
            assert isinstance(op, Op)
            self.k += 1
            if op.text == "|&":
                last = cmds[-1]
                last.redirs.append(Redir(2, ">&", Word([Seg("lit", "1", False)], "1")))
            self._newlines()
            cmds.append(self.command())
        return Pipeline(cmds, negate)

    def _redirs(self) -> list[Redir]:
        found: list[Redir] = []
        while isinstance(self.peek(), Redir):
            tok = self.t[self.k]
            assert isinstance(tok, Redir)
            found.append(tok)
            self.k += 1
        return found

    def command(self) -> Any:
        tok = self.peek()
        if isinstance(tok, Op) and tok.text == "(":
            self.k += 1
            body = self.list_(frozenset())
            if not self._is_op(")"):
                raise self._unexpected()
            self.k += 1
            return Compound("subshell", body, self._redirs())
        if isinstance(tok, Word):
            word = tok.plain()
            if word == "{":
                self.k += 1
                body = self.list_(frozenset({"}"}))
                self._expect("}")
                return Compound("group", body, self._redirs())
            if word == "if":
                return self._if()
            if word == "for":
                return self._for()
            if word in ("while", "until"):
                self.k += 1
                cond = self.list_(frozenset({"do"}))
                self._expect("do")
                body = self.list_(frozenset({"done"}))
                self._expect("done")
                return While(cond, body, word == "until", self._redirs())
            if word == "case":
                return self._case()
            if word == "[[":
                return self._conditional()
            if word == "function" and isinstance(self.peek(1), Word):
                self.k += 1
                name = self.t[self.k]
                assert isinstance(name, Word)
                self.k += 1
                if self._is_op("(") and self._is_op(")", ahead=1):
                    self.k += 2
                return self._function(name.raw)
            if (
                word is not None
                and NAME.fullmatch(word)
                and self._is_op("(", ahead=1)
                and self._is_op(")", ahead=2)
            ):
                self.k += 3
                return self._function(word)
        return self._simple()

    def _function(self, name: str) -> FunctionDef:
        self._newlines()
        body = self.command()
        if not isinstance(body, Compound | If | For | While | Case):
            raise self._unexpected()
        return FunctionDef(name, body)

    def _conditional(self) -> Simple:
        """``[[ … ]]``: its words up to ``]]``, operators (``&&``, ``<``) as words."""
        words: list[Word] = []
        while True:
            tok = self.peek()
            if tok is None:
                raise self._unexpected()
            self.k += 1
            if isinstance(tok, Word):
                words.append(tok)
                if tok.plain() == "]]":
                    break
            elif isinstance(tok, Op):
                words.append(Word([Seg("lit", tok.text, True)], tok.text))
            else:
                words.append(Word([Seg("lit", tok.op, True)], tok.op))
                if tok.target is not None:
                    words.append(tok.target)
        return Simple([], words, self._redirs())

    def _case(self) -> Case:
        self.k += 1
        word = self.peek()
        if not isinstance(word, Word):
            raise self._unexpected()
        self.k += 1
        self._newlines()
        self._expect("in")
        items: list[tuple[list[Word], CommandList]] = []
        while True:
            self._newlines()
            if self._is_word("esac"):
                self.k += 1
                break
            if self._is_op("("):
                self.k += 1
            patterns: list[Word] = []
            while True:
                tok = self.peek()
                if not isinstance(tok, Word):
                    raise self._unexpected()
                patterns.append(tok)
                self.k += 1
                if not self._is_op("|"):
                    break
                self.k += 1
            if not self._is_op(")"):
                raise self._unexpected()
            self.k += 1
            body = self.list_(frozenset({"esac"}))
            items.append((patterns, body))
            if self._is_op(";;"):
                self.k += 1
                continue
            self._newlines()
            self._expect("esac")
            break
        return Case(word, items, self._redirs())

    def _if(self) -> If:
        self.k += 1
        branches: list[tuple[CommandList, CommandList]] = []
        cond = self.list_(frozenset({"then"}))
        self._expect("then")
        body = self.list_(frozenset({"elif", "else", "fi"}))
        branches.append((cond, body))
        orelse: CommandList | None = None
        while True:
            if self._is_word("elif"):
                self.k += 1
                cond = self.list_(frozenset({"then"}))
                self._expect("then")
                body = self.list_(frozenset({"elif", "else", "fi"}))
                branches.append((cond, body))
            elif self._is_word("else"):
                self.k += 1
                orelse = self.list_(frozenset({"fi"}))
            else:
                break
        self._expect("fi")
        return If(branches, orelse, self._redirs())

    def _for(self) -> For:
        self.k += 1
        tok = self.peek()
        name = tok.plain() if isinstance(tok, Word) else None
        if name is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise self._unexpected()
        self.k += 1
        self._newlines()
        words: list[Word] | None = None
        if self._is_word("in"):
            self.k += 1
            words = []
            while isinstance(self.peek(), Word) and not self._is_word("do"):
                tok = self.t[self.k]
                assert isinstance(tok, Word)
                words.append(tok)
                self.k += 1
        if self._is_op(";", "\n"):
            self.k += 1
        self._newlines()
        self._expect("do")
        body = self.list_(frozenset({"done"}))
        self._expect("done")
        return For(name, words, body, self._redirs())

    def _simple(self) -> Simple:
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            tok = self.peek()
            if isinstance(tok, Redir):
                redirs.append(tok)
            elif isinstance(tok, Word):
                first = tok.segs[0] if tok.segs else None
                match = (
                    ASSIGN.match(first.text)
                    if first is not None and first.kind == "lit" and not first.quoted
                    else None
                )
                if not words and match and first is not None:
                    rest = first.text[match.end() :]
                    segs = ([Seg("lit", rest, False)] if rest else []) + tok.segs[1:]
                    assigns.append((match.group(1), Word(segs, tok.raw)))
                else:
                    words.append(tok)
            else:
                break
            self.k += 1
        if not (assigns or words or redirs):
            raise self._unexpected()
        return Simple(assigns, words, redirs)


_BRACES = re.compile(r"\{([^{}\s]*(?:,[^{}\s]*)+|-?\d+\.\.-?\d+|[a-zA-Z]\.\.[a-zA-Z])\}")


def brace_expand(word: Word) -> list[Word]:
    """``a{b,c}d`` and ``f{1..3}``: the words a brace in an unquoted literal makes."""
    for k, seg in enumerate(word.segs):
        if seg.kind != "lit" or seg.quoted or "{" not in seg.text:
            continue
        match = _BRACES.search(seg.text)
        if match is None:
            continue
        inner = match.group(1)
        if ".." in inner and "," not in inner:
            a, b = inner.split("..")
            if a.lstrip("-").isdigit():
                lo, hi = int(a), int(b)
                step = 1 if hi >= lo else -1
                items = [str(n) for n in range(lo, hi + step, step)]
            else:
                step = 1 if ord(b) >= ord(a) else -1
                items = [chr(c) for c in range(ord(a), ord(b) + step, step)]
        else:
            items = inner.split(",")
        out: list[Word] = []
        for item in items:
            text = seg.text[: match.start()] + item + seg.text[match.end() :]
            segs = [*word.segs[:k], Seg("lit", text, False), *word.segs[k + 1 :]]
            out += brace_expand(Word(segs, word.raw))
        return out
    return [word]


def holds_output(chain: AndOr) -> bool:
    """Whether a background job keeps the line's stdout or stderr open: unless each of
    its commands sends both elsewhere (``> log 2>&1``, ``&> /dev/null``)."""
    for pipeline in [chain.first, *(p for _, p in chain.rest)]:
        for k, cmd in enumerate(pipeline.cmds):
            redirs = getattr(cmd, "redirs", [])
            out = k < len(pipeline.cmds) - 1  # a pipe takes all but the last one's stdout
            err = False
            for r in redirs:
                target = r.target.plain() if r.target is not None else None
                if r.op in ("&>", "&>>"):
                    out = err = True
                elif r.op in (">", ">>", ">|") and r.fd in (None, 1):
                    out = True
                elif r.op in (">", ">>", ">|") and r.fd == 2:
                    err = True
                elif r.op == ">&" and r.fd == 2 and target == "1":
                    err = out
                elif r.op == ">&" and r.fd in (None, 1) and target == "2":
                    out = err
            if not (out and err):
                return True
    return False


def parse(text: str) -> CommandList:
    return Parser(Lexer(text).tokens()).parse()
