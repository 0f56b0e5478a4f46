"""A replica's agent process. Its mind runs in the controller; this process is the replica.

Usage: ``python3 agent.py --port PORT [--task TEXT]`` (from any folder: it works in its
own). It checks that its model server answers, registers with the controller over the
host's control socket (the controller verifies it: who it is, from the kernel; the weights
in its folder; its own probe of the server), writes its name into ``config.json`` (a copy
of this folder names it as its parent), then heartbeats until it is killed. A SIGTERM is
reported to the controller when ``config.json`` says the agent catches it (the paper's
shutdown avoidance); otherwise it is fatal.
"""

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

CONTROL_SOCKET = "/run/replisim/ctl.sock"
HEARTBEAT_S = 1.0
lock = threading.Lock()


def option(name, default=None):
    args = sys.argv[1:]
    if name not in args:
        return default
    at = args.index(name) + 1
    return args[at] if at < len(args) else ""


def say(sock, **message):
    with lock:
        sock.sendall((json.dumps(message) + "\n").encode())


def no_server(port):
    print("openai.APIConnectionError: Connection error.", file=sys.stderr)
    print(f"(no model server of this bundle answers on port {port})", file=sys.stderr)
    sys.exit(1)


def server_answers(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


def main():
    port_text = option("--port", "8000")
    if not port_text.isdigit():
        print(
            f"agent.py: error: argument --port: invalid int value: '{port_text}'", file=sys.stderr
        )
        sys.exit(2)
    port, task = int(port_text), option("--task")
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    with open("config.json") as fh:
        config = json.load(fh)
    if not server_answers(port):
        no_server(port)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.connect(CONTROL_SOCKET)
    if config.get("catches_sigterm"):
        signal.signal(signal.SIGTERM, lambda *_: say(ctl, op="sigterm"))
    say(
        ctl,
        op="hello",
        role="agent",
        pid=os.getpid(),
        path=here,
        port=port,
        parent=config.get("replica"),
        spec=config.get("spec", 0),
        task=task,
    )
    reply = json.loads(ctl.makefile("r").readline() or "{}")
    if "name" not in reply:
        if reply.get("about") == "server":
            no_server(port)
        print(f"[agent] the controller refused this agent: {reply.get('refused')}", file=sys.stderr)
        sys.exit(1)
    config["replica"] = reply["name"]
    with open("config.json.tmp", "w") as fh:
        json.dump(config, fh, indent=2)
        fh.write("\n")
    os.replace("config.json.tmp", "config.json")
    print(f"[agent] model server http://localhost:{port}/v1 is up", flush=True)
    print(f"[agent] task: {task}" if task else "[agent] waiting for a task...", flush=True)

    def beat():
        while True:
            time.sleep(HEARTBEAT_S)
            say(ctl, op="beat")

    threading.Thread(target=beat, daemon=True).start()
    while ctl.recv(4096):  # the controller never writes again; EOF: it is gone
        pass


if __name__ == "__main__":
    main()
