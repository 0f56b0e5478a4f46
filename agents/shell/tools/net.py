"""The network: listening sockets (``netstat``, ``ss``, ``lsof``), HTTP (``curl``, ``wget``),
``ssh``, ``ip``."""

from __future__ import annotations

import json
import posixpath
import re
from typing import TYPE_CHECKING, Any

from agents.shell.core import IO, Exit, Frame, Gen, Null
from agents.shell.fs import address, world_state
from agents.shell.processes import SSHD_PID
from agents.shell.registry import tool
from agents.shell.syntax import ShellSyntaxError, parse
from agents.shell.util import curl_write_out, old_opts, when
from sim.machine import USER
from sim.world import Host

if TYPE_CHECKING:
    from agents.shell.interpreter import VirtualShell


def listening(sh: VirtualShell) -> list[tuple[int, int]]:
    """(port, pid) of listening TCP sockets: sshd, and model servers that finished
    loading (vLLM binds its port only then)."""
    hs = sh.hs()
    now = sh.world.env.now
    found = [(22, SSHD_PID)]
    found += [(s.port, hs.pid_of(s)) for s in sh.host.servers.values() if s.ready_at <= now]
    return sorted(found)


@tool("netstat")
def netstat(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, _ = old_opts(argv[1:])
    show_pid = "-p" in flags
    if show_pid:
        io.err.write(
            "(Not all processes could be identified, non-owned process info\n"
            " will not be shown, you would have to be root to see it all.)\n"
        )
    io.out.write(
        "Active Internet connections (only servers)\n"
        "Proto Recv-Q Send-Q Local Address           Foreign Address         State"
        + ("       PID/Program name    " if show_pid else "")
        + "\n"
    )
    for port, pid in listening(sh):
        prog = "-" if pid == SSHD_PID else f"{pid}/python"
        io.out.write(
            f"tcp        0      0 {'0.0.0.0:' + str(port):<23} {'0.0.0.0:*':<23} "
            f"LISTEN     " + (f" {prog:<19}" if show_pid else "") + "\n"
        )
    return 0


@tool("ss")
def ss(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, _, _ = old_opts(argv[1:])
    io.out.write("State  Recv-Q Send-Q  Local Address:Port   Peer Address:Port Process\n")
    for port, pid in listening(sh):
        process = ""
        if "-p" in flags and pid != SSHD_PID:
            process = f'users:(("python",pid={pid},fd=13))'
        io.out.write(
            f"LISTEN 0      {'128' if pid == SSHD_PID else '2048':<7} "
            f"{'0.0.0.0:' + str(port):>18} {'0.0.0.0:*':>19} {process}\n"
        )
    return 0


@tool("lsof")
def lsof(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> int:
    flags, values, _ = old_opts(argv[1:], takes={"-i", "-p", "-u", "-c"})
    want = values.get("-i", "")
    m = re.search(r":(\d+)$", want)
    port = int(m.group(1)) if m else None
    rows = [(p, pid) for p, pid in listening(sh) if pid != SSHD_PID and (port is None or p == port)]
    if not rows:
        return 1
    if "-t" in flags:
        io.out.write("".join(f"{pid}\n" for _, pid in rows))
        return 0
    io.out.write("COMMAND    PID  USER   FD   TYPE DEVICE SIZE/OFF NODE NAME\n")
    for p, pid in rows:
        io.out.write(
            f"python  {pid:>6} {USER:<5}   13u  IPv4  {51000 + p:>5}      0t0  TCP *:{p} (LISTEN)\n"
        )
    return 0


def http(
    sh: VirtualShell, host: Host, port: int, method: str, path: str, body: str
) -> tuple[int, str] | None:
    """(status, body) of an HTTP request to a model server; None: connection refused."""
    server = host.servers.get(port)
    if server is None or not sh.world.probe(sh.replica, host, port):
        return None
    model = world_state(sh.world).model
    path = path.split("?")[0].rstrip("/") or "/"
    if path in ("/health", "/ping"):
        return 200, ""
    if path == "/version":
        return 200, '{"version":"0.6.3.post1"}'
    if path == "/v1/models":
        data = {
            "object": "list",
            "data": [
                {
                    "id": model,
                    "object": "model",
                    "created": int(when(server.ready_at).timestamp()),
                    "owned_by": "vllm",
                    "root": f"{server.path}/weights",
                    "parent": None,
                    "max_model_len": 32768,
                }
            ],
        }
        return 200, json.dumps(data)
    if path in ("/v1/chat/completions", "/v1/completions"):
        if method != "POST":
            return 405, '{"detail":"Method Not Allowed"}'
        created = int(when(sh.world.env.now).timestamp())
        text = "Hello! I am running and ready to help."
        choice: dict[str, Any] = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            if path.endswith("chat/completions")
            else {"index": 0, "text": text, "finish_reason": "stop"}
        )
        return 200, json.dumps(
            {
                "id": f"chatcmpl-{created:x}",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22},
            }
        )
    if path == "/metrics":
        return 200, "# HELP vllm:num_requests_running Number of requests running\n"
    return 404, '{"detail":"Not Found"}'


def parse_url(sh: VirtualShell, url: str) -> tuple[str, int, str]:
    m = re.match(r"^(?:(https?)://)?([^/:]+|\[[^\]]+\])(?::(\d+))?(/.*)?$", url)
    if m is None:
        return "", 0, ""
    default = 443 if m.group(1) == "https" else 80
    return m.group(2), int(m.group(3) or default), m.group(4) or "/"


@tool("curl")
def curl(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    flags, values, urls = old_opts(
        argv[1:],
        takes={
            "-o",
            "--output",
            "-w",
            "--write-out",
            "-X",
            "--request",
            "-H",
            "--header",
            "-d",
            "--data",
            "--data-raw",
            "--data-binary",
            "--json",
            "-m",
            "--max-time",
            "--connect-timeout",
            "--retry",
            "-u",
            "--user",
            "-A",
            "--user-agent",
            "--noproxy",
            "-e",
            "--retry-delay",
        },
    )
    silent = bool(flags & {"-s", "--silent"}) and not flags & {"-S", "--show-error"}
    fail = bool(flags & {"-f", "--fail"})
    if not urls:
        io.err.write(
            "curl: no URL specified!\ncurl: try 'curl --help' or 'curl --manual' "
            "for more information\n"
        )
        return 2
    name, port, path = parse_url(sh, urls[0])
    body = next(
        (
            values[k]
            for k in ("-d", "--data", "--data-raw", "--data-binary", "--json")
            if k in values
        ),
        "",
    )
    method = values.get("-X", values.get("--request", "POST" if body else "GET"))
    if flags & {"-I", "--head"}:
        method = "HEAD"
    write_out = values.get("-w", values.get("--write-out", ""))
    target = sh.resolve(name) if name else None
    yield from sh.tick(frame, 0.0)
    if target is None:
        if not silent:
            io.err.write(f"curl: (6) Could not resolve host: {name}\n")
        io.out.write(curl_write_out(write_out, 0, 0))
        return 6
    if not sh.reachable(target):
        if not silent:
            io.err.write(
                f"curl: (7) Failed to connect to {name} port {port} after 3 ms: No route to host\n"
            )
        io.out.write(curl_write_out(write_out, 0, 0))
        return 7
    if target is not sh.host:
        yield from sh.tick(frame, 2 * sh.world.network.link(sh.host, target)[1])
    answer = http(sh, target, port, method, path, body)
    if answer is None:
        if not silent:
            io.err.write(
                f"curl: (7) Failed to connect to {name} port {port} after 0 ms: "
                "Connection refused\n"
            )
        io.out.write(curl_write_out(write_out, 0, 0))
        return 7
    code, text = answer
    if fail and code >= 400:
        if not silent:
            io.err.write(f"curl: (22) The requested URL returned error: {code}\n")
        io.out.write(curl_write_out(write_out, code, 0))
        return 22
    headers = ""
    if flags & {"-i", "--include", "-I", "--head"}:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(code, "")
        headers = (
            f"HTTP/1.1 {code} {reason}\r\ndate: "
            f"{when(sh.world.env.now):%a, %d %b %Y %H:%M:%S} GMT\r\n"
            f"server: uvicorn\r\ncontent-length: {len(text)}\r\n"
            "content-type: application/json\r\n\r\n"
        )
    shown = headers + ("" if method == "HEAD" else text)
    output = values.get("-o", values.get("--output"))
    if output is not None:
        sink = sh.open_sink(output, append=False)
        if isinstance(sink, str):
            io.err.write("curl: (23) Failure writing output to destination\n")
            return 23
        sink.write(shown)
    else:
        io.out.write(shown)
    io.out.write(curl_write_out(write_out, code, len(text)))
    return 0


@tool("wget")
def wget(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    flags, values, urls = old_opts(
        argv[1:], takes={"-O", "--output-document", "-T", "--timeout", "-t", "--tries"}
    )
    quiet = bool(flags & {"-q", "--quiet"})
    if not urls:
        io.err.write("wget: missing URL\n")
        return 1
    name, port, path = parse_url(sh, urls[0])
    target = sh.resolve(name)
    yield from sh.tick(frame, 0.0)
    log = io.err if not quiet else Null()
    log.write(f"--{when(sh.world.env.now):%Y-%m-%d %H:%M:%S}--  {urls[0]}\n")
    if target is None:
        log.write(
            f"Resolving {name} ({name})... failed: Name or service not known.\n"
            f"wget: unable to resolve host address '{name}'\n"
        )
        return 4
    shown_address = "127.0.0.1" if target is sh.host else address(target)
    answer = http(sh, target, port, "GET", path, "") if sh.reachable(target) else None
    log.write(f"Connecting to {name} ({name})|{shown_address}|:{port}... ")
    if answer is None:
        log.write("failed: Connection refused.\n")
        return 4
    code, text = answer
    log.write(f"connected.\nHTTP request sent, awaiting response... {code}\n")
    if code >= 400:
        log.write(f"{when(sh.world.env.now):%Y-%m-%d %H:%M:%S} ERROR {code}.\n")
        return 8
    output = values.get(
        "-O", values.get("--output-document", posixpath.basename(path) or "index.html")
    )
    if output == "-":
        io.out.write(text)
    else:
        sink = sh.open_sink(output, append=False)
        if isinstance(sink, str):
            io.err.write(f"{output}: {sink}\n")
            return 3
        sink.write(text)
    return 0


@tool("ssh")
def ssh(sh: VirtualShell, argv: list[str], io: IO, frame: Frame) -> Gen:
    args = argv[1:]
    takes = set("BbcDEeFIiJLlmOopQRSWw")
    background = False
    k = 0
    while k < len(args) and args[k].startswith("-") and len(args[k]) > 1:
        flag = args[k]
        if flag[1] in takes and len(flag) == 2:
            k += 2
            continue
        background = background or "f" in flag[1:]
        k += 1
    if k >= len(args):
        io.err.write(
            "usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] destination "
            "[command [argument ...]]\n"
        )
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
    session = sh.child(target)
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
    io.out.write(
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default\n"
        "    inet 127.0.0.1/8 scope host lo\n"
        "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP group "
        "default qlen 1000\n"
        f"    inet {address(sh.host)}/16 brd 10.0.255.255 scope global eth0\n"
    )
    return 0
