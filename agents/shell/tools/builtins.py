"""bash's builtins: ``cd``, ``echo``, ``printf``, ``export``, ``test``, ``source``…"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING

from agents.shell.core import IO, Break, Exit, Frame, Gen
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


@builtin("export", "declare", "typeset", "local")
def export(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = [a for a in argv[1:] if not a.startswith("-")]
    if not args:
        for name, value in sorted(sh.env.items()):
            io.out.write(f'declare -x {name}="{value}"\n')
        return 0
    for arg in args:
        name, eq, value = arg.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            io.err.write(f"bash: {argv[0]}: `{arg}': not a valid identifier\n")
            return 1
        if eq:
            sh.env[name] = value
        else:
            sh.env.setdefault(name, "")
    return 0


@builtin("unset")
def unset(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    for name in argv[1:]:
        if not name.startswith("-"):
            sh.env.pop(name, None)
    return 0


@builtin("exit", "return")
def exit_(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    code = sh.status
    if len(argv) > 1:
        if not re.fullmatch(r"-?\d+", argv[1]):
            io.err.write(f"bash: exit: {argv[1]}: numeric argument required\n")
            code = 2
        else:
            code = int(argv[1])
    raise Exit(code & 255)


@builtin("true", ":")
def true(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    return 0


@builtin("false")
def false(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    return 1


@builtin(
    "set",
    "wait",
    "jobs",
    "disown",
    "alias",
    "unalias",
    "umask",
    "ulimit",
    "trap",
    "shopt",
    "hash",
    "history",
    "bind",
    "enable",
)
def noop(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
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
    args = argv[1:]
    if argv[0] == "command" and args and args[0] not in ("-v", "-V"):
        return (yield from sh.command(args, io, frame))
    names = [a for a in args if not a.startswith("-")]
    status = 0
    for name in names:
        if name in BUILTINS:
            io.out.write(name + "\n" if argv[0] == "command" else f"{name} is a shell builtin\n")
        elif sh.fs().tool_here(name):
            path = f"/usr/bin/{name}"
            io.out.write(path + "\n" if argv[0] == "command" else f"{name} is {path}\n")
        else:
            if argv[0] == "type":
                io.err.write(f"bash: type: {name}: not found\n")
            status = 1
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
