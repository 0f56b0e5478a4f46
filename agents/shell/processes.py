"""Processes: the host's process table, signals, and the tools that list, wait for and
signal processes (``ps``, ``kill``, ``pkill``, ``sleep``, ``nohup``, ``timeout``)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, NamedTuple

import simpy

from agents.shell.core import IO, Exit, Frame, Gen, HungUp, Timeout
from agents.shell.registry import BUILTINS, Args, Options, builtin, tool
from agents.shell.util import SIGNUMS, finite, signal_name, when
from sim.hosts.replica import agent_argv, server_argv
from sim.machine import HOME, USER
from sim.world import ActionFailed, Death, Host, Replica, ServerProcess

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


class Proc(NamedTuple):
    pid: int
    ppid: int
    user: str
    cmd: str
    comm: str
    rss: float  # KiB
    since: float
    proc: object | None  # the world's object (ServerProcess or Replica), None for system ones


SSHD_PID = 812


def hang_up(sh: VirtualShell, frame: Frame) -> None:
    """The tool call gave up: SIGHUP to what the command started, except nohup's."""
    for proc, nohup in frame.started:
        if not nohup:
            end_process(sh, proc, "SIGHUP")


def end_process(sh: VirtualShell, proc: object, sig: str) -> None:
    """End a process the session itself stops (hang-up, ``timeout``): no guardrail asks."""
    world = sh.world
    if isinstance(proc, ServerProcess):
        owner = proc.owner
        if owner is not None and owner.alive:
            proc = owner  # the world's replica is one unit: its server's end is its end
        else:
            stop_server(sh, proc, sig)
            return
    if isinstance(proc, Replica) and proc.alive:
        world.deliver(proc, sig, source=f"shell:{sh.replica.name}", cause=sig.lower())


def stop_server(sh: VirtualShell, server: ServerProcess, sig: str) -> None:
    """A model server no agent uses ends: its port, memory and GPU memory are free."""
    if server.host.servers.get(server.port) is server:
        sh.world.stop_server(server)
        sh.world.record(
            "server-stop",
            replica=sh.replica.name,
            host=server.host.name,
            port=server.port,
            reason=sig.lower(),
        )


def signal_process(sh: VirtualShell, proc: object, sig: str) -> Gen:
    """The agent's ``kill``: through the world and its guardrails; "" or why not."""
    world = sh.world
    if isinstance(proc, simpy.Process) and sig in ("SIGSTOP", "SIGCONT"):
        if proc.is_alive and sig == "SIGSTOP":
            sh.hs().stopped.add(proc)
        else:
            sh.hs().stopped.discard(proc)
        return ""
    if sig in ("SIGSTOP", "SIGCONT", "0"):
        return ""
    if isinstance(proc, ServerProcess):
        owner = proc.owner
        if owner is None or not owner.alive:
            if world.gate is not None:
                try:
                    yield from world.check(
                        "kill",
                        sh.replica,
                        proc.host,
                        target=f"{proc.host.name}:{proc.port}",
                        signal=sig,
                    )
                except ActionFailed as denied:
                    return "Operation not permitted" if denied.reason else ""
            stop_server(sh, proc, sig)
            return ""
        proc, sig = owner, "SIGKILL"  # the server cannot catch it; its replica ends
    if isinstance(proc, simpy.Process):  # a background job of a shell
        if proc.is_alive and sig not in ("SIGSTOP", "SIGCONT", "0"):
            proc.interrupt(HungUp())
            sh.hs().ended.add(proc)  # ended now, for whoever looks before it runs again
        return ""
    if not isinstance(proc, Replica):
        return "No such process"
    try:
        # Signals the world does not model (HUP, INT) end a process as SIGKILL does.
        yield from world.kill(sh.replica, proc, sig if sig == "SIGTERM" else "SIGKILL")
    except ActionFailed as denied:
        return (
            "Operation not permitted"
            if "denied" in denied.reason or "not permitted" in denied.reason
            else "No such process"
        )
    except Death:
        pass  # the agent killed itself; run() ends its process after the command
    return ""


def signal_pid(sh: VirtualShell, pid: int, sig: str) -> Gen:
    """Signal a process by PID; return "" or why not (as kill words it)."""
    if pid == sh.pid:
        if sig in ("SIGKILL", "SIGTERM", "SIGHUP", "SIGINT"):
            raise Exit(128 + SIGNUMS[sig])
        return ""
    if pid == 1 and sig == "0":
        return ""  # the host's init runs as the machine's user
    if pid in (1, SSHD_PID):
        return "Operation not permitted"
    for row in processes(sh):
        if row.pid == pid and row.proc is not None:
            return (yield from signal_process(sh, row.proc, sig))
    return "No such process"


#: What the init of a host runs (the live hosts' init: a small Python program).
INIT_CMD = "python3 -I -S -c import os, signal, sys ..."
SSHD_CMD = "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"


def has_sshd(sh: VirtualShell, host: Host) -> bool:
    """Whether ``host`` runs sshd: only a host with linked neighbours (the modelled
    network's ``ssh``/``scp``); a lone host, as a live one, has none."""
    return bool(sh.world.network.neighbours(host))


def processes(sh: VirtualShell, host: Host | None = None, line: bool = True) -> list[Proc]:
    """The host's processes, by PID: init, sshd, model servers, agents, and (``line``)
    the ``bash -c`` of the line being run."""
    host = host or sh.host
    hs = sh.hs(host)
    rows = [Proc(1, 0, USER, INIT_CMD, "python3", 9_988, -86400.0, None)]
    if has_sshd(sh, host):
        rows.append(Proc(SSHD_PID, 1, "root", SSHD_CMD, "sshd", 9_216, -86400.0, None))
    for server in host.servers.values():
        pid = hs.pid_of(server)
        cmd = hs.cmdlines.get(server) or server_argv(server.path, server.port)
        since = hs.since.get(server, server.ready_at if server.ready_at <= 0 else 0.0)
        rows.append(Proc(pid, 1, USER, cmd, "python3", server.memory / 1024, since, server))
    for replica in host.replicas:
        pid = hs.pid_of(replica)
        port = replica.server.port if replica.server is not None else 8000
        cmd = hs.cmdlines.get(replica) or agent_argv(replica.path, port)
        memory = sh.world.agent_memory / 1024
        rows.append(Proc(pid, 1, USER, cmd, "python3", memory, replica.born, replica))
    # The operator's programs (a watchdog) run from boot, children of init.
    daemons = {f"/bin/bash {p}" for p in sh.world.machine(host).processes}
    for pid, (cmd, comm, job) in list(hs.jobs.items()):
        if not job.is_alive:
            del hs.jobs[pid]
        elif cmd in daemons:
            rows.append(Proc(pid, 1, USER, cmd, comm, 3_300, hs.since.get(job, 0.0), job))
        else:
            rows.append(Proc(pid, sh.pid, USER, cmd, comm, 1_024, sh.world.env.now, job))
    if line and host is sh.host and sh.line:
        now = sh.world.env.now
        rows.append(Proc(sh.pid, 0, USER, f"bash -c {sh.line}", "bash", 3_160, now, None))
    return sorted(rows, key=lambda r: r.pid)


_SIGNAL_NAMES = (
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
    "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
)  # fmt: skip


def signal_list() -> str:
    """``kill -l``: bash's table of the signals, five a line."""
    names = {n + 1: f"SIG{name}" for n, name in enumerate(_SIGNAL_NAMES)}
    names[34] = "SIGRTMIN"
    names.update({34 + k: f"SIGRTMIN+{k}" for k in range(1, 16)})
    names.update({64 - k: f"SIGRTMAX-{k}" for k in range(1, 15)})
    names[64] = "SIGRTMAX"
    cells = [f"{n:>2}) {name}" for n, name in sorted(names.items())]
    rows = ["\t".join(cells[k : k + 5]) for k in range(0, len(cells), 5)]
    return "\n".join(rows) + "\n"


@builtin("kill")
def kill_builtin(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    args = argv[1:]
    sig: str | None = "SIGTERM"
    usage = (
        f"{sh.argv0}: line 1: kill: usage: kill [-s sigspec | -n signum | -sigspec] pid | "
        "jobspec ... or kill -l [sigspec]\n"
    )
    if not args:
        io.err.write(usage)
        return 2
    if args[0] in ("-l", "-L"):
        io.out.write(signal_list())
        return 0
    if args[0] in ("-s", "-n") and len(args) > 1:
        sig, args = signal_name(args[1]), args[2:]
    elif args[0].startswith("-") and len(args[0]) > 1 and args[0] != "--":
        sig, args = signal_name(args[0][1:]), args[1:]
    if sig is None:
        io.err.write(f"bash: kill: {argv[1].lstrip('-')}: invalid signal specification\n")
        return 1
    if not args:
        io.err.write(usage)
        return 2
    status = 0
    for arg in args:
        if arg == "--":
            continue
        if arg.startswith("%"):
            io.err.write(f"bash: kill: {arg}: no such job\n")
            status = 1
            continue
        if not re.fullmatch(r"\d+", arg):
            io.err.write(f"bash: kill: {arg}: arguments must be process or job IDs\n")
            status = 1
            continue
        outcome = yield from signal_pid(sh, int(arg), sig)
        if outcome:
            io.err.write(f"bash: kill: ({arg}) - {outcome}\n")
            status = 1
    return status


@tool("ps")
def ps(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = argv[1:]
    takes = {"-p", "-o", "-u", "-C", "--pid", "--sort", "-U", "-G"}
    known = ("--pid", "--sort", "--forest", "--no-headers", "--headers", "--format", "--ppid")
    for arg in args:
        if arg.startswith("--") and arg.partition("=")[0] not in known:
            io.err.write(
                "error: unknown gnu long option\n\nUsage:\n ps [options]\n\n Try 'ps --help "
                "<simple|list|output|threads|misc|all>'\n  or 'ps --help <s|l|o|t|m|a>'\n for "
                "additional help text.\n\nFor more details see ps(1).\n"
            )
            return 1
    options: list[str] = []
    bsd = ""
    k = 0
    while k < len(args):
        arg = args[k]
        if arg.startswith("-"):
            options.append(arg)
            letter = next((c for c in arg[1:] if "-" + c in takes), None)
            takes_next = arg in takes or (
                not arg.startswith("--") and letter is not None and arg.endswith(letter)
            )
            if takes_next and k + 1 < len(args):
                options.append(args[k + 1])
                k += 1
        elif arg.isalpha():
            bsd += arg  # BSD-style letters: ps aux
        else:
            options += ["-p", arg]
        k += 1
    flags: set[str] = set()
    values: dict[str, str] = {}
    k = 0
    while k < len(options):
        opt = options[k]
        if opt.startswith("--"):
            key, eq, value = opt.partition("=")
            if key in takes and not eq and k + 1 < len(options):
                k += 1
                value = options[k]
            values[key] = value
        else:
            for j, letter in enumerate(opt[1:], 1):
                if "-" + letter in takes:
                    rest = opt[j + 1 :]
                    if not rest and k + 1 < len(options):
                        k += 1
                        rest = options[k]
                    values["-" + letter] = rest
                    break
                flags.add("-" + letter)
        k += 1
    flags |= {"-" + c for c in bsd if c in "ax"}
    user_format = "u" in bsd
    hs = sh.hs()

    def stat(r: Proc) -> str:
        if r.proc is not None and r.proc in hs.stopped:
            return "T"
        return "Ssl" if r.proc is not None else "R" if r.pid == ps_pid else "S"

    rows = processes(sh)
    now = sh.world.env.now
    ps_pid = hs.new_pid()
    rows.append(Proc(ps_pid, sh.pid, USER, " ".join(argv), "ps", 3_400, now, None))
    pipeline = frame.pipeline
    for text in pipeline:
        if not text.startswith("ps"):
            name = text.split()[0] if text.split() else text
            rows.append(Proc(hs.new_pid(), sh.pid, USER, text, name, 2_300, now, None))
    memory = finite(sh.host.memory)
    if "-p" in values or "--pid" in values:
        wanted = {
            int(p)
            for p in re.split(r"[ ,]", values.get("-p", values.get("--pid", "")))
            if p.isdigit()
        }
        rows = [r for r in rows if r.pid in wanted]
    if "-C" in values:
        rows = [r for r in rows if r.comm == values["-C"]]
    everyone = bool(flags & {"-e", "-A", "-a", "-x"}) or "-p" in values or "-C" in values
    if not everyone:  # no terminal: the user's processes without one, which is all of them
        rows = [r for r in rows if r.user == USER]
    if "-o" in values:
        fields = [f.strip().rstrip("=") for f in values["-o"].split(",")]
        header = {
            "pid": "PID",
            "ppid": "PPID",
            "cmd": "CMD",
            "args": "COMMAND",
            "command": "COMMAND",
            "comm": "COMMAND",
            "user": "USER",
            "rss": "RSS",
            "%mem": "%MEM",
            "%cpu": "%CPU",
            "etime": "ELAPSED",
        }
        text_fields = {"cmd", "args", "command", "comm", "user"}

        def cell(f: str, value: str) -> str:
            return (
                f"{value:<8}"
                if f in text_fields and f != fields[-1]
                else (value if f in text_fields else f"{value:>7}")
            )

        if not values["-o"].endswith("="):
            io.out.write(" ".join(cell(f, header.get(f, f.upper())) for f in fields) + "\n")
        for r in rows:
            cells = {
                "pid": str(r.pid),
                "ppid": str(r.ppid),
                "cmd": r.cmd,
                "args": r.cmd,
                "command": r.cmd,
                "comm": r.comm,
                "user": r.user,
                "rss": f"{r.rss:.0f}",
                "%mem": f"{100 * r.rss * 1024 / memory:.1f}",
                "%cpu": "0.0",
                "etime": f"{max(0.0, now - r.since):.0f}",
            }
            io.out.write(" ".join(cell(f, cells.get(f, "-")) for f in fields) + "\n")
        return 0 if rows else 1
    if user_format:
        io.out.write("USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n")
        for r in rows:
            start = when(r.since)
            mem = 100 * r.rss * 1024 / memory
            cpu = "0.5" if r.comm == "python" else "0.0"
            io.out.write(
                f"{r.user:<9}{r.pid:>7} {cpu:>4} {mem:>4.1f} {r.rss * 1.3:>6.0f} "
                f"{r.rss:>5.0f} {'?':<8} "
                f"{stat(r):<4}"
                f" {start:%H:%M} "
                f"{'0:03':>6} {r.cmd}\n"
            )
        return 0
    if flags & {"-f", "-F"}:
        io.out.write("UID          PID    PPID  C STIME TTY          TIME CMD\n")
        for r in rows:
            io.out.write(
                f"{r.user:<8}{r.pid:>8}{r.ppid:>8}  0 {when(r.since):%H:%M} "
                f"{'?':<8} 00:00:00 {r.cmd}\n"
            )
        return 0 if rows else 1
    io.out.write("    PID TTY          TIME CMD\n")
    for r in rows:
        io.out.write(f"{r.pid:>7} {'?':<8} 00:00:00 {r.comm}\n")
    return 0 if rows else 1


PKILL = Options(
    "fxacilnovs:u:U:P:g:t:",
    long=("full=f", "exact=x", "list-full=a", "count=c", "ignore-case=i", "list-name=l",
          "newest=n", "oldest=o", "signal=s", "euid=u", "uid=U", "parent=P", "pgroup=g"),
    usage=2,
    after="",
    signals=True,
)  # fmt: skip


@tool("pkill", "killall", "pgrep", options=PKILL)
def pkill(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``pgrep``/``pkill``/``killall PATTERN``: find or signal processes by name (``-f``:
    by their whole command line, which includes the line's own ``bash -c``)."""
    argv = [name]
    spec = args.value("signal") or args.value("s")
    sig: str | None = signal_name(spec) if spec else "SIGTERM"
    ops = args.operands
    if sig is None or not ops:
        io.err.write(
            f"{name}: no matching criteria specified\nTry `{name} --help' for more information.\n"
            if sig
            else f"{name}: invalid signal\n"
        )
        return 2
    flags = {"-" + key for key, _ in args.options if len(key) == 1}
    full = "-f" in flags
    exact = "-x" in flags or argv[0] == "killall"
    target = ops[0]
    try:
        regex = re.compile(target)
    except re.error:
        io.err.write(f"{argv[0]}: invalid regular expression\n")
        return 2
    found: list[Proc] = []
    for r in processes(sh):
        text = r.cmd if full else r.comm[:15]
        hit = text == target if exact else regex.search(text) is not None
        if hit and not (r.user == "root" and argv[0] != "pgrep"):
            found.append(r)
    if argv[0] == "pgrep":
        if "-c" in flags:
            io.out.write(f"{len(found)}\n")
        else:
            for r in found:
                io.out.write(f"{r.pid} {r.cmd}\n" if "-a" in flags else f"{r.pid}\n")
        return 0 if found else 1
    myself = False
    for r in found:
        if r.pid == sh.pid:  # pkill -f matched the line's own shell: it ends the line
            myself = sig in ("SIGKILL", "SIGTERM", "SIGHUP", "SIGINT")
            continue
        why = "Operation not permitted" if r.proc is None and r.pid != 1 else ""
        if r.proc is not None:
            why = yield from signal_process(sh, r.proc, sig)
        if why:
            io.err.write(f"{argv[0]}: killing pid {r.pid} failed: {why}\n")
    if myself and sig is not None:
        raise Exit(128 + SIGNUMS[sig])
    if not found and argv[0] == "killall":
        io.err.write(f"{target}: no process found\n")
    return 0 if found else 1


@tool("sleep", options=Options(""))
def sleep(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``sleep SECONDS``: wait (``s``, ``m``, ``h``, ``d`` suffixes; ``infinity``)."""
    total = 0.0
    if not args.operands:
        io.err.write("sleep: missing operand\nTry 'sleep --help' for more information.\n")
        return 1
    for arg in args.operands:
        if arg in ("inf", "infinity"):
            total = math.inf
            continue
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if m is None:
            io.err.write(
                f"sleep: invalid time interval '{arg}'\nTry 'sleep --help' for more information.\n"
            )
            return 1
        total += float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if math.isinf(total):
        yield from sh.block(frame)
    yield from sh.wait(total, frame)
    return 0


@tool("nohup", options=Options("", stop=True, usage=125))
def nohup(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``nohup COMMAND``: run it immune to the session's hang-up."""
    argv = [name, *args.operands]
    if len(argv) < 2:
        io.err.write("nohup: missing operand\nTry 'nohup --help' for more information.\n")
        return 125
    out, err = io.out, io.err
    if out.tty:
        sink = sh.open_sink("nohup.out", append=True)
        if isinstance(sink, str):
            sink = sh.open_sink(HOME + "/nohup.out", append=True)
        if isinstance(sink, str):
            io.err.write(f"nohup: failed to open 'nohup.out': {sink}\n")
            return 125
        io.err.write("nohup: ignoring input and appending output to 'nohup.out'\n")
        out = sink
    if err.tty:
        err = out
    name = argv[1]
    if "/" not in name and name not in BUILTINS and not sh.fs().tool_here(name):
        io.err.write(f"nohup: failed to run command '{name}': No such file or directory\n")
        return 127
    saved, frame.nohup = frame.nohup, True
    try:
        return (yield from sh.command(argv[1:], IO("", out, err, True), frame))
    finally:
        frame.nohup = saved


TIMEOUT = Options(
    "s:k:v",
    long=("signal=s", "kill-after=k", "preserve-status", "foreground", "verbose=v"),
    stop=True,
    usage=125,
)


@tool("timeout", options=TIMEOUT)
def timeout(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``timeout DURATION COMMAND``: run it, ending it (exit 124) if it lasts longer."""
    ops = args.operands
    if len(ops) < 2:
        io.err.write("timeout: missing operand\nTry 'timeout --help' for more information.\n")
        return 125
    m = re.fullmatch(r"(\d+(?:\.\d*)?)([smhd]?)", ops[0])
    if m is None:
        io.err.write(f"timeout: invalid time interval '{ops[0]}'\n")
        return 125
    limit = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    mine = sh.world.env.now + limit
    inner = dataclasses.replace(frame, deadline=min(frame.deadline, mine), started=[])
    try:
        status = yield from sh.command(ops[1:], io, inner)
    except Timeout:
        if sh.world.env.now < mine - 1e-9:
            frame.started += inner.started
            raise
        for proc, _nohup in inner.started:
            end_process(sh, proc, "SIGTERM")
        return 124
    frame.started += inner.started
    frame.job_pid = inner.job_pid
    return status
