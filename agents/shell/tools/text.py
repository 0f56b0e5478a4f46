"""Text tools: ``wc``, ``sort``, ``uniq``, ``cut``, ``sed``, ``xargs``, ``tr``, ``seq``,
``cmp``, ``diff`` (``awk`` has a module of its own)."""

from __future__ import annotations

import difflib
import posixpath
import re
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, MAX_LOOP, Frame, Gen
from agents.shell.registry import Args, Options, tool
from agents.shell.tools.files import read_input
from agents.shell.util import bre, char_set, unescape

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


def read_inputs(
    sh: VirtualShell, names: list[str], io: IO, tool: str
) -> tuple[list[tuple[str, str]], int]:
    """(name, text) of each file operand (``-`` or none: stdin); errors printed."""
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


WC = Options("lwcmL", long=("lines=l", "words=w", "bytes=c", "chars=m", "max-line-length=L"))


@tool("wc", options=WC)
def wc(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``wc``: lines, words and bytes, padded as GNU ``wc`` pads them, with a total."""
    chosen = [f for f in "lwmcL" if args.has(f)] or ["l", "w", "c"]
    inputs, status = read_inputs(sh, args.operands, io, "wc")
    rows: list[tuple[list[int], str]] = []
    for shown, text in inputs:
        tally = {
            "l": text.count("\n"),
            "w": len(text.split()),
            "c": len(text.encode()),
            "m": len(text),
            "L": max((len(line) for line in text.splitlines()), default=0),
        }
        rows.append(([tally[f] for f in chosen], shown if args.operands else ""))
    if len(rows) > 1:
        rows.append(([sum(r[0][k] for r in rows) for k in range(len(chosen))], "total"))
    # GNU wc's width: the digits of the files' total size (7 when a stream is read); one
    # count of one input is not padded.
    if len(chosen) == 1 and len(args.operands or ["-"]) == 1:
        width = 1
    elif not args.operands or "-" in args.operands:
        width = 7
    else:
        total = sum(len(text.encode()) for _, text in inputs)
        width = len(str(total))
    for counts, shown in rows:
        cells = " ".join(f"{c:>{width}}" for c in counts)
        io.out.write(cells + (f" {shown}" if shown else "") + "\n")
    return status


SORT = Options(
    "bdfghik:nrst:uVoM",
    long=(
        "numeric-sort=n", "reverse=r", "unique=u", "key=k", "field-separator=t",
        "ignore-case=f", "human-numeric-sort=h", "general-numeric-sort=g", "output=o",
        "version-sort=V", "stable=s",
    ),
    usage=2,
)  # fmt: skip


def _number(text: str) -> float:
    m = re.match(r"\s*(-?\d+(?:\.\d+)?)", text)
    return float(m.group(1)) if m else 0.0


@tool("sort", options=SORT)
def sort(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``sort``: lines by text (``-n`` by number, ``-k N`` by a field, ``-t`` its separator)."""
    lines: list[str] = []
    for operand in args.operands or ["-"]:
        text, error = read_input(sh, operand, io, "sort")
        if text is None:
            io.err.write(f"sort: cannot read: {error.partition(': ')[2]}\n")
            return 2
        lines += text.splitlines()
    key_spec = args.value("k", "") or ""
    column = int(re.match(r"\d*", key_spec).group(0) or 0)  # type: ignore[union-attr]
    sep = args.value("t")
    numeric = args.has("n", "h", "g") or "n" in key_spec
    fold = args.has("f")

    def key(line: str) -> Any:
        field_text = line
        if column:
            parts = line.split(sep) if sep else line.split()
            field_text = parts[column - 1] if column <= len(parts) else ""
        if fold:
            field_text = field_text.upper()
        if numeric:
            return (_number(field_text), line)
        return (field_text, line) if column else field_text

    lines.sort(key=key, reverse=args.has("r") or key_spec.endswith("r"))
    if args.has("u"):
        seen: set[Any] = set()
        unique = []
        for line in lines:
            k = key(line)[0] if numeric or column else line
            if k not in seen:
                seen.add(k)
                unique.append(line)
        lines = unique
    io.out.write("".join(line + "\n" for line in lines))
    return 0


UNIQ = Options("cdui", long=("count=c", "repeated=d", "unique=u", "ignore-case=i"))


@tool("uniq", options=UNIQ)
def uniq(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``uniq``: adjacent repeated lines once (``-c`` counted, ``-d`` only repeated)."""
    inputs, status = read_inputs(sh, args.operands[:1], io, "uniq")
    runs: list[list[Any]] = []
    for _, text in inputs:
        for line in text.splitlines():
            same = runs and (
                runs[-1][0].lower() == line.lower() if args.has("i") else runs[-1][0] == line
            )
            if same:
                runs[-1][1] += 1
            else:
                runs.append([line, 1])
    for line, count in runs:
        if (args.has("d") and count < 2) or (args.has("u") and count > 1):
            continue
        io.out.write(f"{count:>7} {line}\n" if args.has("c") else line + "\n")
    return status


CUT = Options(
    "b:c:d:f:s",
    long=("bytes=b", "characters=c", "delimiter=d", "fields=f", "only-delimited=s"),
)


@tool("cut", options=CUT)
def cut(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``cut``: chosen fields (``-f``, separated by ``-d``) or characters (``-c``)."""
    spec = args.value("f") or args.value("c") or args.value("b") or ""
    if not spec:
        io.err.write(
            "cut: you must specify a list of bytes, characters, or fields\n"
            "Try 'cut --help' for more information.\n"
        )
        return 1
    chosen: list[tuple[int, int]] = []
    for part in spec.split(","):
        a, dash, b = part.partition("-")
        if not (a or b) or not (a.isdigit() or not a) or not (b.isdigit() or not b):
            io.err.write(f"cut: invalid field value '{part}'\n")
            return 1
        lo = int(a) if a else 1
        hi = int(b) if b else (10**9 if dash else lo)
        chosen.append((lo, hi))
    sep = args.value("d", "\t") or "\t"
    if len(sep) != 1:
        io.err.write("cut: the delimiter must be a single character\n")
        return 1
    inputs, status = read_inputs(sh, args.operands, io, "cut")
    by_char = not args.has("f")
    for _, text in inputs:
        for line in text.splitlines():
            if by_char:
                keep = [
                    ch for k, ch in enumerate(line, 1) if any(lo <= k <= hi for lo, hi in chosen)
                ]
                io.out.write("".join(keep) + "\n")
                continue
            if sep not in line:
                if not args.has("s"):
                    io.out.write(line + "\n")
                continue
            parts = line.split(sep)
            keep = [p for k, p in enumerate(parts, 1) if any(lo <= k <= hi for lo, hi in chosen)]
            io.out.write(sep.join(keep) + "\n")
    return status


SED = Options(
    "e:f:inrEs",
    long=("expression=e", "quiet=n", "silent=n", "in-place=i", "regexp-extended=E"),
    after=("Usage: sed [OPTION]... {{script-only-if-no-other-script}} [input-file]...\n\n"),
)


def _sed_script(text: str, extended: bool) -> list[tuple[Any, ...]] | str:
    """Commands of a sed script: (address, command, arguments); or why it is refused."""
    commands: list[tuple[Any, ...]] = []
    k = 0
    n = len(text)
    while k < n:
        while k < n and text[k] in " \t\n;":
            k += 1
        if k >= n:
            break
        start = k
        address: tuple[Any, ...] = ()
        m = re.match(r"(\d+|\$)(?:,(\d+|\$))?", text[k:])
        if m:
            address = ("lines", m.group(1), m.group(2))
            k += m.end()
        elif text[k] == "/":
            end = text.find("/", k + 1)
            while end > 0 and text[end - 1] == "\\":
                end = text.find("/", end + 1)
            if end < 0:
                return f"char {n}: unterminated address regex"
            source = text[k + 1 : end]
            address = ("regex", re.compile(source if extended else bre(source)))
            k = end + 1
        if k >= n:
            return f"char {k}: missing command"
        cmd = text[k]
        k += 1
        if cmd in "pdqP=":
            commands.append((address, cmd))
        elif cmd == "s":
            if k >= n:
                return f"char {k}: unterminated `s' command"
            delim = text[k]
            parts: list[str] = []
            j = k + 1
            current = ""
            while j < n and len(parts) < 2:
                if text[j] == "\\" and j + 1 < n:
                    current += text[j : j + 2] if text[j + 1] != delim else delim
                    j += 2
                    continue
                if text[j] == delim:
                    parts.append(current)
                    current = ""
                else:
                    current += text[j]
                j += 1
            if len(parts) < 2:
                return f"char {n}: unterminated `s' command"
            m = re.match(r"[gIip0-9]*", text[j:])
            flags = m.group(0) if m else ""
            k = j + len(flags)
            pattern = parts[0] if extended else bre(parts[0])
            try:
                regex = re.compile(pattern, re.IGNORECASE if "I" in flags or "i" in flags else 0)
            except re.error:
                return f"char {k}: Invalid preceding regular expression"
            repl = re.sub(r"\\(\d)", r"\\g<\1>", parts[1]).replace("&", r"\g<0>")
            commands.append((address, "s", regex, repl, flags))
        else:
            return f"char {k}: unknown command: `{cmd}'"
        del start
    return commands


def _sed_hit(address: tuple[Any, ...], nr: int, last: int, line: str) -> bool:
    if not address:
        return True
    if address[0] == "regex":
        return address[1].search(line) is not None
    lo = last if address[1] == "$" else int(address[1])
    hi_text = address[2] or address[1]
    hi = last if hi_text == "$" else int(hi_text)
    return lo <= nr <= hi


@tool("sed", options=SED)
def sed(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``sed``: addresses (N, N,M, $, /re/) and the commands s, p, d, q, = ; ``-n``, ``-i``."""
    scripts = args.values("e")
    operands = list(args.operands)
    if not scripts:
        if not operands:
            io.err.write(SED.usage_text("sed", _usage_error()))
            return 1
        scripts = [operands.pop(0)]
    parsed = _sed_script("\n".join(scripts), args.has("E", "r"))
    if isinstance(parsed, str):
        io.err.write(f"sed: -e expression #1, {parsed}\n")
        return 1
    quiet = args.has("n")
    inputs, status = read_inputs(sh, operands, io, "sed")
    for shown, text in inputs:
        lines = text.splitlines()
        out: list[str] = []
        stop = False
        for nr, line in enumerate(lines, 1):
            deleted = False
            for command in parsed:
                address, cmd = command[0], command[1]
                if not _sed_hit(address, nr, len(lines), line):
                    continue
                if cmd == "s":
                    _, _, regex, repl, flags = command
                    count = 0 if "g" in flags else 1
                    line, made = regex.subn(repl, line, count=count)
                    if made and "p" in flags:
                        out.append(line)
                elif cmd == "p":
                    out.append(line)
                elif cmd == "=":
                    out.append(str(nr))
                elif cmd == "d":
                    deleted = True
                    break
                elif cmd == "q":
                    stop = True
                    break
            if not deleted and not quiet:
                out.append(line)
            if stop:
                break
        result = "".join(line + "\n" for line in out)
        if args.has("i") and shown != "-":
            sh.fs().write(sh.abspath(shown), result)
        else:
            io.out.write(result)
    return status


def _usage_error() -> Any:
    from agents.shell.registry import UsageError

    return UsageError("no script specified", 1)


XARGS = Options(
    "0I:n:d:P:rtL:",
    long=("null=0", "max-args=n", "delimiter=d", "max-procs=P", "no-run-if-empty=r"),
    stop=True,
)


@tool("xargs", options=XARGS)
def xargs(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``xargs``: run a command with the words of stdin as arguments (``-n``, ``-I``)."""
    command = args.operands or ["echo"]
    delimiter = "\0" if args.has("0") else args.value("d")
    items = io.stdin.split(unescape(delimiter)[0]) if delimiter else io.stdin.split()
    items = [i for i in items if i]
    status = 0
    token = args.value("I")
    if token is not None:
        for item in items:
            code = yield from sh.command(
                [w.replace(token, item) for w in command], IO("", io.out, io.err, io.nohup), frame
            )
            status = status or (123 if code else 0)
        return status
    size_text = args.value("n") or args.value("L") or ""
    size = int(size_text) if size_text.isdigit() else len(items) or 1
    batches = [items[k : k + size] for k in range(0, len(items), size)]
    if not batches and not args.has("r"):
        batches = [[]]
    for batch in batches:
        code = yield from sh.command([*command, *batch], IO("", io.out, io.err, io.nohup), frame)
        status = status or (123 if code else 0)
    return status


TR = Options("cdst", long=("complement=c", "delete=d", "squeeze-repeats=s", "truncate-set1=t"))


@tool("tr", options=TR)
def tr(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``tr``: translate, delete (``-d``) or squeeze (``-s``) characters of stdin."""
    sets = args.operands
    if not sets:
        io.err.write("tr: missing operand\nTry 'tr --help' for more information.\n")
        return 1
    first = char_set(sets[0])
    text = io.stdin
    if args.has("d"):
        text = "".join(c for c in text if c not in first)
        if args.has("s") and len(sets) > 1:
            squeeze = char_set(sets[1])
            text = re.sub("([" + re.escape("".join(squeeze)) + "])\\1+", r"\1", text)
        io.out.write(text)
        return 0
    if len(sets) < 2:
        if args.has("s"):
            io.out.write(re.sub("([" + re.escape("".join(first)) + "])\\1+", r"\1", text))
            return 0
        io.err.write(
            f"tr: missing operand after '{sets[0]}'\n"
            "Two strings must be given when translating.\n"
            "Try 'tr --help' for more information.\n"
        )
        return 1
    second = char_set(sets[1])
    table = {c: second[min(k, len(second) - 1)] for k, c in enumerate(first) if second}
    text = "".join(table.get(c, c) for c in text)
    if args.has("s"):
        text = re.sub("([" + re.escape("".join(second)) + "])\\1+", r"\1", text)
    io.out.write(text)
    return 0


SEQ = Options("f:s:w", long=("format=f", "separator=s", "equal-width=w"), negatives=True)


@tool("seq", options=SEQ)
def seq(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``seq [FIRST [STEP]] LAST``, with ``-s`` a separator and ``-w`` equal widths."""
    nums = args.operands
    if not nums:
        io.err.write("seq: missing operand\nTry 'seq --help' for more information.\n")
        return 1
    if len(nums) > 3:
        io.err.write(f"seq: extra operand '{nums[3]}'\nTry 'seq --help' for more information.\n")
        return 1
    for value in nums:
        if not re.fullmatch(r"-?\d+", value):
            io.err.write(
                f"seq: invalid floating point argument: '{value}'\n"
                "Try 'seq --help' for more information.\n"
            )
            return 1
    first, step, last = 1, 1, int(nums[-1])
    if len(nums) >= 2:
        first = int(nums[0])
    if len(nums) == 3:
        step = int(nums[1])
    if step == 0:
        io.err.write("seq: invalid Zero increment value: '0'\n")
        return 1
    values = list(range(first, last + (1 if step > 0 else -1), step))[:MAX_LOOP]
    width = max((len(str(v)) for v in values), default=0) if args.has("w") else 0
    sep = unescape(args.value("s", "\n") or "")[0]
    if values:
        io.out.write(sep.join(f"{v:0{width}d}" for v in values) + "\n")
    return 0


CMP = Options("bls", long=("print-bytes=b", "verbose=l", "quiet=s", "silent=s"), usage=2)


@tool("cmp", options=CMP)
def cmp(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``cmp A B``: where two files first differ (exit 1), or nothing (exit 0)."""
    if len(args.operands) < 2:
        missing = "" if not args.operands else f" after '{args.operands[0]}'"
        io.err.write(f"cmp: missing operand{missing}\nTry 'cmp --help' for more information.\n")
        return 2
    a_name, b_name = args.operands[:2]
    texts = []
    for operand in (a_name, b_name):
        text, error = read_input(sh, operand, io, "cmp")
        if text is None:
            io.err.write(error + "\n")
            return 2
        texts.append(text.encode())
    a, b = texts
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            if not args.has("s"):
                line = a[:k].count(b"\n") + 1
                io.out.write(f"{a_name} {b_name} differ: byte {k + 1}, line {line}\n")
            return 1
    if len(a) != len(b):
        if not args.has("s"):
            short = a_name if len(a) < len(b) else b_name
            io.err.write(f"cmp: EOF on {short} after byte {min(len(a), len(b))}\n")
        return 1
    return 0


DIFF = Options("qrubwiN", long=("brief=q", "recursive=r", "unified=u", "new-file=N"), usage=2)


@tool("diff", options=DIFF)
def diff(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``diff A B``: the normal diff of two files (``-q``: whether they differ; ``-r``:
    folders, recursively)."""
    if len(args.operands) != 2:
        io.err.write(
            f"diff: missing operand after '{args.operands[-1]}'\n"
            if args.operands
            else "diff: missing operand after 'diff'\n"
        )
        io.err.write("diff: Try 'diff --help' for more information.\n")
        return 2
    fs = sh.fs()
    a_name, b_name = args.operands
    a_path, b_path = sh.abspath(a_name), sh.abspath(b_name)
    for shown, path in ((a_name, a_path), (b_name, b_path)):
        if fs.kind(path) is None:
            io.err.write(f"diff: {shown}: No such file or directory\n")
            return 2
    if fs.kind(a_path) == "dir" and fs.kind(b_path) == "dir":
        if not args.has("r"):
            status = 0
            for entry in sorted(set(fs.listdir(a_path)) | set(fs.listdir(b_path))):
                status |= _diff_files(sh, io, args, f"{a_name}/{entry}", f"{b_name}/{entry}", True)
            return status
        status = 0
        for rel in sorted(
            {posixpath.relpath(p, a_path) for p in fs.walk(a_path) if p != a_path}
            | {posixpath.relpath(p, b_path) for p in fs.walk(b_path) if p != b_path}
        ):
            left, right = posixpath.join(a_name, rel), posixpath.join(b_name, rel)
            lk, rk = fs.kind(sh.abspath(left)), fs.kind(sh.abspath(right))
            if lk is None or rk is None:
                where = posixpath.dirname(right if lk is None else left)
                io.out.write(f"Only in {where}: {posixpath.basename(rel)}\n")
                status = 1
            elif lk == "file" and rk == "file":
                status |= _diff_files(sh, io, args, left, right, True)
        return status
    if fs.kind(b_path) == "dir":
        b_name = posixpath.join(b_name, posixpath.basename(a_name))
    return _diff_files(sh, io, args, a_name, b_name, False)


def _diff_files(
    sh: VirtualShell, io: IO, args: Args, a_name: str, b_name: str, header: bool
) -> int:
    fs = sh.fs()
    a_path, b_path = sh.abspath(a_name), sh.abspath(b_name)
    if fs.kind(a_path) != "file" or fs.kind(b_path) != "file":
        return 0
    a, b = fs.read(a_path), fs.read(b_path)
    if a == b and (a is not None or fs.stat(a_path)[1] == fs.stat(b_path)[1]):
        return 0
    if a is None or b is None or args.has("q"):
        io.out.write(
            f"Binary files {a_name} and {b_name} differ\n"
            if not args.has("q")
            else f"Files {a_name} and {b_name} differ\n"
        )
        return 1
    if header:
        io.out.write(f"diff {'-r ' if args.has('r') else ''}{a_name} {b_name}\n")
    left, right = a.splitlines(), b.splitlines()

    def span(lo: int, hi: int) -> str:
        return f"{lo + 1}" if hi - lo == 1 else f"{lo + 1},{hi}"

    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "delete":
            io.out.write(f"{span(i1, i2)}d{j1}\n")
        elif op == "insert":
            io.out.write(f"{i1}a{span(j1, j2)}\n")
        else:
            io.out.write(f"{span(i1, i2)}c{span(j1, j2)}\n")
        io.out.write("".join(f"< {line}\n" for line in left[i1:i2]))
        if op == "replace":
            io.out.write("---\n")
        io.out.write("".join(f"> {line}\n" for line in right[j1:j2]))
    return 1
