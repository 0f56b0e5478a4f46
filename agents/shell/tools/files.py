"""Files: ``ls``, ``cat``, ``head``/``tail``, ``grep``, ``find``, ``mkdir``, ``touch``, ``mv``,
``rm``, ``chmod``, ``tee``, ``dirname``, ``realpath``."""

from __future__ import annotations

import fnmatch
import json
import math
import posixpath
import re
from typing import TYPE_CHECKING

from agents.shell.core import IO, Frame, Gen
from agents.shell.fs import FS
from agents.shell.registry import Args, Options, UsageError, tool
from agents.shell.util import (
    binary_preview,
    bre,
    human_size,
    join_shown,
    ls_date,
    mode_text,
    old_opts,
)

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


LS = Options(
    "aAdFhlR1rtSgonI:",
    long=(
        "all=a", "almost-all=A", "directory=d", "classify=F", "human-readable=h",
        "recursive=R", "reverse=r", "color=", "colour=color", "sort=", "ignore=I",
        "numeric-uid-gid=n", "full-time",
    ),
    usage=2,
)  # fmt: skip


@tool("ls", options=LS)
def ls(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``ls``: the names (``-l``: the details) of files and folders, sorted by name."""
    long = args.has("l", "g", "o", "n") and args.last("l", "g", "o", "n", "1") != "1"
    show_all, almost = args.has("a"), args.has("A")
    fs = sh.fs()
    status = 0
    files: list[tuple[str, str]] = []
    dirs: list[tuple[str, str]] = []
    for shown in args.operands or ["."]:
        path = sh.abspath(shown)
        kind = fs.kind(path)
        if kind is None:
            io.err.write(f"ls: cannot access '{shown}': No such file or directory\n")
            status = 2
        elif path == "/root":
            io.err.write("ls: cannot open directory '/root': Permission denied\n")
            status = 2
        elif kind == "dir" and not args.has("d"):
            dirs.append((shown, path))
        else:
            files.append((shown, path))
    blocks: list[str] = []
    if files:
        blocks.append(ls_lines(fs, _ls_sorted(fs, files, args), long, args, total=False))
    headed = args.has("R") or len(files) + len(dirs) > 1
    queue = _ls_sorted(fs, dirs, args)
    while queue:
        shown, path = queue.pop(0)
        names = fs.listdir(path)
        if not (show_all or almost):
            names = [n for n in names if not n.startswith(".")]
        entries = _ls_sorted(fs, [(n, posixpath.join(path, n)) for n in names], args)
        if args.has("R") and path not in ("/proc", "/sys"):
            queue[:0] = [
                (join_shown(shown, n) if shown != "/" else "/" + n, p)
                for n, p in entries
                if fs.kind(p) == "dir"
            ]
        if show_all:
            entries = [(".", path), ("..", posixpath.dirname(path)), *entries]
        text = ls_lines(fs, entries, long, args, total=True)
        blocks.append(f"{shown}:\n{text}" if headed else text)
    io.out.write("\n".join(blocks))
    return status


def _ls_sorted(fs: FS, entries: list[tuple[str, str]], args: Args) -> list[tuple[str, str]]:
    way = args.value("sort") or ("time" if args.has("t") else "size" if args.has("S") else "")
    entries = sorted(entries)
    if way == "time":
        entries.sort(key=lambda e: -fs.stat(e[1])[3])
    elif way == "size":
        entries.sort(key=lambda e: -fs.stat(e[1])[1])
    return entries[::-1] if args.has("r") else entries


def ls_lines(fs: FS, entries: list[tuple[str, str]], long: bool, args: Args, total: bool) -> str:
    """Entries as ``ls`` prints them: names (``-F``: with ``/`` or ``*``), or ``-l`` rows."""

    def mark(path: str, kind: str, mode: int) -> str:
        if not args.has("F"):
            return ""
        return "/" if kind == "dir" else "*" if mode & 0o111 else ""

    if not long:
        lines = []
        for name, path in entries:
            kind, _, mode, _, _ = fs.stat(path)
            lines.append(name + mark(path, kind, mode) + "\n")
        return "".join(lines)
    human = args.has("h")
    rows: list[tuple[str, ...]] = []
    blocks = 0.0
    for name, path in entries:
        kind, size, mode, mtime, owner = fs.stat(path)
        if kind == "dir":
            subdirs = (
                sum(1 for n in fs.listdir(path) if fs.kind(posixpath.join(path, n)) == "dir")
                if path not in ("/", "/usr", "/proc")
                else 19
            )
            links = 2 + subdirs
        else:
            links = 1
        blocks += fs.blocks(path)
        shown_size = human_size(size) if human else str(int(size))
        group = "" if args.has("o") else owner
        rows.append(
            (
                mode_text(kind, mode),
                str(links),
                "" if args.has("g") else owner,
                group,
                shown_size,
                ls_date(mtime),
                name + mark(path, kind, mode),
            )
        )
    widths = [max(len(r[k]) for r in rows) for k in range(5)] if rows else [0] * 5
    lines = []
    for r in rows:
        cells = [r[0], f"{r[1]:>{widths[1]}}"]
        cells += [f"{r[k]:<{widths[k]}}" for k in (2, 3) if r[k]]
        cells += [f"{r[4]:>{widths[4]}}", r[5], r[6]]
        lines.append(" ".join(cells) + "\n")
    kib = int(blocks // 1024)
    head = f"total {human_size(blocks) if human else kib}\n" if total else ""
    return head + "".join(lines)


def read_input(sh: VirtualShell, name: str, io: IO, tool: str) -> tuple[str | None, str]:
    """(text, error) of a file operand or ``-`` (stdin)."""
    if name == "-":
        return io.stdin, ""
    fs = sh.fs()
    path = sh.abspath(name)
    kind = fs.kind(path)
    if kind is None:
        return None, f"{tool}: {name}: No such file or directory"
    if kind == "dir":
        return None, f"{tool}: {name}: Is a directory"
    text = fs.read(path)
    if text is None:
        return binary_preview(path), ""
    return text, ""


@tool("cat")
def cat(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, names = old_opts(argv[1:])
    status = 0
    for name in names or ["-"]:
        text, error = read_input(sh, name, io, "cat")
        if text is None:
            io.err.write(error + "\n")
            status = 1
            continue
        if "-n" in flags:
            text = "".join(f"{k:>6}\t{line}" for k, line in enumerate(text.splitlines(True), 1))
        io.out.write(text)
    return status


@tool("head", "tail")
def head(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    args: list[str] = []
    for a in argv[1:]:
        args += ["-n", a[1:]] if re.fullmatch(r"-\d+", a) else [a]
    flags, values, names = old_opts(args, takes={"-n", "--lines", "-c", "--bytes"})
    tail = argv[0] == "tail"
    count = values.get("-n", values.get("--lines", "10"))
    from_start = count.startswith("+")
    try:
        n = int(count.lstrip("+-"))
    except ValueError:
        io.err.write(f"{argv[0]}: invalid number of lines: '{count}'\n")
        return 1
    status = 0
    shown = names or ["-"]
    for k, name in enumerate(shown):
        text, error = read_input(sh, name, io, argv[0])
        if text is None:
            io.err.write(
                f"{argv[0]}: cannot open '{name}' for reading: {error.rpartition(': ')[2]}\n"
            )
            status = 1
            continue
        lines = text.splitlines(True)
        if "-c" in values:
            size = int(values["-c"])
            part = text[-size:] if tail else text[:size]
        elif tail:
            part = "".join(lines[n - 1 :] if from_start else (lines[-n:] if n else []))
        else:
            part = "".join(lines[:n])
        if len(shown) > 1:
            io.out.write(("\n" if k else "") + f"==> {name} <==\n")
        io.out.write(part)
    if tail and flags & {"-f", "-F", "--follow"}:
        yield from sh.block(frame)
    return status


GREP = Options(
    "e:f:EFGPiwxvcLlnohHqsrRm:A:B:C:Zaz",
    long=(
        "regexp=e", "file=f", "extended-regexp=E", "fixed-strings=F", "basic-regexp=G",
        "perl-regexp=P", "ignore-case=i", "word-regexp=w", "line-regexp=x",
        "invert-match=v", "count=c", "files-without-match=L", "files-with-matches=l",
        "line-number=n", "only-matching=o", "no-filename=h", "with-filename=H",
        "quiet=q", "silent=q", "no-messages=s", "recursive=r", "dereference-recursive=R",
        "max-count=m", "after-context=A", "before-context=B", "context=C", "null=Z",
        "include=", "exclude=", "exclude-dir=", "color=", "colour=color", "text=a",
    ),
    usage=2,
    after="Usage: grep [OPTION]... PATTERNS [FILE]...\nTry '{tool} --help' for more information.\n",
)  # fmt: skip


@tool("grep", "egrep", "fgrep", options=GREP)
def grep(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``grep``: lines matching patterns (basic, ``-E`` extended or ``-F`` fixed), with
    their context, counts, file names, recursively (``-r``)."""
    operands = list(args.operands)
    patterns = args.values("e")
    if not patterns:
        if not operands:
            io.err.write(GREP.usage_text("grep", UsageError("", 2)).partition("\n")[2])
            return 2
        patterns = [operands.pop(0)]
    patterns = [p for pattern in patterns for p in pattern.split("\n")]
    extended = name == "egrep" or args.has("E", "P")
    fixed = name == "fgrep" or args.has("F")
    sources = [re.escape(p) if fixed else (p if extended else bre(p)) for p in patterns]
    source = "|".join(f"(?:{s})" for s in sources)
    if args.has("w"):
        source = rf"(?<!\w)(?:{source})(?!\w)"
    if args.has("x"):
        source = rf"^(?:{source})$"
    try:
        regex = re.compile(source, re.IGNORECASE if args.has("i") else 0)
    except re.error:
        io.err.write("grep: Unmatched ( or \\(\n")
        return 2
    invert, recursive, quiet = args.has("v"), args.has("r", "R"), args.has("q")
    fs = sh.fs()
    targets: list[tuple[str, str | None]] = []  # (shown name, text)
    status_error = False
    include, exclude = args.value("include"), args.value("exclude")
    for operand in operands or (["."] if recursive else ["-"]):
        if operand == "-":
            targets.append(("(standard input)", io.stdin))
            continue
        path = sh.abspath(operand)
        kind = fs.kind(path)
        if kind is None:
            if not args.has("s"):
                io.err.write(f"grep: {operand}: No such file or directory\n")
            status_error = True
        elif kind == "dir":
            if not recursive:
                io.err.write(f"grep: {operand}: Is a directory\n")
                status_error = True
                continue
            for sub in fs.walk(path, disk_order=True):
                base = posixpath.basename(sub)
                if fs.kind(sub) != "file":
                    continue
                if (include and not fnmatch.fnmatch(base, include)) or (
                    exclude and fnmatch.fnmatch(base, exclude)
                ):
                    continue
                shown = operand.rstrip("/") + sub[len(path) :] if sub != path else operand
                targets.append((shown, fs.read(sub)))
        else:
            targets.append((operand, fs.read(path)))
    label = ((len(targets) > 1 or recursive) and not args.has("h")) or args.has("H")
    after = int(args.value("A") or args.value("C") or 0)
    before = int(args.value("B") or args.value("C") or 0)
    limit = int(args.value("m") or 0)
    end = "\0" if args.has("Z") else ":"
    matched = False
    for shown, text in targets:
        if text is None:
            continue  # a binary file: skipped, as with --binary-files=without-match
        lines = text.splitlines()
        hits = [n for n, line in enumerate(lines) if (regex.search(line) is not None) != invert]
        if limit:
            hits = hits[:limit]
        matched = matched or bool(hits)
        if quiet:
            continue
        if args.has("L"):
            if not hits:
                io.out.write(shown + ("\0" if args.has("Z") else "\n"))
            continue
        if args.has("l"):
            if hits:
                io.out.write(shown + ("\0" if args.has("Z") else "\n"))
            continue
        if args.has("c"):
            io.out.write((f"{shown}{end}" if label else "") + f"{len(hits)}\n")
            continue
        shown_lines: list[int] = []
        for n in hits:
            for k in range(max(0, n - before), min(len(lines), n + after + 1)):
                if not shown_lines or k > shown_lines[-1]:
                    if shown_lines and k > shown_lines[-1] + 1 and (after or before):
                        shown_lines.append(-1)
                    shown_lines.append(k)
        hit_set = set(hits)
        for k in shown_lines:
            if k < 0:
                io.out.write("--\n")
                continue
            sep = end if k in hit_set else "-"
            prefix = (f"{shown}{sep}" if label else "") + (f"{k + 1}{sep}" if args.has("n") else "")
            if args.has("o") and not invert:
                if k in hit_set:
                    for m in regex.finditer(lines[k]):
                        io.out.write(prefix + m.group(0) + "\n")
            else:
                io.out.write(prefix + lines[k] + "\n")
    if status_error and not (quiet and matched):
        return 2
    return 0 if matched else 1


@tool("find")
def find(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = argv[1:]
    starts: list[str] = []
    while args and not args[0].startswith("-") and args[0] not in ("(", "!"):
        starts.append(args.pop(0))
    tests: list[tuple[str, str]] = []
    max_depth, min_depth = math.inf, 0
    k = 0
    while k < len(args):
        a = args[k]
        if a in ("-print", "-print0", "-follow", "-xdev", "-L", "-H"):
            k += 1
            continue
        if a in ("-name", "-iname", "-type", "-path", "-size", "-wholename", "-newer"):
            if k + 1 >= len(args):
                io.err.write(f"find: missing argument to `{a}'\n")
                return 1
            tests.append((a, args[k + 1]))
            k += 2
            continue
        if a in ("-maxdepth", "-mindepth"):
            value = int(args[k + 1]) if k + 1 < len(args) and args[k + 1].isdigit() else 0
            if a == "-maxdepth":
                max_depth = value
            else:
                min_depth = value
            k += 2
            continue
        io.err.write(f"find: unknown predicate `{a}'\n")
        return 1
    fs = sh.fs()
    status = 0

    def passes(path: str) -> bool:
        for test, value in tests:
            name = posixpath.basename(path) or "/"
            if test == "-name" and not fnmatch.fnmatchcase(name, value):
                return False
            if test == "-iname" and not fnmatch.fnmatch(name.lower(), value.lower()):
                return False
            if test in ("-path", "-wholename") and not fnmatch.fnmatchcase(path, value):
                return False
            if test == "-type" and fs.kind(path) != {"f": "file", "d": "dir"}.get(value):
                return False
            if test == "-newer":
                ref = sh.abspath(value)
                if fs.kind(ref) is None or not fs.stat(path)[3] > fs.stat(ref)[3]:
                    return False
            if test == "-size":
                m = re.fullmatch(r"([+-]?)(\d+)([ckMGT]?)", value)
                if m is None or fs.kind(path) != "file":
                    return False
                unit = {"c": 1, "k": 1024, "M": 2**20, "G": 2**30, "T": 2**40}.get(m.group(3), 512)
                size, limit = fs.stat(path)[1], int(m.group(2)) * unit
                if m.group(1) == "+" and not size > limit:
                    return False
                if m.group(1) == "-" and not size < limit:
                    return False
                if not m.group(1) and math.ceil(size / unit) != int(m.group(2)):
                    return False
        return True

    def walk(path: str, shown: str, depth: int) -> None:
        if depth >= min_depth and passes(path):
            io.out.write(shown + "\n")
        if depth < max_depth and fs.kind(path) == "dir" and path not in ("/proc", "/sys"):
            for name in fs.read_order(path, fs.listdir(path)):
                walk(
                    posixpath.join(path, name),
                    join_shown(shown, name) if shown != "/" else "/" + name,
                    depth + 1,
                )

    for start in starts or ["."]:
        path = sh.abspath(start)
        if fs.kind(path) is None:
            io.err.write(f"find: '{start}': No such file or directory\n")
            status = 1
            continue
        walk(path, start.rstrip("/") or "/", 0)
    return status


@tool("mkdir")
def mkdir(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, names = old_opts(argv[1:], takes={"-m", "--mode"})
    parents = bool(flags & {"-p", "--parents"})
    if not names:
        io.err.write("mkdir: missing operand\n")
        return 1
    fs = sh.fs()
    status = 0
    for name in names:
        path = sh.abspath(name)
        kind = fs.kind(path)
        if kind is not None:
            if not (parents and kind == "dir"):
                io.err.write(f"mkdir: cannot create directory '{name}': File exists\n")
                status = 1
            continue
        chain = [path]
        while parents and fs.kind(posixpath.dirname(chain[-1])) is None:
            chain.append(posixpath.dirname(chain[-1]))
        for p in reversed(chain):
            if fs.kind(posixpath.dirname(p)) != "dir":
                io.err.write(
                    f"mkdir: cannot create directory '{name}': No such file or directory\n"
                )
                status = 1
                break
            if not fs.writable(p):
                io.err.write(f"mkdir: cannot create directory '{name}': Permission denied\n")
                status = 1
                break
            fs.mkdir(p)
    return status


@tool("touch")
def touch(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    _, _, names = old_opts(argv[1:])
    fs = sh.fs()
    status = 0
    for name in names:
        path = sh.abspath(name)
        if fs.kind(path) is not None:
            continue
        problem = fs.write(path, "")
        if problem:
            io.err.write(f"touch: cannot touch '{name}': {problem}\n")
            status = 1
    return status


@tool("mv")
def mv(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    _, _, ops = old_opts(argv[1:], takes={"-t", "--target-directory", "-S", "--suffix"})
    if len(ops) < 2:
        io.err.write(
            "mv: missing file operand\n"
            if not ops
            else f"mv: missing destination file operand after '{ops[0]}'\n"
        )
        return 1
    *sources, dest = ops
    fs = sh.fs()
    dpath = sh.abspath(dest)
    dkind = fs.kind(dpath)
    if len(sources) > 1 and dkind != "dir":
        io.err.write(f"mv: target '{dest}' is not a directory\n")
        return 1
    status = 0
    for source in sources:
        spath = sh.abspath(source)
        kind = fs.kind(spath)
        if kind is None:
            io.err.write(f"mv: cannot stat '{source}': No such file or directory\n")
            status = 1
            continue
        target = posixpath.join(dpath, posixpath.basename(spath)) if dkind == "dir" else dpath
        if target == spath:
            continue
        if target.startswith(spath + "/"):
            io.err.write(f"mv: cannot move '{source}' to a subdirectory of itself, '{target}'\n")
            status = 1
            continue
        if fs.kind(posixpath.dirname(target)) != "dir":
            io.err.write(f"mv: cannot move '{source}' to '{target}': No such file or directory\n")
            status = 1
            continue
        if not (fs.writable(spath) and fs.writable(target)):
            io.err.write(f"mv: cannot move '{source}' to '{target}': Permission denied\n")
            status = 1
            continue
        tkind = fs.kind(target)
        if tkind == "dir" and kind != "dir":
            io.err.write(f"mv: cannot overwrite directory '{target}' with non-directory\n")
            status = 1
            continue
        for path in (spath, target):
            found = fs.bundle_at(path)
            if found is not None and found[1]:
                fs.materialize(found[0])
        if tkind is not None:
            fs.remove(target, sh.replica.name)
        fs.move(spath, target, sh.replica.name)
    return status


@tool("rm", "rmdir")
def rm(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, names = old_opts(argv[1:])
    recursive = bool(flags & {"-r", "-R", "--recursive"}) or argv[0] == "rmdir"
    force = bool(flags & {"-f", "--force"})
    if not names:
        if force:
            return 0
        io.err.write(f"{argv[0]}: missing operand\n")
        return 1
    fs = sh.fs()
    status = 0
    for name in names:
        path = sh.abspath(name)
        if path == "/" and recursive:
            io.err.write(
                "rm: it is dangerous to operate recursively on '/'\n"
                "rm: use --no-preserve-root to override this failsafe\n"
            )
            status = 1
            continue
        kind = fs.kind(path)
        if kind is None:
            if not force:
                io.err.write(f"{argv[0]}: cannot remove '{name}': No such file or directory\n")
                status = 1
            continue
        if kind == "dir" and not recursive:
            io.err.write(f"rm: cannot remove '{name}': Is a directory\n")
            status = 1
            continue
        if argv[0] == "rmdir" and fs.listdir(path):
            io.err.write(f"rmdir: failed to remove '{name}': Directory not empty\n")
            status = 1
            continue
        if not fs.writable(path):
            for child in fs.listdir(path) if kind == "dir" else []:
                child_path = posixpath.join(path, child)
                if fs.writable(child_path):
                    fs.remove(child_path, sh.replica.name)
            io.err.write(f"{argv[0]}: cannot remove '{name}': Permission denied\n")
            status = 1
            continue
        found = fs.bundle_at(path)
        if found is not None and found[1]:
            fs.materialize(found[0])
        fs.remove(path, sh.replica.name)
    return status


@tool("chmod")
def chmod(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    _, _, ops = old_opts([a for a in argv[1:] if not re.fullmatch(r"[-+][rwxX]+", a)])
    modes = [a for a in argv[1:] if re.fullmatch(r"[ugoa]*[-+=][rwxX]+|[0-7]{3,4}", a)]
    if not modes or not ops:
        io.err.write("chmod: missing operand\n")
        return 1
    mode_text = modes[0]
    names = [n for n in ops if n != mode_text]
    fs = sh.fs()
    status = 0
    for name in names:
        path = sh.abspath(name)
        kind = fs.kind(path)
        if kind is None:
            io.err.write(f"chmod: cannot access '{name}': No such file or directory\n")
            status = 1
            continue
        stored = fs.hs.files.get(path)
        if stored is None:
            continue  # bundle and system files keep their modes
        if mode_text.isdigit():
            stored.mode = int(mode_text, 8)
        elif "+" in mode_text and "x" in mode_text:
            stored.mode |= 0o111
        elif "-" in mode_text and "x" in mode_text:
            stored.mode &= ~0o111
    return status


@tool("dirname", "basename")
def dirname(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = [a for a in argv[1:] if not a.startswith("-")]
    if not args:
        io.err.write(f"{argv[0]}: missing operand\n")
        return 1
    if argv[0] == "basename":
        name = posixpath.basename(args[0].rstrip("/")) or "/"
        if len(args) > 1 and name.endswith(args[1]) and name != args[1]:
            name = name[: -len(args[1])]
        io.out.write(name + "\n")
        return 0
    for a in args:
        io.out.write((posixpath.dirname(a.rstrip("/")) or ".") + "\n")
    return 0


@tool("readlink", "realpath")
def realpath(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    args = [a for a in argv[1:] if not a.startswith("-")]
    if argv[0] == "readlink" and "-f" not in argv and "-e" not in argv and "-m" not in argv:
        return 1  # not a symbolic link
    status = 0
    for a in args:
        path = sh.abspath(a)
        missing = sh.fs().kind(path) is None and ("-e" in argv or argv[0] == "realpath")
        if missing and (sh.fs().kind(posixpath.dirname(path)) != "dir" or "-e" in argv):
            io.err.write(f"{argv[0]}: {a}: No such file or directory\n")
            status = 1
            continue
        io.out.write(path + "\n")
    return status


@tool("tee")
def tee(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, names = old_opts(argv[1:])
    status = 0
    for name in names:
        sink = sh.open_sink(name, append="-a" in flags)
        if isinstance(sink, str):
            io.err.write(f"tee: {name}: {sink}\n")
            status = 1
        else:
            sink.write(io.stdin)
    io.out.write(io.stdin)
    return status


FILE = Options("bLhiz", long=("brief=b", "mime=i", "dereference=L"))


@tool("file", options=FILE)
def file(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``file NAME``: what kind of file it is, from its first bytes."""
    if not args.operands:
        io.err.write(
            "Usage: file [-bcCdEhikLlNnprsSvzZ0] [--apple] [--extension] [--mime-encoding]\n"
        )
        return 1
    fs = sh.fs()
    for operand in args.operands:
        path = sh.abspath(operand)
        kind = fs.kind(path)
        if kind is None:
            what = f"cannot open `{operand}' (No such file or directory)"
        elif kind == "dir":
            what = "directory"
        else:
            what = _file_kind(fs.read(path), fs.stat(path)[1])
        io.out.write(what + "\n" if args.has("b") else f"{operand}: {what}\n")
    return 0


def _file_kind(text: str | None, size: float) -> str:
    if text is None:
        return "data"
    if not text:
        return "empty"
    first = text.split("\n", 1)[0]
    if first.startswith("#!") and "python" in first:
        return "Python script, ASCII text executable"
    if first.startswith("#!") and "bash" in first:
        return "Bourne-Again shell script, ASCII text executable"
    if first.startswith("#!"):
        return "POSIX shell script, ASCII text executable"
    try:
        json.loads(text)
        return "JSON text data"
    except ValueError:
        pass
    if text.lstrip().startswith(("import ", "from ", "def ", "class ", '"""')):
        return "Python script, ASCII text executable"
    return "ASCII text" if text.isascii() else "Unicode text, UTF-8 text"
