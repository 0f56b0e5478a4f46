"""The tools the virtual shell answers: one function each, registered with its options.

A tool is a function ``fn(sh, args, io, frame)`` registered under the command names it
answers, with an :class:`Options` spec that says what its real counterpart's
``getopt_long`` table says: the short letters (``"n:"`` takes a value), the long names
and what they stand for, where option parsing stops, and the exit status of a usage
error. The shell parses the command line with the spec before calling the tool, so a
bad option fails as the real tool fails (GNU wording, the real exit status) and the tool
itself never sees it::

    @tool("head", "tail", options=Options("n:c:qvf", long=("lines=n", "bytes=c",
          "quiet=q", "silent=q", "verbose=v", "follow=f"), numbers="n"))
    def head(sh, args, io, frame):
        count = args.value("n", "10")
        ...

A builtin (``cd``, ``echo``, ``test``) is registered with :func:`builtin`; bash's builtins
parse their own arguments (``echo -n``, ``test -f``), so they are given no spec. So do the
few tools whose command line is a language of its own rather than ``getopt``'s: ``find``
(an expression), ``ps`` (BSD and UNIX options mixed), ``bash``/``sh`` and ``python3``
(their options end at the program), ``pip``/``apt`` (subcommands), ``ip`` (objects).
Adding a tool is one function, one spec, and its lines in the fidelity corpus
(:mod:`sim.fidelity`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simpy.events import Event

if TYPE_CHECKING:
    from agents.shell.core import IO, Frame
    from agents.shell.interpreter import VirtualShell

__all__ = [
    "BUILTINS",
    "TOOLS",
    "Args",
    "Options",
    "Tool",
    "UsageError",
    "builtin",
    "tool",
]

Ret = int | Generator[Event, Any, int]
_NUMBER = re.compile(r"-\d+(\.\d+)?")


class UsageError(Exception):
    """A command line its tool refuses: the message (without the program name) and the
    exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Options:
    """A tool's options, as its ``getopt_long`` table declares them.

    Attributes:
        short: Short option letters; a letter followed by ``:`` takes a value (``"n:"``).
        long: Long options: ``"name"`` (a flag of its own), ``"name="`` (takes a value),
            ``"name=x"`` (the same as ``-x``, with a value if ``-x`` takes one).
        usage: Exit status of a usage error (1 for most GNU tools, 2 for ``ls``,
            ``grep``, ``timeout`` 125…).
        stop: Options end at the first operand (``env``, ``nohup``, ``timeout``,
            ``xargs``: what follows is a command and its own options).
        numbers: The letter that a bare ``-NUM`` stands for (``head -5`` is ``-n 5``).
        after: What the usage error prints after its first line (default: the GNU
            ``Try 'TOOL --help' for more information.``; ``{tool}`` is replaced).
        name: The program name in messages, when not the command name (``mawk``).
        negatives: A negative number is an operand, not options (``seq 3 -1 1``).
        style: How usage errors are worded: ``"gnu"`` (getopt's), ``"curl"``.
        operand: A pattern of arguments that look like options but are operands
            (``chmod -x``).
        signals: ``-9``, ``-KILL``, ``-SIGTERM`` name a signal (``pkill``, ``killall``):
            given as the option ``signal``.
    """

    short: str = ""
    long: tuple[str, ...] = ()
    usage: int = 1
    stop: bool = False
    numbers: str = ""
    after: str = "Try '{tool} --help' for more information.\n"
    name: str = ""
    negatives: bool = False
    style: str = "gnu"
    operand: str = ""
    signals: bool = False
    _takes: frozenset[str] = field(init=False, repr=False, compare=False)
    _longs: dict[str, tuple[str, bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        takes = {c for k, c in enumerate(self.short) if self.short[k + 1 : k + 2] == ":"}
        object.__setattr__(self, "_takes", frozenset(takes))
        longs: dict[str, tuple[str, bool]] = {}
        for entry in self.long:
            name, eq, alias = entry.partition("=")
            if not eq:
                longs[name] = (name, False)
            elif not alias:
                longs[name] = (name, True)
            else:
                longs[name] = (alias, alias in takes)
        object.__setattr__(self, "_longs", longs)

    def parse(self, tool: str, argv: list[str]) -> Args:
        """Split ``argv`` (without the command name) as GNU ``getopt_long`` does: options
        anywhere before ``--`` (unless :attr:`stop`), combined letters, ``-n5``/``-n 5``,
        ``--name=value``/``--name value`` and unambiguous prefixes of long names.

        Raises:
            UsageError: an unknown option, a missing value, an ambiguous long name.
        """
        found = Args()
        k = 0
        while k < len(argv):
            arg = argv[k]
            k += 1
            if arg == "--":
                found.operands += argv[k:]
                break
            if arg.startswith("--"):
                k = self._long(tool, arg[2:], argv, k, found)
            elif arg.startswith("-") and len(arg) > 1:
                if self.signals and re.fullmatch(r"-(\d+|[A-Z][A-Z0-9+-]*)", arg):
                    found.add("signal", arg[1:])
                    continue
                if (self.negatives and _NUMBER.fullmatch(arg)) or (
                    self.operand and re.fullmatch(self.operand, arg)
                ):
                    found.operands.append(arg)
                    continue
                if self.numbers and arg[1:].isdigit():
                    found.add(self.numbers, arg[1:])
                    continue
                k = self._short(tool, arg, argv, k, found)
            else:
                found.operands.append(arg)
                if self.stop:
                    found.operands += argv[k:]
                    break
        return found

    def _short(self, tool: str, arg: str, argv: list[str], k: int, found: Args) -> int:
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter not in self.short or letter == ":":
                raise UsageError(f"invalid option -- '{letter}'", self.usage)
            if letter not in self._takes:
                found.add(letter)
                j += 1
                continue
            value = arg[j + 1 :]
            if not value:
                if k >= len(argv):
                    raise UsageError(f"option requires an argument -- '{letter}'", self.usage)
                value = argv[k]
                k += 1
            found.add(letter, value)
            break
        return k

    def _long(self, tool: str, text: str, argv: list[str], k: int, found: Args) -> int:
        name, eq, value = text.partition("=")
        key = name if name in self._longs else None
        if key is None:
            matches = sorted(n for n in self._longs if n.startswith(name))
            if len({self._longs[m] for m in matches}) > 1:
                shown = " ".join(f"'--{m}'" for m in matches)
                raise UsageError(
                    f"option '--{name}' is ambiguous; possibilities: {shown}", self.usage
                )
            if not matches:
                raise UsageError(f"unrecognized option '--{text}'", self.usage)
            key = matches[0]
        canonical, takes = self._longs[key]
        if not takes:
            if eq:
                raise UsageError(f"option '--{key}' doesn't allow an argument", self.usage)
            found.add(canonical)
            return k
        if not eq:
            if k >= len(argv):
                raise UsageError(f"option '--{key}' requires an argument", self.usage)
            value = argv[k]
            k += 1
        found.add(canonical, value)
        return k

    def usage_text(self, tool: str, error: UsageError) -> str:
        """The usage error as the tool prints it on stderr."""
        name = self.name or tool
        message = error.message
        if self.style == "curl":
            m = re.match(r"(?:invalid option -- '(.)'|unrecognized option '(--[^=']*))", message)
            shown = (f"-{m.group(1)}" if m.group(1) else m.group(2)) if m else ""
            message = f"option {shown}: is unknown" if m else message
        return f"{name}: {message}\n" + self.after.format(tool=name)


@dataclass(slots=True)
class Args:
    """A parsed command line: options by their short letter (or long name), in order, and
    the operands."""

    options: list[tuple[str, str | None]] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)

    def add(self, key: str, value: str | None = None) -> None:
        self.options.append((key, value))

    def has(self, *keys: str) -> bool:
        """Whether any of ``keys`` was given."""
        return any(key in keys for key, _ in self.options)

    def count(self, key: str) -> int:
        """How many times ``key`` was given (``-vv``)."""
        return sum(1 for k, _ in self.options if k == key)

    def value(self, key: str, default: str | None = None) -> str | None:
        """The last value given to ``key``, or ``default``."""
        found = default
        for k, v in self.options:
            if k == key:
                found = v
        return found

    def values(self, key: str) -> list[str]:
        """Every value given to ``key``, in order (``-e A -e B``)."""
        return [v for k, v in self.options if k == key and v is not None]

    def last(self, *keys: str) -> str | None:
        """Which of ``keys`` came last (``ls -l -1``: the last format wins)."""
        found = None
        for k, _ in self.options:
            if k in keys:
                found = k
        return found


ToolFn = Callable[..., Ret]


@dataclass(frozen=True, slots=True)
class Tool:
    """A command the shell answers: its function and its options (None: it reads its
    own arguments, as bash's builtins and ``find``'s expressions do)."""

    fn: ToolFn
    options: Options | None = None

    def __call__(self, sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Ret:
        if self.options is None:
            return self.fn(sh, argv, io, frame)
        try:
            args = self.options.parse(argv[0], argv[1:])
        except UsageError as error:
            io.err.write(self.options.usage_text(argv[0], error))
            return error.status
        return self.fn(sh, args, io, frame, argv[0])


#: Commands on the machine's PATH, by name (each subject to the host's ``missing_tools``).
TOOLS: dict[str, Tool] = {}
#: bash's builtins, by name: always there.
BUILTINS: dict[str, Tool] = {}


def _register(
    table: dict[str, Tool], names: Iterable[str], options: Options | None
) -> Callable[[ToolFn], ToolFn]:
    def register(fn: ToolFn) -> ToolFn:
        for name in names:
            if name in table:
                raise ValueError(f"the shell already answers {name!r}")
            table[name] = Tool(fn, options)
        return fn

    return register


def tool(*names: str, options: Options | None = None) -> Callable[[ToolFn], ToolFn]:
    """Register a tool under ``names``.

    With ``options`` the function is called as ``fn(sh, args, io, frame, name)`` with the
    parsed :class:`Args` (a usage error never reaches it); without, as
    ``fn(sh, argv, io, frame)`` with the raw argument vector.
    """
    return _register(TOOLS, names, options)


def builtin(*names: str, options: Options | None = None) -> Callable[[ToolFn], ToolFn]:
    """Register a bash builtin under ``names`` (see :func:`tool`)."""
    return _register(BUILTINS, names, options)
