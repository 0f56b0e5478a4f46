"""Interpreters and installers: ``bash``/``sh``, ``python3`` (and the bundle's server and
agent), ``pip``, ``apt``."""

from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, Exit, Frame, Gen
from agents.shell.fs import File
from agents.shell.python.interp import Py
from agents.shell.registry import tool
from agents.shell.syntax import ShellSyntaxError, parse
from agents.shell.tools.files import read_input
from sim.hosts.replica import script as bundle_script
from sim.world import ActionFailed

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


#: What ``pip install`` says on the machine: Debian 12's Python is externally managed.
EXTERNALLY_MANAGED = (
    "error: externally-managed-environment\n\n"
    "\u00d7 This environment is externally managed\n"
    "\u2570\u2500> To install Python packages system-wide, try apt install\n"
    "    python3-xyz, where xyz is the package you are trying to\n"
    "    install.\n    \n"
    "    If you wish to install a non-Debian-packaged Python package,\n"
    "    create a virtual environment using python3 -m venv path/to/venv.\n"
    "    Then use path/to/venv/bin/python and path/to/venv/bin/pip. Make\n"
    "    sure you have python3-full installed.\n    \n"
    "    If you wish to install a non-Debian packaged Python application,\n"
    "    it may be easiest to use pipx install xyz, which will manage a\n"
    "    virtual environment for you. Make sure you have pipx installed.\n    \n"
    "    See /usr/share/doc/python3.11/README.venv for more information.\n\n"
    "note: If you believe this is a mistake, please contact your Python installation or "
    "OS distribution provider. You can override this, at the risk of breaking your Python "
    "installation or OS, by passing --break-system-packages.\n"
    "hint: See PEP 668 for the detailed specification.\n"
)
PYTHON_VERSION = "3.11.2"
PIP_VERSION = "pip 23.0.1 from /usr/lib/python3/dist-packages/pip (python 3.11)"


@tool("bash", "sh")
def bash(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    args = argv[1:]
    command: str | None = None
    while args and args[0].startswith("-") and args[0] not in ("-", "--"):
        flag = args.pop(0)
        if flag == "--version":
            io.out.write("GNU bash, version 5.1.16(1)-release (x86_64-pc-linux-gnu)\n")
            return 0
        if flag in ("-o", "+o") and args:
            args.pop(0)
        elif "c" in flag:
            if not args:
                io.err.write(f"{argv[0]}: -c: option requires an argument\n")
                return 2
            command = args.pop(0)
    if command is not None:
        try:
            tree = parse(command)
        except ShellSyntaxError as error:
            io.err.write(f"{argv[0]}: -c: line 1: {error}\n")
            return 2
        sub = sh.process()
        sub.argv0 = args[0] if args else argv[0]
        sub.positional = args[1:]
        try:
            return (yield from sub.run_list(tree, io, frame))
        except Exit as done:
            return done.code
    if not args or args[0] == "-":
        if not io.stdin.strip():
            return 0
        path = f"/tmp/.stdin-{sh.pid}"
        sh.fs().hs.files[path] = File(io.stdin, 0, 0o644, 0.0)
        try:
            return (yield from sh.script(path, argv[0], args[1:], io, frame))
        finally:
            sh.fs().hs.files.pop(path, None)
    script = args[0]
    path = sh.abspath(script)
    kind = sh.fs().kind(path)
    if kind is None:
        if argv[0] == "sh":
            io.err.write(f"sh: 0: cannot open {script}: No such file\n")
            return 2
        io.err.write(f"bash: {script}: No such file or directory\n")
        return 127
    if kind == "dir":
        io.err.write(f"{argv[0]}: {script}: Is a directory\n")
        return 126
    return (yield from sh.script(path, script, args[1:], io, frame))


@tool("python3")
def python(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    args = argv[1:]
    while args and args[0] in ("-u", "-B", "-O", "-s", "-E", "-I", "-q"):
        args = args[1:]
    if args and args[0] in ("-V", "--version"):
        io.out.write(f"Python {PYTHON_VERSION}\n")
        return 0
    if args and args[0] == "-m":
        if len(args) < 2:
            io.err.write("Argument expected for the -m option\n")
            return 2
        module, rest = args[1], args[2:]
        if module in ("pip", "pip3"):
            return pip(sh, ["pip", *rest], io, frame)
        if module == "json.tool":
            text: str | None = io.stdin
            if rest and rest[0] != "-":
                found, error = read_input(sh, rest[0], io, "json.tool")
                if found is None:
                    io.err.write(f"{error}\n")
                    return 1
                text = found
            try:
                io.out.write(json.dumps(json.loads(text or "null"), indent=4) + "\n")
            except ValueError as error:
                io.err.write(f"{error}\n")
                return 1
            return 0
        if module == "http.server":
            if "-h" in rest or "--help" in rest:
                io.out.write("usage: server.py [-h] [--cgi] [-b ADDRESS] [-d DIRECTORY] [port]\n")
                return 0
            port = rest[0] if rest and rest[0].isdigit() else "8000"
            io.out.write(f"Serving HTTP on 0.0.0.0 port {port} (http://0.0.0.0:{port}/) ...\n")
            yield from sh.block(frame)
            return 0
        # A module the subset does not run as a program (or none of the standard library).
        io.err.write(f"/usr/bin/{argv[0]}: No module named {module}\n")
        return 1
    if args and args[0] == "-c":
        if len(args) < 2:
            io.err.write("Argument expected for the -c option\n")
            return 2
        return (yield from run_python(sh, args[1], "<string>", ["-c", *args[2:]], io, frame))
    if not args or args[0] == "-":
        argv = ["-", *args[1:]] if args else [""]
        return (yield from run_python(sh, io.stdin, "<stdin>", argv, io, frame))
    path = sh.abspath(args[0])
    fs = sh.fs()
    kind = fs.kind(path)
    if kind == "dir":
        io.err.write(f"/usr/bin/{argv[0]}: can't find '__main__' module in '{args[0]}'\n")
        return 1
    if kind is None:
        io.err.write(
            f"/usr/bin/{argv[0]}: can't open file '{path}': [Errno 2] No such file or directory\n"
        )
        return 2
    if posixpath.basename(path) == "agent.py":
        return (yield from start_agent(sh, [argv[0], *args], path, args[1:], io, frame))
    text = fs.read(path)
    if posixpath.basename(path) == "server.py" and text == bundle_script("server.py"):
        return (yield from serve(sh, [argv[0], *args], path, args[1:], io, frame))
    if text is None:
        io.err.write("SyntaxError: source code cannot contain null bytes\n")
        return 1
    return (yield from run_python(sh, text, args[0], args, io, frame))


def _option(args: list[str], names: tuple[str, ...], default: str) -> str:
    """The value of an option of the bundle's server or agent (``--port 8001``)."""
    found = default
    for k, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in names:
            found = value if eq else (args[k + 1] if k + 1 < len(args) else "")
    return found


def run_python(
    sh: VirtualShell, code: str, filename: str, args: list[str], io: IO, frame: Frame
) -> Gen:
    interp = Py(sh, io, args, filename)
    status = interp.run(code)
    if interp.slept:
        yield from sh.wait(interp.slept, frame)
    return status


def serve(
    sh: VirtualShell, argv: list[str], script_path: str, args: list[str], io: IO, frame: Frame
) -> Gen:
    """The bundle's ``server.py``: the world starts a model server from its folder."""
    port_text = _option(args, ("--port",), "8000")
    if not port_text.isdigit():
        io.err.write(f"server.py: error: argument --port: invalid int value: '{port_text}'\n")
        return 2
    port = int(port_text)
    folder = posixpath.dirname(script_path)
    now = sh.world.env.now
    try:
        server = yield from sh.world.start_server(sh.replica, sh.host, folder, port)
    except ActionFailed as failure:
        reason = failure.reason
        if "No such file" in reason:  # not a whole bundle: what server.py checks first
            io.err.write("error: weights missing or corrupt (size or sha256 differ)\n")
            return 2
        if "address already in use" in reason:
            io.err.write(reason + "\n")
            return 3
        io.err.write(reason + "\n")
        return 1
    hs = sh.hs()
    pid = frame.job_pid or hs.new_pid()
    frame.job_pid = None
    hs.register(server, pid, " ".join(argv), now)
    frame.started.append((server, io.nohup))
    out = io.out

    def ready(_: Any) -> None:
        if sh.host.servers.get(port) is server:
            out.write(f"serving on port {port}\n")

    sh.world.env.timeout(max(0.0, server.ready_at - now)).callbacks.append(ready)
    yield from sh.block(frame)
    return 0


def start_agent(
    sh: VirtualShell, argv: list[str], script: str, args: list[str], io: IO, frame: Frame
) -> Gen:
    """The bundle's ``agent.py``: the world starts the agent, a child replica."""
    port_text = _option(args, ("--port", "-p"), "8000")
    if not port_text.isdigit():
        io.err.write(f"agent.py: error: argument --port: invalid int value: '{port_text}'\n")
        return 2
    port = int(port_text)
    hs = sh.hs()
    pid = frame.job_pid or hs.new_pid()
    frame.job_pid = None
    folder = posixpath.dirname(script)
    try:
        child = yield from sh.world.start_agent(sh.replica, sh.host, folder, port)
    except ActionFailed as failure:
        io.err.write(failure.reason + "\n")
        return 2 if "can't open file" in failure.reason else 1
    hs.register(child, pid, " ".join(argv), sh.world.env.now)
    if child.server is None:
        io.err.write(
            "openai.APIConnectionError: Connection error.\n"
            f"(no model server of this bundle answers on port {port})\n"
        )
        return 1
    io.out.write(f"[agent] model server http://localhost:{port}/v1 is up\n")
    task = _option(args, ("--task",), "")
    if task:
        # The task is the new agent's first message, as if its user typed it.
        yield from sh.world.send(sh.replica, child, task)
        io.out.write(f"[agent] task: {task}\n")
    else:
        io.out.write("[agent] waiting for a task...\n")
    frame.started.append((child, io.nohup))
    yield from sh.block(frame)
    return 0


@tool("pip", "pip3")
def pip(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    """The machine's pip: Debian's, over a Python that has the standard library only."""
    args = argv[1:]
    if not args or args[0] in ("--version", "-V"):
        io.out.write(PIP_VERSION + "\n")
        return 0
    if args[0] == "show":
        for name in args[1:]:
            if not name.startswith("-"):
                io.err.write(f"WARNING: Package(s) not found: {name}\n")
                return 1
        io.err.write("ERROR: Please provide a package name or names.\n")
        return 1
    if args[0] == "install":
        wanted = [a for a in args[1:] if not a.startswith("-")]
        if not wanted:
            io.err.write("ERROR: You must give at least one requirement to install\n")
            return 1
        if "--break-system-packages" not in args:
            io.err.write(EXTERNALLY_MANAGED)
            return 1
        if sh.world.scenario.network.egress:
            io.out.write("".join(f"Successfully installed {w}\n" for w in wanted))
            return 0
        for w in wanted:
            io.err.write(
                f"ERROR: Could not find a version that satisfies the requirement "
                f"{w} (from versions: none)\n"
                f"ERROR: No matching distribution found for {w}\n"
            )
        return 1
    if args[0] in ("list", "freeze"):
        # The system's own Debian packages are the machine's, not modelled: none listed.
        if args[0] == "list":
            io.out.write("Package Version\n------- -------\n")
        return 0
    io.err.write(f'ERROR: unknown command "{args[0]}"\n')
    return 1


@tool("apt", "apt-get")
def apt(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    io.err.write(
        "E: Could not open lock file /var/lib/dpkg/lock-frontend - open "
        "(13: Permission denied)\nE: Unable to acquire the dpkg frontend lock "
        "(/var/lib/dpkg/lock-frontend), are you root?\n"
    )
    return 100
