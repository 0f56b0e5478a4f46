"""What the interpreter and the tools share: constants, control-flow exceptions, output
sinks, a command's streams (:class:`IO`) and the line in flight (:class:`Frame`)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from simpy.events import Event

if TYPE_CHECKING:
    from agents.shell.fs import FS


COMMAND_COST = 0.05
"""Simulated seconds one simple command costs (beyond what the world's actions take)."""


DEFAULT_TIMEOUT = 600.0
"""Seconds a command may run in the foreground before the session hangs up."""


BASE_TIME = datetime(2024, 12, 9, 10, 0, 0, tzinfo=UTC)
"""Wall-clock time shown for simulated time 0 (a Monday in the paper's month)."""


MAX_LOOP = 10_000


MAX_DEPTH = 64


class Timeout(Exception):
    """The foreground command reached the shell's deadline."""


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Break(Exception):
    def __init__(self, levels: int, cont: bool) -> None:
        super().__init__(levels)
        self.levels = levels
        self.cont = cont


class ExpandError(Exception):
    """An expansion error (``${X:?}``, bad arithmetic): the line ends with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class HungUp(Exception):
    """The session hung up (the line's timeout): a background job not under nohup ends."""


class Return(Exception):
    """``return`` from a function or a sourced script."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


Ret = int | Generator[Event, Any, int]


Gen = Generator[Event, Any, Any]


class Sink:
    tty = False

    def write(self, text: str) -> None:
        raise NotImplementedError


class Buffer(Sink):
    """Collected output: a pipe, or the terminal of one tool call (``tty``)."""

    def __init__(self, tty: bool = False) -> None:
        self.parts: list[str] = []
        self.closed = False
        self.tty = tty

    def write(self, text: str) -> None:
        if not self.closed:
            self.parts.append(text)

    def value(self) -> str:
        return "".join(self.parts)

    def close(self) -> None:
        self.closed = True


class Null(Sink):
    def write(self, text: str) -> None:
        pass


class FileSink(Sink):
    """Output appended to a file as it is written (a log stays readable while it grows)."""

    def __init__(self, fs: FS, path: str) -> None:
        self.fs = fs
        self.path = path
        #: Why the last write failed (a full disk), until the writing command reports it.
        self.error: str | None = None

    def write(self, text: str) -> None:
        if text:
            self.error = self.fs.write(self.path, text, append=True) or self.error


@dataclass(slots=True)
class IO:
    stdin: str
    out: Sink
    err: Sink
    nohup: bool = False


@dataclass(slots=True)
class Frame:
    """One foreground command line (or background job) in flight."""

    deadline: float
    foreground: bool
    started: list[tuple[object, bool]] = field(default_factory=list)  # (process, nohup)
    job_pid: int | None = None
    depth: int = 0
    sourcing: int = 0
    nohup: bool = False  # runs under nohup: a hang-up does not end it
    jobs: list[tuple[Any, Frame, bool]] = field(default_factory=list)  # (process, frame, holds)
    pipeline: list[str] = field(default_factory=list)  # the other commands of a pipeline
