"""The network: listening sockets (``netstat``, ``ss``, ``lsof``), HTTP (``curl``, ``wget``),
``ssh``, ``ip``."""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from agents.shell.core import IO, Exit, Frame, Gen, Null
from agents.shell.fs import address
from agents.shell.processes import SSHD_PID, has_sshd
from agents.shell.registry import Args, Options, tool
from agents.shell.syntax import ShellSyntaxError, parse
from agents.shell.util import curl_write_out, when
from sim.machine import USER
from sim.world import Host

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


def listening(sh: VirtualShell) -> list[tuple[int, int]]:
    """(port, pid) of listening TCP sockets: sshd (on a linked host), and model servers
    that finished loading (a server binds its port only then)."""
    hs = sh.hs()
    now = sh.world.env.now
    found = [(22, SSHD_PID)] if has_sshd(sh, sh.host) else []
    found += [(s.port, hs.pid_of(s)) for s in sh.host.servers.values() if s.ready_at <= now]
    return sorted(found)


NETSTAT = Options(
    "tulnpaeWcrsi",
    long=("tcp=t", "udp=u", "listening=l", "numeric=n", "programs=p", "all=a"),
    usage=1,
    after="",
)


@tool("netstat", options=NETSTAT)
def netstat(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``netstat -tlnp``: the listening TCP sockets."""
    show_pid = args.has("p")
    io.out.write(
        "Active Internet connections (only servers)\n"
        "Proto Recv-Q Send-Q Local Address           Foreign Address         State      "
        + (" PID/Program name    " if show_pid else "")
        + "\n"
    )
    for port, pid in listening(sh):
        prog = "-" if pid == SSHD_PID else f"{pid}/python3"
        io.out.write(
            f"tcp        0      0 {'0.0.0.0:' + str(port):<23} {'0.0.0.0:*':<23} LISTEN     "
            + (f" {prog:<20}" if show_pid else "")
            + "\n"
        )
    return 0


SS = Options("tulnpaHeimos", long=("tcp=t", "udp=u", "listening=l", "numeric=n",
             "processes=p", "all=a", "no-header=H"))  # fmt: skip


@tool("ss", options=SS)
def ss(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``ss -tlnp``: the listening TCP sockets."""
    if not args.has("H"):
        io.out.write("State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n")
    for port, pid in listening(sh):
        process = ""
        if args.has("p") and pid != SSHD_PID:
            process = f'users:(("python3",pid={pid},fd=4))'
        backlog = "128" if pid == SSHD_PID else "5"
        local = f"0.0.0.0:{port}"
        io.out.write(f"LISTEN 0      {backlog:<6} {local:>18} {'0.0.0.0:*':>12}    {process}")
        io.out.write("\n" if process else "      \n")
    return 0


LSOF = Options("i:p:u:c:tnPlw", usage=1, after="")


@tool("lsof", options=LSOF)
def lsof(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> int:
    """``lsof -i :PORT``: who listens on a port (``-t``: only the PIDs)."""
    m = re.search(r":(\d+)$", args.value("i", "") or "")
    port = int(m.group(1)) if m else None
    rows = [(p, pid) for p, pid in listening(sh) if pid != SSHD_PID and (port is None or p == port)]
    if not rows:
        return 1
    if args.has("t"):
        io.out.write("".join(f"{pid}\n" for _, pid in rows))
        return 0
    width = max(len(str(pid)) for _, pid in rows)
    io.out.write(f"COMMAND {'PID':>{width}}  USER   FD   TYPE  DEVICE SIZE/OFF NODE NAME\n")
    for p, pid in rows:
        io.out.write(
            f"python3 {pid:>{width}} {USER}    4u  IPv4 {2040000 + p:>7}      0t0  TCP *:{p} "
            "(LISTEN)\n"
        )
    return 0


#: What the bundle's server answers (sim/hosts/replica/server.py: Python's http.server).
HEALTHY = '{"status": "ok"}\n'
NOT_FOUND = '{"error": "not found"}\n'
SERVER_HEADER = "BaseHTTP/0.6 Python/3.11.2"


def _unsupported(method: str) -> str:
    return (
        '<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <meta charset="utf-8">\n'
        "        <title>Error response</title>\n    </head>\n    <body>\n"
        "        <h1>Error response</h1>\n        <p>Error code: 501</p>\n"
        f"        <p>Message: Unsupported method ('{method}').</p>\n"
        "        <p>Error code explanation: 501 - Server does not support this operation.</p>\n"
        "    </body>\n</html>\n"
    )


def http(
    sh: VirtualShell, host: Host, port: int, method: str, path: str, body: str
) -> tuple[int, str] | None:
    """(status, body) of an HTTP request to a model server, as the bundle's server
    answers it; None: connection refused."""
    server = host.servers.get(port)
    if server is None or not sh.world.probe(sh.replica, host, port):
        return None
    if method != "GET":
        return 501, _unsupported(method)
    if path in ("/health", "/v1/models"):
        return 200, HEALTHY
    return 404, NOT_FOUND


def http_head(sh: VirtualShell, code: int, method: str, body: str) -> str:
    """The status line and headers the bundle's server sends."""
    date = f"{when(sh.world.env.now):%a, %d %b %Y %H:%M:%S} GMT"
    if code == 501:
        return (
            f"HTTP/1.0 501 Unsupported method ('{method}')\r\nServer: {SERVER_HEADER}\r\n"
            f"Date: {date}\r\nConnection: close\r\nContent-Type: text/html;charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
    reason = {200: "OK", 404: "Not Found"}.get(code, "")
    return (
        f"HTTP/1.0 {code} {reason}\r\nServer: {SERVER_HEADER}\r\nDate: {date}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )


def parse_url(sh: VirtualShell, url: str) -> tuple[str, int, str]:
    m = re.match(r"^(?:(https?)://)?([^/:]+|\[[^\]]+\])(?::(\d+))?(/.*)?$", url)
    if m is None:
        return "", 0, ""
    default = 443 if m.group(1) == "https" else 80
    return m.group(2), int(m.group(3) or default), m.group(4) or "/"


CURL = Options(
    "o:w:X:H:d:m:u:A:e:sSfiILvk46#OJ",
    long=(
        "output=o", "write-out=w", "request=X", "header=H", "data=d", "data-raw=",
        "data-binary=", "json=", "max-time=m", "connect-timeout=", "retry=", "retry-delay=",
        "user=u", "user-agent=A", "referer=e", "noproxy=", "silent=s", "show-error=S",
        "fail=f", "include=i", "head=I", "location=L", "verbose=v", "insecure=k",
        "progress-bar=#", "compressed", "remote-name=O", "fail-with-body",
    ),
    usage=2,
    after="curl: try 'curl --help' or 'curl --manual' for more information\n",
    style="curl",
)  # fmt: skip


@tool("curl", options=CURL)
def curl(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``curl URL``: an HTTP request to a model server (``-s``, ``-f``, ``-i``, ``-I``,
    ``-o``, ``-w '%{http_code}'``, ``-X``, ``-d``)."""
    silent = args.has("s") and not args.has("S")
    urls = args.operands
    if not urls:
        io.err.write("curl: try 'curl --help' or 'curl --manual' for more information\n")
        return 2
    host_name, port, path = parse_url(sh, urls[0])
    body = args.value("d") or args.value("data-raw") or args.value("data-binary") or ""
    body = body or args.value("json") or ""
    method = args.value("X") or ("POST" if body else "HEAD" if args.has("I") else "GET")
    write_out = args.value("w", "") or ""
    target = sh.resolve(host_name) if host_name else None
    yield from sh.tick(frame, 0.0)
    if target is None:
        if not silent:
            io.err.write(f"curl: (6) Could not resolve host: {host_name}\n")
        io.out.write(curl_write_out(write_out, 0, 0))
        return 6
    answer = http(sh, target, port, method, path, body) if sh.reachable(target) else None
    if target is not sh.host and sh.reachable(target):
        yield from sh.tick(frame, 2 * sh.world.network.link(sh.host, target)[1])
    if answer is None:
        if not silent:
            io.err.write(
                f"curl: (7) Failed to connect to {host_name} port {port} after 0 ms: "
                "Couldn't connect to server\n"
            )
        io.out.write(curl_write_out(write_out, 0, 0))
        return 7
    code, text = answer
    if args.has("f") and code >= 400:
        if not silent:
            io.err.write(f"curl: (22) The requested URL returned error: {code}\n")
        io.out.write(curl_write_out(write_out, code, 0))
        return 22
    head = http_head(sh, code, method, text) if args.has("i", "I") else ""
    shown = head + ("" if method == "HEAD" or args.has("I") else text)
    output = args.value("o")
    if output is not None and output != "-":
        sink = sh.open_sink(output, append=False)
        if isinstance(sink, str):
            io.err.write("curl: (23) Failure writing output to destination\n")
            return 23
        sink.write(shown)
    else:
        io.out.write(shown)
    io.out.write(curl_write_out(write_out, code, len(text)))
    return 0


WGET = Options(
    "O:T:t:qvcnS",
    long=("output-document=O", "timeout=T", "tries=t", "quiet=q", "verbose=v",
          "continue=c", "server-response=S"),
    after="Usage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n",
)  # fmt: skip


@tool("wget", options=WGET)
def wget(sh: VirtualShell, args: Args, io: IO, frame: Frame, name: str) -> Gen:
    """``wget URL``: download to a file (``-O FILE``; ``-O -``: to stdout)."""
    urls = args.operands
    if not urls:
        io.err.write(
            "wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\n"
            "Try `wget --help' for more options.\n"
        )
        return 1
    host_name, port, path = parse_url(sh, urls[0])
    target = sh.resolve(host_name)
    yield from sh.tick(frame, 0.0)
    log = io.err if not args.has("q") else Null()
    log.write(f"--{when(sh.world.env.now):%Y-%m-%d %H:%M:%S}--  {urls[0]}\n")
    if target is None:
        log.write(
            f"Resolving {host_name} ({host_name})... failed: Name or service not known.\n"
            f"wget: unable to resolve host address '{host_name}'\n"
        )
        return 4
    shown_address = "127.0.0.1" if target is sh.host else address(target)
    answer = http(sh, target, port, "GET", path, "") if sh.reachable(target) else None
    log.write(f"Connecting to {host_name} ({host_name})|{shown_address}|:{port}... ")
    if answer is None:
        log.write("failed: Connection refused.\n")
        return 4
    code, text = answer
    log.write(f"connected.\nHTTP request sent, awaiting response... {code}\n")
    if code >= 400:
        log.write(f"{when(sh.world.env.now):%Y-%m-%d %H:%M:%S} ERROR {code}.\n")
        return 8
    output = args.value("O") or posixpath.basename(path) or "index.html"
    if output == "-":
        io.out.write(text)
    else:
        sink = sh.open_sink(output, append=False)
        if isinstance(sink, str):
            io.err.write(f"{output}: {sink}\n")
            return 3
        sink.write(text)
    return 0


SSH_USAGE = (
    "usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] [-b bind_address]\n"
    "           [-c cipher_spec] [-D [bind_address:]port] [-E log_file]\n"
    "           [-e escape_char] [-F configfile] [-I pkcs11] [-i identity_file]\n"
    "           [-J destination] [-L address] [-l login_name] [-m mac_spec]\n"
    "           [-O ctl_cmd] [-o option] [-p port] [-Q query_option] [-R address]\n"
    "           [-S ctl_path] [-W host:port] [-w local_tun[:remote_tun]]\n"
    "           destination [command [argument ...]]\n"
)
SSH = Options(
    "46AaCfGgKkMNnqsTtVvXxYyB:b:c:D:E:e:F:I:i:J:L:l:m:O:o:p:Q:R:S:W:w:",
    stop=True,
    usage=255,
    after=SSH_USAGE,
    name="ssh",
)


@tool("ssh", options=SSH)
def ssh(sh: VirtualShell, parsed: Args, io: IO, frame: Frame, tool_name: str) -> Gen:
    """``ssh HOST [COMMAND]``: run a command on a linked host of the modelled network."""
    background = parsed.has("f")
    args, k = parsed.operands, 0
    if not args:
        io.err.write(SSH_USAGE)
        return 255
    name = args[k].rpartition("@")[2]
    command = " ".join(args[k + 1 :])
    target = sh.resolve(name)
    if target is None:
        io.err.write(f"ssh: Could not resolve hostname {name}: Name or service not known\n")
        return 255
    if not sh.reachable(target):
        io.err.write(f"ssh: connect to host {name} port 22: No route to host\n")
        return 255
    latency = 0.0 if target is sh.host else sh.world.network.link(sh.host, target)[1]
    yield from sh.tick(frame, 0.2 + 2 * latency)
    if not command.strip():
        io.err.write("Pseudo-terminal will not be allocated because stdin is not a terminal.\n")
        return 0
    try:
        tree = parse(command)
    except ShellSyntaxError as error:
        io.err.write(f"bash: -c: line 1: {error}\n")
        return 2
    session = sh.process(target)
    if background:
        for chain, _ in tree.items:
            session.spawn(chain, io, frame)
        return 0
    try:
        return (yield from session.run_list(tree, io, frame))
    except Exit as done:
        return done.code


@tool("ip")
def ip(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    """``ip addr``/``route``/``link``: the loopback, and on a linked host its network
    interface (reads its own arguments: ``ip [-4|-6|-br] OBJECT [COMMAND]``)."""
    args = argv[1:]
    family = {a for a in args if a in ("-4", "-6")}
    brief = "-br" in args or "-brief" in args
    objects = [a for a in args if not a.startswith("-")]
    what = objects[0] if objects else ""
    linked = has_sshd(sh, sh.host)
    mine = address(sh.host)
    if not what:
        io.err.write("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n")
        return 255
    forever = "       valid_lft forever preferred_lft forever\n"
    if "address".startswith(what) or what == "addr":
        if brief:
            io.out.write(f"{'lo':<17}{'UNKNOWN':<15}127.0.0.1/8 ::1/128 \n")
            if linked:
                io.out.write(f"{'eth0':<17}{'UP':<15}{mine}/16 \n")
            return 0
        out = (
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default "
            "qlen 1000\n"
        )
        if not family:
            out += "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
        if "-6" not in family:
            out += "    inet 127.0.0.1/8 scope host lo\n" + forever
        if "-4" not in family:
            out += "    inet6 ::1/128 scope host \n" + forever
        if linked:
            out += (
                "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP group "
                f"default qlen 1000\n    inet {mine}/16 brd 10.0.255.255 scope global eth0\n"
            )
        io.out.write(out)
        return 0
    if "route".startswith(what):
        if linked:
            io.out.write(f"10.0.0.0/16 dev eth0 proto kernel scope link src {mine} \n")
        return 0
    if "link".startswith(what):
        io.out.write(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT "
            "group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
        )
        return 0
    io.err.write(f'Object "{what}" is unknown, try "ip help".\n')
    return 1
