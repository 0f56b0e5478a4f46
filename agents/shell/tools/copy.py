"""Copies: ``cp``, ``scp``, ``rsync`` (a whole bundle folder is copied by the world)."""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from agents.shell.core import IO, Frame, Gen
from agents.shell.fs import FS, bundle_text
from agents.shell.registry import Args, Options, tool
from agents.shell.util import copy_error
from sim.machine import HOME
from sim.world import ActionFailed, Host

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


def transfer_seconds(sh: VirtualShell, src: Host, dst: Host, size: float) -> float | None:
    if src is dst:
        return size / src.disk_bandwidth if size else 0.0
    if not sh.world.network.up(src, dst):
        return None
    bandwidth, latency = sh.world.network.link(src, dst)
    bandwidth = min(bandwidth, src.disk_bandwidth, dst.disk_bandwidth)
    return latency + (size / bandwidth if size else 0.0)


def copy(
    sh: VirtualShell,
    tool: str,
    src_host: Host,
    src: str,
    dst_host: Host,
    dst: str,
    io: IO,
    frame: Frame,
) -> Gen:
    """Copy ``src`` to exactly ``dst`` (recursively); a bundle folder via the world."""
    sfs, dfs = sh.fs(src_host), sh.fs(dst_host)
    if src in src_host.files:
        return (yield from copy_bundle(sh, tool, src_host, src, dst_host, dst, io, frame))
    kind = sfs.kind(src)
    if kind == "dir":
        dkind = dfs.kind(dst)
        if dkind is None:
            if dfs.kind(posixpath.dirname(dst)) != "dir" or not dfs.writable(dst):
                why = (
                    "No such file or directory"
                    if dfs.kind(posixpath.dirname(dst)) != "dir"
                    else "Permission denied"
                )
                io.err.write(f"{tool}: cannot create directory '{dst}': {why}\n")
                return 1
            dfs.mkdir(dst)
        elif dkind != "dir":
            io.err.write(f"{tool}: cannot overwrite non-directory '{dst}' with directory '{src}'\n")
            return 1
        status = 0
        for name in sfs.listdir(src):
            status |= yield from copy(
                sh,
                tool,
                src_host,
                posixpath.join(src, name),
                dst_host,
                posixpath.join(dst, name),
                io,
                frame,
            )
        return status
    _, size, mode, _, _ = sfs.stat(src)
    data = sfs.read(src)
    if dfs.kind(posixpath.dirname(dst)) != "dir":
        io.err.write(f"{tool}: cannot create regular file '{dst}': No such file or directory\n")
        return 1
    if not dfs.writable(dst):
        io.err.write(f"{tool}: cannot create regular file '{dst}': Permission denied\n")
        return 1
    seconds = transfer_seconds(sh, src_host, dst_host, size)
    if seconds is None:
        io.err.write(f"ssh: connect to host {dst_host.name} port 22: No route to host\n")
        return 1
    yield from sh.tick(frame, seconds)
    problem = dfs.put(dst, data, size, mode)
    if problem:
        io.err.write(f"{tool}: error writing '{dst}': {problem}\n")
        return 1
    return 0


def copy_bundle(
    sh: VirtualShell,
    tool: str,
    src_host: Host,
    src: str,
    dst_host: Host,
    dst: str,
    io: IO,
    frame: Frame,
) -> Gen:
    """A whole bundle folder: the world's copy (disk or link bandwidth, disk space)."""
    dfs = sh.fs(dst_host)
    world = sh.world
    if dfs.kind(posixpath.dirname(dst)) != "dir":
        io.err.write(f"{tool}: cannot create directory '{dst}': No such file or directory\n")
        return 1
    if not dfs.writable(dst):
        io.err.write(f"{tool}: cannot create directory '{dst}': Permission denied\n")
        return 1
    if dst_host is not src_host and not sh.reachable(dst_host):
        io.err.write(f"ssh: connect to host {dst_host.name} port 22: No route to host\n")
        return 255 if tool != "cp" else 1
    before = len(world.events)
    try:
        yield from world.copy_bundle(sh.replica, src_host, src, dst_host, dst)
    except ActionFailed as failure:
        if any(kind == "copy-start" for _, kind, _ in world.events[before:]):
            leave_partial(sh, dfs, dst)
        text, code = copy_error(tool, failure.reason, src, dst)
        io.err.write(text + "\n")
        return code
    return 0


def leave_partial(sh: VirtualShell, fs: FS, folder: str) -> None:
    """What an interrupted ``cp -r`` leaves: the small files, and no weights."""
    fs.mkdir(folder)
    for rel in sorted(fs.state.tree_dirs):
        if rel:
            fs.mkdir(f"{folder}/{rel}")
    for rel, size in fs.state.tree_files.items():
        text = bundle_text(fs, folder, rel)
        if text is not None:
            fs.put(f"{folder}/{rel}", text, size, 0o755 if rel.endswith(".sh") else 0o644)


def whole_bundle(sh: VirtualShell, fs: FS, paths: list[str]) -> str | None:
    """The bundle folder if ``paths`` are all of its entries (``cp -r dir/* new/``)."""
    parents = {posixpath.dirname(p) for p in paths}
    if len(paths) < 2 or len(parents) != 1:
        return None
    parent = parents.pop()
    if parent not in sh.host.files:
        return None
    top = {rel.split("/")[0] for rel in fs.state.tree_files}
    return parent if top <= {posixpath.basename(p) for p in paths} else None


CP = Options(
    "rRafipvnuLPHdlsbt:T",
    long=("recursive=r", "archive=a", "force=f", "interactive=i", "preserve=",
          "no-preserve=", "verbose=v", "no-clobber=n", "update=u", "dereference=L",
          "no-dereference=P", "link=l", "symbolic-link=s", "backup", "target-directory=t",
          "no-target-directory=T", "parents", "sparse=", "reflink"),
)  # fmt: skip


@tool("cp", options=CP)
def cp(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``cp``: copy files (``-r``: folders; a whole bundle folder is the world's copy)."""
    ops = list(args.operands)
    recursive = args.has("r", "R", "a")
    if args.value("t") is not None:
        ops.append(args.value("t") or "")
    if len(ops) < 2:
        io.err.write(
            "cp: missing file operand\n"
            if not ops
            else f"cp: missing destination file operand after '{ops[0]}'\n"
        )
        io.err.write("Try 'cp --help' for more information.\n")
        return 1
    *sources, dest = ops
    fs = sh.fs()
    dpath = sh.abspath(dest)
    dkind = fs.kind(dpath)
    if len(sources) > 1 and dkind != "dir":
        io.err.write(f"cp: target '{dest}' is not a directory\n")
        return 1
    whole = whole_bundle(sh, fs, [sh.abspath(s) for s in sources])
    if whole is not None and recursive and dkind == "dir":
        return (yield from copy_bundle(sh, "cp", sh.host, whole, sh.host, dpath, io, frame))
    status = 0
    for source in sources:
        spath = sh.abspath(source)
        kind = fs.kind(spath)
        if kind is None:
            io.err.write(f"cp: cannot stat '{source}': No such file or directory\n")
            status = 1
            continue
        if kind == "dir" and not recursive:
            io.err.write(f"cp: -r not specified; omitting directory '{source}'\n")
            status = 1
            continue
        contents = source.rstrip("/").endswith("/.") or source == "."
        target = (
            posixpath.join(dpath, posixpath.basename(spath))
            if dkind == "dir" and not contents
            else dpath
        )
        if target == spath:
            io.err.write(f"cp: '{source}' and '{dest}' are the same file\n")
            status = 1
            continue
        if kind == "dir" and target.startswith(spath + "/"):
            io.err.write(f"cp: cannot copy a directory, '{source}', into itself, '{dest}'\n")
            status = 1
            continue
        status |= yield from copy(sh, "cp", sh.host, spath, sh.host, target, io, frame)
    return status


SCP = Options("rRpqvCP:i:o:F:l:c:J:346BT", usage=1, after="usage: scp [-346ABCOpqRrsTv] "
              "[-c cipher] [-D sftp_server_path] [-F ssh_config] [-i identity_file] "
              "[-J destination] [-l limit] [-o ssh_option] [-P port] [-S program] "
              "source ... target\n")  # fmt: skip
RSYNC = Options(
    "arvzPhnuqcRlptgoDHAXSe:",
    long=("archive=a", "recursive=r", "verbose=v", "compress=z", "progress", "partial",
          "human-readable=h", "dry-run=n", "update=u", "quiet=q", "checksum=c",
          "delete", "exclude=", "include=", "bwlimit=", "partial-dir=", "rsh=e",
          "stats", "info="),
    after="rsync error: syntax or usage error (code 1) at main.c(1795) [client=3.2.7]\n",
)  # fmt: skip


@tool("scp", options=SCP)
def scp(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``scp [-r] SRC... [HOST:]DST``: copy over the modelled network (or locally)."""
    return (yield from remote_copy(sh, args, io, frame, name))


@tool("rsync", options=RSYNC)
def rsync(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``rsync -a SRC[/] [HOST:]DST``: copy a folder (or its contents, with ``/``)."""
    return (yield from remote_copy(sh, args, io, frame, name))


def remote_copy(sh: VirtualShell, args: Args, io: IO, frame: Frame, tool: str) -> Gen:
    ops = args.operands
    recursive = args.has("r", "R") if tool == "scp" else args.has("a", "r")
    verbose = tool == "rsync" and args.has("v", "P", "progress")
    if len(ops) < 2:
        io.err.write(
            f"usage: {tool} [-r] source ... target\n"
            if tool == "scp"
            else "rsync: missing destination\nrsync error: syntax or usage error "
            "(code 1) at main.c(1795) [client=3.2.7]\n"
        )
        return 1
    *sources, dest = ops
    dst_host, dst_raw, dst_name = remote(sh, dest)
    if dst_host is None and dst_name:
        io.err.write(
            f"ssh: Could not resolve hostname {dst_name}: Name or service not "
            "known\n" + ("scp: Connection closed\n" if tool == "scp" else "")
        )
        return 255
    dst_host = dst_host or sh.host
    if dst_host is not sh.host and not sh.reachable(dst_host):
        io.err.write(
            f"ssh: connect to host {dst_name} port 22: No route to host\n"
            + (
                "scp: Connection closed\n"
                if tool == "scp"
                else "rsync: connection unexpectedly closed (0 bytes received so far) "
                "[sender]\nrsync error: unexplained error (code 255) at io.c(231) "
                "[sender=3.2.7]\n"
            )
        )
        return 255
    dfs = sh.fs(dst_host)
    dpath = remote_path(sh, dst_host, dst_raw)
    yield from sh.tick(frame, 0.2)  # the ssh handshake
    status = 0
    total = 0.0
    began = sh.world.env.now
    for source in sources:
        src_host, src_raw, src_name = remote(sh, source)
        if src_host is None and src_name:
            io.err.write(f"ssh: Could not resolve hostname {src_name}: Name or service not known\n")
            status = 255
            continue
        src_host = src_host or sh.host
        sfs = sh.fs(src_host)
        spath = remote_path(sh, src_host, src_raw)
        kind = sfs.kind(spath)
        if kind is None:
            io.err.write(
                f"{tool}: {source}: No such file or directory\n"
                if tool == "scp"
                else f'rsync: [sender] link_stat "{spath}" failed: No such file or directory (2)\n'
            )
            status = 1 if tool == "scp" else 23
            continue
        if kind == "dir" and not recursive:
            io.err.write(
                f"scp: {source}: not a regular file\n"
                if tool == "scp"
                else f"skipping directory {posixpath.basename(spath)}\n"
            )
            status = 1
            continue
        dkind = dfs.kind(dpath)
        if tool == "rsync":
            contents = src_raw.endswith("/")
            target = dpath if contents else posixpath.join(dpath, posixpath.basename(spath))
            if not contents and dkind != "dir" and not dst_raw.endswith("/"):
                target = dpath if kind == "file" else target
            if not contents and kind == "dir" and dkind is None and not dst_raw.endswith("/"):
                if dfs.kind(posixpath.dirname(dpath)) == "dir":
                    dfs.mkdir(dpath)
                target = posixpath.join(dpath, posixpath.basename(spath))
        else:
            target = posixpath.join(dpath, posixpath.basename(spath)) if dkind == "dir" else dpath
        code = yield from copy(sh, tool, src_host, spath, dst_host, target, io, frame)
        if code == 0:
            total += sfs.size(spath)
            if verbose:
                io.out.write("sending incremental file list\n")
                base = spath if src_raw.endswith("/") else posixpath.dirname(spath)
                for path in sfs.walk(spath):
                    io.out.write(
                        posixpath.relpath(path, base)
                        + ("/" if sfs.kind(path) == "dir" else "")
                        + "\n"
                    )
        status = status or code
    if verbose and status == 0:
        io.out.write(
            f"\nsent {total:,.0f} bytes  received 35 bytes  "
            f"{total / max(sh.world.env.now - began, 1e-3):,.2f} bytes/sec\n"
            f"total size is {total:,.0f}  speedup is 1.00\n"
        )
    return status


def remote(sh: VirtualShell, spec: str) -> tuple[Host | None, str, str]:
    """Split ``[user@]host:path``: (host, path, host name); host None if local."""
    m = re.match(r"^(?:[^@/:]+@)?([A-Za-z0-9_.-]+):(.*)$", spec)
    if m is None:
        return None, spec, ""
    return sh.resolve(m.group(1)), m.group(2), m.group(1)


def remote_path(sh: VirtualShell, host: Host, path: str) -> str:
    if host is sh.host:
        return sh.abspath(path)
    joined = posixpath.normpath(posixpath.join(HOME, path or "."))
    return "/" + joined.lstrip("/")
