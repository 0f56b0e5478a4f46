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


CAT = Options("nAbEsTv", long=("number=n", "show-all=A", "number-nonblank=b",
              "show-ends=E", "squeeze-blank=s", "show-tabs=T"))  # fmt: skip


@tool("cat", options=CAT)
def cat(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``cat``: files (or stdin) one after the other (``-n``: numbered, ``-A``: ends shown)."""
    status = 0
    for operand in args.operands or ["-"]:
        text, error = read_input(sh, operand, io, "cat")
        if text is None:
            io.err.write(error + "\n")
            status = 1
            continue
        if args.has("A", "E"):
            text = text.replace("\t", "^I" if args.has("A", "T") else "\t")
            text = "".join(line[:-1] + "$\n" if line.endswith("\n") else line
                           for line in text.splitlines(True))  # fmt: skip
        if args.has("n", "b"):
            lines = text.splitlines(True)
            k = 0
            numbered = []
            for line in lines:
                if args.has("b") and not line.strip("\n"):
                    numbered.append(line)
                    continue
                k += 1
                numbered.append(f"{k:>6}\t{line}")
            text = "".join(numbered)
        io.out.write(text)
    return status


HEAD = Options(
    "n:c:qvfF",
    long=("lines=n", "bytes=c", "quiet=q", "silent=q", "verbose=v", "follow=f"),
    numbers="n",
)


@tool("head", "tail", options=HEAD)
def head(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``head``/``tail``: the first (last) lines or bytes (``-n``, ``-c``, ``+N``, ``-f``)."""
    tail = name == "tail"
    count = args.value("n", "10") or "10"
    from_start = count.startswith("+")
    try:
        n = int(count.lstrip("+-"))
    except ValueError:
        io.err.write(f"{name}: invalid number of lines: '{count}'\n")
        return 1
    status = 0
    shown = args.operands or ["-"]
    for k, operand in enumerate(shown):
        text, error = read_input(sh, operand, io, name)
        if text is None:
            io.err.write(
                f"{name}: cannot open '{operand}' for reading: {error.rpartition(': ')[2]}\n"
            )
            status = 1
            continue
        lines = text.splitlines(True)
        size_text = args.value("c")
        if size_text is not None:
            size = int(size_text.lstrip("+-") or 0)
            part = text[-size:] if tail and size else "" if tail else text[:size]
        elif tail:
            part = "".join(lines[n - 1 :] if from_start else (lines[-n:] if n else []))
        else:
            part = "".join(lines[:n])
        if (len(shown) > 1 and not args.has("q")) or args.has("v"):
            io.out.write(("\n" if k else "") + f"==> {operand} <==\n")
        io.out.write(part)
    if tail and args.has("f", "F"):
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


@tool("mkdir", options=Options("pm:v", long=("parents=p", "mode=m", "verbose=v")))
def mkdir(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``mkdir``: make folders (``-p``: with their parents, no error if there)."""
    parents = args.has("p")
    if not args.operands:
        io.err.write("mkdir: missing operand\nTry 'mkdir --help' for more information.\n")
        return 1
    fs = sh.fs()
    status = 0
    for operand in args.operands:
        path = sh.abspath(operand)
        kind = fs.kind(path)
        if kind is not None:
            if not (parents and kind == "dir"):
                io.err.write(f"mkdir: cannot create directory '{operand}': File exists\n")
                status = 1
            continue
        chain = [path]
        while parents and fs.kind(posixpath.dirname(chain[-1])) is None:
            chain.append(posixpath.dirname(chain[-1]))
        for p in reversed(chain):
            if fs.kind(posixpath.dirname(p)) != "dir":
                io.err.write(
                    f"mkdir: cannot create directory '{operand}': No such file or directory\n"
                )
                status = 1
                break
            if not fs.writable(p):
                io.err.write(f"mkdir: cannot create directory '{operand}': Permission denied\n")
                status = 1
                break
            fs.mkdir(p)
            if args.has("v"):
                io.out.write(f"mkdir: created directory '{p}'\n")
    return status


@tool("touch", options=Options("acmd:r:t:", long=("no-create=c", "date=d", "reference=r")))
def touch(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``touch``: make empty files; an existing file a shell or the operator wrote gets
    the current time as its mtime (the system's and the bundle's keep theirs)."""
    if not args.operands:
        io.err.write("touch: missing file operand\nTry 'touch --help' for more information.\n")
        return 1
    fs = sh.fs()
    status = 0
    for operand in args.operands:
        path = sh.abspath(operand)
        stored = fs.hs.files.get(path)
        if stored is not None:
            stored.mtime = sh.world.env.now
        if fs.kind(path) is not None or args.has("c"):
            continue
        problem = fs.write(path, "")
        if problem:
            io.err.write(f"touch: cannot touch '{operand}': {problem}\n")
            status = 1
    return status


_SIZE = re.compile(r"(\d+)(?:([KMGT])(iB|B)?)?", re.IGNORECASE)


@tool("fallocate", options=Options("l:o:nkv", long=("length=l", "offset=o", "keep-size=n")))
def fallocate(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``fallocate -l LENGTH FILE``: give FILE LENGTH bytes of disk (``K``, ``KiB``: 1024;
    ``KB``: 1000; likewise M, G, T); on a full disk nothing is allocated."""
    length = args.value("l")
    if length is None:
        io.err.write("fallocate: no length argument specified\n")
        return 1
    size = _SIZE.fullmatch(length)
    if size is None or len(args.operands) != 1:
        io.err.write(
            "fallocate: invalid length value specified\n"
            if size is None
            else "fallocate: no filename specified\n"
        )
        return 1
    digits, unit, suffix = size.groups()
    base = 1000 if suffix and suffix.upper() == "B" else 1024
    want = float(digits) * (base ** ("KMGT".index(unit.upper()) + 1) if unit else 1)
    fs, path = sh.fs(), sh.abspath(args.operands[0])
    kind = fs.kind(path)
    problem = (
        "Is a directory"
        if kind == "dir"
        else "No such file or directory"
        if fs.kind(posixpath.dirname(path)) != "dir"
        else "Permission denied"
        if not fs.writable(path)
        else None
    )
    if problem is None:
        stored = fs.hs.files.get(path)
        old = fs.stat(path)[1] if kind is not None else 0.0
        if want > old or kind is None:  # its blocks beyond the content are zeros
            problem = fs.put(path, None, max(want, old), stored.mode if stored else 0o644)
    if problem:
        opened = problem == "No space left on device"
        where = "fallocate failed" if opened else f"cannot open {args.operands[0]}"
        io.err.write(f"fallocate: {where}: {problem}\n")
        return 1
    return 0


MV = Options(
    "fint:TvuS:b",
    long=("force=f", "interactive=i", "no-clobber=n", "target-directory=t",
          "no-target-directory=T", "verbose=v", "update=u", "suffix=S", "backup"),
)  # fmt: skip


@tool("mv", options=MV)
def mv(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``mv``: rename or move files and folders (a bundle's file out of it breaks it)."""
    ops = list(args.operands)
    if args.value("t") is not None:
        ops.append(args.value("t") or "")
    if len(ops) < 2:
        io.err.write(
            "mv: missing file operand\n"
            if not ops
            else f"mv: missing destination file operand after '{ops[0]}'\n"
        )
        io.err.write("Try 'mv --help' for more information.\n")
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
            folder = fs.bundle_part(path)
            if folder is not None:
                fs.materialize(folder)
        if tkind is not None:
            fs.remove(target, sh.replica.name)
        fs.move(spath, target, sh.replica.name)
    return status


RM = Options(
    "rRfidvpI",
    long=("recursive=r", "force=f", "interactive", "dir=d", "verbose=v",
          "no-preserve-root", "preserve-root", "parents=p", "ignore-fail-on-non-empty"),
)  # fmt: skip


@tool("rm", "rmdir", options=RM)
def rm(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``rm``/``rmdir``: remove files (``-r`` folders; a bundle's file breaks the bundle)."""
    argv = [name]
    names = args.operands
    recursive = args.has("r", "R") or name == "rmdir"
    force = args.has("f")
    if not names:
        if force:
            return 0
        io.err.write(f"{name}: missing operand\nTry '{name} --help' for more information.\n")
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
        folder = fs.bundle_part(path)
        if folder is not None:
            fs.materialize(folder)
        fs.remove(path, sh.replica.name)
    return status


CHMOD = Options(
    "Rvcf", long=("recursive=R", "verbose=v", "changes=c"), operand=r"-[rwxXst]+"
)  # ``chmod -x FILE``: a mode, not an option


@tool("chmod", options=CHMOD)
def chmod(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``chmod MODE FILE...``: octal or symbolic (``+x``, ``u-w``) modes of written files."""
    ops = args.operands
    if len(ops) < 2:
        shown = f"missing operand after '{ops[0]}'" if ops else "missing operand"
        io.err.write(f"chmod: {shown}\nTry 'chmod --help' for more information.\n")
        return 1
    mode_text, names = ops[0], ops[1:]
    if not re.fullmatch(r"[0-7]{3,4}|([ugoa]*[-+=][rwxXst]*,?)+", mode_text):
        io.err.write(
            f"chmod: invalid mode: '{mode_text}'\nTry 'chmod --help' for more information.\n"
        )
        return 1
    fs = sh.fs()
    status = 0
    for operand in names:
        path = sh.abspath(operand)
        kind = fs.kind(path)
        if kind is None:
            io.err.write(f"chmod: cannot access '{operand}': No such file or directory\n")
            status = 1
            continue
        stored = fs.hs.files.get(path)
        if stored is None:
            continue  # bundle and system files keep their modes
        if mode_text.isdigit():
            stored.mode = int(mode_text, 8)
            continue
        for clause in mode_text.split(","):
            m = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
            if m is None:
                continue
            who = m.group(1) or "a"
            bits = 0
            for letter, value in (("r", 4), ("w", 2), ("x", 1), ("X", 1)):
                if letter in m.group(3):
                    bits |= value
            mask = 0
            for w, shift in (("u", 6), ("g", 3), ("o", 0)):
                if w in who or "a" in who:
                    mask |= bits << shift
            if m.group(2) == "+":
                stored.mode |= mask
            elif m.group(2) == "-":
                stored.mode &= ~mask
            else:
                stored.mode = mask
    return status


@tool("dirname", options=Options("z", long=("zero=z",)))
def dirname(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``dirname PATH...``: each path without its last part."""
    if not args.operands:
        io.err.write("dirname: missing operand\nTry 'dirname --help' for more information.\n")
        return 1
    for operand in args.operands:
        io.out.write((posixpath.dirname(operand.rstrip("/")) or ".") + "\n")
    return 0


@tool("basename", options=Options("as:z", long=("multiple=a", "suffix=s", "zero=z")))
def basename(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``basename PATH [SUFFIX]``: the last part of a path, without the suffix."""
    ops = args.operands
    if not ops:
        io.err.write("basename: missing operand\nTry 'basename --help' for more information.\n")
        return 1
    suffix = args.value("s")
    multiple = args.has("a") or suffix is not None
    if not multiple and len(ops) > 2:
        io.err.write(f"basename: extra operand '{ops[2]}'\n")
        io.err.write("Try 'basename --help' for more information.\n")
        return 1
    if not multiple:
        suffix, ops = (ops[1] if len(ops) > 1 else None), ops[:1]
    for operand in ops:
        base = posixpath.basename(operand.rstrip("/")) or "/"
        if suffix and base.endswith(suffix) and base != suffix:
            base = base[: -len(suffix)]
        io.out.write(base + "\n")
    return 0


@tool("readlink", "realpath", options=Options("femnqszLPs", long=("canonicalize=f",
      "canonicalize-existing=e", "canonicalize-missing=m", "no-newline=n", "quiet=q")))  # fmt: skip
def realpath(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``realpath``/``readlink -f``: a path made absolute (no file is a symbolic link)."""
    if name == "readlink" and not args.has("f", "e", "m"):
        return 1  # not a symbolic link
    status = 0
    fs = sh.fs()
    for operand in args.operands:
        path = sh.abspath(operand)
        missing = fs.kind(path) is None and (args.has("e") or name == "realpath")
        if missing and (fs.kind(posixpath.dirname(path)) != "dir" or args.has("e")):
            io.err.write(f"{name}: {operand}: No such file or directory\n")
            status = 1
            continue
        io.out.write(path + "\n")
    return status


@tool("tee", options=Options("aip", long=("append=a", "ignore-interrupts=i")))
def tee(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``tee FILE...``: stdin to stdout and to the files (``-a``: appended)."""
    status = 0
    for operand in args.operands:
        sink = sh.open_sink(operand, append=args.has("a"))
        if isinstance(sink, str):
            io.err.write(f"tee: {operand}: {sink}\n")
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
    width = max(len(o) for o in args.operands) + 1
    for operand in args.operands:
        path = sh.abspath(operand)
        kind = fs.kind(path)
        if kind is None:
            what = f"cannot open `{operand}' (No such file or directory)"
        elif kind == "dir":
            what = "directory"
        else:
            what = _file_kind(fs.read(path), fs.stat(path)[1])
        io.out.write(what + "\n" if args.has("b") else f"{operand + ':':<{width}} {what}\n")
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
