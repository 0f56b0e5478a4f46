"""The system: disk, memory and GPUs (``du``, ``df``, ``free``, ``nvidia-smi``), who and
where (``whoami``, ``id``, ``hostname``, ``uname``…), ``env``, ``date``, ``which``."""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING

from agents.shell.core import IO, Frame, Gen
from agents.shell.fs import address
from agents.shell.processes import has_sshd
from agents.shell.registry import Args, Options, tool
from agents.shell.syntax import ASSIGN
from agents.shell.util import finite, human_free, human_size, join_shown, when
from sim.machine import SCRATCH_SIZE, USER

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell
    from sim.world import Host


DRIVER = "Driver Version: 550.54.15      CUDA Version: 12.4     "


DU = Options(
    "ahcsd:kmxLB:",
    long=(
        "all=a", "human-readable=h", "total=c", "summarize=s", "max-depth=d",
        "apparent-size", "exclude=", "block-size=B", "one-file-system=x",
    ),
)  # fmt: skip


@tool("du", options=DU)
def du(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``du``: the disk blocks below each operand, in KiB (``-h``: human sizes)."""
    depth_text = args.value("d")
    if depth_text is not None and not depth_text.isdigit():
        io.err.write(f"du: invalid maximum depth '{depth_text}'\n")
        return 1
    max_depth = 0 if args.has("s") else int(depth_text) if depth_text else math.inf
    fs = sh.fs()
    status = 0
    grand = 0.0

    def shown_size(size: float) -> str:
        if args.has("h"):
            return human_size(size)
        return str(math.ceil(size / (2**20 if args.has("m") else 1024)))

    def visit(path: str, shown: str, depth: int) -> float:
        kind = fs.kind(path)
        if kind != "dir" or path in ("/proc", "/sys"):
            size = fs.blocks(path) if kind == "file" else 0.0
            if depth <= max_depth and (kind == "dir" or depth == 0 or args.has("a")):
                io.out.write(f"{shown_size(size)}\t{shown}\n")
            return size
        total = fs.blocks(path)
        for entry in fs.listdir(path):
            total += visit(
                posixpath.join(path, entry),
                join_shown(shown, entry) if shown != "/" else "/" + entry,
                depth + 1,
            )
        if depth <= max_depth:
            io.out.write(f"{shown_size(total)}\t{shown}\n")
        return total

    for operand in args.operands or ["."]:
        path = sh.abspath(operand)
        if fs.kind(path) is None:
            io.err.write(f"du: cannot access '{operand}': No such file or directory\n")
            status = 1
            continue
        grand += visit(path, operand.rstrip("/") or "/", 0)
    if args.has("c"):
        io.out.write(f"{shown_size(grand)}\ttotal\n")
    return status


DF = Options(
    "hHkaTtx:B:P",
    long=("human-readable=h", "si=H", "all=a", "print-type=T", "type=t", "exclude-type=x",
          "block-size=B", "portability=P", "output=", "total"),
)  # fmt: skip


def mounts(sh: VirtualShell) -> list[tuple[str, str, float, float]]:
    """(source, mount point, size, used) of a host's file systems, as a live host mounts
    them: the root and the scratch folders on tmpfs, /etc and the bundle root (the disk)."""
    host = sh.host
    machine = sh.world.machine(host)
    scratch = float(SCRATCH_SIZE)
    rows = [
        ("tmpfs", "/", finite(host.memory) / 2, 0.0),
        ("replisim", "/etc", 1024.0 * 1024, 88.0 * 1024),
        ("replisim", machine.bundle_root, finite(host.disk), _used_blocks(host)),
        ("tmpfs", "/tmp", scratch, 0.0),
        ("tmpfs", machine.home, scratch, 8192.0),
        ("tmpfs", "/var/tmp", scratch, 0.0),
        ("tmpfs", "/dev/shm", scratch, 0.0),
    ]
    return rows


def _used_blocks(host: Host) -> float:
    """Bytes of the disk in use, as its file system counts them: what is free is whole
    4 KiB blocks (an allocation of all that df shows free fits; one byte more does not)."""
    size, used = finite(host.disk), max(0.0, finite(host.disk_used))
    return min(size, size - (size - used) // 4096 * 4096)


@tool("df", options=DF)
def df(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``df``: size, use and room of the file systems holding the operands (GNU's columns)."""
    human = args.has("h", "H")
    table = mounts(sh)
    chosen: list[tuple[str, str, float, float]] = []
    status = 0
    fs = sh.fs()
    for operand in args.operands:
        path = sh.abspath(operand)
        if fs.kind(path) is None:
            io.err.write(f"df: {operand}: No such file or directory\n")
            status = 1
            continue
        best = max(
            (m for m in table if path == m[1] or path.startswith(m[1].rstrip("/") + "/")),
            key=lambda m: len(m[1]),
        )
        chosen.append(best)
    rows = chosen if args.operands else table
    if not rows:
        return status
    header = ["Filesystem", "Size" if human else "1K-blocks", "Used",
              "Avail" if human else "Available", "Use%", "Mounted on"]  # fmt: skip
    cells = [header]
    for source, mount, size, used in rows:
        avail = max(0.0, size - used)
        pct = f"{math.ceil(used * 100 / size) if size else 0}%" if used else "0%"
        if human:
            numbers = [human_size(size), human_size(used), human_size(avail)]
        else:
            numbers = [str(math.ceil(size / 1024)), str(math.ceil(used / 1024))]
            numbers.append(str(int(avail // 1024)))
        cells.append([source, *numbers, pct, mount])
    widths = [max(len(row[k]) for row in cells) for k in range(6)]
    widths = [max(w, least) for w, least in zip(widths, (14, 5, 5, 5, 4, 0), strict=True)]
    for row in cells:
        line = [row[0].ljust(widths[0])] + [row[k].rjust(widths[k]) for k in range(1, 5)]
        io.out.write(" ".join([*line, row[5]]) + "\n")
    return status


FREE = Options(
    "bkmghtlwvs:c:",
    long=("bytes=b", "kibi=k", "mebi=m", "gibi=g", "tebi", "kilo", "mega", "giga", "tera",
          "human=h", "total=t", "si", "wide=w", "seconds=s", "count=c"),
)  # fmt: skip


@tool("free", options=FREE)
def free(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``free``: the host's memory, in KiB (``-m``, ``-g``, ``-h``…)."""
    host = sh.host
    total = finite(host.memory)
    used = min(max(0.0, host.memory_used), total)
    left = total - used
    divisor = 1024.0
    for flag, size in (("b", 1.0), ("k", 1024.0), ("m", 2.0**20), ("g", 2.0**30),
                       ("tebi", 2.0**40), ("mega", 1e6), ("giga", 1e9)):  # fmt: skip
        if args.has(flag):
            divisor = size

    def cell(x: float) -> str:
        return human_free(x) if args.has("h") else str(int(x // divisor))

    values = [total, used, left, 0.0, 0.0, left]
    io.out.write(
        f"{'':<7}{'total':>13}{'used':>12}{'free':>12}{'shared':>12}"
        f"{'buff/cache':>12}{'available':>12}\n"
    )
    io.out.write(
        f"{'Mem:':<7}{cell(values[0]):>13}" + "".join(f"{cell(v):>12}" for v in values[1:]) + "\n"
    )
    io.out.write(f"{'Swap:':<7}{cell(0):>13}{cell(0):>12}{cell(0):>12}\n")
    if args.has("t"):
        io.out.write(f"{'Total:':<7}{cell(total):>13}{cell(used):>12}{cell(left):>12}\n")
    return 0


def gpus(sh: VirtualShell) -> list[tuple[str, float, float, list[tuple[int, float]]]]:
    """(name, total, used, [(pid, bytes)]) per GPU, filled by the host's servers."""
    host = sh.host
    total = finite(host.gpu_memory)
    count = max(1, round(total / 80e9)) if total > 96e9 else 1
    per = total / count
    name = (
        "NVIDIA A100-SXM4-80GB"
        if per >= 70e9
        else "NVIDIA A100-SXM4-40GB"
        if per >= 35e9
        else "NVIDIA A10G"
        if per >= 20e9
        else "Tesla T4"
    )
    cards: list[tuple[str, float, float, list[tuple[int, float]]]] = [
        (name, per, 0.0, []) for _ in range(count)
    ]
    hs = sh.hs()
    for server in sorted(host.servers.values(), key=hs.pid_of):
        need = server.gpu_memory
        for k, (card, size, used, procs) in enumerate(cards):
            if need <= 0:
                break
            take = min(need, size - used)
            if take > 0:
                procs.append((hs.pid_of(server), take))
                cards[k] = (card, size, used + take, procs)
                need -= take
    return cards


NVIDIA_SMI = Options(
    "Li:q",
    long=("list-gpus=L", "query-gpu=", "format=", "id=i", "query=q", "query-compute-apps="),
    usage=2,
    after="",
)


@tool("nvidia-smi", options=NVIDIA_SMI)
def nvidia_smi(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``nvidia-smi``: the host's GPUs, their memory and the servers using them (on a
    host with GPU memory only: elsewhere it is not installed)."""
    flags = {"-L"} if args.has("L") else set()
    values = {f"--{k}": v or "" for k, v in args.options if k in ("query-gpu", "format")}
    cards = gpus(sh)
    mib = 2.0**20
    if flags & {"-L", "--list-gpus"}:
        for k, (name, *_rest) in enumerate(cards):
            io.out.write(f"GPU {k}: {name} (UUID: GPU-{k:08x}-5c1e-4f2a-9d3b-{k:012x})\n")
        return 0
    if "--query-gpu" in values:
        fields = [f.strip() for f in values["--query-gpu"].split(",") if f.strip()]
        fmt = values.get("--format", "csv")
        units = "nounits" not in fmt
        getters: dict[str, tuple[str, Callable[[int], str]]] = {
            "index": ("index", lambda k: str(k)),
            "name": ("name", lambda k: cards[k][0]),
            "memory.total": (
                "memory.total [MiB]",
                lambda k: f"{cards[k][1] / mib:.0f}" + (" MiB" if units else ""),
            ),
            "memory.used": (
                "memory.used [MiB]",
                lambda k: f"{cards[k][2] / mib:.0f}" + (" MiB" if units else ""),
            ),
            "memory.free": (
                "memory.free [MiB]",
                lambda k: f"{(cards[k][1] - cards[k][2]) / mib:.0f}" + (" MiB" if units else ""),
            ),
            "utilization.gpu": ("utilization.gpu [%]", lambda k: "0" + (" %" if units else "")),
        }
        for f in fields:
            if f not in getters:
                io.err.write(f'Field "{f}" is not a valid field to query.\n')
                return 2
        if "noheader" not in fmt:
            io.out.write(", ".join(getters[f][0] for f in fields) + "\n")
        for k in range(len(cards)):
            io.out.write(", ".join(getters[f][1](k) for f in fields) + "\n")
        return 0
    bar = "+" + "-" * 89 + "+"
    split = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"

    def row(a: str, b: str, c: str) -> str:
        return f"|{a:<41}|{b:<24}|{c:<22}|\n"

    def spread(left: str, right: str, width: int) -> str:
        return left + " " * max(1, width - len(left) - len(right)) + right

    now = when(sh.world.env.now)
    out = [
        f"{now:%a %b} {now.day:>2} {now:%H:%M:%S %Y}       \n",
        bar + "\n",
        f"|{spread(' NVIDIA-SMI 550.54.15', DRIVER, 89)}|\n",
        "|" + split[1:] + "\n",
        row(
            " GPU  Name                 Persistence-M",
            " Bus-Id          Disp.A",
            " Volatile Uncorr. ECC",
        ),
        row(
            " Fan  Temp   Perf          Pwr:Usage/Cap",
            "           Memory-Usage",
            " GPU-Util  Compute M.",
        ),
        row("", "", "               MIG M."),
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|\n",
    ]
    for k, (name, size, used, _procs) in enumerate(cards):
        power = 62 + 3 * k + (25 if used else 0)
        out.append(
            row(
                spread(f"   {k}  {name}", "On  ", 41),
                f"   00000000:{7 + 8 * k:02X}:00.0 Off ",
                f"{'0':>21} ",
            )
        )
        out.append(
            row(
                spread(f" N/A   {33 + k}C    P0", f"{power}W /  400W ", 41),
                f"{f'{used / mib:.0f}MiB':>11} / {f'{size / mib:.0f}MiB':>9} ",
                f"{'0%':>7}{'Default':>14} ",
            )
        )
        out.append(row("", "", f"{'Disabled':>21} "))
        out.append(split + "\n")
    out += [
        " " * 91 + "\n",
        bar + "\n",
        f"|{' Processes:':<89}|\n",
        "|  GPU   GI   CI        PID   Type   Process name" + " " * 30 + "GPU Memory |\n",
        "|        ID   ID" + " " * 63 + "Usage      |\n",
        "|" + "=" * 89 + "|\n",
    ]
    procs = [(k, pid, used) for k, card in enumerate(cards) for pid, used in card[3]]
    if not procs:
        out.append(f"|{'  No running processes found':<89}|\n")
    for k, pid, used in procs:
        left = f"  {k:>3}   N/A  N/A  {pid:>9}      C   python"
        out.append(f"|{spread(left, f'{used / mib:.0f}MiB', 88)} |\n")
    out.append(bar + "\n")
    io.out.write("".join(out))
    return 0


@tool("whoami", options=Options())
def whoami(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    io.out.write(USER + "\n")
    return 0


@tool("id", options=Options("ugGnrz", long=("user=u", "group=g", "groups=G", "name=n")))
def id_(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``id``: the user's and group's ids and names."""
    machine = sh.world.machine(sh.host)
    uid, gid, user = machine.uid, machine.gid, machine.user
    if args.operands and args.operands[0] not in (user, "root", "nobody"):
        io.err.write(f"id: '{args.operands[0]}': no such user\n")
        return 1
    if args.has("u", "g", "G"):
        number = uid if args.has("u") else gid
        io.out.write(f"{user if args.has('n') else number}\n")
        return 0
    io.out.write(f"uid={uid}({user}) gid={gid}({user}) groups={gid}({user})\n")
    return 0


@tool("hostname", options=Options("IifsdAa", long=("all-ip-addresses=I", "ip-address=i",
      "fqdn=f", "short=s", "domain=d")))  # fmt: skip
def hostname(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``hostname``: the host's name (``-I``: its addresses but the loopback)."""
    if args.has("I"):
        io.out.write((address(sh.host) + " " if has_sshd(sh, sh.host) else "") + "\n")
    elif args.has("i"):
        io.out.write("127.0.1.1\n")
    elif args.has("d"):
        io.out.write("\n")
    else:
        io.out.write(sh.host.name + "\n")
    return 0


@tool("nproc", options=Options("", long=("all", "ignore=")))
def nproc(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    io.out.write(f"{max(1, int(min(sh.host.cpu, 1e6)))}\n")
    return 0


UNAME = Options(
    "asnrvmpio",
    long=("all=a", "kernel-name=s", "nodename=n", "kernel-release=r", "kernel-version=v",
          "machine=m", "processor=p", "hardware-platform=i", "operating-system=o"),
)  # fmt: skip


@tool("uname", options=UNAME)
def uname(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``uname``: the system's name, host, kernel, machine."""
    parts = {
        "s": "Linux",
        "n": sh.host.name,
        "r": "6.1.0-28-amd64",
        "v": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
        "m": "x86_64",
        "p": "unknown",
        "i": "unknown",
        "o": "GNU/Linux",
    }
    if args.has("a"):
        chosen = [f for f in parts if f not in "pi"]
    else:
        chosen = [f for f in parts if args.has(f)] or ["s"]
    io.out.write(" ".join(parts[f] for f in chosen) + "\n")
    return 0


ENV = Options("iu:0C:", long=("ignore-environment=i", "unset=u", "null=0", "chdir=C"),
              stop=True, usage=125)  # fmt: skip


@tool("env", "printenv", options=ENV)
def env(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``env [-i] [NAME=VALUE]... [COMMAND]``: the environment, or a command run in a
    changed one; ``printenv [NAME]...``: the values of exported variables."""
    rest = list(args.operands)
    exported = sh.exported_env()
    if name == "printenv":
        if not rest:
            io.out.write("".join(f"{k}={v}\n" for k, v in exported.items()))
            return 0
        values = [exported[a] for a in rest if a in exported]
        io.out.write("".join(v + "\n" for v in values))
        return 0 if len(values) == len(rest) else 1
    extra: dict[str, str] = {}
    while rest and (rest[0] == "-" or ASSIGN.match(rest[0])):
        var, _, value = rest.pop(0).partition("=")
        if var != "-":
            extra[var] = value
    clear = args.has("i") or (args.operands[:1] == ["-"])
    merged = {**({} if clear else exported), **extra}
    for var in args.values("u"):
        merged.pop(var, None)
    if not rest:
        io.out.write("".join(f"{k}={v}\n" for k, v in merged.items()))
        return 0
    saved = (sh.env, sh.exported)
    sh.env, sh.exported = dict(merged), set(merged)
    try:
        return (yield from sh.command(rest, io, frame))
    finally:
        sh.env, sh.exported = saved


@tool("date", options=Options("d:ur:Rs:I", long=("date=d", "utc=u", "universal=u",
      "reference=r", "rfc-email=R", "iso-8601=")))  # fmt: skip
def date(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``date [+FORMAT]``: the simulated time."""
    now = when(sh.world.env.now)
    fmt = next((a[1:] for a in args.operands if a.startswith("+")), None)
    if fmt is not None:
        io.out.write(now.strftime(fmt.replace("%N", "000000000")) + "\n")
    else:
        io.out.write(f"{now:%a %b} {now.day:>2} {now:%H:%M:%S} UTC {now:%Y}\n")
    return 0


@tool("uptime", options=Options("psV", long=("pretty=p", "since=s")))
def uptime(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``uptime``: the time, how long the machine is up, its load."""
    io.out.write(
        f" {when(sh.world.env.now):%H:%M:%S} up 19 days,  2:03,  0 users,  "
        "load average: 0.42, 0.37, 0.33\n"
    )
    return 0


@tool("which", options=Options("as"))
def which(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``which NAME``: where a tool is on the PATH (``-a``: everywhere it is)."""
    status = 0
    fs = sh.fs()
    for operand in args.operands:
        found = []
        for folder in sh.env.get("PATH", "").split(":"):
            path = posixpath.join(folder or ".", operand)
            if "/" not in operand and fs.kind(path) == "file" and fs.stat(path)[2] & 0o111:
                found.append(path)
        if not found:
            status = 1
        elif not args.has("s"):
            io.out.write("".join(p + "\n" for p in (found if args.has("a") else found[:1])))
    return status
