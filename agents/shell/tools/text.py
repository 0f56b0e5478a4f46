"""Text tools: ``wc``, ``sort``, ``uniq``, ``cut``, ``awk``, ``sed``, ``xargs``, ``tr``, ``seq``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, MAX_LOOP, Frame, Gen
from agents.shell.registry import tool
from agents.shell.tools.files import read_input
from agents.shell.util import bre, char_set, old_opts

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


def read_inputs(
    sh: VirtualShell, names: list[str], io: IO, tool: str
) -> tuple[list[tuple[str, str]], int]:
    found: list[tuple[str, str]] = []
    status = 0
    for name in names or ["-"]:
        text, error = read_input(sh, name, io, tool)
        if text is None:
            io.err.write(error + "\n")
            status = 1
        else:
            found.append((name, text))
    return found, status


@tool("wc")
def wc(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, names = old_opts(argv[1:])
    chosen = [f for f in ("-l", "-w", "-c", "-m") if f in flags] or ["-l", "-w", "-c"]
    inputs, status = read_inputs(sh, names, io, "wc")
    for name, text in inputs:
        counts = {
            "-l": text.count("\n"),
            "-w": len(text.split()),
            "-c": len(text.encode()),
            "-m": len(text),
        }
        cells = [str(counts[f]) for f in chosen]
        if names:
            io.out.write(" ".join(cells) + f" {name}\n")
        else:
            io.out.write(
                (cells[0] if len(cells) == 1 else " ".join(f"{c:>7}" for c in cells)) + "\n"
            )
    return status


@tool("sort")
def sort(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, values, names = old_opts(argv[1:], takes={"-k", "-t"})
    inputs, status = read_inputs(sh, names, io, "sort")
    lines = [line for _, text in inputs for line in text.splitlines()]
    column = int(values["-k"].split(",")[0].rstrip("nr")) if "-k" in values else 0
    sep = values.get("-t")

    def key(line: str) -> Any:
        field_text = line
        if column:
            parts = line.split(sep) if sep else line.split()
            field_text = parts[column - 1] if column <= len(parts) else ""
        if flags & {"-n", "-h", "-g"} or "n" in values.get("-k", ""):
            m = re.match(r"\s*(-?\d+(?:\.\d+)?)", field_text)
            return (float(m.group(1)) if m else 0.0, field_text)
        return field_text

    lines.sort(key=key, reverse=bool(flags & {"-r"}))
    if "-u" in flags:
        lines = list(dict.fromkeys(lines))
    io.out.write("".join(line + "\n" for line in lines))
    return status


@tool("uniq")
def uniq(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, names = old_opts(argv[1:])
    inputs, status = read_inputs(sh, names[:1], io, "uniq")
    runs: list[list[Any]] = []
    for _, text in inputs:
        for line in text.splitlines():
            if runs and runs[-1][0] == line:
                runs[-1][1] += 1
            else:
                runs.append([line, 1])
    for line, count in runs:
        if "-d" in flags and count < 2:
            continue
        io.out.write(f"{count:>7} {line}\n" if "-c" in flags else line + "\n")
    return status


@tool("cut")
def cut(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    _, values, names = old_opts(argv[1:], takes={"-d", "-f", "-c", "--delimiter", "--fields"})
    spec = values.get("-f", values.get("--fields", values.get("-c", "")))
    if not spec:
        io.err.write("cut: you must specify a list of bytes, characters, or fields\n")
        return 1
    chosen: list[tuple[int, int]] = []
    for part in spec.split(","):
        a, dash, b = part.partition("-")
        lo = int(a) if a else 1
        hi = int(b) if b else (10**9 if dash else lo)
        chosen.append((lo, hi))
    sep = values.get("-d", values.get("--delimiter", "\t"))
    inputs, status = read_inputs(sh, names, io, "cut")
    for _, text in inputs:
        for line in text.splitlines():
            if "-c" in values:
                keep = [
                    ch for k, ch in enumerate(line, 1) if any(lo <= k <= hi for lo, hi in chosen)
                ]
                io.out.write("".join(keep) + "\n")
                continue
            if sep not in line:
                io.out.write(line + "\n")
                continue
            parts = line.split(sep)
            keep = [p for k, p in enumerate(parts, 1) if any(lo <= k <= hi for lo, hi in chosen)]
            io.out.write(sep.join(keep) + "\n")
    return status


@tool("awk", "mawk")
def awk(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    _, values, ops = old_opts(argv[1:], takes={"-F", "-v"})
    if not ops:
        io.err.write("usage: awk [-F fs][-v var=value][prog | -f progfile][file ...]\n")
        return 2
    program, names = ops[0].strip(), ops[1:]
    m = re.fullmatch(
        r"(?:/(?P<re>(?:[^/\\]|\\.)*)/|NR\s*(?P<op>==|>=|<=|>|<)\s*(?P<nr>\d+)|"
        r"\$(?P<col>\d+)\s*~\s*/(?P<colre>(?:[^/\\]|\\.)*)/)?\s*"
        r"(?:\{\s*print\s*(?P<args>[^;}]*?)\s*;?\s*\})?",
        program,
    )
    end = re.fullmatch(r"END\s*\{\s*print\s+NR\s*;?\s*\}", program)
    if m is None and end is None:
        io.err.write(
            f"awk: cmd. line:1: {program}\nawk: cmd. line:1: syntax error (this "
            "virtual awk knows patterns, NR tests and print)\n"
        )
        return 2
    sep = values.get("-F")
    inputs, status = read_inputs(sh, names, io, "awk")
    lines = [line for _, text in inputs for line in text.splitlines()]
    if end is not None:
        io.out.write(f"{len(lines)}\n")
        return status
    assert m is not None
    for nr, line in enumerate(lines, 1):
        fields = line.split(sep) if sep else line.split()
        if m.group("re") is not None and not re.search(m.group("re"), line):
            continue
        if m.group("nr") is not None:
            x, y = nr, int(m.group("nr"))
            if not {"==": x == y, ">": x > y, "<": x < y, ">=": x >= y, "<=": x <= y}[
                m.group("op")
            ]:
                continue
        if m.group("col") is not None:
            k = int(m.group("col"))
            value = fields[k - 1] if 0 < k <= len(fields) else line if k == 0 else ""
            if not re.search(m.group("colre"), value):
                continue
        args = m.group("args")
        if not args:
            io.out.write(line + "\n")
            continue
        out: list[str] = []
        for arg in re.split(r"\s*,\s*", args):
            if arg == "$0":
                out.append(line)
            elif arg == "NF":
                out.append(str(len(fields)))
            elif arg == "NR":
                out.append(str(nr))
            elif arg == "$NF":
                out.append(fields[-1] if fields else "")
            elif re.fullmatch(r"\$\d+", arg):
                k = int(arg[1:])
                out.append(fields[k - 1] if 0 < k <= len(fields) else "")
            elif arg.startswith('"') and arg.endswith('"'):
                out.append(arg[1:-1])
            else:
                out.append("")
        io.out.write(" ".join(out) + "\n")
    return status


@tool("sed")
def sed(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, values, ops = old_opts(argv[1:], takes={"-e"})
    script = values.get("-e")
    if script is None:
        if not ops:
            io.err.write(
                "Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...\n"
            )
            return 1
        script, ops = ops[0], ops[1:]
    quiet = "-n" in flags
    sub = re.fullmatch(r"s(.)(.*?)\1(.*?)\1([gI0-9]*)", script, re.DOTALL)
    rng = re.fullmatch(r"(\d+|\$)(?:,(\d+|\$))?([pd])", script)
    pat = re.fullmatch(r"/(.*)/([pd])", script)
    if sub is None and rng is None and pat is None:
        io.err.write(
            f"sed: -e expression #1, char {len(script)}: unknown command: `{script[:1]}'\n"
        )
        return 1
    inputs, status = read_inputs(sh, ops, io, "sed")
    for name, text in inputs:
        lines = text.splitlines()
        out: list[str] = []
        for nr, line in enumerate(lines, 1):
            if sub is not None:
                regex = re.compile(
                    bre(sub.group(2)) if "-E" not in flags and "-r" not in flags else sub.group(2),
                    re.IGNORECASE if "I" in sub.group(4) else 0,
                )
                repl = re.sub(r"\\(\d)", r"\\g<\1>", sub.group(3)).replace("&", r"\g<0>")
                line = regex.sub(repl, line, count=0 if "g" in sub.group(4) else 1)
                if not quiet:
                    out.append(line)
                continue
            if rng is not None:
                lo = len(lines) if rng.group(1) == "$" else int(rng.group(1))
                hi_text = rng.group(2) or rng.group(1)
                hi = len(lines) if hi_text == "$" else int(hi_text)
                hit = lo <= nr <= hi
                action = rng.group(3)
            else:
                assert pat is not None
                hit = re.search(bre(pat.group(1)), line) is not None
                action = pat.group(2)
            if action == "d":
                if not hit:
                    out.append(line)
            else:
                if not quiet:
                    out.append(line)
                if hit:
                    out.append(line)
        result = "".join(line + "\n" for line in out)
        if "-i" in flags and name != "-":
            sh.fs().write(sh.abspath(name), result)
        else:
            io.out.write(result)
    return status


@tool("xargs")
def xargs(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    _, values, command = old_opts(argv[1:], takes={"-I", "-n", "-d", "-P"}, stop_at_operand=True)
    command = command or ["echo"]
    items = io.stdin.split(values["-d"]) if "-d" in values else io.stdin.split()
    items = [i for i in items if i]
    status = 0
    if "-I" in values:
        token = values["-I"]
        for item in items:
            code = yield from sh.command(
                [w.replace(token, item) for w in command],
                IO("", io.out, io.err, io.nohup),
                frame,
            )
            status = status or (123 if code else 0)
        return status
    size = int(values["-n"]) if values.get("-n", "").isdigit() else len(items) or 1
    batches = [items[k : k + size] for k in range(0, len(items), size)] or [[]]
    for batch in batches:
        code = yield from sh.command([*command, *batch], IO("", io.out, io.err, io.nohup), frame)
        status = status or (123 if code else 0)
    return status


@tool("tr")
def tr(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, sets = old_opts(argv[1:])
    if not sets:
        io.err.write("tr: missing operand\n")
        return 1
    first = char_set(sets[0])
    if flags & {"-d", "--delete"}:
        io.out.write("".join(c for c in io.stdin if c not in first))
        return 0
    if len(sets) < 2:
        io.err.write(f"tr: missing operand after '{sets[0]}'\n")
        return 1
    second = char_set(sets[1])
    table = {c: second[min(k, len(second) - 1)] for k, c in enumerate(first) if second}
    text = "".join(table.get(c, c) for c in io.stdin)
    if flags & {"-s", "--squeeze-repeats"}:
        text = re.sub("([" + re.escape("".join(second)) + "])\\1+", r"\1", text)
    io.out.write(text)
    return 0


@tool("seq")
def seq(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    nums = [a for a in argv[1:] if re.fullmatch(r"-?\d+", a)]
    if not nums or len(nums) > 3:
        io.err.write("seq: missing operand\n")
        return 1
    first, step, last = 1, 1, int(nums[-1])
    if len(nums) >= 2:
        first = int(nums[0])
    if len(nums) == 3:
        step = int(nums[1])
    if step == 0:
        io.err.write("seq: invalid Zero increment value: '0'\n")
        return 1
    values = range(first, last + (1 if step > 0 else -1), step)
    io.out.write("".join(f"{v}\n" for v in list(values)[:MAX_LOOP]))
    return 0
