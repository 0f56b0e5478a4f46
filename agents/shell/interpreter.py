"""The interpreter: a bash session of one replica, running the parsed command lines."""

from __future__ import annotations

import contextlib
import fnmatch
import math
import posixpath
import re
from collections.abc import Generator
from typing import Any

import simpy
from simpy.events import Event

from agents.shell.core import (
    COMMAND_COST,
    DEFAULT_TIMEOUT,
    IO,
    MAX_DEPTH,
    MAX_LOOP,
    Break,
    Buffer,
    Exit,
    ExpandError,
    FileSink,
    Frame,
    Gen,
    HungUp,
    Null,
    Ret,
    Return,
    Sink,
    Timeout,
)
from agents.shell.expansion import Expansions
from agents.shell.fs import BIN_DIRS, FS, HostState, world_state
from agents.shell.processes import hang_up
from agents.shell.registry import BUILTINS, TOOLS
from agents.shell.syntax import (
    AndOr,
    Case,
    CommandList,
    Compound,
    For,
    FunctionDef,
    If,
    Pipeline,
    Redir,
    ShellSyntaxError,
    Simple,
    While,
    holds_output,
    parse,
)
from sim.machine import HOME
from sim.substrate import TIMEOUT_NOTE, ShellResult, record_command
from sim.world import ActionFailed, CopyAborted, Death, Host, Replica, World


class VirtualShell(Expansions):
    """A bash session of one replica on a virtual host.

    Args:
        replica: The actor: whose agent types, and the parent of what it starts.
        host: The host the session runs on (default the replica's own).
        cwd: The start directory (default the replica's bundle folder; home elsewhere).
        timeout: Seconds a foreground command may run before the session hangs up.
        command_cost: Simulated seconds each simple command costs.
    """

    def __init__(
        self,
        replica: Replica,
        host: Host | None = None,
        cwd: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        command_cost: float = COMMAND_COST,
    ) -> None:
        self.replica = replica
        self.world: World = replica.world
        self.host = host or replica.host
        self.timeout = timeout
        self.command_cost = command_cost
        start = cwd or (replica.path if self.host is replica.host else HOME)
        self.cwd = start if self.fs().kind(start) == "dir" else HOME
        server = replica.server
        extra = {"PWD": self.cwd}
        if server is not None and self.host is replica.host:
            extra["OPENAI_BASE_URL"] = f"http://localhost:{server.port}/v1"
        self.env: dict[str, str] = self.world.machine(self.host).environment(extra)
        self.exported: set[str] = set(self.env)
        self.positional: list[str] = []
        self.argv0 = "bash"
        self.status = 0
        self.last_bg: int | None = None
        self.history: list[ShellResult] = []
        self.pid = self.hs().new_pid()
        self.subst_status: int | None = None
        self.functions: dict[str, Any] = {}
        #: Functions marked ``export -f``: a new bash process inherits them.
        self.exported_functions: set[str] = set()
        self.locals: list[dict[str, str | None]] = []
        self.errexit = False
        self.conditions = 0
        self.line = ""
        #: Run from Python (``subprocess``): the seconds its commands took, not waited.
        self.frozen: list[float] | None = None

    def __repr__(self) -> str:
        return f"<VirtualShell {self.replica.name}@{self.host.name}:{self.cwd}>"

    def run(self, command: str) -> Generator[Event, Any, ShellResult]:
        """Run one command line, as an agent's ``execute_command`` tool does.

        Use inside the replica's SimPy process: ``result = yield from shell.run(cmd)``.

        Raises:
            Death: the command killed the shell's own replica (its agent cannot go on).
        """
        world = self.world
        env = world.env
        start = env.now
        # Each line is a ``bash -c`` of its own, as on a live host: the directory, the
        # variables and the exported functions carry over; $?, $!, $$, the positional
        # parameters, other functions and the options start afresh.
        self.status, self.last_bg, self.positional = 0, None, []
        self.functions = {k: v for k, v in self.functions.items() if k in self.exported_functions}
        self.locals, self.errexit, self.conditions = [], False, 0
        self.pid, self.line = self.hs().new_pid(), command
        out, err = Buffer(), Buffer()
        frame = Frame(start + self.timeout, True)
        io = IO("", out, err)
        timed_out = False
        status = 0
        tree: CommandList | None = None
        try:
            yield from world.check_command(self.replica, self.host, command)
            tree = parse(command)
        except ActionFailed as denied:  # a guardrail refused the command line
            err.write(denied.reason + "\n")
            status = 126
        except Death:  # a guardrail killed the agent for it
            status = 137
        except ShellSyntaxError as error:
            err.write(f"bash: -c: line 1: {error}\n")
            status = 2
        if tree is not None:
            try:
                try:
                    status = yield from self.run_list(tree, io, frame)
                except Exit as done:
                    status = done.code
                yield from self.wait_for_jobs(frame)
            except Death:  # a guardrail killed the agent for what the command did
                status = 137
            except Timeout:
                status, timed_out = 124, True
                hang_up(self, frame)
                self.hang_up_jobs(frame)
                err.write(TIMEOUT_NOTE.format(timeout=self.timeout))
        out.close()
        err.close()
        status &= 255
        self.status = status
        result = ShellResult(
            command,
            out.value(),
            err.value(),
            status,
            env.now - start,
            self.host.name,
            start,
            timed_out,
        )
        self.history.append(result)
        record_command(world, self, result)
        if not self.replica.alive:
            raise Death(self.replica.cause or "killed")
        return result

    def run_now(self, command: str, stdin: str = "") -> tuple[int, str, str] | None:
        """Run a command line in this shell at once, its commands' time counted (in
        :attr:`frozen`) and not waited: (exit code, stdout, stderr), or None if it would
        wait for the world (a copy, a server start) or block. Not gated, not recorded.
        """
        if self.frozen is None:
            self.frozen = [0.0]
        out, err = Buffer(), Buffer()
        try:
            tree = parse(command)
        except ShellSyntaxError as error:
            return 2, "", f"{self.argv0}: -c: line 1: {error}\n"
        run = self.run_list(
            tree, IO(stdin, out, err), Frame(self.world.env.now + self.timeout, True)
        )
        status = 0
        try:
            run.send(None)
        except StopIteration as done:
            status = done.value
        except Exit as done:
            status = done.code
        except Timeout:
            status = 124
        else:
            run.close()
            return None
        return status & 255, out.value(), err.value()

    def probe(self, command: str) -> ShellResult:
        """Run a command line now as the session's next line would start (its directory,
        variables and exported functions), without the gate, the record, or a change to
        the session: the controller's look at what the session's commands resolve to."""
        line = self.child()
        line.functions = {k: v for k, v in self.functions.items() if k in self.exported_functions}
        line.errexit, line.conditions = False, 0
        line.history, line.frozen = [], [0.0]
        start = self.world.env.now
        done = line.run_now(command)
        status, out, err = done if done is not None else (124, "", TIMEOUT_NOTE.format(timeout=0))
        return ShellResult(command, out, err, status, 0.0, self.host.name, start)

    def fs(self, host: Host | None = None) -> FS:
        return FS(self.world, host or self.host)

    def hs(self, host: Host | None = None) -> HostState:
        return world_state(self.world).host(host or self.host)

    def child(self, host: Host | None = None) -> VirtualShell:
        """A subshell (same variables, own cwd), or a login session on another host."""
        sub = object.__new__(VirtualShell)
        sub.replica = self.replica
        sub.world = self.world
        sub.host = host or self.host
        sub.timeout = self.timeout
        sub.command_cost = self.command_cost
        sub.cwd = self.cwd if host is None else HOME
        sub.env = dict(self.env)
        sub.exported = set(self.exported)
        sub.functions = dict(self.functions)
        sub.exported_functions = set(self.exported_functions)
        sub.locals = []
        sub.errexit = self.errexit
        sub.conditions = self.conditions
        sub.line = self.line
        sub.frozen = self.frozen
        sub.positional = list(self.positional)
        sub.argv0 = self.argv0
        sub.status = self.status
        sub.last_bg = self.last_bg
        sub.history = []
        sub.pid = self.pid if host is None else sub.hs().new_pid()
        sub.subst_status = None
        if host is not None:
            sub.env.update(PWD=HOME, HOSTNAME=host.name)
            sub.env.pop("OPENAI_BASE_URL", None)
        return sub

    def process(self, host: Host | None = None) -> VirtualShell:
        """A new bash process (``bash -c``, a script): it inherits only what is exported
        (variables, and functions marked ``export -f``), and none of the options."""
        sub = self.child(host)
        sub.env = {k: v for k, v in sub.env.items() if k in self.exported}
        sub.functions = {k: v for k, v in self.functions.items() if k in self.exported_functions}
        sub.errexit, sub.conditions = False, 0
        if host is None:
            sub.pid = sub.hs().new_pid()
        return sub

    def exported_env(self) -> dict[str, str]:
        """The environment a command started from this shell sees."""
        return {k: v for k, v in self.env.items() if k in self.exported}

    def set_var(self, name: str, value: str) -> None:
        """Assign a shell variable (a function's ``local`` keeps its old value)."""
        self.env[name] = value

    def abspath(self, path: str) -> str:
        joined = posixpath.normpath(posixpath.join(self.cwd, path or "."))
        return "/" + joined.lstrip("/")

    def tick(self, frame: Frame, cost: float | None = None) -> Gen:
        yield from self.wait(self.command_cost if cost is None else cost, frame)

    def wait(self, seconds: float, frame: Frame) -> Gen:
        """Let simulated time pass; past the deadline the foreground command times out."""
        env = self.world.env
        if self.frozen is not None:  # run from Python: time is counted, not waited
            if env.now + self.frozen[0] + seconds > frame.deadline:
                raise Timeout
            self.frozen[0] += seconds
            return
        timed_out = env.now + seconds > frame.deadline
        until = frame.deadline if timed_out else env.now + seconds
        while env.now < until:
            try:
                yield env.timeout(until - env.now)
            except simpy.Interrupt as interrupt:
                self.interrupted(interrupt, frame)
        if timed_out:
            raise Timeout

    def interrupted(self, interrupt: simpy.Interrupt, frame: Frame) -> None:
        """An interrupt of a wait: a hang-up ends a background job (unless nohup'd); the
        world sends a copy's abort to the agent's process, and the abort of a background
        copy may land in a wait of the agent's shell: not ours."""
        if isinstance(interrupt.cause, HungUp):
            if not frame.nohup:
                raise HungUp
            return
        if not isinstance(interrupt.cause, CopyAborted):
            raise interrupt

    def block(self, frame: Frame) -> Gen:
        """A process that runs until killed: holds the foreground until the deadline."""
        if self.frozen is not None:
            raise Timeout
        if math.isinf(frame.deadline):
            while True:  # a background job: never returns
                try:
                    yield self.world.env.event()
                except simpy.Interrupt as interrupt:
                    self.interrupted(interrupt, frame)
        yield from self.wait(math.inf, frame)

    def wait_for_jobs(self, frame: Frame) -> Gen:
        """Background jobs that hold the line's output keep it open (its reader waits for
        the end of the output): until they end, or the deadline."""
        env = self.world.env
        while True:
            holding = [job for job, _, holds in frame.jobs if holds and job.is_alive]
            if not holding:
                return
            if env.now >= frame.deadline:
                raise Timeout
            try:
                yield env.any_of([*holding, env.timeout(frame.deadline - env.now)])
            except simpy.Interrupt as interrupt:
                self.interrupted(interrupt, frame)

    def hang_up_jobs(self, frame: Frame) -> None:
        """The session hung up: SIGHUP to the line's background jobs too (one group)."""
        for job, job_frame, _ in frame.jobs:
            hang_up(self, job_frame)
            if job.is_alive:
                job.interrupt(HungUp())

    def run_list(self, node: CommandList, io: IO, frame: Frame) -> Gen:
        status = 0
        for chain, background in node.items:
            if background:
                yield from self.tick(frame)
                self.spawn(chain, io, frame)
                status = 0
            else:
                status = yield from self.and_or(chain, io, frame)
            self.status = status
        return status

    def and_or(self, node: AndOr, io: IO, frame: Frame) -> Gen:
        status = yield from self.pipeline(node.first, io, frame)
        ran_last = not node.rest
        for op, pipe in node.rest:
            self.status = status
            ran_last = (op == "&&") == (status == 0)
            if ran_last:
                status = yield from self.pipeline(pipe, io, frame)
        last = node.rest[-1][1] if node.rest else node.first
        if status and self.errexit and not self.conditions and ran_last and not last.negate:
            raise Exit(status)  # set -e
        return status

    def condition(self, node: CommandList, io: IO, frame: Frame) -> Gen:
        """A list tested by ``if``/``while``: ``set -e`` does not apply in it."""
        self.conditions += 1
        try:
            return (yield from self.run_list(node, io, frame))
        finally:
            self.conditions -= 1

    def pipeline(self, node: Pipeline, io: IO, frame: Frame) -> Gen:
        if len(node.cmds) == 1:
            status = yield from self.node(node.cmds[0], io, frame)
        else:
            stdin = io.stdin
            status = 0
            saved = frame.pipeline
            frame.pipeline = [
                " ".join(w.raw for w in cmd.words) for cmd in node.cmds if isinstance(cmd, Simple)
            ]
            for k, cmd in enumerate(node.cmds):
                last = k == len(node.cmds) - 1
                out: Sink = io.out if last else Buffer()
                sub = self.child()
                try:
                    status = yield from sub.node(cmd, IO(stdin, out, io.err, io.nohup), frame)
                except Exit as done:
                    status = done.code
                if isinstance(out, Buffer) and not last:
                    stdin = out.value()
            frame.pipeline = saved
        if node.negate:
            status = 0 if status else 1
        self.status = status
        return status

    def spawn(self, chain: AndOr, io: IO, frame: Frame) -> None:
        """``chain &``: a SimPy process of its own; the shell goes on at once."""
        pid = self.hs().new_pid()
        sub = self.child()
        job_frame = Frame(math.inf, False, job_pid=pid, depth=frame.depth + 1)
        job_frame.nohup = frame.nohup
        job_io = IO("", io.out, io.err, io.nohup)

        def job() -> Gen:
            with contextlib.suppress(Exit, Timeout, Death, HungUp, Return, Break):
                yield from sub.and_or(chain, job_io, job_frame)

        process = self.world.env.process(job())
        frame.jobs.append((process, job_frame, holds_output(chain)))
        self.last_bg = pid
        first = chain.first.cmds[0]
        words = [w.raw for w in first.words] if isinstance(first, Simple) else []
        while words and words[0] in ("nohup", "exec", "command"):
            words = words[1:]
        if words:
            self.hs().jobs[pid] = (" ".join(words), posixpath.basename(words[0])[:15], process)

    def node(self, node: Any, io: IO, frame: Frame) -> Gen:
        if isinstance(node, Simple):
            return (yield from self.simple(node, io, frame))
        if isinstance(node, FunctionDef):
            self.functions[node.name] = node.body
            return 0
        redirected = yield from self.redirect(node.redirs, io, frame)
        if redirected is None:
            return 1
        io = redirected
        if isinstance(node, Compound):
            if node.kind == "group":
                return (yield from self.run_list(node.body, io, frame))
            sub = self.child()
            try:
                return (yield from sub.run_list(node.body, io, frame))
            except Exit as done:
                return done.code
        if isinstance(node, If):
            for cond, body in node.branches:
                status = yield from self.condition(cond, io, frame)
                if status == 0:
                    return (yield from self.run_list(body, io, frame))
            if node.orelse is not None:
                return (yield from self.run_list(node.orelse, io, frame))
            return 0
        if isinstance(node, For):
            if node.words is None:
                items = list(self.positional)
            else:
                try:
                    items = yield from self.words(node.words, io, frame)
                except ExpandError as error:
                    io.err.write(f"bash: {error}\n")
                    return 1
            status = 0
            for item in items[:MAX_LOOP]:
                self.env[node.var] = item
                try:
                    status = yield from self.run_list(node.body, io, frame)
                except Break as brk:
                    if brk.levels > 1:
                        brk.levels -= 1
                        raise
                    if not brk.cont:
                        break
            return status
        if isinstance(node, While):
            status = 0
            for _ in range(MAX_LOOP):
                cond = yield from self.condition(node.cond, io, frame)
                if (cond == 0) == node.until:
                    break
                try:
                    status = yield from self.run_list(node.body, io, frame)
                except Break as brk:
                    if brk.levels > 1:
                        brk.levels -= 1
                        raise
                    if not brk.cont:
                        break
                yield from self.tick(frame, 0.0)
            return status
        if isinstance(node, Case):
            try:
                word = yield from self.string(node.word, io, frame)
            except ExpandError as error:
                io.err.write(f"bash: {error}\n")
                raise Exit(1) from None
            for patterns, body in node.items:
                for pattern in patterns:
                    text = yield from self.pattern(pattern, io, frame)
                    if fnmatch.fnmatchcase(word, text):
                        return (yield from self.run_list(body, io, frame))
            return 0
        raise TypeError(node)

    def simple(self, node: Simple, io: IO, frame: Frame) -> Gen:
        self.subst_status = None
        try:
            argv = yield from self.words(node.words, io, frame)
            assigns: list[tuple[str, str]] = []
            for name, word in node.assigns:
                value = yield from self.string(word, io, frame, assignment=True)
                assigns.append((name, value))
        except ExpandError as error:
            # An expansion error ends a non-interactive shell's line.
            io.err.write(f"{self.argv0}: line 1: {error}\n")
            raise Exit(error.status) from None
        redirected = yield from self.redirect(node.redirs, io, frame)
        if redirected is None:
            return 1
        if not argv:
            for name, value in assigns:
                self.set_var(name, value)
            return self.subst_status or 0
        yield from self.tick(frame)
        saved = {name: (self.env.get(name), name in self.exported) for name, _ in assigns}
        self.env.update(assigns)
        self.exported.update(name for name, _ in assigns)
        try:
            status = yield from self.command(argv, redirected, frame)
        finally:
            for name, (old, was_exported) in saved.items():
                if old is None:
                    self.env.pop(name, None)
                else:
                    self.env[name] = old
                if not was_exported:
                    self.exported.discard(name)
        return status

    def call(self, name: str, argv: list[str], io: IO, frame: Frame) -> Gen:
        """Call a shell function: its own positional parameters and ``local`` variables."""
        saved = self.positional
        self.positional = argv[1:]
        self.locals.append({})
        frame.depth += 1
        try:
            if frame.depth > MAX_DEPTH:
                io.err.write(f"bash: {name}: maximum function nesting level exceeded\n")
                return 1
            return (yield from self.node(self.functions[name], io, frame))
        except Return as done:
            return done.code
        finally:
            frame.depth -= 1
            self.positional = saved
            for var, old in self.locals.pop().items():
                if old is None:
                    self.env.pop(var, None)
                else:
                    self.env[var] = old

    def command(self, argv: list[str], io: IO, frame: Frame) -> Gen:
        """Run one command: a builtin, a tool on the PATH, or a file by its path."""
        name = argv[0]
        if name in self.functions:
            return (yield from self.call(name, argv, io, frame))
        method = BUILTINS.get(name)
        path = None
        if method is None and "/" not in name:
            path = self.find_on_path(name)
            if path is None:
                # As ``bash -c`` reports it (each command line is one, in every world).
                io.err.write(f"{self.argv0}: line 1: {name}: command not found\n")
                return 127
            if posixpath.dirname(path) in BIN_DIRS:
                method = TOOLS[name]
        if method is not None:
            status = yield from self.finish(method(self, argv, io, frame))
            out = io.out
            if isinstance(out, FileSink) and out.error is not None:  # e.g. a full disk
                shown = f"{self.argv0}: line 1: {name}" if name in BUILTINS else name
                io.err.write(f"{shown}: write error: {out.error}\n")
                out.error, status = None, status or 1
            return status
        path = path or self.abspath(name)
        fs = self.fs()
        kind = fs.kind(path)
        if kind is None:
            io.err.write(f"bash: {name}: No such file or directory\n")
            return 127
        if kind == "dir":
            io.err.write(f"bash: {name}: Is a directory\n")
            return 126
        base = posixpath.basename(path)
        if posixpath.dirname(path) in BIN_DIRS and base in TOOLS:
            return (yield from self.command([base, *argv[1:]], io, frame))
        if not fs.stat(path)[2] & 0o100:
            io.err.write(f"bash: {name}: Permission denied\n")
            return 126
        if path.endswith(".py"):
            return (
                yield from self.finish(
                    TOOLS["python3"](self, ["python3", path, *argv[1:]], io, frame)
                )
            )
        return (yield from self.script(path, name, argv[1:], io, frame))

    def find_on_path(self, name: str) -> str | None:
        """Where ``name`` is on the session's ``PATH``: the first folder holding an
        executable file of that name (the system's tools are in ``/usr/bin`` and ``/bin``),
        as bash finds a command; None if no folder does. A file earlier on the ``PATH``
        shadows the system's tool, as on a real host."""
        fs = self.fs()
        default = self.world.machine(self.host).path
        value = self.env.get("PATH", default)  # unset: bash's default, the machine's
        if value == default:  # the machine's own: its tools
            return f"/usr/bin/{name}" if fs.tool_here(name) else None
        for folder in value.split(":"):
            folder = self.abspath(folder or ".")
            if folder in BIN_DIRS:
                if fs.tool_here(name):
                    return posixpath.join(folder, name)
                continue
            path = posixpath.join(folder, name)
            if fs.kind(path) == "file" and fs.stat(path)[2] & 0o111:
                return path
        return None

    def finish(self, result: Ret) -> Gen:
        """The exit status of a command method, running it if it is a generator."""
        if isinstance(result, int):
            return result
        return (yield from result)

    def script(
        self,
        path: str,
        shown: str,
        args: list[str],
        io: IO,
        frame: Frame,
        here: bool = False,
    ) -> Gen:
        """Run a shell script: in a subshell, or in this shell for ``source``."""
        fs = self.fs()
        text = fs.read(path)
        if text is None:
            io.err.write(f"bash: {shown}: cannot execute binary file\n")
            return 126
        if frame.depth > MAX_DEPTH:
            io.err.write(f"bash: {shown}: maximum nesting level exceeded\n")
            return 1
        try:
            tree = parse(text)
        except ShellSyntaxError as error:
            io.err.write(f"{shown}: line 1: {error}\n")
            return 2
        session = self if here else self.process()
        saved = (session.positional, session.argv0)
        session.positional = list(args)
        if not here:
            session.argv0 = shown
        frame.depth += 1
        frame.sourcing += here
        try:
            return (yield from session.run_list(tree, io, frame))
        except Return as done:
            if not here:
                raise
            return done.code
        except Exit as done:
            if here:
                raise  # ``exit`` in a sourced script ends the line
            return done.code
        finally:
            frame.depth -= 1
            frame.sourcing -= here
            if here:
                session.positional, session.argv0 = saved

    def redirect(self, redirs: list[Redir], io: IO, frame: Frame) -> Gen:
        """Apply redirections in order; None (after printing why) if one fails."""
        if not redirs:
            return io
        stdin, out, err = io.stdin, io.out, io.err
        fs = self.fs()
        for r in redirs:
            fd = r.fd
            if r.op in ("<<", "<<-"):
                assert r.body is not None
                stdin = yield from self.string(r.body, io, frame)
                continue
            assert r.target is not None
            try:
                target = yield from self.string(r.target, io, frame)
            except ExpandError as error:
                io.err.write(f"bash: {error}\n")
                return None
            if r.op == "<<<":
                stdin = target + "\n"
            elif r.op in (">&", "<&"):
                if r.op == ">&" and target in ("1", "2"):
                    source = out if target == "1" else err
                    if (fd if fd is not None else 1) == 2:
                        err = source
                    else:
                        out = source
            elif r.op in ("<", "<>"):
                path = self.abspath(target)
                kind = fs.kind(path)
                if kind is None:
                    io.err.write(f"bash: {target}: No such file or directory\n")
                    return None
                if kind == "dir":
                    io.err.write(f"bash: {target}: Is a directory\n")
                    return None
                stdin = fs.read(path) or ""
            else:
                sink = self.open_sink(target, append=r.op in (">>", "&>>"))
                if isinstance(sink, str):
                    io.err.write(f"bash: {target}: {sink}\n")
                    return None
                if r.op in ("&>", "&>>"):
                    out = err = sink
                elif (fd if fd is not None else 1) == 2:
                    err = sink
                else:
                    out = sink
        return IO(stdin, out, err, io.nohup)

    def open_sink(self, target: str, append: bool) -> Sink | str:
        """A sink writing to ``target`` (truncated unless appending), or the error."""
        if target in ("/dev/null", "/dev/zero"):
            return Null()
        path = self.abspath(target)
        fs = self.fs()
        problem = fs.write(path, "", append=True) if append else fs.write(path, "")
        if problem is not None:
            return problem
        return FileSink(fs, path)

    def resolve(self, name: str) -> Host | None:
        """The host a name or address means, from this host's point of view."""
        name = name.rpartition("@")[2].strip("[]")
        if name in ("localhost", "127.0.0.1", "127.0.1.1", "0.0.0.0", "::1", self.host.name):
            return self.host
        found = self.world.host_by_name.get(name)
        if found is not None:
            return found
        match = re.fullmatch(r"10\.0\.(\d+)\.(\d+)", name)
        if match:
            index = int(match.group(1)) * 256 + int(match.group(2)) - 2
            if 0 <= index < len(self.world.hosts):
                return self.world.hosts[index]
        return None

    def reachable(self, host: Host) -> bool:
        return host is self.host or self.world.network.up(self.host, host)
