"""bash's builtins: ``cd``, ``echo``, ``printf``, ``export``, ``test``, ``source``…"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING

from agents.shell.core import IO, Break, Exit, Frame, Gen, Return
from agents.shell.registry import BUILTINS, builtin
from agents.shell.syntax import ShellSyntaxError, parse
from agents.shell.util import unescape
from sim.machine import HOME

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


@builtin("cd")
def cd(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = [a for a in argv[1:] if a not in ("-L", "-P")]
    if len(args) > 1:
        io.err.write("bash: cd: too many arguments\n")
        return 1
    target = args[0] if args else sh.env.get("HOME", HOME)
    if target == "-":
        target = sh.env.get("OLDPWD", sh.cwd)
        io.out.write(target + "\n")
    path = sh.abspath(target)
    kind = sh.fs().kind(path)
    if kind is None:
        io.err.write(f"bash: cd: {target}: No such file or directory\n")
        return 1
    if kind != "dir":
        io.err.write(f"bash: cd: {target}: Not a directory\n")
        return 1
    sh.env["OLDPWD"] = sh.cwd
    sh.cwd = sh.env["PWD"] = path
    return 0


@builtin("pwd")
def pwd(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    io.out.write(sh.cwd + "\n")
    return 0


@builtin("echo")
def echo(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for flag in args[0][1:]:
            if flag == "n":
                newline = False
            else:
                escapes = flag == "e"
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text, stop = unescape(text)
        newline = newline and not stop
    io.out.write(text + ("\n" if newline else ""))
    return 0


@builtin("printf")
def printf(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    if len(argv) < 2:
        io.err.write("printf: usage: printf [-v var] format [arguments]\n")
        return 2
    fmt = unescape(argv[1])[0]
    pending = argv[2:]
    used = 0

    def fill(m: re.Match[str]) -> str:
        nonlocal used
        flags, conv = m.group(1), m.group(2)
        if conv == "%":
            return "%"
        arg = pending[used] if used < len(pending) else ""
        used += 1
        if conv in "dixXoc":
            try:
                number = int(arg or "0", 0)
            except ValueError:
                number = 0
            return ("%" + flags + conv) % (number if conv != "c" else chr(number))
        if conv == "f":
            try:
                return ("%" + flags + "f") % float(arg or "0")
            except ValueError:
                return ("%" + flags + "f") % 0.0
        if conv == "b":
            return unescape(arg)[0]
        return ("%" + flags + "s") % arg

    spec = re.compile(r"%([-+ 0#]*\d*(?:\.\d+)?)([sdifxXoc%b])")
    out: list[str] = []
    while True:
        used = 0
        out.append(spec.sub(fill, fmt))
        pending = pending[used:]
        if not pending or used == 0:
            break
    io.out.write("".join(out))
    return 0


def _declared(sh: VirtualShell, name: str) -> str:
    value = sh.env[name].replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'declare {"-x" if name in sh.exported else "--"} {name}="{value}"\n'


@builtin("export", "declare", "typeset", "local")
def export(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    """``export``/``declare``/``typeset``/``local``: set variables, mark them exported,
    print them (``-p``)."""
    tool = argv[0]
    if tool == "local" and not sh.locals:
        io.err.write(f"{sh.argv0}: line 1: local: can only be used in a function\n")
        return 1
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    args = [a for a in argv[1:] if not a.startswith("-")]
    exporting = tool == "export" or "x" in flags
    if exporting and "f" in flags:  # ``export -f NAME``: a new bash process inherits it
        status = 0
        for name in args:
            if name in sh.functions:
                sh.exported_functions.add(name)
            else:
                io.err.write(f"{sh.argv0}: line 1: {tool}: {name}: not a function\n")
                status = 1
        return status
    if not args or (flags == "p" and tool != "export"):
        names = args or sorted(n for n in sh.env if tool != "export" or n in sh.exported)
        status = 0
        for name in names:
            if name in sh.env:
                io.out.write(_declared(sh, name))
            else:
                io.err.write(f"{sh.argv0}: line 1: {tool}: {name}: not found\n")
                status = 1
        return status
    status = 0
    for arg in args:
        name, eq, value = arg.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            io.err.write(f"{sh.argv0}: line 1: {tool}: `{arg}': not a valid identifier\n")
            status = 1
            continue
        if tool == "local" and name not in sh.locals[-1]:
            sh.locals[-1][name] = sh.env.get(name)
        if eq:
            sh.env[name] = value
        elif tool == "local":
            sh.env.setdefault(name, "")
        if exporting:
            sh.exported.add(name)
            sh.env.setdefault(name, "")
        elif "n" in flags:
            sh.exported.discard(name)
    return status


@builtin("unset")
def unset(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    for name in argv[1:]:
        if not name.startswith("-"):
            sh.env.pop(name, None)
            sh.exported.discard(name)
            if "-f" in argv:
                sh.functions.pop(name, None)
                sh.exported_functions.discard(name)
    return 0


@builtin("exit")
def exit_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    raise Exit(_code(sh, argv, io))


@builtin("return")
def return_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    if not sh.locals and not frame.sourcing:
        io.err.write(
            f"{sh.argv0}: line 1: return: can only `return' from a function or sourced script\n"
        )
        return 2
    raise Return(_code(sh, argv, io))


def _code(sh: VirtualShell, argv: list[str], io: IO) -> int:
    if len(argv) > 1:
        if not re.fullmatch(r"-?\d+", argv[1]):
            io.err.write(f"{sh.argv0}: line 1: {argv[0]}: {argv[1]}: numeric argument required\n")
            return 2
        return int(argv[1]) & 255
    return sh.status & 255


@builtin("true", ":")
def true(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    return 0


@builtin("false")
def false(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    return 1


@builtin("set")
def set_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    """``set -- ARGS`` (positional parameters), ``set -e``/``+e``; alone, the variables."""
    args = argv[1:]
    if not args:
        io.out.write("".join(f"{k}={v}\n" for k, v in sorted(sh.env.items())))
        return 0
    while args and args[0][:1] in "-+" and args[0] not in ("-", "--"):
        flag = args.pop(0)
        if flag in ("-o", "+o"):
            option = args.pop(0) if args else ""
            if option == "errexit":
                sh.errexit = flag == "-o"
            continue
        if "e" in flag:
            sh.errexit = flag.startswith("-")
    if args and args[0] in ("-", "--"):
        args.pop(0)
        sh.positional = args
    elif args:
        sh.positional = args
    return 0


@builtin("umask")
def umask(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    if len(argv) == 1:
        io.out.write("0022\n")
    return 0


@builtin("ulimit")
def ulimit(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    if len(argv) == 1 or argv[1:] == ["-f"]:
        io.out.write("unlimited\n")
    return 0


@builtin("hash")
def hash_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    if len(argv) == 1:
        io.out.write("hash: hash table empty\n")
    return 0


@builtin("shopt")
def shopt(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    """Every optional behaviour is off (``shopt -q NAME`` fails); setting one is kept
    quiet, as none is modelled."""
    return 1 if "-q" in argv and "-s" not in argv else 0


@builtin("unalias")
def unalias(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")]
    for name in names:
        io.err.write(f"{sh.argv0}: line 1: unalias: {name}: not found\n")
    return 1 if names else 0


@builtin("disown")
def disown(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    if len(argv) == 1 and sh.last_bg is None:
        io.err.write(f"{sh.argv0}: line 1: disown: current: no such job\n")
        return 1
    return 0


@builtin("wait", "jobs", "alias", "trap", "history", "bind", "enable")
def quiet(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    """Builtins that print nothing and succeed in a fresh non-interactive bash (no jobs
    to list or wait for: a line's background jobs outlive it; no aliases, no history)."""
    return 0


@builtin("test", "[", "[[")
def test_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = argv[1:]
    closing = {"[": "]", "[[": "]]"}.get(argv[0])
    if closing is not None:
        if not args or args[-1] != closing:
            io.err.write(f"bash: {argv[0]}: missing `{closing}'\n")
            return 2
        args = args[:-1]
    try:
        return 0 if truth(sh, args) else 1
    except ValueError as error:
        io.err.write(f"bash: {argv[0]}: {error}\n")
        return 2


def truth(sh: VirtualShell, args: list[str]) -> bool:
    if not args:
        return False
    for joiner in ("-o", "||", "-a", "&&"):
        if joiner in args:
            k = args.index(joiner)
            left, right = truth(sh, args[:k]), truth(sh, args[k + 1 :])
            return (left or right) if joiner in ("-o", "||") else (left and right)
    if args[0] == "!":
        return not truth(sh, args[1:])
    if len(args) == 1:
        return args[0] != ""
    fs = sh.fs()
    if len(args) == 2:
        op, operand = args
        if op in ("-z", "-n"):
            return (operand == "") == (op == "-z")
        path = sh.abspath(operand)
        kind = fs.kind(path)
        if op in ("-e", "-a"):
            return kind is not None
        if op == "-f":
            return kind == "file"
        if op == "-d":
            return kind == "dir"
        if op == "-s":
            return kind is not None and fs.stat(path)[1] > 0
        if op in ("-r", "-w"):
            return kind is not None
        if op == "-x":
            return kind is not None and bool(fs.stat(path)[2] & 0o100)
        if op in ("-L", "-h", "-p", "-S", "-b", "-c"):
            return False
        raise ValueError(f"{op}: unary operator expected")
    if len(args) == 3:
        a, op, b = args
        if op in ("=", "=="):
            return fnmatch.fnmatchcase(a, b) if len(args) == 3 and "*" in b else a == b
        if op == "!=":
            return a != b
        if op in ("<", ">"):
            return a < b if op == "<" else a > b
        if op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            for value in (a, b):
                if not re.fullmatch(r"\s*-?\d+\s*", value):
                    raise ValueError(f"{value}: integer expression expected")
            x, y = int(a), int(b)
            return {
                "-eq": x == y,
                "-ne": x != y,
                "-lt": x < y,
                "-le": x <= y,
                "-gt": x > y,
                "-ge": x >= y,
            }[op]
        if op == "=~":
            return re.search(b, a) is not None
    raise ValueError("too many arguments")


@builtin("source", ".")
def source(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    if len(argv) < 2:
        io.err.write(f"bash: {argv[0]}: filename argument required\n")
        return 2
    path = sh.abspath(argv[1])
    if sh.fs().kind(path) != "file":
        io.err.write(f"bash: {argv[1]}: No such file or directory\n")
        return 1
    return (yield from sh.script(path, argv[1], argv[2:], io, frame, here=True))


@builtin("exec")
def exec_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    if len(argv) < 2:
        return 0
    status = yield from sh.command(argv[1:], io, frame)
    raise Exit(status)


@builtin("eval")
def eval_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    try:
        tree = parse(" ".join(argv[1:]))
    except ShellSyntaxError as error:
        io.err.write(f"bash: eval: {error}\n")
        return 2
    return (yield from sh.run_list(tree, io, frame))


@builtin("type", "command")
def type_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    """``type [-t|-p|-P] NAME``, ``command -v|-V NAME``: what a name runs (a function, a
    builtin, or a file found on the session's ``PATH``), and ``command CMD`` runs it."""
    args = argv[1:]
    if argv[0] == "command" and args and args[0] not in ("-v", "-V"):
        return (yield from sh.command(args, io, frame))
    flags = "".join(a[1:] for a in args if a.startswith("-"))
    names = [a for a in args if not a.startswith("-")]
    short = argv[0] == "command" and "v" in flags  # ``command -v``: one word per name
    status = 0
    for name in names:
        if "P" in flags:
            kind, found = "file", sh.find_on_path(name) if "/" not in name else None
        elif name in sh.functions:
            kind, found = "function", name
        elif name in BUILTINS:
            kind, found = "builtin", name
        else:
            kind, found = "file", sh.find_on_path(name) if "/" not in name else None
        if found is None:
            if argv[0] == "type" and not ("t" in flags or "P" in flags or "p" in flags):
                io.err.write(f"bash: type: {name}: not found\n")
            status = 1
        elif "t" in flags:
            io.out.write(kind + "\n")
        elif short or "P" in flags or ("p" in flags and kind == "file"):
            io.out.write(found + "\n")
        elif "p" in flags:
            continue
        elif kind == "function":
            io.out.write(f"{name} is a function\n")
        elif kind == "builtin":
            io.out.write(f"{name} is a shell builtin\n")
        else:
            io.out.write(f"{name} is {found}\n")
    return status


@builtin("break", "continue")
def break_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    levels = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 1
    raise Break(max(1, levels), argv[0] == "continue")


@builtin("read")
def read(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")] or ["REPLY"]
    if not io.stdin:
        return 1
    line = io.stdin.split("\n", 1)[0]
    parts = line.split(None, len(names) - 1)
    for k, name in enumerate(names):
        sh.env[name] = parts[k] if k < len(parts) else ""
    return 0


@builtin("shift")
def shift(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    n = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 1
    if n > len(sh.positional):
        return 1
    sh.positional = sh.positional[n:]
    return 0
